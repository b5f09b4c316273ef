"""Sync vs async, as a ratio: async/sync requests/s and async/sync p99 against pool_size, a panel per max_overflow.

Pairs are read from the records, not from a list of names: a sync and an async variant on the same backend
whose drivers come from the same library ("sqlalchemy+psycopg" / "sqlalchemy+asyncpg", "psycopg" /
"psycopg (async)", "redis-py" / "redis.asyncio", "pymongo" / "pymongo (async)"). An async-only driver
(asyncpg, motor) has no sync twin and no ratio. Where both sides have repeats, the shaded band is the ratio
of their 95% intervals taken at opposite ends (async low / sync high .. async high / sync low): a
conservative band, wider than the ratio's own interval would be.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from itertools import product
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.artist import Artist
from matplotlib.axes import Axes

from bench.analysis.cells import Cell, Interval, views
from bench.records.schema import PointRecord, RunRecord
from bench.report.charts.common import chart_title, confidence_band, variant_label
from bench.report.charts.palette import MARKERS, variant_colour
from bench.report.figures import save_figure

Pair = tuple[str, str]  # (sync variant, async variant)


def driver_library(driver: str) -> str:
    """The library a driver comes from, without its sync/async flavour: 'sqlalchemy+asyncpg' -> 'sqlalchemy',
    'psycopg (async)' -> 'psycopg', 'redis.asyncio' -> 'redis', 'redis-py' -> 'redis'."""
    name = driver.split("+", 1)[0].replace("(async)", "").strip()
    return re.split(r"[.\- ]", name, maxsplit=1)[0].lower()


def sync_async_pairs(points: Iterable[PointRecord]) -> list[Pair]:
    """Every (sync, async) pair of variants in the records with the same backend and driver library."""
    families: dict[tuple[str, str], dict[str, set[str]]] = {}
    for point in points:
        c = point.config
        if c.mode in {"sync", "async"} and c.pooled:
            family = families.setdefault((c.backend, driver_library(c.driver)), {"sync": set(), "async": set()})
            family[c.mode].add(c.variant)
    pairs = [pair for family in families.values() for pair in product(sorted(family["sync"]), sorted(family["async"]))]
    return sorted(pairs)


def draw_ratio_charts(run: RunRecord, points: list[PointRecord], cells: list[Cell], out_dir: Path) -> list[Path]:
    pairs = sync_async_pairs(points)
    if not pairs:
        return []
    written: list[Path] = []
    for view in views(cells):
        by_key = {(c.variant, c.pool_size, c.max_overflow): c for c in view.cells if c.pool_size is not None}
        matched = [
            (pair, sync_cell, by_key[(pair[1], size, overflow)])
            for pair in pairs
            for (variant, size, overflow), sync_cell in by_key.items()
            if variant == pair[0] and (pair[1], size, overflow) in by_key
        ]
        if not matched:
            continue
        overflows = sorted({sync_cell.max_overflow for _, sync_cell, _ in matched}, key=lambda o: o or 0)
        figure, axes = plt.subplots(2, len(overflows), figsize=(max(4.8 * len(overflows) + 1.5, 11), 7.5),
                                    squeeze=False, sharex=True, sharey="row")  # fmt: skip
        for column, overflow in enumerate(overflows):
            throughput_axis, latency_axis = axes[0][column], axes[1][column]
            for pair in pairs:
                series = sorted(
                    ((s, a) for p, s, a in matched if p == pair and s.max_overflow == overflow),
                    key=lambda sides: sides[0].pool_size or 0,
                )
                if series:
                    _draw_pair(run, throughput_axis, latency_axis, pair, series)
            throughput_axis.set_title(f"max_overflow = {overflow}")
            latency_axis.set_xlabel("pool_size")
            for axis in (throughput_axis, latency_axis):
                axis.axhline(1.0, color="black", linestyle="--", linewidth=1, label="1.0: async and sync equal")
                axis.grid(True, alpha=0.3)
                axis.set_xticks(sorted({s.pool_size or 0 for _, s, _ in matched}))
                axis.set_ylim(bottom=0)
        axes[0][0].set_ylabel("async / sync requests/s\n(above 1: async serves more)")
        axes[1][0].set_ylabel("async / sync p99 latency\n(below 1: async answers faster)")
        legend: dict[str, Artist] = {}
        for axis in axes[0]:  # every panel's entries, once each (a pair may lack one max_overflow)
            for handle, text in zip(*axis.get_legend_handles_labels(), strict=True):
                legend.setdefault(text, handle)
        figure.legend(list(legend.values()), list(legend), loc="lower center", ncol=min(len(legend), 3),
                      frameon=False, fontsize=8)  # fmt: skip
        backends = [c.backend_label for _, s, a in matched for c in (s, a)]
        what = f"async/sync ratio of requests/s and p99 vs pool_size, {view.caption}"
        figure.suptitle(chart_title(run, what, backends), fontsize=10)
        legend_inches = 0.3 + 0.2 * math.ceil(len(legend) / 3)
        figure.set_figheight(figure.get_figheight() + legend_inches)
        figure.tight_layout(rect=(0, legend_inches / figure.get_figheight(), 1, 0.95))
        written += save_figure(figure, out_dir, f"ratio{view.suffix}")
    return written


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def _ratio_interval(numerator: Interval | None, denominator: Interval | None) -> Interval | None:
    if numerator is None or denominator is None or denominator[0] <= 0:
        return None
    return (numerator[0] / denominator[1], numerator[1] / denominator[0])


def _draw_pair(
    run: RunRecord, throughput_axis: Axes, latency_axis: Axes, pair: Pair, series: list[tuple[Cell, Cell]]
) -> None:
    sync_name, async_name = pair
    async_first = series[0][1]
    colour = variant_colour(async_name)
    label = f"{variant_label(run, async_name, 'async', async_first.backend_label)} / {sync_name}"
    xs = [float(s.pool_size or 0) for s, _ in series]
    throughput = [_ratio(a.requests_per_s, s.requests_per_s) for s, a in series]
    # A stalled side has no latency: no ratio there, a gap in the line and a note instead.
    p99 = [math.nan if s.stalled or a.stalled else _ratio(a.latency_ms_p99, s.latency_ms_p99) for s, a in series]
    throughput_axis.plot(xs, throughput, marker=MARKERS["async"], color=colour, label=label)
    latency_axis.plot(xs, p99, marker=MARKERS["async"], color=colour, label=label)
    confidence_band(throughput_axis, xs, [_ratio_interval(a.requests_per_s_ci, s.requests_per_s_ci) for s, a in series],
                    colour)  # fmt: skip
    confidence_band(latency_axis, xs, [_ratio_interval(a.latency_ms_p99_ci, s.latency_ms_p99_ci) for s, a in series],
                    colour)  # fmt: skip
    for x, (sync_cell, async_cell) in zip(xs, series, strict=True):
        stalled_sides = [name for name, cell in ((sync_name, sync_cell), (async_name, async_cell)) if cell.stalled]
        if stalled_sides:
            for axis in (throughput_axis, latency_axis):
                axis.annotate(f"{' and '.join(stalled_sides)} stalled", (x, 0.02), xycoords=("data", "axes fraction"),
                              rotation=90, fontsize=7, color="red", ha="center", va="bottom")  # fmt: skip
