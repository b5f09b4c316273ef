"""`bench compare`: matching, statistics, verdicts, gate and output, on runs written by hand with known figures."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bench.analysis.compare import (
    all_without_enough_repeats,
    compare_metric,
    compare_runs,
    comparison_markdown,
    gate,
    ratio_interval,
    smallest_p_value,
    write_comparison,
)
from bench.records.errors import BenchError
from bench.records.run_folder import RunFolder, create_run_folder
from bench.records.schema import DatabaseInfo, PointConfig, PointMetrics, PointRecord, RunRecord
from bench.records.stats import mann_whitney_u
from bench.report.show import comparison_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
THROUGHPUT = [1000.0, 1012.0, 991.0, 1006.0, 996.0]  # five repeats of one configuration, ~1% apart
P99 = [50.0, 51.0, 49.0, 50.5, 49.5]

# (requests/s, p99 ms) per repeat, by variant
Series = dict[str, Sequence[tuple[float, float]]]


def _config(variant: str, repeat_index: int, **changes: Any) -> PointConfig:
    config = PointConfig(
        variant=variant, backend="postgresql", backend_label="PostgreSQL 15.19", mode="async", driver="asyncpg",
        pooled=True, scenario="read_heavy", pool_size=5, max_overflow=0, users=50, spawn_rate=50, warmup_s=3,
        duration_s=10, repeat_index=repeat_index, pool_timeout_s=30, pool_pre_ping=False, thread_tokens=40,
        workers=1, dataset_rows=10_000,
    )  # fmt: skip
    if variant == "memory":  # the baseline has no database and no pool
        config = config.model_copy(
            update={"backend": "memory", "pooled": False, "pool_size": None, "max_overflow": None}
        )
    return config.model_copy(update=changes)


def _metrics(requests_per_s: float, p99: float) -> PointMetrics:
    return PointMetrics(
        requests=int(requests_per_s * 10), failures=0, error_rate=0.0, requests_per_s=requests_per_s,
        measured_s=10, latency_ms_mean=p99 / 3, latency_ms_p50=p99 / 4, latency_ms_p90=p99 / 2,
        latency_ms_p95=p99 / 1.5, latency_ms_p99=p99, latency_ms_p999=p99 * 1.5, latency_ms_max=p99 * 2,
    )  # fmt: skip


def _write_run(
    results: Path,
    run_id: str,
    series: Series,
    *,
    failed: Sequence[str] = (),
    sweep: dict[str, Any] | None = None,
    database_label: str = "PostgreSQL 15.19",
    stalled: bool = False,
    **config_changes: Any,
) -> RunFolder:
    """A run with one configuration per variant, a point per (requests/s, p99) pair, and a failed point per
    variant in `failed`."""
    folder = create_run_folder(results, run_id)
    points: list[PointRecord] = []
    for variant, repeats in series.items():
        for repeat_index, (requests_per_s, p99) in enumerate(repeats, start=1):
            config = _config(variant, repeat_index, backend_label=database_label, **config_changes)
            point = _point(run_id, len(points) + 1, config, _metrics(requests_per_s, p99))
            points.append(point.model_copy(update={"flags": ["stalled"]}) if stalled else point)
    for variant in failed:
        points.append(_point(run_id, len(points) + 1, _config(variant, 1, **config_changes), None))
    for point in points:
        folder.write_point(point)
    folder.write_run(
        RunRecord(
            run_id=run_id, status="complete", created_at="2026-01-01T00:00:00+00:00", argv=["bench", "run"],
            sweep={"scenario": "read_heavy", "load_model": "closed", "duration_s": 10, **(sweep or {})},
            environment={"cpu_count": 2, "cpu_model": "Test CPU", "git_commit": f"commit-{run_id}"},
            databases={"postgresql": DatabaseInfo(kind="postgresql", label=database_label, url=None, embedded=True,
                                                  version="15", settings={})},
            points_planned=len(points), points_ok=sum(p.status == "ok" for p in points),
            points_failed=sum(p.status == "failed" for p in points),
        )
    )  # fmt: skip
    return folder


def _point(run_id: str, index: int, config: PointConfig, metrics: PointMetrics | None) -> PointRecord:
    return PointRecord(
        run_id=run_id, point_id=f"{index:03d}-{config.variant}-r{config.repeat_index}", index=index,
        status="ok" if metrics else "failed", error=None if metrics else "uvicorn exited during start-up",
        config=config, metrics=metrics, started_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:00:15+00:00",
    )  # fmt: skip


def _pairs(throughputs: Sequence[float], p99s: Sequence[float]) -> list[tuple[float, float]]:
    return list(zip(throughputs, p99s, strict=True))


# --- verdicts and the gate ----------------------------------------------------------------------------------


def test_identical_distributions_show_no_significant_difference_and_pass_the_gate(tmp_path: Path) -> None:
    a = _write_run(tmp_path, "a", {"pg_sqla_async": _pairs(THROUGHPUT, P99)})
    # The same five figures in another order: the same distribution, measured again.
    b = _write_run(tmp_path, "b", {"pg_sqla_async": _pairs(THROUGHPUT[::-1], P99[::-1])})

    comparison = compare_runs(a, b)

    (row,) = comparison.rows
    assert row.verdict == "no significant difference"
    throughput = row.metrics["requests_per_s"]
    assert throughput.change_pct == pytest.approx(0.0)
    assert throughput.p_value == pytest.approx(1.0)
    assert throughput.change_ci_pct is not None
    low, high = throughput.change_ci_pct
    assert low < 0 < high
    assert gate(comparison, 10) == []
    assert gate(comparison, 0) == []
    assert comparison.unmatched == []


def test_thirty_percent_less_throughput_over_five_repeats_is_slower_and_fails_a_10_percent_gate(
    tmp_path: Path,
) -> None:
    a = _write_run(tmp_path, "a", {"pg_sqla_async": _pairs(THROUGHPUT, P99)})
    b = _write_run(tmp_path, "b", {"pg_sqla_async": _pairs([t * 0.7 for t in THROUGHPUT], P99)})

    comparison = compare_runs(a, b)

    (row,) = comparison.rows
    throughput = row.metrics["requests_per_s"]
    assert throughput.change_pct == pytest.approx(-30.0)
    assert throughput.outcome == "worse"
    assert throughput.p_value is not None and throughput.p_value < 0.05
    assert throughput.change_ci_pct is not None and throughput.change_ci_pct[1] < 0  # the interval excludes 0
    assert row.metrics["latency_ms_p99"].outcome == "no significant difference"
    assert row.verdict == "slower"
    (failure,) = gate(comparison, 10)
    assert failure.startswith("pg_sqla_async pool 5+0, 50 users: requests/s -30.0%")
    assert gate(comparison, 50) == []  # significant, but not by more than 50%
    markdown = comparison_markdown(comparison)
    assert "| pg_sqla_async pool 5+0, 50 users | 5/5 | -30.0% | +0.0% | **slower** |" in markdown


def test_higher_p99_alone_makes_it_slower_and_a_gain_makes_it_faster(tmp_path: Path) -> None:
    a = _write_run(tmp_path, "a", {"pg_sqla_async": _pairs(THROUGHPUT, P99), "pg_sqla_sync": _pairs(THROUGHPUT, P99)})
    b = _write_run(
        tmp_path,
        "b",
        {
            "pg_sqla_async": _pairs(THROUGHPUT, [p * 2 for p in P99]),  # tail latency doubled
            "pg_sqla_sync": _pairs([t * 1.2 for t in THROUGHPUT], P99),  # 20% more throughput
        },
    )
    comparison = compare_runs(a, b)
    verdicts = {row.config.variant: row.verdict for row in comparison.rows}
    assert verdicts == {"pg_sqla_async": "slower", "pg_sqla_sync": "faster"}
    (failure,) = gate(comparison, 50)
    assert failure.startswith("pg_sqla_async pool 5+0, 50 users: p99 +100.0%")


def test_a_stalled_run_is_slower_and_its_zero_latency_is_not_a_gain(tmp_path: Path) -> None:
    a = _write_run(tmp_path, "a", {"pg_sqla_async": _pairs(THROUGHPUT, P99)})
    b = _write_run(tmp_path, "b", {"pg_sqla_async": [(0.0, 0.0)] * 5}, stalled=True)

    comparison = compare_runs(a, b)

    (row,) = comparison.rows
    assert row.metrics["latency_ms_p99"].outcome == "not measured"
    assert row.metrics["requests_per_s"].outcome == "worse"
    assert row.verdict == "slower"
    assert gate(comparison, 10) == ["pg_sqla_async pool 5+0, 50 users: requests/s -100.0% (p=0.008)"]
    markdown = comparison_markdown(comparison)
    assert "| 5/5 | -100.0% | stalled | **slower** |" in markdown
    assert "| p99 ms | 50.0 (n=5) | – (stalled) | stalled | – | – | not measured |" in markdown
    assert "- pg_sqla_async pool 5+0, 50 users: A none; B stalled 5/5" in markdown
    # And the other way round: recovering from a stall is faster, not "p99 from 0".
    assert compare_runs(b, a).rows[0].verdict == "faster"


def test_one_repeat_per_side_has_no_interval_and_no_verdict(tmp_path: Path) -> None:
    a = _write_run(tmp_path, "a", {"pg_sqla_async": [(1000, 50)]})
    b = _write_run(tmp_path, "b", {"pg_sqla_async": [(500, 100)]})  # half the throughput, yet no claim

    comparison = compare_runs(a, b)

    (row,) = comparison.rows
    assert row.verdict == "not enough repeats"
    throughput = row.metrics["requests_per_s"]
    assert throughput.change_pct == pytest.approx(-50.0)
    assert (throughput.ratio_ci, throughput.p_value) == (None, None)
    assert gate(comparison, 10) == []
    assert all_without_enough_repeats(comparison)
    assert "| -50.0% | not enough repeats | – | not enough repeats |" in comparison_markdown(comparison)


def test_three_repeats_per_side_cannot_reach_five_percent_so_say_not_enough() -> None:
    # 3 + 3 values: even B entirely below A gives p = 0.1, so "no significant difference" would be a non-answer.
    assert smallest_p_value(3, 3) == pytest.approx(0.1)
    assert smallest_p_value(4, 4) == pytest.approx(2 / 70)
    assert compare_metric("requests_per_s", [100, 101, 102], [50, 51, 52]).outcome == "not enough repeats"
    assert compare_metric("requests_per_s", [100, 101, 102, 103], [50, 51, 52, 53]).outcome == "worse"


def test_error_rate_from_zero_has_no_ratio_and_zero_to_zero_is_no_change() -> None:
    zero_to_zero = compare_metric("error_rate", [0, 0, 0, 0, 0], [0, 0, 0, 0, 0])
    assert (zero_to_zero.change_pct, zero_to_zero.outcome) == (0.0, "no significant difference")
    from_zero = compare_metric("error_rate", [0, 0, 0, 0, 0], [0.1, 0.2, 0.1, 0.3, 0.2])
    assert from_zero.ratio is None and from_zero.ratio_ci is None
    assert from_zero.outcome == "worse"


def test_the_interval_excludes_no_change_exactly_when_the_test_is_significant() -> None:
    generator = random.Random(7)
    for _ in range(200):
        n_a, n_b = generator.randint(4, 9), generator.randint(4, 9)
        a = [generator.lognormvariate(0, 0.1) for _ in range(n_a)]
        b = [generator.lognormvariate(generator.choice([0, 0.05, 0.2]), 0.1) for _ in range(n_b)]
        interval = ratio_interval(a, b)
        assert interval is not None
        p_value = mann_whitney_u(a, b)[1]
        assert (not interval[0] <= 1 <= interval[1]) == (p_value < 0.05), (a, b, interval, p_value)


def test_interval_of_a_known_shift() -> None:
    # B is A times 2 exactly: every pairwise ratio b_j / a_i brackets 2, and the interval holds 2.
    a = [10.0, 11.0, 12.0, 13.0, 14.0]
    interval = ratio_interval(a, [2 * v for v in a])
    assert interval is not None
    assert interval[0] < 2 < interval[1]
    # n = 5 + 5: k = 3 (coverage 96.8%), the 3rd smallest and 3rd largest of the 25 pairwise ratios.
    ratios = sorted(b / x for x in a for b in [2 * v for v in a])
    assert interval == pytest.approx((ratios[2], ratios[-3]))


# --- matching -----------------------------------------------------------------------------------------------


def test_configurations_in_one_run_only_are_listed_and_failures_in_b_fail_the_gate(tmp_path: Path) -> None:
    five = _pairs(THROUGHPUT, P99)
    a = _write_run(tmp_path, "a", {"pg_sqla_async": five, "pg_sqla_sync": five, "pg_psycopg_sync": five})
    b = _write_run(tmp_path, "b", {"pg_sqla_async": five, "pg_asyncpg": five}, failed=["pg_psycopg_sync"])

    comparison = compare_runs(a, b)

    assert [row.config.variant for row in comparison.rows] == ["pg_sqla_async"]
    assert [(u.label, u.reason) for u in comparison.unmatched] == [
        ("pg_sqla_sync pool 5+0, 50 users", "only in A"),
        ("pg_psycopg_sync pool 5+0, 50 users", "every repeat failed in B"),
        ("pg_asyncpg pool 5+0, 50 users", "only in B"),
    ]
    assert gate(comparison, 10) == ["pg_psycopg_sync pool 5+0, 50 users: every repeat failed in B"]
    markdown = comparison_markdown(comparison)
    assert "- pg_sqla_sync pool 5+0, 50 users: only in A" in markdown
    assert "- pg_asyncpg pool 5+0, 50 users: only in B" in markdown


def test_environment_does_not_stop_a_match_but_is_listed(tmp_path: Path) -> None:
    five = _pairs(THROUGHPUT, P99)
    a = _write_run(tmp_path, "a", {"pg_sqla_async": five}, server_cpus=[0], generator_cpus=[1])
    b = _write_run(
        tmp_path, "b", {"pg_sqla_async": five}, database_label="PostgreSQL 16.4", server_cpus=[1], generator_cpus=[0]
    )
    comparison = compare_runs(a, b)
    assert len(comparison.rows) == 1
    assert "postgresql: PostgreSQL 15.19 in A, PostgreSQL 16.4 in B" in comparison.differences
    assert "git_commit: commit-a in A, commit-b in B" in comparison.differences


def test_a_different_measured_setting_is_not_the_same_configuration(tmp_path: Path) -> None:
    five = _pairs(THROUGHPUT, P99)
    a = _write_run(tmp_path, "a", {"pg_sqla_async": five})
    b = _write_run(tmp_path, "b", {"pg_sqla_async": five}, sweep={"duration_s": 30}, duration_s=30)
    with pytest.raises(BenchError) as error:
        compare_runs(a, b)
    assert "no configuration in common (duration_s: 10 in A, 30 in B)" in error.value.message
    assert "\n" not in error.value.message


def test_runs_of_different_scenarios_are_refused_in_one_line(tmp_path: Path) -> None:
    five = _pairs(THROUGHPUT, P99)
    a = _write_run(tmp_path, "a", {"pg_sqla_async": five})
    b = _write_run(tmp_path, "b", {"pg_sqla_async": five}, sweep={"scenario": "write_heavy"}, scenario="write_heavy")
    with pytest.raises(BenchError) as error:
        compare_runs(a, b)
    assert "scenario: read_heavy in A, write_heavy in B" in error.value.message
    assert "\n" not in error.value.message


def test_a_mixed_run_still_compares_what_matches_and_says_what_differs(tmp_path: Path) -> None:
    five = _pairs(THROUGHPUT, P99)
    a = _write_run(tmp_path, "a", {"pg_sqla_async": five}, sweep={"variants": ["pg_sqla_async"]})
    b = _write_run(
        tmp_path, "b", {"pg_sqla_async": five, "memory": five}, sweep={"variants": ["pg_sqla_async", "memory"]}
    )
    comparison = compare_runs(a, b)
    assert len(comparison.rows) == 1
    assert 'variants: ["pg_sqla_async"] in A, ["pg_sqla_async","memory"] in B' in comparison.differences


def test_a_corrupt_points_file_is_one_line_error(tmp_path: Path) -> None:
    five = _pairs(THROUGHPUT, P99)
    a = _write_run(tmp_path, "a", {"pg_sqla_async": five})
    b = _write_run(tmp_path, "b", {"pg_sqla_async": five})
    b.point_file("002-pg_sqla_async-r2").write_text('{"schema_version": 3, "run_id": ', encoding="utf-8")
    with pytest.raises(BenchError) as error:
        compare_runs(a, b)
    assert "002-pg_sqla_async-r2.json" in error.value.message
    assert "\n" not in error.value.message


def test_a_negative_gate_percentage_is_a_user_error(tmp_path: Path) -> None:
    five = _pairs(THROUGHPUT, P99)
    comparison = compare_runs(_write_run(tmp_path, "a", {"memory": five}), _write_run(tmp_path, "b", {"memory": five}))
    with pytest.raises(BenchError, match="not a percentage"):
        gate(comparison, -5)


# --- output -------------------------------------------------------------------------------------------------


def test_write_comparison_puts_chart_and_table_in_the_b_run(tmp_path: Path) -> None:
    a = _write_run(tmp_path, "a", {"pg_sqla_async": _pairs(THROUGHPUT, P99), "memory": [(5000, 5)]})
    b = _write_run(tmp_path, "b", {"pg_sqla_async": _pairs([t * 0.7 for t in THROUGHPUT], P99), "memory": [(5100, 5)]})
    comparison = compare_runs(a, b)

    written = write_comparison(comparison)

    out_dir = b.report_dir / "compare-a"
    assert [p.name for p in written] == ["comparison.png", "comparison.svg", "comparison.md"]
    assert all(p.parent == out_dir for p in written)
    assert written[0].read_bytes().startswith(PNG_MAGIC) and written[0].stat().st_size > 10_000
    svg = written[1].read_text(encoding="utf-8")
    assert "<svg" in svg and "pg_sqla_async pool 5+0, 50 users [slower]" in svg
    assert "memory no pool, 50 users [not enough repeats]" in svg
    markdown = written[2].read_text(encoding="utf-8")
    assert markdown.startswith("# Compare a (A) with b (B)")
    assert "![comparison.png](comparison.png)" in markdown
    assert sorted(p.name for p in out_dir.iterdir()) == ["comparison.md", "comparison.png", "comparison.svg"]


def test_the_terminal_table_shows_each_verdict(tmp_path: Path) -> None:
    a = _write_run(tmp_path, "a", {"pg_sqla_async": _pairs(THROUGHPUT, P99), "memory": [(5000, 5)]})
    b = _write_run(tmp_path, "b", {"pg_sqla_async": [(0.0, 0.0)] * 5, "memory": [(5100, 5)]}, stalled=True)
    console = Console(record=True, width=200)
    console.print(comparison_table(compare_runs(a, b)))
    lines = console.export_text().splitlines()
    assert lines[0].startswith("b (B) against a (A), change of medians")
    stalled = [cell.strip() for cell in next(line for line in lines if "pg_sqla_async" in line).split("│")[1:-1]]
    assert stalled == [
        "pg_sqla_async pool 5+0, 50 users",
        "5/5",
        "1,000 -> 0 (-100.0%)",
        "50.0 -> – (stalled)",
        "slower",
    ]
    memory = [cell.strip() for cell in next(line for line in lines if "memory" in line).split("│")[1:-1]]
    assert memory[-1] == "not enough repeats"


def test_ignoring_the_pool_compares_a_smaller_pool_against_the_current_one(tmp_path: Path) -> None:
    a = _write_run(tmp_path, "a", {"pg_sqla_async": _pairs(THROUGHPUT, P99)}, sweep={"pool_sizes": [10]}, pool_size=10)
    b = _write_run(
        tmp_path, "b", {"pg_sqla_async": _pairs([t * 0.6 for t in THROUGHPUT], P99)}, sweep={"pool_sizes": [2]},
        pool_size=2,
    )  # fmt: skip
    with pytest.raises(BenchError, match="no configuration in common"):
        compare_runs(a, b)
    comparison = compare_runs(a, b, ignore=["pool_size"])
    (row,) = comparison.rows
    assert row.verdict == "slower"
    assert row.label.startswith("pg_sqla_async any pool")
    assert "pool_sizes: [10] in A, [2] in B" in comparison.differences


def test_only_settings_may_be_ignored(tmp_path: Path) -> None:
    a = _write_run(tmp_path, "a", {"pg_sqla_async": _pairs(THROUGHPUT, P99)})
    with pytest.raises(BenchError, match="cannot ignore variant"):
        compare_runs(a, a, ignore=["variant"])
