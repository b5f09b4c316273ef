"""The chart catalogue: every chart drawn from records alone, as PNG and SVG, and skipped when data are missing.

The records are written by hand with known figures (these tests check rendering and selection, not measurement).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.records.latency import encode, histogram_of
from bench.records.run_folder import RunFolder, create_run_folder
from bench.records.schema import (
    LatencySummary,
    PointConfig,
    PointMetrics,
    PointRecord,
    RunRecord,
    TimelineSample,
)
from bench.records.telemetry import AppTelemetry, Telemetry, TelemetrySample
from bench.report.charts import draw_catalogue
from bench.report.charts.ratio import driver_library, sync_async_pairs
from bench.report.charts.timeseries import MAX_ALL_POINTS, timeline_points

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ENVIRONMENT = {"cpu_count": 2, "cpu_model": "Test CPU 9000", "memory_total_bytes": 8 * 2**30}
MACHINE = "2 CPUs, 8.0 GiB, Test CPU 9000"
SURROGATE_LABEL = "secantusdb 1.0 (surrogate)"
# variant -> (backend, backend label, mode, driver)
VARIANTS = {
    "pg_sqla_sync": ("postgresql", "PostgreSQL 15", "sync", "sqlalchemy+psycopg"),
    "pg_sqla_async": ("postgresql", "PostgreSQL 15", "async", "sqlalchemy+asyncpg"),
    "pg_asyncpg": ("postgresql", "PostgreSQL 15", "async", "asyncpg"),
    "mongo_pymongo": ("mongodb", SURROGATE_LABEL, "sync", "pymongo"),
    "mongo_pymongo_async": ("mongodb", SURROGATE_LABEL, "async", "pymongo (async)"),
}


def _config(
    variant: str, pool_size: int | None, max_overflow: int | None, users: int, repeat: int, rate: float | None = None
) -> PointConfig:
    backend, label, mode, driver = VARIANTS.get(variant, ("memory", "in-memory dict", "async", "dict"))
    return PointConfig(
        variant=variant, backend=backend, backend_label=label, mode=mode, driver=driver,
        pooled=pool_size is not None, scenario="read_heavy", pool_size=pool_size, max_overflow=max_overflow,
        users=users, spawn_rate=users, warmup_s=2, duration_s=8, repeat_index=repeat, pool_timeout_s=30,
        pool_pre_ping=False, thread_tokens=40, workers=1, dataset_rows=100,
        load_model="closed" if rate is None else "open", rate=rate,
    )  # fmt: skip


def _summary(values_us: list[float]) -> LatencySummary:
    ordered = sorted(values_us)

    def at(fraction: float) -> float:
        return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)] / 1000

    return LatencySummary(
        count=len(ordered), mean_ms=sum(ordered) / len(ordered) / 1000, p50_ms=at(0.5), p90_ms=at(0.9),
        p95_ms=at(0.95), p99_ms=at(0.99), p999_ms=at(0.999), max_ms=ordered[-1] / 1000,
    )  # fmt: skip


def _metrics(
    requests_per_s: float, p99_ms: float, rng: random.Random, open_model: bool = False, error_rate: float = 0.0
) -> PointMetrics:
    """Metrics whose histograms hold 2,000 latencies around p99_ms / 3 with a tail reaching p99_ms."""
    service_us = [rng.uniform(0.2, 0.4) * p99_ms * 1000 for _ in range(1980)]
    service_us += [rng.uniform(0.9, 1.5) * p99_ms * 1000 for _ in range(20)]
    histograms = {"service": encode(histogram_of(service_us))}
    corrected = None
    if open_model:  # the corrected latency adds the time requests waited to be sent
        corrected_us = [value * 1.5 + 500 for value in service_us]
        histograms["corrected"] = encode(histogram_of(corrected_us))
        corrected = _summary(corrected_us)
    requests = int(requests_per_s * 8)
    timeline = [
        TimelineSample(
            t_s=float(second), phase="warmup" if second <= 2 else "measure", users=20, requests=int(requests_per_s),
            failures=0, latency_ms_p50=p99_ms / 3, latency_ms_p99=p99_ms * rng.uniform(0.8, 1.2),
            stage="steady" if second < 6 else "spike",
        )
        for second in range(1, 11)
    ]  # fmt: skip
    return PointMetrics(
        requests=requests, failures=int(requests * error_rate), error_rate=error_rate,
        requests_per_s=requests_per_s, measured_s=8, latency_ms_mean=p99_ms / 3, latency_ms_p50=p99_ms / 3,
        latency_ms_p90=p99_ms / 2, latency_ms_p95=p99_ms / 1.5, latency_ms_p99=p99_ms, latency_ms_p999=p99_ms * 1.4,
        latency_ms_max=p99_ms * 1.5, load_model="open" if open_model else "closed",
        service_time=_summary(service_us), corrected_latency=corrected, histograms=histograms, timeline=timeline,
    )  # fmt: skip


def _telemetry(pool_limit: int) -> Telemetry:
    samples = [
        TelemetrySample(t_s=float(second), checked_out=min(second, pool_limit), waiting=max(second - pool_limit, 0),
                        threads_busy=second * 2, loop_lag_ms_max=1.5 * second, pool_wait_ms_p99=0.5 * second,
                        db_connections=pool_limit + 1)
        for second in range(1, 11)
    ]  # fmt: skip
    return Telemetry(
        interval_s=1.0,
        app=AppTelemetry(samples=10, pool_limit=pool_limit, pool_wait_ms_p99=4.0, loop_lag_ms_p99=2.0),
        timeline=samples,
    )


def _point(index: int, config: PointConfig, metrics: PointMetrics, flags: list[str] | None = None) -> PointRecord:
    telemetry = _telemetry((config.pool_size or 0) + (config.max_overflow or 0)) if config.pooled else None
    return PointRecord(
        run_id="charts", point_id=f"{index:03d}-{config.variant}", index=index, status="ok", config=config,
        metrics=metrics, started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:00:10+00:00",
        flags=flags or [], telemetry=telemetry,
    )  # fmt: skip


def _run(points_planned: int, load_model: str = "closed") -> RunRecord:
    sweep = {"scenario": "read_heavy", "warmup_s": 2, "duration_s": 8, "repeat": 2, "load_model": load_model}
    return RunRecord(
        run_id="charts", status="complete", created_at="2026-01-01T00:00:00+00:00", argv=[], sweep=sweep,
        environment=ENVIRONMENT, points_planned=points_planned, points_ok=points_planned,
    )  # fmt: skip


def _throughput(variant: str, pool_size: int, max_overflow: int, users: int) -> float:
    """Known figures: more connections help until the users run out; the surrogate serves 0.8x PostgreSQL; async
    serves 1.5x sync on PostgreSQL, 1.2x on the surrogate."""
    backend, _, mode, _ = VARIANTS[variant]
    base = 100.0 * min(pool_size + max_overflow, users) * (0.8 if backend == "mongodb" else 1.0)
    return base * ((1.2 if backend == "mongodb" else 1.5) if mode == "async" else 1.0)


def _write_big_run(folder: RunFolder) -> list[PointRecord]:
    """Four pooled variants x pool_size {2, 5} x max_overflow {0, 5} x users {10, 40} x 2 repeats, plus the
    unpooled baseline; one cell stalled and one with errors."""
    rng = random.Random(7)
    points: list[PointRecord] = []
    variants = ["pg_sqla_sync", "pg_sqla_async", "mongo_pymongo", "mongo_pymongo_async"]
    for repeat in (1, 2):
        for users in (10, 40):
            for pool_size in (2, 5):
                for max_overflow in (0, 5):
                    for variant in variants:
                        config = _config(variant, pool_size, max_overflow, users, repeat)
                        throughput = _throughput(variant, pool_size, max_overflow, users) * (1 + 0.05 * repeat)
                        p99 = 1000 * users / throughput
                        if (variant, pool_size, max_overflow, users) == ("pg_sqla_sync", 2, 0, 40):
                            # a stall: no request completed, nothing in the histograms
                            metrics = _metrics(1, 1, rng).model_copy(
                                update={"requests": 0, "requests_per_s": 0.0, "latency_ms_p99": 0.0,
                                        "histograms": {"service": encode(histogram_of([]))}}
                            )  # fmt: skip
                            points.append(_point(len(points) + 1, config, metrics, flags=["stalled"]))
                            continue
                        error_rate = 0.02 if (variant, pool_size, max_overflow) == ("mongo_pymongo", 2, 0) else 0.0
                        metrics = _metrics(throughput, p99, rng, error_rate=error_rate)
                        points.append(_point(len(points) + 1, config, metrics))
            config = _config("memory", None, None, users, repeat)
            points.append(_point(len(points) + 1, config, _metrics(5000, 3, rng)))
    folder.write_run(_run(len(points)))
    for point in points:
        folder.write_point(point)
    return points


@pytest.fixture(scope="module")
def big_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunFolder, list[Path]]]:
    folder = create_run_folder(tmp_path_factory.mktemp("results"), "charts")
    _write_big_run(folder)
    run, points = folder.load_run(), folder.load_points()  # what the report reads: the records on disk
    written = draw_catalogue(run, points, folder.report_dir)
    yield folder, written


def _svg(folder: RunFolder, stem: str) -> str:
    return (folder.report_dir / f"{stem}.svg").read_text(encoding="utf-8")


def test_every_chart_is_written_as_png_and_svg(big_run: tuple[RunFolder, list[Path]]) -> None:
    folder, written = big_run
    stems = sorted({path.stem for path in written})
    for stem in stems:
        png, svg = folder.report_dir / f"{stem}.png", folder.report_dir / f"{stem}.svg"
        assert png in written and svg in written
        assert png.read_bytes().startswith(PNG_MAGIC) and png.stat().st_size > 10_000
        text = svg.read_text(encoding="utf-8")
        assert text.lstrip().startswith("<?xml") and "<svg" in text and len(text) > 5_000
        assert "read_heavy" in text and "closed model" in text and MACHINE in text  # the title, as text
    expected = {
        # both pool dimensions swept: requests/s, p99 and (one cell has errors) error-rate maps per load
        "heatmap_requests_per_s_u10", "heatmap_latency_ms_p99_u10", "heatmap_error_rate_u10",
        "heatmap_requests_per_s_u40", "heatmap_latency_ms_p99_u40", "heatmap_error_rate_u40",
        # two user counts: a knee per pool setting
        "knee_ps2_mo0", "knee_ps2_mo5", "knee_ps5_mo0", "knee_ps5_mo5",
        # four pool settings (not more than MAX_SETTINGS): a spectrum for each, per load
        *(f"spectrum_ps{ps}_mo{mo}_u{u}" for ps in (2, 5) for mo in (0, 5) for u in (10, 40)),
        # two sync/async pairs: one ratio chart per load
        "ratio_u10", "ratio_u40",
    }  # fmt: skip
    assert expected <= set(stems)
    timelines = [stem for stem in stems if stem.startswith("timeline_")]
    assert len(timelines) == 5  # many points: one per variant (four pooled and the baseline)
    assert set(stems) == expected | set(timelines)


def test_heatmap_annotates_values_and_marks_stalls(big_run: tuple[RunFolder, list[Path]]) -> None:
    folder, _ = big_run
    throughput = _svg(folder, "heatmap_requests_per_s_u40")
    # pg_sqla_async at pool_size=5, max_overflow=5, 40 users: 1,500 req/s, x1.05 and x1.10 -> median 1,612.5
    assert ">1,612<" in throughput or ">1,613<" in throughput  # one value, round half to even either way
    assert "stalled" in throughput  # pg_sqla_sync at pool_size=2, max_overflow=0 stalled
    # panel titles: the variant, then its mode (and SURROGATE) on a second line
    assert _panel_title(throughput, "mongo_pymongo") == "mongo_pymongo (sync), SURROGATE"
    assert _panel_title(throughput, "pg_sqla_sync") == "pg_sqla_sync (sync)"
    assert "stalled" not in _svg(folder, "heatmap_requests_per_s_u10")
    assert "2.0%" in _svg(folder, "heatmap_error_rate_u10")


def _panel_title(svg: str, variant: str) -> str:
    """A heatmap panel's two-line title, joined (the SVG holds each line as its own text element)."""
    match = re.search(rf">{variant}</text>\s*<text[^>]*>(\([^<]*)</text>", svg)
    assert match, f"no panel title for {variant}"
    return f"{variant} {match.group(1)}"


def test_knee_curve_has_every_variant_and_labels_surrogates(big_run: tuple[RunFolder, list[Path]]) -> None:
    folder, _ = big_run
    svg = _svg(folder, "knee_ps5_mo0")
    assert "p99 vs throughput across user counts at pool_size=5, max_overflow=0" in svg
    for label in ("pg_sqla_sync (sync)", "pg_sqla_async (async)", "mongo_pymongo_async (async), SURROGATE",
                  "memory (async)"):  # fmt: skip
        assert label in svg
    assert "secantusdb 1.0 (SURROGATE)" in svg  # the backend in the title, too
    assert "achieved requests/s" in svg
    # repeats exist: every point of every line carries its intervals (two repeats each)
    assert len(re.findall(r'id="interval-pg_sqla_async-', svg)) == 2 * 2  # 2 loads, across and upright


def test_spectrum_has_nines_axis_and_a_line_per_variant(big_run: tuple[RunFolder, list[Path]]) -> None:
    folder, _ = big_run
    svg = _svg(folder, "spectrum_ps5_mo5_u40")
    for tick in (">90<", ">99<", ">99.9<"):
        assert tick in svg
    for label in ("pg_sqla_sync (sync)", "pg_sqla_async (async)", "mongo_pymongo (sync), SURROGATE"):
        assert label in svg
    assert "service time (dashed)" not in svg  # closed model: the service time is the latency, one line each


def test_time_series_are_drawn_for_each_variants_worst_point(big_run: tuple[RunFolder, list[Path]]) -> None:
    folder, written = big_run
    points = folder.load_points()
    chosen = timeline_points(points)
    assert len(points) > MAX_ALL_POINTS and len(chosen) == 5
    by_variant = {point.config.variant: point for point in chosen}
    assert by_variant["pg_sqla_sync"].flags == ["stalled"]  # a stall outranks any p99
    async_points = [p for p in points if p.config.variant == "pg_sqla_async" and p.metrics]
    worst = max(async_points, key=lambda p: p.metrics.latency_ms_p99 if p.metrics else 0)
    assert by_variant["pg_sqla_async"].point_id == worst.point_id
    svg = _svg(folder, f"timeline_{worst.point_id}")
    for text in ("warm-up (excluded)", "pool checked out", "event-loop lag, max", "spike", "requests/s"):
        assert text in svg
    assert folder.report_dir / f"timeline_{worst.point_id}.png" in written


def test_ratio_chart_pairs_sync_and_async_from_the_records(big_run: tuple[RunFolder, list[Path]]) -> None:
    folder, _ = big_run
    svg = _svg(folder, "ratio_u10")
    assert "pg_sqla_async (async) / pg_sqla_sync" in svg
    assert "mongo_pymongo_async (async), SURROGATE / mongo_pymongo" in svg
    assert "1.0: async and sync equal" in svg
    assert "pg_sqla_sync stalled" in _svg(folder, "ratio_u40")


def test_pairs_come_from_backend_and_driver_library(tmp_path: Path) -> None:
    assert [driver_library(d) for d in ("sqlalchemy+pymysql", "psycopg (async)", "redis.asyncio", "redis-py")] == [
        "sqlalchemy", "psycopg", "redis", "redis",
    ]  # fmt: skip
    rng = random.Random(1)
    points = [
        _point(index, _config(variant, 2, 0, 10, 1), _metrics(100, 10, rng))
        for index, variant in enumerate(VARIANTS, start=1)
    ]
    # asyncpg has no sync twin; the pymongo pair is found although its async driver is named differently
    assert sync_async_pairs(points) == [("mongo_pymongo", "mongo_pymongo_async"), ("pg_sqla_sync", "pg_sqla_async")]


def test_open_model_spectrum_draws_corrected_solid_and_service_dashed(tmp_path: Path) -> None:
    folder = create_run_folder(tmp_path, "open")
    rng = random.Random(3)
    points = [
        _point(index, _config(variant, 5, 0, 20, 1, rate=rate), _metrics(rate * 0.98, 20 + rate / 10, rng, True))
        for index, (variant, rate) in enumerate(
            ((v, r) for v in ("pg_sqla_sync", "pg_sqla_async") for r in (100.0, 300.0)), start=1
        )
    ]
    run = _run(len(points), load_model="open")
    written = draw_catalogue(run, points, folder.report_dir)
    stems = {path.stem for path in written}
    assert {"spectrum_ps5_mo0_u20_rate100", "spectrum_ps5_mo0_u20_rate300", "knee_ps5_mo0"} <= stems
    assert not any(stem.startswith("heatmap") for stem in stems)  # one pool setting: no map
    spectrum = _svg(folder, "spectrum_ps5_mo0_u20_rate100")
    assert "open model (latency from intended start)" in spectrum
    assert "corrected latency (from intended start) (solid)" in spectrum and "service time (dashed)" in spectrum
    assert "stroke-dasharray" in spectrum
    knee = _svg(folder, "knee_ps5_mo0")
    assert "across rates" in knee and "pg_sqla_async: service time p99" in knee


def test_charts_without_their_data_are_skipped(tmp_path: Path) -> None:
    """One pool setting, one load, async variants only, no histograms, no timelines: nothing to draw."""
    folder = create_run_folder(tmp_path, "thin")
    rng = random.Random(5)
    bare = _metrics(100, 10, rng).model_copy(update={"histograms": {}, "timeline": []})
    points = [
        _point(1, _config("pg_sqla_async", 5, 0, 10, 1), bare).model_copy(update={"telemetry": None}),
        _point(2, _config("pg_asyncpg", 5, 0, 10, 1), bare).model_copy(update={"telemetry": None}),
    ]
    assert draw_catalogue(_run(2), points, folder.report_dir) == []
    assert not folder.report_dir.exists() or not any(folder.report_dir.iterdir())
    assert draw_catalogue(_run(0), [], folder.report_dir) == []  # no points at all


def test_error_rate_map_is_skipped_without_errors(tmp_path: Path) -> None:
    folder = create_run_folder(tmp_path, "clean")
    rng = random.Random(9)
    points = [
        _point(index, _config("pg_sqla_async", pool_size, overflow, 10, 1), _metrics(100 * pool_size, 10, rng))
        for index, (pool_size, overflow) in enumerate(((2, 0), (2, 5), (5, 0), (5, 5)), start=1)
    ]
    stems = {path.stem for path in draw_catalogue(_run(4), points, folder.report_dir)}
    assert {"heatmap_requests_per_s_u10", "heatmap_latency_ms_p99_u10"} <= stems
    assert "heatmap_error_rate_u10" not in stems
    assert not any(stem.startswith(("knee", "ratio")) for stem in stems)  # one load; no sync twin
