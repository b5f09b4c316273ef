"""What every chart of the catalogue shares: titles, variant labels, pool settings, bands and log scales."""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
from matplotlib.axes import Axes
from matplotlib.ticker import LogFormatter

from bench.analysis.cells import Cell, Interval, load_model_caption
from bench.records.schema import RunRecord
from bench.system.environment import machine_label

SURROGATE = "SURROGATE"


def is_surrogate(run: RunRecord, backend_label: str) -> bool:
    """A stand-in backend: says so in its label, or the run's database record says so."""
    if "surrogate" in backend_label.lower():
        return True
    return any(database.surrogate and database.label == backend_label for database in run.databases.values())


def backend_text(run: RunRecord, backend_label: str) -> str:
    """The backend as titles show it: a surrogate in capitals, so nobody takes its numbers for the real thing."""
    if not is_surrogate(run, backend_label):
        return backend_label
    if "surrogate" in backend_label.lower():
        return re.sub("surrogate", SURROGATE, backend_label, flags=re.IGNORECASE)
    return f"{backend_label} ({SURROGATE})"


def variant_label(run: RunRecord, variant: str, mode: str, backend_label: str) -> str:
    """A variant as legends and panel titles name it, e.g. 'pg_sqla_async (async)' or '... (sync), SURROGATE'."""
    return f"{variant} ({mode})" + (f", {SURROGATE}" if is_surrogate(run, backend_label) else "")


def chart_title(run: RunRecord, what: str, backend_labels: Iterable[str]) -> str:
    """Scenario, what the chart shows, load model; then backend(s) and machine (as bench.report.build's titles)."""
    scenario = run.sweep.get("scenario", "?")
    backends = ", ".join(backend_text(run, label) for label in sorted(set(backend_labels))) or "no backend"
    context = textwrap.fill(f"{backends} | {machine_label(run.environment)}", width=110)
    # Long subjects (a time series names its whole point) wrap instead of running off the figure's edges.
    # The load model stays in one piece, so it reads (and searches) as one phrase.
    lines = textwrap.wrap(f"{scenario}: {what},", width=120)
    caption = load_model_caption(run)
    if len(lines[-1]) + 1 + len(caption) <= 120:
        lines[-1] += f" {caption}"
    else:
        lines.append(caption)
    return "\n".join([*lines, context])


def pool_settings(cells: Iterable[Cell]) -> list[tuple[int, int]]:
    """The (pool_size, max_overflow) settings of the pooled cells, in order."""
    return sorted(
        {(c.pool_size, c.max_overflow) for c in cells if c.pool_size is not None and c.max_overflow is not None}
    )


def setting_text(pool_size: int | None, max_overflow: int | None) -> str:
    return "no pool" if pool_size is None else f"pool_size={pool_size}, max_overflow={max_overflow}"


def setting_suffix(pool_size: int | None, max_overflow: int | None) -> str:
    return "_nopool" if pool_size is None else f"_ps{pool_size}_mo{max_overflow}"


def confidence_band(axis: Axes, xs: Sequence[float], intervals: Sequence[Interval | None], colour: object) -> None:
    """The 95% interval of the median over repeats, shaded around the line (only where repeats exist)."""
    if not any(intervals):
        return
    lows = [interval[0] if interval else math.nan for interval in intervals]
    highs = [interval[1] if interval else math.nan for interval in intervals]
    axis.fill_between(xs, lows, highs, color=colour, alpha=0.15, linewidth=0)


def plain_log_scale(axis: Axes) -> None:
    """A log y axis labelled 4, 40, 400 rather than 4x10^0, 4x10^1 (milliseconds read better plain)."""
    axis.set_yscale("log")
    axis.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    axis.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
