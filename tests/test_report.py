"""The reporter: charts and summary drawn from records alone (the records here are written by hand)."""

from __future__ import annotations

from pathlib import Path

from bench.analysis.cells import aggregate
from bench.measure.run import point_flags
from bench.records.run_folder import create_run_folder
from bench.records.schema import PointConfig, PointMetrics, PointRecord, RunRecord
from bench.report.build import write_report
from bench.report.charts.palette import variant_colour

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _config(variant: str, pool_size: int | None, max_overflow: int | None, repeat_index: int = 1) -> PointConfig:
    return PointConfig(
        variant=variant, backend="memory" if variant == "memory" else "postgresql",
        backend_label="PostgreSQL 15", mode="async", driver="x", pooled=pool_size is not None,
        scenario="read_heavy", pool_size=pool_size, max_overflow=max_overflow, users=20, spawn_rate=20,
        warmup_s=1, duration_s=2, repeat_index=repeat_index, pool_timeout_s=30, pool_pre_ping=False,
        thread_tokens=40, workers=1, dataset_rows=100,
    )  # fmt: skip


def _metrics(requests_per_s: float, p99: float) -> PointMetrics:
    return PointMetrics(
        requests=int(requests_per_s * 2), failures=0, error_rate=0.0, requests_per_s=requests_per_s, measured_s=2,
        latency_ms_mean=p99 / 3, latency_ms_p50=p99 / 4, latency_ms_p90=p99 / 2, latency_ms_p95=p99 / 1.5,
        latency_ms_p99=p99, latency_ms_p999=p99 * 1.5, latency_ms_max=p99 * 2,
    )  # fmt: skip


def _point(index: int, config: PointConfig, metrics: PointMetrics | None, error: str | None = None) -> PointRecord:
    return PointRecord(
        run_id="r", point_id=f"{index:03d}-{config.variant}", index=index,
        status="ok" if metrics else "failed", error=error, config=config, metrics=metrics,
        started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:00:05+00:00",
    )  # fmt: skip


def test_repeats_are_summarised_by_their_median() -> None:
    points = [
        _point(1, _config("pg_sqla_async", 5, 0, 1), _metrics(100, 10)),
        _point(2, _config("pg_sqla_async", 5, 0, 2), _metrics(300, 30)),
        _point(3, _config("pg_sqla_async", 5, 0, 3), _metrics(200, 90)),
        _point(4, _config("pg_sqla_async", 5, 0, 4), None, error="boom"),  # failed: not in the median
    ]
    (cell,) = aggregate(points)
    assert (cell.requests_per_s, cell.latency_ms_p99, cell.repeats) == (200, 30, 3)


def test_report_draws_charts_and_a_table_with_failures(tmp_path: Path) -> None:
    folder = create_run_folder(tmp_path, "r")
    run = RunRecord(
        run_id="r", status="complete", created_at="2026-01-01T00:00:00+00:00", argv=[],
        sweep={"scenario": "read_heavy", "warmup_s": 1, "duration_s": 2, "repeat": 1},
        environment={"cpu_count": 2, "cpu_model": "Test CPU"}, points_planned=6, points_ok=5, points_failed=1,
    )  # fmt: skip
    folder.write_run(run)
    index = 0
    for variant in ("pg_sqla_sync", "pg_sqla_async"):
        for pool_size in (2, 5):
            index += 1
            folder.write_point(_point(index, _config(variant, pool_size, 0), _metrics(100 * pool_size, 50)))
    folder.write_point(_point(5, _config("memory", None, None), _metrics(2000, 5)))
    folder.write_point(_point(6, _config("pg_sqla_blocking", 2, 0), None, error="uvicorn exited during start-up"))

    written = write_report(folder)

    charts = [p for p in written if p.suffix == ".png" and p.name.startswith(CORE_CHARTS)]
    # One line chart over pool_size, and (few settings) one bar chart of every variant per setting.
    assert [p.name for p in charts] == ["pool_size_u20.png", "variants_ps2_mo0_u20.png", "variants_ps5_mo0_u20.png"]
    assert charts[0].read_bytes().startswith(PNG_MAGIC) and charts[0].stat().st_size > 10_000
    summary = (folder.report_dir / "summary.md").read_text()
    for variant in ("pg_sqla_sync", "pg_sqla_async", "memory"):
        assert f"| {variant} |" in summary
    assert "| pg_sqla_sync | PostgreSQL 15 | async | 5 | 0 | 40 | 20 users | 500 |" in summary
    assert "uvicorn exited during start-up" in summary
    assert "![pool_size_u20](pool_size_u20.png)" in summary


# The charts of this module; the catalogue's (heatmaps, knees, spectra, ...) are tested in test_charts.py.
CORE_CHARTS = ("pool_size_", "variants_")


def test_each_variant_keeps_its_colour() -> None:
    assert variant_colour("pg_sqla_sync") == variant_colour("pg_sqla_sync")
    assert variant_colour("pg_sqla_sync") != variant_colour("pg_sqla_async")


def test_stalled_points_are_flagged_in_the_summary_table(tmp_path: Path) -> None:
    stalled_metrics = _metrics(0, 0)
    assert point_flags(_config("pg_sqla_sync", 2, 0), stalled_metrics) == ["stalled"]
    assert point_flags(_config("pg_sqla_sync", 2, 0), _metrics(10, 5)) == []
    folder = create_run_folder(tmp_path, "r")
    run = RunRecord(
        run_id="r", status="complete", created_at="2026-01-01T00:00:00+00:00", argv=[], sweep={},
        environment={}, points_planned=2,
    )  # fmt: skip
    folder.write_run(run)
    stalled = _point(1, _config("pg_sqla_sync", 2, 0), stalled_metrics).model_copy(update={"flags": ["stalled"]})
    folder.write_point(stalled)
    folder.write_point(_point(2, _config("pg_sqla_sync", 5, 0), _metrics(100, 5)))
    write_report(folder)
    summary = (folder.report_dir / "summary.md").read_text()
    assert "| 0 | – | – | 0.00% | – | – | – | – | – | 1 | stalled 1/1 |" in summary  # no latency shown for a stall


def test_many_pool_settings_get_no_bar_charts(tmp_path: Path) -> None:
    folder = create_run_folder(tmp_path, "r")
    run = RunRecord(
        run_id="r", status="complete", created_at="2026-01-01T00:00:00+00:00", argv=[], sweep={},
        environment={}, points_planned=6,
    )  # fmt: skip
    folder.write_run(run)
    for index, pool_size in enumerate((1, 2, 3, 4, 5), start=1):
        folder.write_point(_point(index, _config("pg_sqla_async", pool_size, 0), _metrics(100, 5)))
    assert [p.name for p in write_report(folder) if p.name.startswith(CORE_CHARTS) and p.suffix == ".png"] == [
        "pool_size_u20.png"
    ]


def test_thread_pool_sizes_get_a_chart_each_with_the_async_variants_in_both(tmp_path: Path) -> None:
    folder = create_run_folder(tmp_path, "r")
    run = RunRecord(
        run_id="r", status="complete", created_at="2026-01-01T00:00:00+00:00", argv=[], sweep={},
        environment={}, points_planned=3,
    )  # fmt: skip
    folder.write_run(run)
    sync_config = _config("pg_sqla_sync", 2, 0).model_copy(update={"mode": "sync"})
    folder.write_point(_point(1, sync_config, _metrics(100, 5)))
    folder.write_point(_point(2, sync_config.model_copy(update={"thread_tokens": 80}), _metrics(150, 5)))
    folder.write_point(_point(3, _config("pg_sqla_async", 2, 0), _metrics(200, 5)))
    charts = [p.name for p in write_report(folder) if p.suffix == ".png" and p.name.startswith(CORE_CHARTS)]
    assert charts == [
        "pool_size_u20_t40.png", "pool_size_u20_t80.png", "variants_ps2_mo0_u20_t40.png", "variants_ps2_mo0_u20_t80.png"
    ]  # fmt: skip
    summary = (folder.report_dir / "summary.md").read_text()
    assert "| pg_sqla_sync | PostgreSQL 15 | sync | 2 | 0 | 80 | 20 users | 150 |" in summary
