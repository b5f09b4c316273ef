"""What `bench overhead` records: each variant beside its yardstick, round by round, and the ratios."""

from __future__ import annotations

from statistics import median
from typing import Literal

from pydantic import BaseModel, ConfigDict

# The budget the harness holds its own apps to (issue: "our own apps cost <= 5%"): a variant may serve no less
# than this share of its yardstick's requests/s, and its p99 may be no more than this multiple of the yardstick's.
REQUESTS_RATIO_MIN = 0.95
P99_RATIO_MAX = 1.10
# A variant outside the budget is only called over it when its rounds differ from the A/A control's (the
# yardstick beside itself) at this level (Mann-Whitney, two-sided): on a noisy machine identical apps differ by
# more than the budget, and a verdict that noise alone can produce is not one.
SIGNIFICANCE = 0.05

# ok: within the budget; over: outside it, and unlike the control; unresolved: outside it, but within what the
# control (identical apps) showed, so this many rounds on this machine cannot tell.
Verdict = Literal["ok", "over", "unresolved"]

Generator = Literal["wrk", "locust"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class AppFigures(_Frozen):
    """One app's measured period in one round."""

    requests_per_s: float
    latency_ms_p50: float
    latency_ms_p99: float
    errors: int


class OverheadRound(_Frozen):
    round: int  # 1-based
    first: Literal["variant", "yardstick"]  # rounds alternate which app runs first
    variant: AppFigures
    yardstick: AppFigures

    @property
    def requests_ratio(self) -> float:
        return _ratio(self.variant.requests_per_s, self.yardstick.requests_per_s)

    @property
    def p50_ratio(self) -> float:
        return _ratio(self.variant.latency_ms_p50, self.yardstick.latency_ms_p50)

    @property
    def p99_ratio(self) -> float:
        return _ratio(self.variant.latency_ms_p99, self.yardstick.latency_ms_p99)


class Ratio(_Frozen):
    """variant / yardstick over the rounds: the median and the range of the per-round ratios."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Ratio:
        return cls(median=median(values), low=min(values), high=max(values))


class VariantOverhead(_Frozen):
    variant: str
    backend: str
    database: str  # the label of the database both apps used
    surrogate: bool = False  # measured on a stand-in server (the MongoDB surrogate): not that database's speed
    rounds: list[OverheadRound]
    requests_ratio: Ratio
    p50_ratio: Ratio
    p99_ratio: Ratio
    # Set when measured beside the A/A control (None in records made before there was one, and on the control
    # itself): see Verdict. control_p: the Mann-Whitney p-value of the figure(s) outside the budget, against the
    # control's rounds (the smallest, when both are outside).
    verdict: Verdict | None = None
    control_p: float | None = None

    @property
    def within_budget(self) -> bool:
        return self.requests_ratio.median >= REQUESTS_RATIO_MIN and self.p99_ratio.median <= P99_RATIO_MAX

    @property
    def over_budget(self) -> bool:
        """Outside the budget by more than noise (without a control, as older records were judged: outside it)."""
        return not self.within_budget if self.verdict is None else self.verdict == "over"

    @property
    def errors(self) -> int:
        return sum(r.variant.errors + r.yardstick.errors for r in self.rounds)


class OverheadRecord(_Frozen):
    """One `bench overhead`: kept in results/overhead/, and the latest one is shown in every run's report."""

    measured_at: str
    machine: str
    generator: Generator
    connections: int
    warmup_s: float
    duration_s: float
    pool_size: int
    max_overflow: int
    dataset_rows: int
    telemetry: bool
    variants: list[VariantOverhead]
    # The first variant's yardstick beside itself, in the same interleaved rounds: the ratio identical apps give
    # on this machine, i.e. the noise floor every other ratio is read against (None: run with --no-control).
    control: VariantOverhead | None = None


def summarise(
    variant: str, backend: str, database: str, surrogate: bool, rounds: list[OverheadRound]
) -> VariantOverhead:
    return VariantOverhead(
        variant=variant,
        backend=backend,
        database=database,
        surrogate=surrogate,
        rounds=rounds,
        requests_ratio=Ratio.of([r.requests_ratio for r in rounds]),
        p50_ratio=Ratio.of([r.p50_ratio for r in rounds]),
        p99_ratio=Ratio.of([r.p99_ratio for r in rounds]),
    )


def _ratio(numerator: float, denominator: float) -> float:
    # bench overhead refuses a round in which either app served nothing, so a zero here is a defect.
    if denominator <= 0:
        raise ValueError("a yardstick figure of 0 cannot be a ratio's denominator")
    return numerator / denominator
