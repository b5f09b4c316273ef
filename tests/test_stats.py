"""Statistics over repeats, with inputs whose answers are known."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bench.records.schema import PointConfig, PointMetrics, PointRecord
from bench.records.stats import (
    UNSTABLE_CV,
    RepeatStats,
    group_repeats,
    mann_whitney_u,
    summarise,
)

# --- summarise ----------------------------------------------------------------------------------------------


def test_median_mean_and_spread_of_known_values() -> None:
    stats = summarise([5, 1, 4, 2, 3])
    assert stats.n == 5
    assert stats.median == 3
    assert stats.mean == 3
    assert stats.stdev == pytest.approx(math.sqrt(2.5))
    assert stats.cv == pytest.approx(math.sqrt(2.5) / 3)


def test_small_samples_use_the_t_interval_and_say_so() -> None:
    stats = summarise([1, 2, 3, 4, 5])
    half = 2.77644511 * math.sqrt(2.5) / math.sqrt(5)  # t(0.975, 4) * s / sqrt(n)
    assert stats.ci_low == pytest.approx(3 - half)
    assert stats.ci_high == pytest.approx(3 + half)
    assert stats.method.startswith("t-interval of the mean")
    two = summarise([10, 12])
    assert two.ci_low == pytest.approx(11 - 12.7062047)
    assert two.ci_high == pytest.approx(11 + 12.7062047)


def test_six_or_more_values_use_order_statistics() -> None:
    six = summarise([6, 1, 5, 2, 4, 3])
    assert (six.ci_low, six.ci_high) == (1, 6)  # [min, max] covers the median with 1 - 2/64 = 96.9%
    assert six.method.startswith("order statistics x(1)..x(6), 96.9%")
    nine = summarise(list(range(1, 10)))
    assert (nine.ci_low, nine.ci_high) == (2, 8)  # x(2)..x(8): 1 - 2 * 10/512 = 96.1%
    assert "96.1%" in nine.method
    ten = summarise(list(range(1, 11)))
    assert (ten.ci_low, ten.ci_high) == (2, 9)  # x(3)..x(8) would cover only 89.1%


@pytest.mark.parametrize(
    "values",
    [[1.0, 100.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0, 1.0], [3.0, 3.0, 3.0, 3.0, 3.0, 900.0], [5.0, 1.0, 2.0]],
)
def test_the_interval_contains_the_median(values: list[float]) -> None:
    stats = summarise(values)
    assert stats.ci_low is not None and stats.ci_high is not None
    assert stats.ci_low <= stats.median <= stats.ci_high


def test_constant_values_have_zero_spread() -> None:
    stats = summarise([7.5] * 4)
    assert (stats.stdev, stats.cv) == (0.0, 0.0)
    assert (stats.ci_low, stats.ci_high) == (7.5, 7.5)
    zeros = summarise([0.0, 0.0, 0.0])
    assert zeros.cv == 0.0


def test_cv_is_undefined_for_a_zero_mean_with_spread() -> None:
    assert summarise([-1.0, 1.0]).cv is None


def test_a_single_value_has_no_interval() -> None:
    stats = summarise([42.0])
    assert (stats.median, stats.mean) == (42.0, 42.0)
    assert (stats.ci_low, stats.ci_high, stats.stdev, stats.cv) == (None, None, None, None)
    assert stats.method == "single value"
    assert stats.interval is None
    assert summarise([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).interval == (1.0, 6.0)


def test_no_values_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        summarise([])


# --- group_repeats ----------------------------------------------------------------------------------------


def config(**changes: Any) -> PointConfig:
    base: dict[str, Any] = {
        "variant": "pg_sqla_async",
        "backend": "postgresql",
        "backend_label": "PostgreSQL 16",
        "mode": "async",
        "driver": "asyncpg",
        "pooled": True,
        "scenario": "read_heavy",
        "pool_size": 10,
        "max_overflow": 5,
        "users": 50,
        "spawn_rate": 50.0,
        "warmup_s": 5.0,
        "duration_s": 20.0,
        "repeat_index": 0,
        "pool_timeout_s": 30.0,
        "pool_pre_ping": False,
        "thread_tokens": 40,
        "workers": 1,
        "dataset_rows": 1000,
        "scenario_options": {"a": 1, "b": "x"},
    }
    return PointConfig.model_validate(base | changes)


def metrics(rps: float, p50: float = 10.0, p99: float = 50.0, error_rate: float = 0.0) -> PointMetrics:
    return PointMetrics(
        requests=1000,
        failures=0,
        error_rate=error_rate,
        requests_per_s=rps,
        measured_s=20.0,
        latency_ms_mean=p50,
        latency_ms_p50=p50,
        latency_ms_p90=p99,
        latency_ms_p95=p99,
        latency_ms_p99=p99,
        latency_ms_p999=p99,
        latency_ms_max=p99,
    )


def point(point_id: str, cfg: PointConfig, m: PointMetrics | None, *, ok: bool = True) -> PointRecord:
    return PointRecord(
        run_id="r1",
        point_id=point_id,
        index=0,
        status="ok" if ok else "failed",
        error=None if ok else "boom",
        config=cfg,
        metrics=m,
        started_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:00:30+00:00",
    )


def test_repeats_group_together_and_different_configs_apart() -> None:
    points = [
        point("p0", config(repeat_index=0), metrics(100.0)),
        point("q0", config(repeat_index=0, pool_size=20), metrics(150.0)),
        point("p1", config(repeat_index=1, scenario_options={"b": "x", "a": 1}), metrics(102.0)),
        point("p2", config(repeat_index=2), metrics(98.0)),
        point("q1", config(repeat_index=1, pool_size=20), metrics(152.0)),
    ]
    groups = group_repeats(points)
    assert [g.point_ids for g in groups] == [["p0", "p1", "p2"], ["q0", "q1"]]
    assert groups[0].config.repeat_index == 0 and groups[0].config.pool_size == 10
    assert groups[0].stats["requests_per_s"].median == 100.0
    assert groups[1].stats["requests_per_s"].median == 151.0
    assert set(groups[0].stats) == {"requests_per_s", "latency_ms_p50", "latency_ms_p99", "error_rate"}


def test_grouping_ignores_failed_points() -> None:
    points = [
        point("p0", config(repeat_index=0), metrics(100.0)),
        point("p1", config(repeat_index=1), None, ok=False),
        point("p2", config(repeat_index=2), metrics(104.0)),
    ]
    groups = group_repeats(points)
    assert [g.point_ids for g in groups] == [["p0", "p2"]]
    assert groups[0].stats["requests_per_s"].n == 2


def test_unstable_flag_follows_the_thresholds() -> None:
    threshold = UNSTABLE_CV["requests_per_s"]
    # CV of [100 - d, 100 + d] is d * sqrt(2) / 100: just under and just over the threshold.
    below = threshold * 100 / math.sqrt(2) * 0.95
    above = threshold * 100 / math.sqrt(2) * 1.05
    steady = group_repeats(
        [point(f"s{i}", config(repeat_index=i), metrics(100.0 + d)) for i, d in enumerate([-below, below])]
    )[0]
    assert steady.unstable is False and steady.unstable_metrics == []
    shaky = group_repeats(
        [point(f"u{i}", config(repeat_index=i), metrics(100.0 + d)) for i, d in enumerate([-above, above])]
    )[0]
    assert shaky.unstable is True and shaky.unstable_metrics == ["requests_per_s"]


def test_p99_has_a_looser_threshold_than_throughput() -> None:
    # 20% CV: unstable for throughput, within the tolerance for p99.
    spread = 0.20 * 100 / math.sqrt(2)
    group = group_repeats(
        [
            point(f"p{i}", config(repeat_index=i), metrics(100.0 + d, p99=100.0 + d))
            for i, d in enumerate([-spread, spread])
        ]
    )[0]
    assert group.unstable_metrics == ["requests_per_s"]


def test_error_rate_never_makes_a_group_unstable() -> None:
    points = [point(f"p{i}", config(repeat_index=i), metrics(100.0, error_rate=e)) for i, e in enumerate([0.0, 0.01])]
    group = group_repeats(points)[0]
    assert group.stats["error_rate"].cv is not None and group.stats["error_rate"].cv > 1
    assert group.unstable is False


def test_groups_round_trip_as_json() -> None:
    groups = group_repeats([point("p0", config(), metrics(100.0)), point("p1", config(repeat_index=1), metrics(90.0))])
    restored = type(groups[0]).model_validate_json(groups[0].model_dump_json())
    assert restored == groups[0]
    assert isinstance(restored.stats["requests_per_s"], RepeatStats)


# --- Mann-Whitney U -----------------------------------------------------------------------------------------


def test_mann_whitney_exact_for_completely_separated_samples() -> None:
    u, p = mann_whitney_u([1, 2, 3], [4, 5, 6])
    assert u == 0
    assert p == pytest.approx(0.1)  # 2 of the C(6, 3) = 20 orderings are this extreme


def test_mann_whitney_exact_textbook_example() -> None:
    # SciPy's documentation example: U1 = 17, exact two-sided p = 2 * 7/126.
    u, p = mann_whitney_u([19, 22, 16, 29, 24], [20, 11, 17, 12])
    assert u == 17
    assert p == pytest.approx(14 / 126)


def test_mann_whitney_exact_with_ties() -> None:
    # Pooled 1, 1, 2, 2, 3, 3 have midranks 1.5, 1.5, 3.5, 3.5, 5.5, 5.5; `a` holds 1.5 + 1.5 + 3.5 = 6.5, so
    # U = 6.5 - 3 * 4 / 2 = 0.5. Of the C(6, 3) = 20 ways to pick three midranks, 2 give U <= 0.5 (the two 1.5s
    # with either 3.5), so p = 2 * 2/20.
    u, p = mann_whitney_u([1, 1, 2], [2, 3, 3])
    assert u == 0.5
    assert p == pytest.approx(0.2)


def test_mann_whitney_is_symmetric_and_equal_samples_give_p_one() -> None:
    u_ab, p_ab = mann_whitney_u([3, 5, 8, 9], [1, 2, 4, 6, 7])
    u_ba, p_ba = mann_whitney_u([1, 2, 4, 6, 7], [3, 5, 8, 9])
    assert u_ab + u_ba == 4 * 5
    assert p_ab == pytest.approx(p_ba)
    assert mann_whitney_u([1, 1, 1], [1, 1, 1]) == (4.5, 1.0)


def test_mann_whitney_normal_approximation_for_larger_samples() -> None:
    a = [float(v) for v in range(20)]
    b = [float(v) for v in range(10, 30)]  # 10..19 are in both: ten ties of two
    u, p = mann_whitney_u(a, b)
    # Ranks: 0..9 -> 1..10; each of 10..19 appears twice -> midranks 11.5, 13.5, ..., 29.5; 20..29 -> 31..40.
    rank_sum_a = sum(range(1, 11)) + sum(11.5 + 2 * i for i in range(10))
    expected_u = rank_sum_a - 20 * 21 / 2
    assert u == pytest.approx(expected_u)
    n = 40
    variance = 20 * 20 / 12 * ((n + 1) - 10 * (2**3 - 2) / (n * (n - 1)))
    z = (abs(expected_u - 200) - 0.5) / math.sqrt(variance)
    assert p == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert p < 0.001


def test_mann_whitney_needs_values_in_both_samples() -> None:
    with pytest.raises(ValueError, match="at least one"):
        mann_whitney_u([], [1.0])
