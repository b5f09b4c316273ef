"""SLO parsing: what `--slo` accepts, what it refuses (one line naming what is allowed), and what 'met' means."""

from __future__ import annotations

import pytest

from bench.analysis.slo import SloClause, format_ms, parse_slo
from bench.records.errors import BenchError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("p99<100ms", [("p99", "<", 100.0)]),
        ("p50<=20ms", [("p50", "<=", 20.0)]),
        ("p99.9<1s", [("p99.9", "<", 1000.0)]),
        ("p99 < 250 ms", [("p99", "<", 250.0)]),
        ("p50<20ms,p99<100ms", [("p50", "<", 20.0), ("p99", "<", 100.0)]),
        (" p50 <= 20ms , p99.9 < 1.5s ", [("p50", "<=", 20.0), ("p99.9", "<", 1500.0)]),
        ("p95<500us", [("p95", "<", 0.5)]),
        ("P90<0.25S", [("p90", "<", 250.0)]),
        ("max<2s", [("max", "<", 2000.0)]),
        ("p99<.5s", [("p99", "<", 500.0)]),
    ],
)
def test_accepted_slos(text: str, expected: list[tuple[str, str, float]]) -> None:
    slo = parse_slo(text)
    assert [(c.percentile, c.operator, c.limit_ms) for c in slo.clauses] == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "p99",
        "p99<100",  # no unit
        "p99>100ms",  # only upper bounds make sense for latency
        "p99<100m",
        "p42<100ms",  # not a recorded percentile
        "p99<0ms",
        "p99<100ms,",
        "p99<100ms;p50<10ms",
        "p99<100ms,p99<50ms",  # bounded twice
        "latency<100ms",
        "p99<-5ms",
    ],
)
def test_refused_slos_name_what_is_allowed(text: str) -> None:
    with pytest.raises(BenchError) as caught:
        parse_slo(text)
    message = caught.value.message
    assert message.startswith("invalid --slo")
    assert "\n" not in message
    if "twice" not in message and "above zero" not in message:
        assert "p50, p90, p95, p99, p99.9, max" in message and "us, ms, s" in message


def test_strict_and_inclusive_bounds() -> None:
    strict, inclusive = SloClause("p99", "<", 100.0), SloClause("p99", "<=", 100.0)
    assert not strict.met_by(100.0) and strict.met_by(99.9)
    assert inclusive.met_by(100.0) and not inclusive.met_by(100.1)


def test_every_clause_must_hold() -> None:
    slo = parse_slo("p50<20ms,p99<100ms")
    assert slo.met_by({"latency_ms_p50": 10.0, "latency_ms_p99": 90.0})
    assert not slo.met_by({"latency_ms_p50": 25.0, "latency_ms_p99": 90.0})
    assert not slo.met_by({"latency_ms_p50": 10.0, "latency_ms_p99": 120.0})
    # The worst clause decides how far a setting is from passing: p99 at 150 ms is 1.5x its limit.
    assert slo.worst_ratio({"latency_ms_p50": 10.0, "latency_ms_p99": 150.0}) == pytest.approx(1.5)


def test_descriptions_read_in_natural_units() -> None:
    assert parse_slo("p99.9<1.5s,p50<=500us").describe() == "p99.9 < 1.5 s, p50 <= 500 us"
    assert format_ms(100.0) == "100 ms"
