"""`bench show` and `bench list`: what a user reads about a run, rendered to text from records written by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

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
from bench.report.show import list_rows, runs_table, show_run


def _config(variant: str, users: int, repeat_index: int, **changes: Any) -> PointConfig:
    return PointConfig(
        variant=variant, backend="postgresql", backend_label="PostgreSQL 15.19", mode="async", driver="asyncpg",
        pooled=True, scenario="read_heavy", pool_size=5, max_overflow=10, users=users, spawn_rate=50, warmup_s=3,
        duration_s=10, repeat_index=repeat_index, pool_timeout_s=30, pool_pre_ping=False, thread_tokens=40,
        workers=1, dataset_rows=10_000,
    ).model_copy(update=changes)  # fmt: skip


def _metrics(requests_per_s: float, p50: float, p99: float) -> PointMetrics:
    return PointMetrics(
        requests=int(requests_per_s * 10), failures=0, error_rate=0.0, requests_per_s=requests_per_s,
        measured_s=10, latency_ms_mean=p50, latency_ms_p50=p50, latency_ms_p90=p99 / 2, latency_ms_p95=p99 / 1.5,
        latency_ms_p99=p99, latency_ms_p999=p99 * 1.5, latency_ms_max=p99 * 2,
    )  # fmt: skip


def _telemetry(pool_wait_ms_p99: float, loop_lag_ms_p99: float, threads_busy_max: int) -> Telemetry:
    app = AppTelemetry(
        samples=10, pool_wait_ms_p99=pool_wait_ms_p99, loop_lag_ms_p99=loop_lag_ms_p99,
        threads_busy_max=threads_busy_max, threads_limit=40,
    )  # fmt: skip
    return Telemetry(interval_s=1.0, app=app)


def _point(index: int, config: PointConfig, metrics: PointMetrics | None, **fields: Any) -> PointRecord:
    return PointRecord(
        run_id="r1", point_id=f"{index:03d}-{config.variant}-u{config.users}-r{config.repeat_index}", index=index,
        status="ok" if metrics else "failed", config=config, metrics=metrics,
        started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:00:15+00:00", **fields,
    )  # fmt: skip


def _run(run_id: str, **fields: Any) -> RunRecord:
    defaults: dict[str, Any] = {
        "run_id": run_id, "status": "complete", "created_at": "2026-03-04T05:06:07+00:00", "argv": ["bench", "run"],
        "sweep": {"scenario": "read_heavy", "load_model": "closed", "variants": ["pg_sqla_async", "mongo_motor"],
                  "warmup_s": 3, "duration_s": 10, "repeat": 3, "scenario_options": {"read_share": 0.9}},
        "environment": {"cpu_count": 2, "cpu_model": "Test CPU", "memory_total_bytes": 8 * 2**30, "python": "3.11.9",
                        "git_commit": "0123456789abcdef", "git_dirty": False},
        "databases": {
            "postgresql": DatabaseInfo(kind="postgresql", label="PostgreSQL 15.19", url=None, embedded=True,
                                       version="15.19", settings={}),
            "mongodb": DatabaseInfo(kind="mongodb", label="secantusdb 0.7.0b3", url=None, embedded=True,
                                    surrogate=True, version="0.7.0b3", settings={}),
        },
        "points_planned": 8, "points_ok": 7, "points_failed": 1,
    }  # fmt: skip
    return RunRecord(**{**defaults, **fields})


def _write_sample_run(results: Path) -> RunFolder:
    folder = create_run_folder(results, "r1")
    calibration = Calibration(
        measured_at="2026-03-01T00:00:00+00:00", machine="2 CPUs", variant="memory", backend_label="in memory",
        users=50, rate=None, duration_s=10, pinned=False,
        locust=GeneratorFigures(requests_per_s=5000, latency_ms_p50=5, latency_ms_p99=20, latency_ms_p999=30,
                                cpu_s=9.5, cpu_us_per_request=190),
        locust_to_wrk=0.25,
    )  # fmt: skip
    folder.write_run(_run("r1", calibration=calibration))
    for repeat_index, requests_per_s in enumerate((900, 1000, 1100), start=1):
        folder.write_point(
            _point(repeat_index, _config("pg_sqla_async", 20, repeat_index), _metrics(requests_per_s, 8, 40),
                   telemetry=_telemetry(12.5, 3.25, 7))
        )  # fmt: skip
    mongo = _config("mongo_motor", 20, 1, backend="mongodb", backend_label="secantusdb 0.7.0b3 (surrogate)")
    folder.write_point(_point(4, mongo, _metrics(700, 9, 60), flags=["generator-limited"]))
    folder.write_point(_point(5, _config("pg_sqla_async", 50, 1), _metrics(1500, 20, 90)))
    folder.write_point(_point(6, _config("pg_sqla_async", 50, 2), _metrics(0, 0, 0), flags=["stalled"]))
    folder.write_point(_point(7, _config("pg_sqla_async", 50, 3), _metrics(0, 0, 0), flags=["stalled"]))
    folder.write_point(
        _point(8, _config("pg_sqla_async", 100, 1), None, error="uvicorn exited during start-up [exit 3]")
    )
    return folder


def _render(renderables: list[Any]) -> str:
    console = Console(record=True, width=200)
    for renderable in renderables:
        console.print(renderable)
    return console.export_text()


def test_show_prints_the_run_its_settings_and_a_table_per_load(tmp_path: Path) -> None:
    text = _render(show_run(_write_sample_run(tmp_path)))

    assert "status       complete" in text
    assert "points       7 ok, 1 failed, 8 planned" in text
    assert "read_heavy (read_share=0.9), closed model; warm-up 3 s, measured 10 s, 3 repeat(s) per point" in text
    assert "PostgreSQL 15.19 (started by bench); secantusdb 0.7.0b3 (started by bench, SURROGATE)" in text
    assert "2 CPUs, 8.0 GiB, Test CPU; Python 3.11.9; commit 0123456789ab" in text
    assert "ceiling 5,000 req/s on memory (2026-03-01T00:00:00+00:00), 0.25x wrk's throughput" in text
    # One table per load, in order of the load.
    assert text.index("20 users, median over repeats") < text.index("50 users, median over repeats")
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") > 5}
    async_20 = next(line for line in text.splitlines() if "pg_sqla_async" in line and "12.5" in line)
    cells = [cell.strip() for cell in async_20.split("│")[1:-1]]
    assert cells[:4] == ["pg_sqla_async", "5+10", "–", "1,000 [752–1,248]"]  # t-interval of 3 repeats
    assert cells[4:] == ["8.0", "40.0", "0.00%", "12.5", "3.2", "7 of 40", ""]
    assert "mongo_motor (SURROGATE)" in rows
    assert "generator-limited 1/1" in rows["mongo_motor (SURROGATE)"]


def test_show_hides_latency_of_a_stalled_configuration_and_lists_failed_points(tmp_path: Path) -> None:
    text = _render(show_run(_write_sample_run(tmp_path)))

    stalled = next(line for line in text.splitlines() if "stalled 2/3" in line)
    cells = [cell.strip() for cell in stalled.split("│")[1:-1]]
    assert cells[3] == "0 [0–2,651]"  # the median of 1500, 0, 0; the interval's negative end clipped
    assert cells[4:6] == ["–", "–"]  # no latency measured: never a fast-looking 0
    assert "failed points (1)" in text
    assert "008-pg_sqla_async-u100-r1" in text
    assert "uvicorn exited during start-up [exit 3]" in text  # brackets in an error are text, not markup


def test_show_of_a_run_without_points(tmp_path: Path) -> None:
    folder = create_run_folder(tmp_path, "empty")
    folder.write_run(_run("empty", status="running", points_ok=0, points_failed=0, databases={}))
    text = _render(show_run(folder))
    assert "status       running" in text
    assert "databases    none recorded" in text
    assert "no point measured anything yet" in text


def test_show_of_a_corrupt_run_file_is_a_one_line_error(tmp_path: Path) -> None:
    folder = create_run_folder(tmp_path, "broken")
    folder.run_file.write_text("{not json", encoding="utf-8")
    with pytest.raises(BenchError) as error:
        show_run(folder)
    assert "cannot read" in error.value.message and "\n" not in error.value.message


def test_list_rows_describe_each_run() -> None:
    open_sweep = {"scenario": "io_wait", "load_model": "open", "rates": [200.0, 400.0], "variants": ["memory"]}
    runs = [_run("r1"), _run("r2", status="failed", sweep=open_sweep, databases={}, points_ok=0, points_failed=2)]

    first, second = list_rows(runs)

    assert first.run_id == "r1" and first.status == "complete"
    assert (first.scenario, first.load_model) == ("read_heavy", "closed")
    assert first.variants == "pg_sqla_async, mongo_motor"
    assert first.points == "7/1/8"
    assert first.date == "2026-03-04 05:06"
    assert first.databases == "PostgreSQL 15.19; secantusdb 0.7.0b3 (SURROGATE)"
    assert (second.scenario, second.load_model, second.points, second.databases) == (
        "io_wait",
        "open (200, 400/s)",
        "0/2/8",
        "–",
    )
    text = _render([runs_table(runs)])
    assert "points ok/failed/planned" in text
    assert "open (200, 400/s)" in text
