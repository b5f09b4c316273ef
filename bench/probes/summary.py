"""Turn the samples taken during a point into its Telemetry record: the measured period's summaries and a
per-second timeline.

Counters and histograms are cumulative in the app, so a period's figures are the difference between the
snapshot at (or just before) its start and the last snapshot at (or before) its end; gauges (connections in
use, requests waiting, busy threads) are summarised over the snapshots taken inside the period.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import fmean

from bench.probes.app import MetricsDocument
from bench.probes.database import DatabaseReading
from bench.probes.histogram import Histogram, difference
from bench.records.telemetry import AppTelemetry, DatabaseTelemetry, Telemetry, TelemetrySample

DIGITS = 3  # milliseconds to the microsecond, seconds to the millisecond: finer is noise in a JSON record


@dataclass(frozen=True)
class Tick:
    """One sampling round: the wall-clock time it began and what each source answered (None: nothing)."""

    at: float  # epoch seconds
    app: MetricsDocument | None = None
    database: DatabaseReading | None = None


def summarise_ticks(
    ticks: Sequence[Tick],
    *,
    interval_s: float,
    started_at: float,
    measure_from: float,
    measure_to: float,
    database_source: str | None,
    database_note: str | None = None,
    errors: Sequence[str] = (),
) -> Telemetry:
    """The Telemetry of one point. `database_source` None: no database probe ran."""
    database = None
    if database_source is not None:
        database = database_summary(ticks, measure_from, measure_to, database_source, database_note)
    return Telemetry(
        interval_s=interval_s,
        app=app_summary(ticks, measure_from, measure_to),
        database=database,
        timeline=timeline(ticks, started_at, measure_to),
        errors=list(errors),
    )


def app_summary(ticks: Sequence[Tick], measure_from: float, measure_to: float) -> AppTelemetry | None:
    snapshots = [(tick.at, tick.app) for tick in ticks if tick.app is not None]
    inside = [doc for at, doc in snapshots if measure_from <= at <= measure_to]
    if not inside:
        return None
    before = [doc for at, doc in snapshots if at <= measure_from]
    # Sampling starts before the warm-up, so a snapshot before the measurement exists unless the app did not
    # answer then; the first one inside is the next best start (the counts then miss under one interval).
    start, end = (before[-1] if before else inside[0]), inside[-1]
    threads = [doc.threads for doc in inside]
    figures: dict[str, object] = {
        "samples": len(inside),
        "threads_limit": end.threads.limit,
        "threads_busy_mean": _round(fmean(t.busy for t in threads)),
        "threads_busy_max": max(t.busy for t in threads),
        "threads_waiting_max": max(t.waiting for t in threads),
    }
    if not end.telemetry:
        return AppTelemetry.model_validate(figures)  # instrumentation off: the threads are all there is
    restarted = end.uptime_s < start.uptime_s  # counters began again from zero: differences mean nothing
    if end.pool is not None:
        pools = [doc.pool for doc in inside if doc.pool is not None]
        checked_out = [p.checked_out for p in pools if p.checked_out is not None]
        figures |= {
            "pool_kind": end.pool.kind,
            "pool_limit": end.pool.limit,
            "checked_out_mean": _round(fmean(checked_out)) if checked_out else None,
            "checked_out_max": max(checked_out, default=None),
            "overflow_in_use_max": _max(p.overflow_in_use for p in pools),
            "waiting_max": _max(p.waiting for p in pools),
        }
        if start is not end and not restarted:
            start_pool = start.pool
            figures |= {
                "acquisitions": end.pool.acquisitions - start_pool.acquisitions if start_pool else None,
                "pool_timeouts": end.pool.timeouts - start_pool.timeouts if start_pool else None,
            }
            if start_pool is not None:
                figures |= _histogram_figures("pool_wait_ms", end.pool.wait_ms, start_pool.wait_ms, mean=True)
    if end.event_loop is not None and start is not end and not restarted:
        start_lag = start.event_loop.lag_ms if start.event_loop is not None else None
        if start_lag is not None:
            figures |= _histogram_figures("loop_lag_ms", end.event_loop.lag_ms, start_lag, mean=False)
    return AppTelemetry.model_validate(figures)


def _histogram_figures(prefix: str, later: Histogram, earlier: Histogram, *, mean: bool) -> dict[str, object]:
    window = difference(later, earlier)
    if window is None or window.count == 0:
        return {}
    figures: dict[str, object] = {
        f"{prefix}_p50": _round(window.percentile(0.5)),
        f"{prefix}_p99": _round(window.percentile(0.99)),
        f"{prefix}_max": _round(window.max_ms),
    }
    if mean:
        figures[f"{prefix}_mean"] = _round(window.mean_ms)
    return figures


def database_summary(
    ticks: Sequence[Tick], measure_from: float, measure_to: float, source: str, note: str | None
) -> DatabaseTelemetry | None:
    readings = [t.database for t in ticks if t.database is not None and measure_from <= t.at <= measure_to]
    if not readings and note is None:
        return None  # the probe failed throughout: Telemetry.errors says why
    by_state_max: dict[str, int] = {}
    for reading in readings:
        for state, count in reading.by_state.items():
            by_state_max[state] = max(by_state_max.get(state, 0), count)
    connections = [r.connections for r in readings]
    return DatabaseTelemetry(
        samples=len(readings),
        source=source,
        connections_mean=_round(fmean(connections)) if connections else None,
        connections_max=max(connections, default=None),
        by_state_max=dict(sorted(by_state_max.items())),
        note=note,
    )


def timeline(ticks: Sequence[Tick], started_at: float, measure_to: float) -> list[TelemetrySample]:
    """Every tick from the start of the load (warm-up included) to the end of the measurement, as the load
    generator's timeline covers it; per-interval figures come from the app's previous snapshot."""
    samples: list[TelemetrySample] = []
    previous: MetricsDocument | None = None
    for tick in ticks:
        doc = tick.app
        if started_at <= tick.at <= measure_to:
            samples.append(_timeline_sample(tick, tick.at - started_at, previous))
        if doc is not None:
            previous = doc
    return samples


def _timeline_sample(tick: Tick, t_s: float, previous: MetricsDocument | None) -> TelemetrySample:
    figures: dict[str, object] = {"t_s": _round(t_s)}
    doc = tick.app
    if doc is not None:
        figures["threads_busy"] = doc.threads.busy
        if doc.pool is not None:
            figures |= {
                "checked_out": doc.pool.checked_out,
                "overflow_in_use": doc.pool.overflow_in_use,
                "waiting": doc.pool.waiting,
            }
        if previous is not None and previous.uptime_s <= doc.uptime_s:
            if doc.event_loop is not None and previous.event_loop is not None:
                lag = difference(doc.event_loop.lag_ms, previous.event_loop.lag_ms)
                figures["loop_lag_ms_max"] = _round(lag.max_ms) if lag else None
            if doc.pool is not None and previous.pool is not None:
                wait = difference(doc.pool.wait_ms, previous.pool.wait_ms)
                figures["pool_wait_ms_p99"] = _round(wait.percentile(0.99)) if wait else None
    if tick.database is not None:
        figures |= {"db_connections": tick.database.connections, "db_by_state": dict(tick.database.by_state)}
    return TelemetrySample.model_validate(figures)


def _max(values: Iterable[int | None]) -> int | None:
    return max((v for v in values if v is not None), default=None)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, DIGITS)
