"""Service-level objectives for `bench tune`: parse 'p50<20ms,p99<100ms' and check a point's latencies against it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from bench.records.errors import BenchError

# Percentile as the user writes it -> the PointMetrics field that holds it (every one is recorded per point).
PERCENTILE_FIELDS: dict[str, str] = {
    "p50": "latency_ms_p50",
    "p90": "latency_ms_p90",
    "p95": "latency_ms_p95",
    "p99": "latency_ms_p99",
    "p99.9": "latency_ms_p999",
    "max": "latency_ms_max",
}
UNIT_MS: dict[str, float] = {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0}

Operator = Literal["<", "<="]

_CLAUSE = re.compile(
    r"^(?P<percentile>p\d+(?:\.\d+)?|max)\s*(?P<op><=|<)\s*(?P<value>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>us|µs|ms|s)$",
    re.IGNORECASE,
)
_ALLOWED = (
    f"write PERCENTILE<LIMIT with a unit, e.g. 'p99<100ms' or 'p50<=20ms,p99<1s' "
    f"(percentiles: {', '.join(PERCENTILE_FIELDS)}; operators: <, <=; units: us, ms, s)"
)


@dataclass(frozen=True)
class SloClause:
    """One bound: a latency percentile below (or at most) a limit."""

    percentile: str  # a key of PERCENTILE_FIELDS
    operator: Operator
    limit_ms: float

    @property
    def metric(self) -> str:
        return PERCENTILE_FIELDS[self.percentile]

    def met_by(self, value_ms: float) -> bool:
        return value_ms < self.limit_ms if self.operator == "<" else value_ms <= self.limit_ms

    def ratio(self, value_ms: float) -> float:
        """How far a value is from the limit: below 1 meets it (for '<'), 1.4 is 40% over."""
        return value_ms / self.limit_ms

    def describe(self) -> str:
        return f"{self.percentile} {self.operator} {format_ms(self.limit_ms)}"


@dataclass(frozen=True)
class Slo:
    """Every clause must hold (the ',' in 'p50<20ms,p99<100ms' means 'and')."""

    clauses: tuple[SloClause, ...]

    def met_by(self, latencies_ms: Mapping[str, float]) -> bool:
        """`latencies_ms` by PointMetrics field name, e.g. {"latency_ms_p99": 84.0}."""
        return all(clause.met_by(latencies_ms[clause.metric]) for clause in self.clauses)

    def worst_ratio(self, latencies_ms: Mapping[str, float]) -> float:
        """The clause furthest from (or closest to breaking) its limit, as value / limit."""
        return max(clause.ratio(latencies_ms[clause.metric]) for clause in self.clauses)

    @property
    def metrics(self) -> list[str]:
        return [clause.metric for clause in self.clauses]

    def describe(self) -> str:
        return ", ".join(clause.describe() for clause in self.clauses)


def format_ms(value_ms: float) -> str:
    """A limit in the unit it reads best in: 0.5 ms, 100 ms, 1.5 s."""
    if value_ms >= 1000:
        return f"{value_ms / 1000:g} s"
    if value_ms < 1:
        return f"{value_ms * 1000:g} us"
    return f"{value_ms:g} ms"


def parse_slo(text: str) -> Slo:
    """'p99<100ms', 'p50<=20ms', 'p99.9<1s', 'p99 < 250 ms', combined with ','. BenchError (one line) otherwise."""
    parts = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not part for part in parts):
        raise BenchError(f"invalid --slo {text!r}: {_ALLOWED}")
    clauses: list[SloClause] = []
    for part in parts:
        match = _CLAUSE.match(part)
        if match is None:
            raise BenchError(f"invalid --slo {part!r}: {_ALLOWED}")
        percentile = match["percentile"].lower()
        if percentile not in PERCENTILE_FIELDS:
            raise BenchError(f"invalid --slo {part!r}: percentile {percentile} is not recorded; {_ALLOWED}")
        limit_ms = float(match["value"]) * UNIT_MS[match["unit"].lower()]
        if limit_ms <= 0:
            raise BenchError(f"invalid --slo {part!r}: the limit must be above zero")
        if any(clause.percentile == percentile for clause in clauses):
            # Two bounds on one percentile are almost always a typo; one of them would silently win.
            raise BenchError(f"invalid --slo {text!r}: {percentile} is bounded twice")
        operator: Operator = "<=" if match["op"] == "<=" else "<"
        clauses.append(SloClause(percentile, operator, limit_ms))
    return Slo(tuple(clauses))
