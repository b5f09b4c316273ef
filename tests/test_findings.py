"""The findings page: what a run says about sync vs async, from records written by hand with known figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.analysis.findings import findings_markdown, write_findings
from bench.records.errors import BenchError
from bench.records.run_folder import RunFolder, create_run_folder
from bench.records.schema import (
    Calibration,
    DatabaseInfo,
    GeneratorFigures,
    PointConfig,
    PointMetrics,
    PointRecord,
    RunRecord,
)
from bench.records.telemetry import AppTelemetry, Telemetry

MODES = {"memory": "async", "pg_sqla_sync": "sync", "pg_sqla_async": "async", "pg_sqla_blocking": "blocking"}
DRIVERS = {"pg_sqla_sync": "sqlalchemy+psycopg", "pg_sqla_async": "sqlalchemy+asyncpg"}


def make_point(
    index: int,
    variant: str,
    pool_size: int | None,
    requests_per_s: float | None,
    p99: float = 10.0,
    *,
    repeat_index: int = 1,
    users: int = 50,
    flags: tuple[str, ...] = (),
    loop_lag_ms_p99: float | None = None,
    backend_label: str = "PostgreSQL 15.19",
    error: str | None = None,
) -> PointRecord:
    """A point with known figures; requests_per_s None makes it a failed point, 0 a stalled one."""
    config = PointConfig(
        variant=variant, backend="memory" if variant == "memory" else "postgresql",
        backend_label="in-memory" if variant == "memory" else backend_label, mode=MODES.get(variant, "async"),
        driver=DRIVERS.get(variant, "sqlalchemy+psycopg"), pooled=pool_size is not None, scenario="read_heavy",
        pool_size=pool_size, max_overflow=None if pool_size is None else 0, users=users, spawn_rate=50,
        warmup_s=1, duration_s=10, repeat_index=repeat_index, pool_timeout_s=30, pool_pre_ping=False,
        thread_tokens=40, workers=1, dataset_rows=100,
    )  # fmt: skip
    metrics = None
    if requests_per_s is not None:
        stalled = requests_per_s == 0
        metrics = PointMetrics(
            requests=int(requests_per_s * 10), failures=0, error_rate=0.0, requests_per_s=requests_per_s,
            measured_s=10, latency_ms_mean=0 if stalled else p99 / 3, latency_ms_p50=0 if stalled else p99 / 4,
            latency_ms_p90=0 if stalled else p99 / 2, latency_ms_p95=0 if stalled else p99 / 1.5,
            latency_ms_p99=0 if stalled else p99, latency_ms_p999=0 if stalled else p99 * 1.5,
            latency_ms_max=0 if stalled else p99 * 2, generator_cpu_utilisation=0.4,
        )  # fmt: skip
    telemetry = None
    if loop_lag_ms_p99 is not None:
        telemetry = Telemetry(interval_s=1.0, app=AppTelemetry(samples=10, loop_lag_ms_p99=loop_lag_ms_p99))
    return PointRecord(
        run_id="r", point_id=f"{index:03d}-{variant}-p{pool_size}-r{repeat_index}", index=index,
        status="failed" if metrics is None else "ok", error=error, config=config, metrics=metrics,
        started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:00:15+00:00",
        flags=list(flags) or (["stalled"] if requests_per_s == 0 else []), telemetry=telemetry,
    )  # fmt: skip


def make_run(run_id: str = "r", *, surrogate: bool = False, calibrated: bool = False, **changes: Any) -> RunRecord:
    database = DatabaseInfo(
        kind="postgresql", label="PostgreSQL 15.19", url="postgresql://bench:***@127.0.0.1:5432/bench",
        embedded=True, surrogate=surrogate, source="binaries in /usr/lib/postgresql/15/bin", version="15.19",
        settings={"max_connections": "100"},
    )  # fmt: skip
    run = RunRecord(
        run_id=run_id, status="complete", created_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:10:00+00:00", argv=["bench", "run", "--repeat", "3"],
        sweep={"scenario": "read_heavy", "warmup_s": 1, "duration_s": 10, "repeat": 3, "users": [50],
               "pool_sizes": [2, 5], "max_overflows": [0], "load_model": "closed", "scenario_options": {}},
        environment={"cpu_count": 2, "cpu_model": "Test CPU", "python": "3.11.9", "git_commit": "abc123",
                     "libraries": {"fastapi": "0.115.0", "motor": None}},
        databases={"postgresql": database}, points_planned=22, points_ok=21, points_failed=1,
    )  # fmt: skip
    if calibrated:
        figures = GeneratorFigures(
            requests_per_s=3000, latency_ms_p50=5, latency_ms_p99=20, latency_ms_p999=40, cpu_s=9.5,
            cpu_us_per_request=316,
        )  # fmt: skip
        changes["calibration"] = Calibration(
            measured_at="2025-12-31T00:00:00+00:00", machine="2 CPUs, Test CPU", variant="memory",
            backend_label="in-memory", users=50, rate=None, duration_s=10, pinned=False, locust=figures,
        )  # fmt: skip
    return run.model_copy(update=changes)


def standard_points() -> list[PointRecord]:
    """The run the tests reason about (median requests/s at pool_size=5: sync 410, async 600, blocking 150)."""
    # variant, pool_size, requests/s of each repeat, p99 ms, flags, event-loop lag p99 ms
    rows: list[tuple[str, int | None, list[float], float, tuple[str, ...], float | None]] = [
        ("memory", None, [2000, 2000, 2000], 5, (), None),
        ("pg_sqla_sync", 2, [0, 0, 0], 0, (), None),  # stalled in every repeat
        ("pg_sqla_sync", 5, [300, 410, 500], 50, (), None),  # CV 25%: unstable
        ("pg_sqla_async", 2, [500, 500, 500], 40, (), None),
        ("pg_sqla_async", 5, [590, 600, 610], 30, ("generator-limited",), None),
        ("pg_sqla_blocking", 2, [100, 100, 100], 400, (), 250.0),
        ("pg_sqla_blocking", 5, [150, 150, 150], 300, (), 200.0),
    ]
    points: list[PointRecord] = []
    for variant, pool_size, throughputs, p99, flags, lag in rows:
        for repeat, throughput in enumerate(throughputs, start=1):
            points.append(
                make_point(
                    len(points) + 1, variant, pool_size, throughput, p99, repeat_index=repeat, flags=flags,
                    loop_lag_ms_p99=lag,
                )
            )  # fmt: skip
    points.append(make_point(len(points) + 1, "pg_sqla_async", 10, None, error="uvicorn exited during start-up"))
    return points


def write_standard_run(results_dir: Path, run_id: str = "r", **run_changes: Any) -> RunFolder:
    folder = create_run_folder(results_dir, run_id)
    folder.write_run(make_run(run_id, **run_changes))
    for point in standard_points():
        folder.write_point(point.model_copy(update={"run_id": run_id}))
    return folder


def test_best_point_per_variant_with_its_setting_and_p99(tmp_path: Path) -> None:
    text = findings_markdown(write_standard_run(tmp_path))
    assert "| `pg_sqla_async` | async | PostgreSQL 15.19 | 600 [" in text
    assert "| pool_size=5, max_overflow=0 | 30 ms | 2 |" in text  # the failed pool_size=10 is no setting
    assert "| `pg_sqla_sync` | sync | PostgreSQL 15.19 | 410 [" in text
    assert "| pool_size=5, max_overflow=0, 40 threads | 50 ms | 2 |" in text
    assert "| `memory` | async | in-memory | 2,000 [2,000–2,000] | no pool | 5.0 ms | 1 | – |" in text
    assert "On this machine (2 CPUs, Test CPU; Python 3.11.9)" in text


def test_async_to_sync_ratio_per_backend(tmp_path: Path) -> None:
    text = findings_markdown(write_standard_run(tmp_path))
    # 600 / 410 = 1.463; the sync repeats spread 300..500, so the intervals overlap.
    assert "`pg_sqla_async` / `pg_sqla_sync` = **1.46x** requests/s (600 req/s at pool_size=5" in text
    assert "p99 there 30 ms vs 50 ms; their 95% intervals overlap: this run does not separate them." in text
    assert "`memory` /" not in text  # the in-memory baseline has no sync twin


def test_blocking_penalty_against_sync_and_async(tmp_path: Path) -> None:
    text = findings_markdown(write_standard_run(tmp_path))
    line = next(line for line in text.splitlines() if line.startswith("- `pg_sqla_blocking`"))
    assert "best 150 req/s at pool_size=5, max_overflow=0, p99 300 ms, event-loop lag p99 200 ms" in line
    assert "0.37x the requests/s of `pg_sqla_sync` (410 req/s, p99 50 ms)" in line  # 150 / 410
    assert "0.25x the requests/s of `pg_sqla_async` (600 req/s, p99 30 ms)" in line  # 150 / 600


def test_stalls_and_qualifying_flags_are_stated(tmp_path: Path) -> None:
    text = findings_markdown(write_standard_run(tmp_path))
    assert "- `pg_sqla_sync` at pool_size=2, max_overflow=0, 40 threads: stalled 3/3" in text
    assert "`pg_sqla_async`'s best point is flagged **generator-limited**" in text
    assert "`pg_sqla_sync`'s best point is flagged **unstable**" in text
    assert "`pg_sqla_blocking`'s best point is flagged" not in text
    assert "not calibrated on this machine" in text


def test_chart_links_are_relative_to_the_page_and_only_for_its_load(tmp_path: Path) -> None:
    folder = write_standard_run(tmp_path / "results")
    folder.report_dir.mkdir(parents=True)
    for name in ("pool_size_u50.png", "variants_ps5_mo0_u50.png", "why_ps5_mo0_u50.png", "pool_size_u500.png"):
        (folder.report_dir / name).write_bytes(b"png")
    out = write_findings(folder, tmp_path / "docs" / "FINDINGS.md")
    text = out.read_text(encoding="utf-8")
    assert "- [pool_size_u50.png](../results/r/report/pool_size_u50.png)" in text
    assert "- [variants_ps5_mo0_u50.png](../results/r/report/variants_ps5_mo0_u50.png)" in text
    assert "- [why_ps5_mo0_u50.png](../results/r/report/why_ps5_mo0_u50.png)" in text
    assert "pool_size_u500" not in text  # another load's chart
    assert "[pool_size_u50.png](pool_size_u50.png)" in findings_markdown(folder)  # default: beside the charts


def test_without_charts_the_page_says_how_to_draw_them(tmp_path: Path) -> None:
    text = findings_markdown(write_standard_run(tmp_path))
    assert "Charts: none drawn yet (`bench report r` draws them)." in text


def test_surrogate_single_repeat_and_non_overlapping_intervals(tmp_path: Path) -> None:
    folder = create_run_folder(tmp_path, "s")
    folder.write_run(make_run("s", calibrated=True))
    label = "secantusdb 0.7 (surrogate)"
    folder.write_point(make_point(1, "pg_sqla_sync", 5, 100, 20, backend_label=label))
    folder.write_point(make_point(2, "pg_sqla_async", 5, 80, 25, backend_label=label))
    text = findings_markdown(folder)
    assert "`pg_sqla_async` / `pg_sqla_sync` = **0.80x** requests/s" in text
    assert "1 repeat(s), so no 95% interval" in text
    assert "Measured on **secantusdb 0.7 (surrogate) (SURROGATE)**" in text
    assert "One repeat per configuration" in text
    assert "not calibrated" not in text


def test_an_empty_run_says_so(tmp_path: Path) -> None:
    folder = create_run_folder(tmp_path, "e")
    folder.write_run(make_run("e", points_planned=0, points_ok=0, points_failed=0))
    assert "No point was recorded in this run." in findings_markdown(folder)
    folder.write_point(make_point(1, "pg_sqla_sync", 5, None, error="boom"))
    assert "No point of this scenario completed: nothing to compare." in findings_markdown(folder)


def test_an_unwritable_output_is_one_clear_error(tmp_path: Path) -> None:
    folder = write_standard_run(tmp_path)
    (tmp_path / "taken").mkdir()
    with pytest.raises(BenchError, match=r"cannot write .*taken: .*; choose another output file"):
        write_findings(folder, tmp_path / "taken")
