"""Tune: the recommendation, its explanation and warnings, the adaptive search and the driver, on records
written by hand (known figures) through bench.records.run_folder; nothing is measured here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bench.analysis import tune
from bench.analysis.slo import parse_slo
from bench.analysis.tune import (
    PoolSetting,
    littles_law,
    next_tune_settings,
    plan_tune_sweep,
    recommend,
    recommendation_html,
    recommendation_json,
    recommendation_text,
    round_specs,
    run_tune,
    tune_from_runs,
    write_tune_report,
)
from bench.measure.run import RunOptions, SweepObserver
from bench.records.errors import BenchError
from bench.records.run_folder import RunFolder, create_run_folder
from bench.records.schema import PointConfig, PointMetrics, PointRecord, RunRecord
from bench.records.telemetry import AppTelemetry, Telemetry

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
P99_100 = parse_slo("p99<100ms")

Row = tuple[int, int, float, float]  # pool_size, max_overflow, requests/s, p99 ms


def _point(
    index: int,
    pool_size: int,
    max_overflow: int,
    requests_per_s: float,
    p99: float,
    *,
    variant: str = "pg_sqla_async",
    mode: str = "async",
    run_id: str = "r",
    users: int = 50,
    thread_tokens: int = 40,
    repeat_index: int = 1,
    error_rate: float = 0.0,
    app: AppTelemetry | None = None,
    flags: Sequence[str] = (),
) -> PointRecord:
    config = PointConfig(
        variant=variant, backend="postgresql", backend_label="PostgreSQL 15", mode=mode, driver="x", pooled=True,
        scenario="read_heavy", pool_size=pool_size, max_overflow=max_overflow, users=users, spawn_rate=users,
        warmup_s=1, duration_s=10, repeat_index=repeat_index, pool_timeout_s=30, pool_pre_ping=False,
        thread_tokens=thread_tokens, workers=1, dataset_rows=100,
    )  # fmt: skip
    requests = int(requests_per_s * 10)
    metrics = PointMetrics(
        requests=requests, failures=int(requests * error_rate), error_rate=error_rate,
        requests_per_s=requests_per_s, measured_s=10, latency_ms_mean=p99 / 3, latency_ms_p50=p99 / 4,
        latency_ms_p90=p99 / 2, latency_ms_p95=p99 / 1.5, latency_ms_p99=p99, latency_ms_p999=p99 * 1.5,
        latency_ms_max=p99 * 2,
    )  # fmt: skip
    return PointRecord(
        run_id=run_id, point_id=f"{index:03d}-{variant}-ps{pool_size}-mo{max_overflow}-r{repeat_index}",
        index=index, status="ok", config=config, metrics=metrics, flags=list(flags),
        telemetry=Telemetry(interval_s=1.0, app=app) if app is not None else None,
        started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:00:15+00:00",
    )  # fmt: skip


def _write_run(folder: RunFolder, points: Sequence[PointRecord]) -> list[PointRecord]:
    """Through the real results folder and back, as `bench tune --from-run` reads them."""
    folder.write_run(
        RunRecord(
            run_id=folder.run_id, status="complete", created_at="2026-01-01T00:00:00+00:00", argv=[], sweep={},
            environment={}, points_planned=len(points), points_ok=len(points),
        )
    )  # fmt: skip
    for point in points:
        folder.write_point(point)
    return folder.load_points()


def _grid(rows: Sequence[Row], **kwargs: Any) -> list[PointRecord]:
    return [_point(i, ps, mo, rps, p99, **kwargs) for i, (ps, mo, rps, p99) in enumerate(rows, start=1)]


# pool_size 10 reaches 1,940 req/s, 97% of pool 40's 2,000, within the SLO; small pools queue past it.
KNEE: list[Row] = [
    (1, 0, 200.0, 300.0),
    (2, 0, 400.0, 150.0),
    (5, 0, 900.0, 80.0),
    (10, 0, 1940.0, 40.0),
    (20, 0, 1980.0, 38.0),
    (40, 0, 2000.0, 37.0),
]


def test_recommends_the_smallest_pool_within_95_percent_of_the_best(tmp_path: Path) -> None:
    points = _write_run(create_run_folder(tmp_path, "r"), _grid(KNEE))
    r = recommend(points, "pg_sqla_async", P99_100, 0.01)
    assert r.best is not None and r.recommended is not None
    assert (r.best.pool_size, r.best.requests_per_s) == (40, 2000.0)
    assert (r.recommended.pool_size, r.recommended.max_overflow) == (10, 0)
    assert r.target_requests_per_s == pytest.approx(1900.0)
    assert [s.feasible for s in r.settings] == [False, False, True, True, True, True]
    # The best is the largest pool measured and 40 < 50 users: the grid should be extended upward, up to the users.
    assert any("largest pool measured" in w and "--pool-size 50" in w for w in r.warnings)
    assert r.runs == ("r",)


def test_below_95_percent_the_larger_pool_is_recommended() -> None:
    rows = [(10, 0, 1890.0, 40.0), (20, 0, 1980.0, 38.0), (40, 0, 2000.0, 37.0)]
    r = recommend(_grid(rows), "pg_sqla_async", P99_100, 0.01)
    assert r.recommended is not None and r.recommended.pool_size == 20  # 1,890 is 94.5% of 2,000


def test_fewest_connections_first_then_the_smaller_pool_size() -> None:
    rows = [(10, 0, 1950.0, 40.0), (5, 5, 1960.0, 40.0), (5, 10, 2000.0, 40.0), (20, 0, 2000.0, 40.0)]
    r = recommend(_grid(rows), "pg_sqla_async", P99_100, 0.01)
    assert r.recommended is not None
    assert (r.recommended.pool_size, r.recommended.max_overflow, r.recommended.connections) == (5, 5, 10)


def test_the_error_limit_and_the_slo_both_exclude_settings() -> None:
    points = [
        _point(1, 5, 0, 1950.0, 40.0, error_rate=0.02),  # fast but failing 2% of requests
        _point(2, 10, 0, 1960.0, 100.0),  # p99 exactly at a strict limit: misses it
        _point(3, 20, 0, 2000.0, 60.0),
    ]
    r = recommend(points, "pg_sqla_async", P99_100, 0.01)
    assert r.recommended is not None and r.recommended.pool_size == 20
    inclusive = recommend(points, "pg_sqla_async", parse_slo("p99<=100ms"), 0.01)
    assert inclusive.recommended is not None and inclusive.recommended.pool_size == 10
    lenient = recommend(points, "pg_sqla_async", parse_slo("p99<=100ms"), 0.05)
    assert lenient.recommended is not None and lenient.recommended.pool_size == 5


def test_medians_over_repeats_decide() -> None:
    points = [
        _point(1, 5, 0, 1000.0, 300.0, repeat_index=1),  # one unlucky repeat of three
        _point(2, 5, 0, 1000.0, 50.0, repeat_index=2),
        _point(3, 5, 0, 1000.0, 60.0, repeat_index=3),
        _point(4, 10, 0, 1010.0, 40.0),
    ]
    r = recommend(points, "pg_sqla_async", P99_100, 0.01)
    assert r.recommended is not None and r.recommended.pool_size == 5
    assert r.recommended.repeats == 3 and r.recommended.latencies_ms["latency_ms_p99"] == 60.0
    assert any("unstable (latency_ms_p50, latency_ms_p99)" in w for w in r.warnings)


def test_nothing_meets_the_slo_recommends_nothing_and_names_the_closest() -> None:
    rows = [(2, 0, 400.0, 400.0), (5, 0, 900.0, 180.0), (10, 0, 1000.0, 130.0), (20, 0, 1000.0, 150.0)]
    r = recommend(_grid(rows), "pg_sqla_async", P99_100, 0.01)
    assert r.recommended is None and r.best is None and r.little is None
    assert r.closest is not None and r.closest.pool_size == 10
    (warning,) = [w for w in r.warnings if w.startswith("no setting meets")]
    assert "recommending nothing" in warning and "pool_size=10, max_overflow=0" in warning and "30% over" in warning
    assert "Recommendation: none" in recommendation_text(r)
    assert recommendation_json(r)["recommended"] is None
    assert recommendation_json(r)["closest"]["pool_size"] == 10


def test_a_stalled_setting_is_never_recommended() -> None:
    points = [
        _point(1, 1, 0, 0.0, 0.0, flags=["stalled"]),  # no request completed: latency 0 is not "fast"
        _point(2, 10, 0, 500.0, 40.0),
    ]
    r = recommend(points, "pg_sqla_async", P99_100, 0.01)
    assert r.settings[0].stalled and not r.settings[0].feasible
    assert r.recommended is not None and r.recommended.pool_size == 10
    assert any("flagged settings" in w and "stalled 1/1" in w for w in r.warnings)


def test_a_flagged_recommendation_is_called_out() -> None:
    points = [_point(1, 10, 0, 2000.0, 40.0, flags=["generator-limited"]), _point(2, 5, 0, 500.0, 200.0)]
    r = recommend(points, "pg_sqla_async", P99_100, 0.01)
    assert any(w.startswith("the recommendation rests on flagged points") for w in r.warnings)
    assert not any(w.startswith("the best throughput rests") for w in r.warnings)  # the same setting: said once


def _sync_capped(busy: int, waiting: int = 0, mode: str = "pg_sqla_sync") -> list[PointRecord]:
    """Sync variant with 40 thread tokens: throughput stops rising once the pool allows 40 connections."""
    rows = [(10, 0, 1000.0, 60.0), (20, 0, 1800.0, 45.0), (40, 0, 2500.0, 30.0), (40, 10, 2510.0, 30.0)]
    points = []
    for index, (ps, mo, rps, p99) in enumerate(rows, start=1):
        app = AppTelemetry(
            samples=10, pool_limit=ps + mo, checked_out_mean=min(ps + mo, 40) * 0.9, waiting_max=waiting,
            threads_limit=40, threads_busy_max=busy if ps + mo >= 40 else ps + mo,
        )  # fmt: skip
        kind = "sync" if mode == "pg_sqla_sync" else "async"
        points.append(_point(index, ps, mo, rps, p99, variant=mode, mode=kind, app=app))
    return points


def test_a_sync_variant_capped_by_40_thread_tokens_is_warned_about() -> None:
    r = recommend(_sync_capped(busy=40), "pg_sqla_sync", P99_100, 0.01)
    (warning,) = [w for w in r.warnings if "thread pool" in w]
    assert "40 thread tokens" in warning and "--thread-tokens" in warning
    assert "all 40 threads were busy" in warning and "pools of 40 to 50 connections" in warning
    assert r.recommended is not None and r.recommended.connections == 40


def test_no_thread_warning_when_threads_are_not_the_limit() -> None:
    # Threads never all busy: the plateau has another cause (CPU, the database), so no thread advice.
    assert not [w for w in recommend(_sync_capped(busy=30), "pg_sqla_sync", P99_100, 0.01).warnings if "thread" in w]
    # An async variant has no thread pool in the request path.
    async_points = _sync_capped(busy=40, mode="pg_sqla_async")
    assert not [w for w in recommend(async_points, "pg_sqla_async", P99_100, 0.01).warnings if "thread" in w]


def test_busy_threads_waiting_for_a_small_pool_are_not_a_thread_cap() -> None:
    # Pool 10, 40 threads all busy, but 30 of them waiting for a connection: the pool is the limit.
    app = AppTelemetry(samples=10, pool_limit=10, checked_out_mean=10, waiting_max=30, threads_limit=40,
                       threads_busy_max=40)  # fmt: skip
    points = [_point(1, 10, 0, 1000.0, 60.0, variant="pg_sqla_sync", mode="sync", app=app)]
    assert not [w for w in recommend(points, "pg_sqla_sync", P99_100, 0.01).warnings if "thread" in w]


def test_littles_law_with_known_numbers() -> None:
    estimate = littles_law(4.0, "telemetry", 2500.0, 12)
    assert estimate.connections_needed == pytest.approx(10.0)  # 2,500 req/s x 4 ms
    assert estimate.headroom == pytest.approx(1.2)
    assert "≈ 10.0 connections busy" in estimate.explain() and "allows 12 (1.2x that)" in estimate.explain()
    assert "queue" in littles_law(4.0, "telemetry", 2500.0, 8).explain()  # 8 < 10: requests wait


def test_hold_time_comes_from_telemetry_and_falls_back_to_p50() -> None:
    app = AppTelemetry(samples=10, checked_out_mean=8.0)
    points = [_point(1, 10, 0, 1940.0, 40.0, app=app), _point(2, 40, 0, 2000.0, 37.0)]
    r = recommend(points, "pg_sqla_async", P99_100, 0.01)
    assert r.little is not None and r.little.source == "telemetry"
    assert r.little.hold_time_ms == pytest.approx(8.0 / 1940 * 1000)  # W = L / λ
    assert r.little.connections_needed == pytest.approx(2000 * 8.0 / 1940)  # the best throughput, carried
    assert r.little.pool_connections == 10
    no_telemetry = recommend([_point(1, 10, 0, 1000.0, 40.0)], "pg_sqla_async", P99_100, 0.01)
    assert no_telemetry.little is not None and no_telemetry.little.source == "p50 latency"
    assert no_telemetry.little.hold_time_ms == pytest.approx(10.0)  # p50 = p99 / 4 in these records
    assert "upper bound" in no_telemetry.little.explain()


def test_user_errors_are_one_line() -> None:
    points = _grid(KNEE)
    with pytest.raises(BenchError, match="no points of variant pg_sqla_sync"):
        recommend(points, "pg_sqla_sync", P99_100, 0.01)
    with pytest.raises(BenchError, match="several loads"):
        recommend([*points, _point(9, 10, 0, 100.0, 10.0, users=10)], "pg_sqla_async", P99_100, 0.01)
    with pytest.raises(BenchError, match="max-error-rate"):
        recommend(points, "pg_sqla_async", P99_100, 5.0)
    with pytest.raises(BenchError, match="no connection pool"):
        plan_tune_sweep("memory")
    with pytest.raises(BenchError, match="one load"):
        plan_tune_sweep("pg_sqla_async", settings={"users": [10, 50]})
    # Several loads can still be tuned one at a time.
    r = recommend([*points, _point(9, 10, 0, 100.0, 10.0, users=10)], "pg_sqla_async", P99_100, 0.01, users=10)
    assert r.users == 10 and r.recommended is not None


def test_outputs_text_json_html_and_chart(tmp_path: Path) -> None:
    folder = create_run_folder(tmp_path, "r")
    app = AppTelemetry(samples=10, checked_out_mean=8.0)
    points = _write_run(folder, [*_grid(KNEE[:3]), _point(4, 10, 0, 1940.0, 40.0, app=app), *_grid(KNEE[4:])])
    r = recommend(points, "pg_sqla_async", parse_slo("p50<20ms,p99<100ms"), 0.01)

    text = recommendation_text(r)
    assert "Recommendation: pool_size=10, max_overflow=0 (10 connections per process): 1,940 req/s" in text
    assert "| 10 | 0 | 10 | 1,940 | 10.0 | 40.0 | 0.00% | 4.12 | yes | **recommended** |" in text
    assert "Little's law" in text

    data = recommendation_json(r)
    assert list(data) == [
        "tune_schema_version", "variant", "mode", "backend_label", "scenario", "users", "rate", "workers", "slo",
        "max_error_rate", "near_best_share", "recommended", "best", "closest", "target_requests_per_s",
        "littles_law", "summary", "warnings", "runs", "settings",
    ]  # fmt: skip
    assert data["slo"]["clauses"] == [
        {"percentile": "p50", "operator": "<", "limit_ms": 20.0},
        {"percentile": "p99", "operator": "<", "limit_ms": 100.0},
    ]
    assert data["recommended"]["pool_size"] == 10 and data["best"]["pool_size"] == 40
    assert data["littles_law"]["connections_needed"] == pytest.approx(2000 * 8 / 1940)
    json.dumps(data)  # serialisable as it is

    section = recommendation_html(r)
    assert section.startswith('<section class="tune" id="tune-pg_sqla_async">')
    assert '<tr class="recommended"><td>10</td>' in section and "**" not in section
    assert "p50 &lt; 20 ms" in section  # escaped

    written = write_tune_report(folder, r, points)
    names = sorted(p.name for p in written)
    assert names == ["tune.json", "tune.md", "tune_pg_sqla_async.png", "tune_pg_sqla_async.svg"]
    assert (folder.report_dir / "tune_pg_sqla_async.png").read_bytes().startswith(PNG_MAGIC)
    assert "<svg" in (folder.report_dir / "tune_pg_sqla_async.svg").read_text()
    assert json.loads((folder.report_dir / "tune.json").read_text())["recommended"]["pool_size"] == 10
    assert "![tune_pg_sqla_async](tune_pg_sqla_async.png)" in (folder.report_dir / "tune.md").read_text()


def test_tune_from_several_runs(tmp_path: Path) -> None:
    _write_run(create_run_folder(tmp_path, "a"), _grid(KNEE[:3], run_id="a"))
    _write_run(create_run_folder(tmp_path, "b"), _grid(KNEE[3:], run_id="b"))
    r, points = tune_from_runs([RunFolder(tmp_path / "a"), RunFolder(tmp_path / "b")], "pg_sqla_async",
                               P99_100, 0.01)  # fmt: skip
    assert len(points) == 6 and r.runs == ("a", "b")
    assert r.recommended is not None and r.recommended.pool_size == 10


# --- search -------------------------------------------------------------------------------------------------


def test_the_default_grid(tmp_path: Path) -> None:
    spec = plan_tune_sweep("pg_sqla_sync")
    assert (spec.variants, spec.pool_sizes, spec.max_overflows) == (["pg_sqla_sync"], [1, 2, 5, 10, 20, 40], [0, 10])
    adaptive = plan_tune_sweep("pg_sqla_sync", adaptive=True, settings={"users": [100], "duration_s": 5})
    assert (adaptive.pool_sizes, adaptive.max_overflows, adaptive.users) == ([2, 8, 32], [0], [100])
    assert plan_tune_sweep("pg_sqla_sync", [3, 6], [5]).pool_sizes == [3, 6]
    # From the CLI as text (validated by SweepSpec), or from a config file: the defaults do not override them.
    from_cli = plan_tune_sweep("pg_sqla_sync", settings={"pool_sizes": ["4", "7"], "max_overflows": None})
    assert (from_cli.pool_sizes, from_cli.max_overflows) == ([4, 7], [0, 10])
    config = tmp_path / "sweep.toml"
    config.write_text("[sweep]\nmax_overflows = [3]\nduration_s = 4\n")
    from_file = plan_tune_sweep("pg_sqla_sync", config_file=config)
    assert (from_file.pool_sizes, from_file.max_overflows, from_file.duration_s) == ([1, 2, 5, 10, 20, 40], [3], 4)
    with pytest.raises(BenchError, match="invalid --pool-size"):
        plan_tune_sweep("pg_sqla_sync", settings={"pool_sizes": ["many"]})


def _model(pool_size: int, max_overflow: int) -> tuple[float, float]:
    """A service whose throughput saturates at 5 connections: (requests/s, p99 ms)."""
    connections = pool_size + max_overflow
    return (400.0 * min(connections, 5), 150.0 if connections < 5 else 40.0)


def _measure(settings: Sequence[tuple[int, int]], start: int = 1) -> list[PointRecord]:
    return [_point(start + i, ps, mo, *_model(ps, mo), users=100) for i, (ps, mo) in enumerate(settings)]


def test_adaptive_bisects_towards_the_knee() -> None:
    points = _measure([(2, 0), (8, 0), (32, 0)])
    # 8 and 32 both reach 2,000 req/s (a tie: the best is the smaller, not at the edge); the knee lies in 2..8.
    assert next_tune_settings(points, "pg_sqla_async", P99_100, 0.01) == [PoolSetting(5, 0)]
    points += _measure([(5, 0)], start=10)
    assert next_tune_settings(points, "pg_sqla_async", P99_100, 0.01) == [PoolSetting(3, 0)]
    points += _measure([(3, 0)], start=20)
    assert next_tune_settings(points, "pg_sqla_async", P99_100, 0.01) == [PoolSetting(4, 0)]
    points += _measure([(4, 0)], start=30)
    assert next_tune_settings(points, "pg_sqla_async", P99_100, 0.01) == []  # 4 fails, 5 passes: found
    assert recommend(points, "pg_sqla_async", P99_100, 0.01).recommended == next(
        s for s in recommend(points, "pg_sqla_async", P99_100, 0.01).settings if s.pool_size == 5
    )


def test_adaptive_extends_the_grid_while_the_largest_pool_is_best() -> None:
    rows = [(2, 0, 400.0, 150.0), (8, 0, 1900.0, 40.0), (32, 0, 2000.0, 40.0)]
    # 32 is best and 8 reaches 95% of it: bisect 2..8 and try 64, since throughput may still rise.
    assert next_tune_settings(_grid(rows, users=100), "pg_sqla_async", P99_100, 0.01) == [
        PoolSetting(5, 0),
        PoolSetting(64, 0),
    ]
    # In the closed model no more connections than users (here 50) can be busy: 64 is capped to 50.
    assert next_tune_settings(_grid(rows), "pg_sqla_async", P99_100, 0.01) == [PoolSetting(5, 0), PoolSetting(50, 0)]


def test_adaptive_never_repeats_a_setting_or_exceeds_the_users() -> None:
    # Nothing meets the SLO; the closest is the largest pool, but 40 + 10 connections already equal 50 users.
    rows = [(10, 10, 500.0, 300.0), (40, 10, 900.0, 150.0)]
    assert next_tune_settings(_grid(rows), "pg_sqla_async", P99_100, 0.01) == []
    # With more users the search extends upward, capped at max_pool_size.
    points = _grid(rows, users=1000)
    assert next_tune_settings(points, "pg_sqla_async", P99_100, 0.01, max_pool_size=60) == [PoolSetting(60, 10)]
    # A setting that failed outright is not proposed again.
    failed = _point(9, 60, 10, 1.0, 1.0, users=1000).model_copy(update={"status": "failed", "metrics": None})
    assert next_tune_settings([*points, failed], "pg_sqla_async", P99_100, 0.01, max_pool_size=60) == []


def test_round_specs_cover_exactly_the_settings() -> None:
    spec = plan_tune_sweep("pg_sqla_async", adaptive=True)
    specs = round_specs(spec, [PoolSetting(5, 0), PoolSetting(64, 0), PoolSetting(5, 10), PoolSetting(3, 20)])
    grids = sorted((s.pool_sizes, s.max_overflows) for s in specs)
    assert grids == [([3], [20]), ([5], [10]), ([5, 64], [0])]
    merged = round_specs(spec, [PoolSetting(5, 0), PoolSetting(5, 10)])
    assert [(s.pool_sizes, s.max_overflows) for s in merged] == [([5], [0, 10])]


# --- driver -------------------------------------------------------------------------------------------------


class _FakeSweeps:
    """Stands in for execute_run: writes the records the _model service would produce for the spec's grid."""

    def __init__(self) -> None:
        self.run_ids: list[str] = []

    def __call__(self, options: RunOptions, observer: SweepObserver) -> RunFolder:
        assert options.run_id is not None
        self.run_ids.append(options.run_id)
        folder = create_run_folder(options.results_dir, options.run_id)
        grid = [(ps, mo) for ps in options.spec.pool_sizes for mo in options.spec.max_overflows]
        points = [
            _point(i, ps, mo, *_model(ps, mo), run_id=options.run_id, users=options.spec.users[0])
            for i, (ps, mo) in enumerate(grid, start=1)
        ]
        _write_run(folder, points)
        return folder


def test_run_tune_adaptive_rounds_write_one_folder_each_and_the_report_in_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _FakeSweeps()
    monkeypatch.setattr(tune, "execute_run", fake)
    spec = plan_tune_sweep("pg_sqla_async", adaptive=True, settings={"users": [100]})
    options = tune.TuneOptions(
        variant="pg_sqla_async", slo=P99_100, spec=spec, database_urls={}, results_dir=tmp_path, argv=["bench"],
        adaptive=True, max_rounds=3, run_id="t",
    )  # fmt: skip
    folder, r = run_tune(options, observer=None)  # type: ignore[arg-type]  # the fake never calls it
    assert fake.run_ids == ["t", "t-r2", "t-r3"]  # round 4 would be needed for pool 4; max_rounds stops it
    assert folder.run_id == "t"
    assert r.runs == ("t", "t-r2", "t-r3")
    assert r.recommended is not None and r.recommended.pool_size == 5
    saved = json.loads((tmp_path / "t" / "report" / "tune.json").read_text())
    assert saved["runs"] == ["t", "t-r2", "t-r3"] and saved["recommended"]["pool_size"] == 5


def test_run_tune_grid_measures_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeSweeps()
    monkeypatch.setattr(tune, "execute_run", fake)
    options = tune.TuneOptions(
        variant="pg_sqla_async", slo=P99_100, spec=plan_tune_sweep("pg_sqla_async"), database_urls={},
        results_dir=tmp_path, argv=["bench"], run_id="g",
    )  # fmt: skip
    folder, r = run_tune(options, observer=None)  # type: ignore[arg-type]
    assert fake.run_ids == ["g"]
    assert r.recommended is not None and (r.recommended.pool_size, r.recommended.max_overflow) == (5, 0)
    assert (folder.report_dir / "tune.md").is_file()
