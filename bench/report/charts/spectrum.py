"""Latency percentile spectra (HDR style): latency against percentile on a "nines" axis, one line per variant.

Drawn from the points' HDR histograms merged over repeats (never from averaged percentiles). The x axis is
-log10(1 - percentile), so 90, 99, 99.9 and 99.99 are evenly spaced and the tail gets the room it deserves;
each line stops where its histogram runs out of requests (the 99.99th percentile of 5,000 requests is the
maximum). In the open model the corrected latency is solid and the service time dashed: the gap is the time
requests waited to be sent. One figure per load and pool setting (unpooled variants in each); with more than
MAX_SETTINGS settings only the corners of the grid are drawn (smallest and largest pool_size at the smallest
and largest max_overflow), where the differences between settings are largest.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Literal

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from bench.analysis.cells import Cell, views
from bench.records.latency import decode, new_histogram
from bench.records.schema import PointRecord, RunRecord
from bench.report.charts.common import (
    chart_title,
    plain_log_scale,
    pool_settings,
    setting_suffix,
    setting_text,
    variant_label,
)
from bench.report.charts.palette import variant_colour
from bench.report.figures import save_figure

MAX_SETTINGS = 4
MAX_NINES = 6  # 99.9999th percentile: beyond it no run of this harness has enough requests
SPECTRUM_STEPS = 160
# (histogram name, line style, legend text); "service" alone in the closed model, where it is the latency.
_KINDS: tuple[tuple[str, LineStyle, str], ...] = (
    ("corrected", "-", "corrected latency (from intended start)"),
    ("service", "--", "service time"),
)

LineStyle = Literal["-", "--"]
CellKey = tuple[str, int | None, int | None, int, int, float | None]


def draw_spectra(run: RunRecord, points: list[PointRecord], cells: list[Cell], out_dir: Path) -> list[Path]:
    histograms = _merged_histograms(points)
    if not histograms:
        return []
    written: list[Path] = []
    for view in views(cells):
        for pool_size, max_overflow in _chosen_settings(view.cells):
            setting = {(pool_size, max_overflow), (None, None)}
            chosen = sorted(
                (c for c in view.cells if (c.pool_size, c.max_overflow) in setting), key=lambda c: c.variant
            )
            if not any(histograms.get(_key(c)) for c in chosen):
                continue
            figure, axis = plt.subplots(figsize=(11, 6.5))
            _draw_lines(run, axis, [(c, histograms.get(_key(c), {})) for c in chosen])
            what = f"latency percentile spectrum at {setting_text(pool_size, max_overflow)}, {view.caption}"
            figure.suptitle(chart_title(run, what, (c.backend_label for c in chosen)), fontsize=10)
            figure.tight_layout()
            written += save_figure(figure, out_dir, f"spectrum{setting_suffix(pool_size, max_overflow)}{view.suffix}")
    return written


def _draw_lines(run: RunRecord, axis: Axes, lines: list[tuple[Cell, dict[str, Any]]]) -> None:
    kinds_drawn = set()
    top_nines = 0.0
    for cell, by_kind in lines:
        colour = variant_colour(cell.variant)
        label = variant_label(run, cell.variant, cell.mode, cell.backend_label)
        if not by_kind:  # named, so a variant missing from the chart is not mistaken for one left out
            reason = "stalled, no request completed" if cell.stalled else "no histogram recorded"
            axis.plot([], [], marker="X", linestyle="none", color=colour, label=f"{label}: {reason}")
            continue
        solid_done = False
        for kind, style, _ in _KINDS:
            histogram = by_kind.get(kind)
            if histogram is None:
                continue
            # The first kind present is the latency users saw: solid. In the open model the service time
            # follows it, dashed; in the closed model the service time is the latency, solid.
            line_style: LineStyle = style if solid_done else "-"
            xs, ys = _spectrum(histogram)
            axis.plot(xs, ys, linestyle=line_style, color=colour, label=None if solid_done else label)
            kinds_drawn.add((kind, line_style))
            top_nines = max(top_nines, xs[-1])
            solid_done = True
    _nines_axis(axis, top_nines)
    plain_log_scale(axis)
    axis.set_ylabel("latency, ms (log scale)")
    axis.grid(True, which="both", alpha=0.3)
    handles, labels = axis.get_legend_handles_labels()
    if ("service", "--") in kinds_drawn:  # the open model: say which style is which
        for _kind, style, text in _KINDS:
            handles.append(Line2D([], [], color="0.3", linestyle=style))
            labels.append(text + (" (solid)" if style == "-" else " (dashed)"))
    axis.legend(handles, labels, fontsize=8, loc="upper left")


def _key(cell: Cell) -> CellKey:
    return (cell.variant, cell.pool_size, cell.max_overflow, cell.users, cell.thread_tokens, cell.rate)


def _merged_histograms(points: list[PointRecord]) -> dict[CellKey, dict[str, Any]]:
    """Each configuration's histograms by kind, merged over its repeats (the grouping of report.build.aggregate)."""
    merged: dict[CellKey, dict[str, Any]] = defaultdict(dict)
    for point in points:
        if point.status != "ok" or point.metrics is None:
            continue
        c = point.config
        key = (c.variant, c.pool_size, c.max_overflow, c.users, c.thread_tokens, c.rate)
        for kind, encoded in point.metrics.histograms.items():
            histogram = decode(encoded)
            if histogram.get_total_count() == 0:
                continue  # a stalled point: nothing to add
            if kind not in merged[key]:
                merged[key][kind] = new_histogram()
            merged[key][kind].add(histogram)
    return {key: by_kind for key, by_kind in merged.items() if by_kind}


def _chosen_settings(cells: list[Cell]) -> list[tuple[int | None, int | None]]:
    settings = pool_settings(cells)
    if not settings:
        return [(None, None)]
    if len(settings) <= MAX_SETTINGS:
        return [*settings]
    sizes = [size for size, _ in settings]
    overflows = [overflow for _, overflow in settings]
    corners = {(size, overflow) for size in (min(sizes), max(sizes)) for overflow in (min(overflows), max(overflows))}
    return sorted(setting for setting in corners if setting in settings)


def _spectrum(histogram: Any) -> tuple[list[float], list[float]]:
    """(nines, latency ms) from 0 to the deepest percentile the histogram's request count can speak for."""
    count = int(histogram.get_total_count())
    deepest = min(math.log10(count), MAX_NINES) if count > 1 else 0.0
    nines = np.linspace(0.0, deepest, SPECTRUM_STEPS) if deepest > 0 else np.array([0.0])
    percentiles = [100.0 * (1.0 - 10.0**-x) for x in nines]
    # One pass over the counts for every percentile (get_value_at_percentile would scan once per percentile).
    values = histogram.get_percentile_to_value_dict(percentiles)
    return [float(x) for x in nines], [values[p] / 1000 for p in percentiles]


def _nines_axis(axis: Axes, top_nines: float) -> None:
    ticks = list(range(math.ceil(top_nines) + 1)) if top_nines > 0 else [0]
    axis.set_xticks(ticks, [_percentile_text(tick) for tick in ticks])
    axis.set_xlim(0, max(top_nines, 1.0))
    axis.set_xlabel("percentile (log 'nines' scale)")


def _percentile_text(nines: int) -> str:
    return "0" if nines == 0 else f"{100 - 10.0 ** (2 - nines):.{max(nines - 2, 0)}f}"
