"""Cells: a run's points grouped by configuration, each the median over its repeats with a 95% interval, and
the views (one load, one thread-pool size) that charts, tables and findings read them in."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from bench.records.schema import PointRecord, RunRecord
from bench.records.stats import summarise

Interval = tuple[float, float]


@dataclass(frozen=True)
class Cell:
    """The median over repeats of one configuration (with a 95% interval when there are repeats)."""

    variant: str
    mode: str
    backend_label: str
    pool_size: int | None
    max_overflow: int | None
    users: int
    thread_tokens: int
    repeats: int
    requests_per_s: float
    latency_ms_p50: float
    latency_ms_p99: float
    error_rate: float
    flags: str = ""  # e.g. "stalled 1/3": how many repeats carried each flag
    rate: float | None = None  # open model
    requests_per_s_ci: Interval | None = None
    latency_ms_p99_ci: Interval | None = None
    service_ms_p99: float | None = None  # open model: the service time, next to the corrected latency
    # Why it is slow (medians over repeats of the per-point telemetry; None where not recorded):
    pool_wait_ms_p99: float | None = None
    loop_lag_ms_p99: float | None = None
    threads_busy_max: float | None = None
    threads_limit: int | None = None
    db_connections_max: float | None = None
    generator_cpu: float | None = None  # share of one core

    @property
    def stalled(self) -> bool:
        """No request completed in any repeat: its latency is no measurement at all, never a fast-looking zero."""
        return "stalled" in self.flags and self.requests_per_s == 0


def _flag_summary(members: list[PointRecord]) -> str:
    names = sorted({flag for member in members for flag in member.flags})
    return ", ".join(f"{name} {sum(name in m.flags for m in members)}/{len(members)}" for name in names)


def _median_of(values: Iterable[float | int | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return statistics.median(present) if present else None


def _interval(values: list[float]) -> Interval | None:
    if len(values) < 2:
        return None
    return summarise(values).interval


GroupKey = tuple[str, int | None, int | None, int, int, float | None]


def aggregate(points: Iterable[PointRecord]) -> list[Cell]:
    groups: dict[GroupKey, list[PointRecord]] = defaultdict(list)
    for point in points:
        if point.status == "ok" and point.metrics is not None:
            c = point.config
            groups[(c.variant, c.pool_size, c.max_overflow, c.users, c.thread_tokens, c.rate)].append(point)
    cells = []
    for (variant, pool_size, max_overflow, users, thread_tokens, rate), members in groups.items():
        metrics = [m.metrics for m in members if m.metrics is not None]
        apps = [m.telemetry.app for m in members if m.telemetry is not None and m.telemetry.app is not None]
        dbs = [m.telemetry.database for m in members if m.telemetry is not None and m.telemetry.database is not None]
        throughputs = [m.requests_per_s for m in metrics]
        p99s = [m.latency_ms_p99 for m in metrics]
        cells.append(
            Cell(
                variant=variant,
                mode=members[0].config.mode,
                backend_label=members[0].config.backend_label,
                pool_size=pool_size,
                max_overflow=max_overflow,
                users=users,
                thread_tokens=thread_tokens,
                repeats=len(metrics),
                requests_per_s=statistics.median(throughputs),
                latency_ms_p50=statistics.median(m.latency_ms_p50 for m in metrics),
                latency_ms_p99=statistics.median(p99s),
                error_rate=statistics.median(m.error_rate for m in metrics),
                flags=_flag_summary(members),
                rate=rate,
                requests_per_s_ci=_interval(throughputs),
                latency_ms_p99_ci=_interval(p99s),
                service_ms_p99=_median_of(
                    m.service_time.p99_ms if m.service_time and m.load_model == "open" else None for m in metrics
                ),
                pool_wait_ms_p99=_median_of(a.pool_wait_ms_p99 for a in apps),
                loop_lag_ms_p99=_median_of(a.loop_lag_ms_p99 for a in apps),
                threads_busy_max=_median_of(a.threads_busy_max for a in apps),
                threads_limit=next((a.threads_limit for a in apps if a.threads_limit is not None), None),
                db_connections_max=_median_of(d.connections_max for d in dbs),
                generator_cpu=_median_of(m.generator_cpu_utilisation for m in metrics),
            )
        )
    return sorted(
        cells, key=lambda c: (c.users, c.rate or 0, c.variant, c.thread_tokens, c.pool_size or 0, c.max_overflow or 0)
    )


@dataclass(frozen=True)
class View:
    """The cells one chart shows: one load (users, and in the open model a rate), and one thread-pool size for
    the sync variants (the others do not use the thread pool for requests, so they appear in every view)."""

    users: int
    thread_tokens: int | None
    cells: list[Cell]
    suffix: str  # for file names, e.g. "_u50", "_u50_t80" or "_u50_rate400"
    caption: str  # for titles, e.g. "50 users", "50 users, 80 threads" or "400 req/s on 50 connections"
    rate: float | None = None


def views(cells: list[Cell]) -> list[View]:
    all_tokens: list[int | None] = [*sorted({c.thread_tokens for c in cells if c.mode == "sync"})]
    several = len(all_tokens) > 1
    result = []
    loads = sorted({(c.users, c.rate) for c in cells}, key=lambda load: (load[0], load[1] or 0))
    for users, rate in loads:
        for tokens in all_tokens or [None]:
            chosen = [
                c
                for c in cells
                if c.users == users and c.rate == rate and (c.mode != "sync" or c.thread_tokens == tokens)
            ]
            load_suffix = f"_u{users}" if rate is None else f"_u{users}_rate{rate:g}"
            load_caption = f"{users} users" if rate is None else f"{rate:g} req/s on {users} connections"
            suffix = f"{load_suffix}_t{tokens}" if several else load_suffix
            caption = f"{load_caption}, {tokens} threads" if several else load_caption
            result.append(View(users, tokens, chosen, suffix, caption, rate))
    return result


def load_model_caption(run: RunRecord) -> str:
    if run.sweep.get("load_model", "closed") == "open":
        # Runs before schema 5 are upgraded to "uniform" (records.run_folder), so a missing value is never guessed.
        return f"open model (latency from intended start), {run.sweep.get('arrivals', 'uniform')} arrivals"
    return "closed model"
