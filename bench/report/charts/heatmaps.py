"""Heatmaps of pool_size x max_overflow: one figure per metric and load, a small panel per variant.

Only drawn where both dimensions were swept (at least two pool sizes and two max_overflow values): with one of
them fixed the map is a single strip, which the line charts over pool_size already show better.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle

from bench.analysis.cells import Cell, views
from bench.records.schema import RunRecord
from bench.report.charts.common import chart_title, pool_settings, variant_label
from bench.report.charts.palette import variant_colour
from bench.report.figures import save_figure

PANEL_COLUMNS = 4


@dataclass(frozen=True)
class HeatMetric:
    name: str  # for file names
    title: str
    label: str  # for the colour bar
    value: Callable[[Cell], float]
    text: Callable[[float], str]
    higher_is_better: bool
    log: bool = False


def _ms_text(value: float) -> str:
    return f"{value:,.1f}" if value < 10 else f"{value:,.0f}"


METRICS = (
    HeatMetric("requests_per_s", "requests/s", "requests/s (higher is better)", lambda c: c.requests_per_s,
               "{:,.0f}".format, higher_is_better=True),
    HeatMetric("latency_ms_p99", "p99 latency", "p99 latency, ms (lower is better, log)", lambda c: c.latency_ms_p99,
               _ms_text, higher_is_better=False, log=True),
    HeatMetric("error_rate", "error rate", "error rate (lower is better)", lambda c: c.error_rate, "{:.1%}".format,
               higher_is_better=False),
)  # fmt: skip


def draw_heatmaps(run: RunRecord, cells: list[Cell], out_dir: Path) -> list[Path]:
    written: list[Path] = []
    for view in views(cells):
        pooled = [c for c in view.cells if c.pool_size is not None and c.max_overflow is not None]
        settings = pool_settings(pooled)
        sizes = sorted({size for size, _ in settings})
        overflows = sorted({overflow for _, overflow in settings})
        if len(sizes) < 2 or len(overflows) < 2:
            continue
        for metric in METRICS:
            # A map of zeros says nothing the summary table does not; the error map appears when there are errors.
            if metric.name == "error_rate" and not any(c.error_rate for c in pooled):
                continue
            what = f"{metric.title} over pool_size x max_overflow, {view.caption}"
            figure = _draw_metric(run, pooled, metric, sizes, overflows)
            figure.suptitle(chart_title(run, what, (c.backend_label for c in pooled)), fontsize=10)
            written += save_figure(figure, out_dir, f"heatmap_{metric.name}{view.suffix}")
    return written


def _draw_metric(
    run: RunRecord, cells: list[Cell], metric: HeatMetric, sizes: list[int], overflows: list[int]
) -> Figure:
    variants = sorted({c.variant for c in cells})
    columns = min(len(variants), PANEL_COLUMNS)
    rows = math.ceil(len(variants) / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(1.5 + _panel_width(sizes) * columns, 1.6 + (0.6 * len(overflows) + 1.2) * rows),
        squeeze=False, layout="constrained",
    )  # fmt: skip
    # One colour scale for every panel, so the same colour means the same value across variants.
    values = [metric.value(c) for c in cells if not c.stalled]
    norm = _norm(values, metric.log)
    colour_map = plt.get_cmap("viridis" if metric.higher_is_better else "viridis_r").with_extremes(bad="0.9")
    image: AxesImage | None = None
    for index, axis in enumerate(axes.flat):
        if index >= len(variants):
            axis.set_visible(False)
            continue
        series = [c for c in cells if c.variant == variants[index]]
        image = _draw_panel(run, axis, series, metric, sizes, overflows, norm, colour_map)
    if image is not None:
        figure.colorbar(image, ax=axes.ravel().tolist(), label=metric.label, shrink=0.9)
    return figure


def _panel_width(sizes: list[int]) -> float:
    return max(2.8, 0.8 + 0.7 * len(sizes))


def _norm(values: list[float], log: bool) -> Normalize:
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    if log and positive and min(positive) < max(positive):
        return LogNorm(vmin=min(positive), vmax=max(positive))
    top = max(values, default=0.0)
    return Normalize(vmin=0.0, vmax=top if top > 0 else 1.0)


def _draw_panel(
    run: RunRecord,
    axis: Axes,
    series: list[Cell],
    metric: HeatMetric,
    sizes: list[int],
    overflows: list[int],
    norm: Normalize,
    colour_map: Colormap,
) -> AxesImage:
    grid = np.full((len(overflows), len(sizes)), np.nan)
    by_position = {(overflows.index(c.max_overflow or 0), sizes.index(c.pool_size or 0)): c for c in series}
    for (row, column), measured in by_position.items():
        if not measured.stalled:
            grid[row, column] = metric.value(measured)
    image = axis.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap=colour_map, norm=norm)
    for row in range(len(overflows)):
        for column in range(len(sizes)):
            cell = by_position.get((row, column))
            if cell is None:
                axis.annotate("not run", (column, row), ha="center", va="center", fontsize=7, color="0.4")
            elif cell.stalled:
                # Hatched in red: a stall is a result (nothing completed), not a missing or a fast cell.
                axis.add_patch(Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, hatch="xx", edgecolor="red"))
                blank = {"facecolor": "white", "edgecolor": "none", "pad": 1}
                axis.annotate("stalled", (column, row), ha="center", va="center", fontsize=8, color="red",
                              fontweight="bold", bbox=blank)  # fmt: skip
            else:
                value = metric.value(cell)
                red, green, blue, _ = colour_map(norm(value))
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
                axis.annotate(metric.text(value), (column, row), ha="center", va="center", fontsize=8,
                              color="white" if dark else "black")  # fmt: skip
    first = series[0]
    colour = variant_colour(first.variant)
    # The variant on one line, its mode (and SURROGATE) on the next: narrow panels must not overlap their titles.
    title = variant_label(run, first.variant, first.mode, first.backend_label).replace(" (", "\n(", 1)
    axis.set_title(title, fontsize=9, color=colour)
    for spine in axis.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(2)
    axis.set_xticks(range(len(sizes)), [str(size) for size in sizes])
    axis.set_yticks(range(len(overflows)), [str(overflow) for overflow in overflows])
    axis.set_xlabel("pool_size", fontsize=8)
    axis.set_ylabel("max_overflow", fontsize=8)
    return image
