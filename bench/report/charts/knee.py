"""Latency-throughput curves: p99 against achieved requests/s as the load grows, to show each variant's knee.

One figure per pool setting (the unpooled baseline in each), one line per variant through its loads: user
counts in the closed model, rates in the open one. A line needs at least two loads; a run at one load has no
curve and gets no figure. Where repeats exist each point carries its 95% intervals as a cross of error bars,
throughput across and p99 up and down: both axes are measured (neither is the setting), and a curve bends back
on itself past its knee, where a band shaded along one axis would collapse (a vertical stretch has no width).
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench.analysis.cells import Cell
from bench.records.schema import RunRecord
from bench.report.charts.common import (
    chart_title,
    plain_log_scale,
    pool_settings,
    setting_suffix,
    setting_text,
    variant_label,
)
from bench.report.charts.palette import MARKERS, variant_colour
from bench.report.figures import save_figure

# A line: variant, thread-pool size (sync variants swept over it), connections (open model swept over them).
LineKey = tuple[str, int | None, int | None]


def draw_knee_curves(run: RunRecord, cells: list[Cell], out_dir: Path) -> list[Path]:
    written: list[Path] = []
    open_model = any(c.rate is not None for c in cells)
    settings: list[tuple[int | None, int | None]] = [*pool_settings(cells)] or [(None, None)]
    for pool_size, max_overflow in settings:
        chosen = [c for c in cells if (c.pool_size, c.max_overflow) in {(pool_size, max_overflow), (None, None)}]
        lines = {key: line for key, line in _lines(chosen, open_model).items() if len(line) >= 2}
        if not lines:
            continue
        figure, axis = plt.subplots(figsize=(11, 6.5))
        # An unpooled baseline far faster than the database variants would squeeze them into one corner: then it
        # is only named in the legend, with its figures (as in bench.report.build's pool charts).
        pooled_peak = max((c.requests_per_s for line in lines.values() for c in line if c.pool_size is not None),
                          default=0.0)  # fmt: skip
        for key, line in lines.items():
            peak = max(c.requests_per_s for c in line)
            if line[0].pool_size is None and pooled_peak > 0 and peak > 2 * pooled_peak:
                _name_off_scale(run, axis, line)
            else:
                _draw_line(run, axis, key, line, open_model)
        plain_log_scale(axis)
        axis.set_xlabel("achieved requests/s")
        axis.set_ylabel("p99 latency, ms (log scale)")
        axis.set_xlim(left=0)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8, loc="best")
        loads = "rates" if open_model else "user counts"
        what = f"p99 vs throughput across {loads} at {setting_text(pool_size, max_overflow)}"
        figure.suptitle(chart_title(run, what, (c.backend_label for c in chosen)), fontsize=10)
        figure.tight_layout()
        written += save_figure(figure, out_dir, f"knee{setting_suffix(pool_size, max_overflow)}")
    return written


def _lines(cells: list[Cell], open_model: bool) -> dict[LineKey, list[Cell]]:
    tokens_swept = len({c.thread_tokens for c in cells if c.mode == "sync"}) > 1
    connections_swept = open_model and len({c.users for c in cells}) > 1
    lines: dict[LineKey, list[Cell]] = defaultdict(list)
    for cell in cells:
        tokens = cell.thread_tokens if tokens_swept and cell.mode == "sync" else None
        connections = cell.users if connections_swept else None
        lines[(cell.variant, tokens, connections)].append(cell)
    return {key: sorted(line, key=lambda c: (c.rate or 0, c.users)) for key, line in sorted(lines.items(), key=str)}


def _interval_bars(axis: Axes, cell: Cell, x: float, y: float, colour: object) -> None:
    across, upright = cell.requests_per_s_ci, cell.latency_ms_p99_ci
    if across is None and upright is None:
        return
    xerr = None if across is None else [[max(x - across[0], 0.0)], [max(across[1] - x, 0.0)]]
    yerr = None if upright is None else [[max(y - upright[0], 0.0)], [max(upright[1] - y, 0.0)]]
    bars = axis.errorbar(x, y, xerr=xerr, yerr=yerr, color=colour, alpha=0.5, capsize=3)
    for index, collection in enumerate(bars.lines[2]):  # an id in the SVG, so a reader (and a test) finds them
        collection.set_gid(f"interval-{cell.variant}-{cell.thread_tokens}-{cell.users}-{cell.rate or 0:g}-{index}")


def _load_text(cell: Cell) -> str:
    return f"{cell.rate:g}/s" if cell.rate is not None else f"{cell.users}u"


def _name_off_scale(run: RunRecord, axis: Axes, line: list[Cell]) -> None:
    first = line[0]
    figures = ", ".join(f"{_load_text(c)}: {c.requests_per_s:,.0f} req/s, p99 {c.latency_ms_p99:,.0f} ms" for c in line)
    label = f"{variant_label(run, first.variant, first.mode, first.backend_label)}, off scale: {figures}"
    axis.plot([], [], marker=MARKERS.get(first.mode, "D"), color=variant_colour(first.variant), label=label)


def _draw_line(run: RunRecord, axis: Axes, key: LineKey, line: list[Cell], open_model: bool) -> None:
    variant, tokens, connections = key
    first = line[0]
    colour = variant_colour(variant)
    label = variant_label(run, variant, first.mode, first.backend_label)
    label += f", {tokens} threads" if tokens is not None else ""
    label += f", {connections} connections" if connections is not None else ""
    xs = [c.requests_per_s for c in line]
    # A stalled load measured no latency: a gap in the line, and a red cross on the throughput axis.
    p99s = [math.nan if c.stalled else c.latency_ms_p99 for c in line]
    marker = MARKERS.get(first.mode, "D")
    axis.plot(xs, p99s, marker=marker, color=colour, label=label)
    for cell, x, y in zip(line, xs, p99s, strict=True):
        if not math.isnan(y):
            _interval_bars(axis, cell, x, y, colour)
        if not math.isnan(y):
            axis.annotate(_load_text(cell), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, color=colour)
    stalled_loads = [c for c in line if c.stalled]
    if stalled_loads:
        axis.plot([0] * len(stalled_loads), [0.02] * len(stalled_loads), "X", color="red", markersize=11,
                  transform=axis.get_xaxis_transform(), clip_on=False, label=f"{variant}: stalled load")  # fmt: skip
    if open_model:  # the service time beside the corrected latency: the gap between them is queueing in front
        services = [math.nan if c.stalled or c.service_ms_p99 is None else c.service_ms_p99 for c in line]
        if any(not math.isnan(s) for s in services):
            axis.plot(xs, services, linestyle="--", marker=marker, markerfacecolor="none", color=colour,
                      label=f"{variant}: service time p99")  # fmt: skip
