"""Report: charts of throughput and latency against pool_size (a panel per max_overflow) and a Markdown
summary, drawn only from a run folder's records, never from the live system."""

from __future__ import annotations

import math
import statistics
import textwrap
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb

from apps.catalog import all_variants
from bench.environment import machine_label
from bench.records import PointRecord, RunRecord
from bench.results import RunFolder, write_atomic

# tab10 first (matplotlib's default cycle, the most distinct colours), then tab20's lighter shades: enough for
# every variant of the catalog to keep its own colour in every chart.
_PALETTE: list[tuple[float, float, float]] = [to_rgb(f"C{index}") for index in range(10)] + [
    to_rgb(colour) for colour in plt.get_cmap("tab20")(range(1, 20, 2))
]
# The mode is also in the marker, so sync/async/blocking read apart even where colours are close.
_MARKERS = {"sync": "o", "async": "s", "blocking": "v"}


def variant_colour(name: str) -> tuple[float, float, float]:
    """One colour per variant, the same in every chart of every run (by catalog position)."""
    names = list(all_variants())
    index = names.index(name) if name in names else len(names) + sum(map(ord, name))
    return _PALETTE[index % len(_PALETTE)]


@dataclass(frozen=True)
class Cell:
    """The median over repeats of one configuration."""

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


def _flag_summary(members: list[PointRecord]) -> str:
    names = sorted({flag for member in members for flag in member.flags})
    return ", ".join(f"{name} {sum(name in m.flags for m in members)}/{len(members)}" for name in names)


def aggregate(points: Iterable[PointRecord]) -> list[Cell]:
    groups: dict[tuple[str, int | None, int | None, int, int], list[PointRecord]] = defaultdict(list)
    for point in points:
        if point.status == "ok" and point.metrics is not None:
            c = point.config
            groups[(c.variant, c.pool_size, c.max_overflow, c.users, c.thread_tokens)].append(point)
    cells = []
    for (variant, pool_size, max_overflow, users, thread_tokens), members in groups.items():
        metrics = [m.metrics for m in members if m.metrics is not None]
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
                requests_per_s=statistics.median(m.requests_per_s for m in metrics),
                latency_ms_p50=statistics.median(m.latency_ms_p50 for m in metrics),
                latency_ms_p99=statistics.median(m.latency_ms_p99 for m in metrics),
                error_rate=statistics.median(m.error_rate for m in metrics),
                flags=_flag_summary(members),
            )
        )
    return sorted(cells, key=lambda c: (c.users, c.variant, c.thread_tokens, c.pool_size or 0, c.max_overflow or 0))


@dataclass(frozen=True)
class View:
    """The cells one chart shows: one load, and one thread-pool size for the sync variants (the others do not
    use the thread pool for requests, so they appear in every view)."""

    users: int
    thread_tokens: int | None
    cells: list[Cell]
    suffix: str  # for file names, e.g. "_u50" or "_u50_t80"
    caption: str  # for titles, e.g. "50 users" or "50 users, 80 threads"


def views(cells: list[Cell]) -> list[View]:
    all_tokens: list[int | None] = [*sorted({c.thread_tokens for c in cells if c.mode == "sync"})]
    several = len(all_tokens) > 1
    result = []
    for users in sorted({c.users for c in cells}):
        for tokens in all_tokens or [None]:
            chosen = [c for c in cells if c.users == users and (c.mode != "sync" or c.thread_tokens == tokens)]
            suffix = f"_u{users}_t{tokens}" if several else f"_u{users}"
            caption = f"{users} users, {tokens} threads" if several else f"{users} users"
            result.append(View(users, tokens, chosen, suffix, caption))
    return result


def _chart_title(run: RunRecord, what: str, cells: list[Cell]) -> str:
    scenario = run.sweep.get("scenario", "?")
    backends = ", ".join(sorted({c.backend_label for c in cells}))
    context = textwrap.fill(f"{backends} | {machine_label(run.environment)}", width=110)
    return f"{scenario}: {what}, closed model\n{context}"


# A bar chart per pool setting reads better than single points on a pool_size axis, but only for a few settings.
MAX_BAR_CHART_SETTINGS = 4


def draw_variant_bars(run: RunRecord, cells: list[Cell], out_dir: Path) -> list[Path]:
    """Every variant side by side at one pool setting (the unpooled baseline in each): requests/s and p99."""
    written: list[Path] = []
    settings = sorted({(c.pool_size, c.max_overflow) for c in cells if c.pool_size is not None})
    if len(settings) > MAX_BAR_CHART_SETTINGS:
        return written
    for view, (pool_size, max_overflow) in ((v, setting) for v in views(cells) for setting in settings):
        chosen = [c for c in view.cells if (c.pool_size, c.max_overflow) in {(pool_size, max_overflow), (None, None)}]
        if not chosen:
            continue
        chosen.sort(key=lambda c: c.requests_per_s)
        names = [c.variant + (" (SURROGATE)" if "surrogate" in c.backend_label else "") for c in chosen]
        figure, (throughput_axis, latency_axis) = plt.subplots(
            1, 2, figsize=(13, 1.2 + 0.38 * len(chosen)), sharey=True
        )
        colours = [variant_colour(c.variant) for c in chosen]
        hatches = ["//" if "surrogate" in c.backend_label else "" for c in chosen]
        throughput_axis.barh(names, [c.requests_per_s for c in chosen], color=colours, hatch=hatches)
        latency_axis.barh(names, [math.nan if _stalled(c) else c.latency_ms_p99 for c in chosen], color=colours,
                          hatch=hatches)  # fmt: skip
        throughput_axis.set_xlabel("requests/s (higher is better)")
        latency_axis.set_xlabel("p99 latency, ms (lower is better; log scale)")
        latency_axis.set_xscale("log")
        for axis, values, unit in (
            (throughput_axis, [c.requests_per_s for c in chosen], ""),
            (latency_axis, [c.latency_ms_p99 for c in chosen], " ms"),
        ):
            axis.grid(True, axis="x", alpha=0.3)
            for row, (cell, value) in enumerate(zip(chosen, values, strict=True)):
                text = "stalled" if _stalled(cell) else f" {value:,.0f}{unit}"
                axis.annotate(text, xy=(value or 0, row), va="center", fontsize=8)
        what = f"every variant at pool_size={pool_size}, max_overflow={max_overflow}, {view.caption}"
        figure.suptitle(_chart_title(run, what, chosen), fontsize=10)
        figure.tight_layout()
        path = out_dir / f"variants_ps{pool_size}_mo{max_overflow}{view.suffix}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


def draw_pool_charts(run: RunRecord, cells: list[Cell], out_dir: Path) -> list[Path]:
    """One figure per user count: rows = requests/s and p99, columns = max_overflow values."""
    written: list[Path] = []
    for view in views(cells):
        at_users = view.cells
        overflows: list[int | None] = [*sorted({c.max_overflow for c in at_users if c.max_overflow is not None})]
        overflows = overflows or [None]  # only unpooled variants: one panel
        figure, axes = plt.subplots(
            2,
            len(overflows),
            figsize=(max(4.8 * len(overflows) + 1.5, 11), 7.5),
            squeeze=False,
            sharex=True,
            sharey="row",
        )
        for column, overflow in enumerate(overflows):
            throughput_axis, latency_axis = axes[0][column], axes[1][column]
            _draw_panel(throughput_axis, latency_axis, at_users, overflow)
            throughput_axis.set_title(f"max_overflow = {overflow}")
            latency_axis.set_xlabel("pool_size")
        _start_rows_at_zero([list(row) for row in axes])
        axes[0][0].set_ylabel("requests/s (higher is better)")
        axes[1][0].set_ylabel("p99 latency, ms (lower is better)")
        legend: dict[str, Artist] = {}
        for axis in axes[0]:  # every panel's entries, once each (a stall may appear in one panel only)
            for handle, text in zip(*axis.get_legend_handles_labels(), strict=True):
                legend.setdefault(text, handle)
        handles, labels = list(legend.values()), list(legend)
        legend_rows = math.ceil(len(labels) / 3)
        # Grow the figure with the legend, so a sweep of every variant keeps panels as tall as a small one.
        legend_inches = 0.25 + 0.2 * legend_rows
        figure.set_figheight(figure.get_figheight() + legend_inches)
        figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), frameon=False, fontsize=8)
        what = f"requests/s and p99 vs pool_size, {view.caption}"
        figure.suptitle(_chart_title(run, what, at_users), fontsize=10)
        figure.tight_layout(rect=(0, legend_inches / figure.get_figheight(), 1, 0.95))
        path = out_dir / f"pool_size{view.suffix}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


def _draw_panel(throughput_axis: Axes, latency_axis: Axes, cells: list[Cell], overflow: int | None) -> None:
    pooled_cells = [c for c in cells if c.pool_size is not None and c.max_overflow == overflow]
    for variant in sorted({c.variant for c in pooled_cells}):
        series = sorted((c for c in pooled_cells if c.variant == variant), key=lambda c: c.pool_size or 0)
        xs = [c.pool_size or 0 for c in series]
        colour = variant_colour(variant)
        label = f"{variant} ({series[0].mode})" + (", SURROGATE" if "surrogate" in series[0].backend_label else "")
        marker = _MARKERS.get(series[0].mode, "D")
        throughput_axis.plot(xs, [c.requests_per_s for c in series], marker=marker, color=colour, label=label)
        # A stalled point measured no latency at all: a gap in the line, never a fast-looking zero.
        latencies = [math.nan if _stalled(c) else c.latency_ms_p99 for c in series]
        latency_axis.plot(xs, latencies, marker=marker, color=colour, label=label)
        stalled_xs = [c.pool_size or 0 for c in series if _stalled(c)]
        for axis in (throughput_axis, latency_axis) if stalled_xs else ():
            axis.plot(stalled_xs, [0] * len(stalled_xs), "X", color="red", markersize=11, clip_on=False,
                      label="stalled: no request completed")  # fmt: skip
    # Variants without a pool do not depend on pool_size: a flat reference line, not a series. A baseline far
    # above the database variants would flatten them, so then it is only named in the legend, with its value.
    for cell in (c for c in cells if c.pool_size is None):
        colour = variant_colour(cell.variant)
        for axis, value, unit in (
            (throughput_axis, cell.requests_per_s, "req/s"),
            (latency_axis, cell.latency_ms_p99, "ms p99"),
        ):
            peak = max((_value(c, axis is throughput_axis) for c in pooled_cells), default=0.0)
            off_scale = bool(pooled_cells) and value > 2 * peak
            throughput, p99 = f"{cell.requests_per_s:,.0f} req/s", f"p99 {cell.latency_ms_p99:,.0f} ms"
            label = f"{cell.variant} (no pool, baseline): {throughput}, {p99}"
            if off_scale:
                axis.plot([], [], color=colour, linestyle="--", label=label)
                axis.annotate(f"{cell.variant}: {value:,.0f} {unit} (off scale)", xy=(0.98, 0.98),
                              xycoords="axes fraction", ha="right", va="top", fontsize=8, color=colour)  # fmt: skip
            else:
                axis.axhline(value, color=colour, linestyle="--", label=label)
    pool_sizes = sorted({c.pool_size for c in pooled_cells if c.pool_size is not None})
    for axis in (throughput_axis, latency_axis):
        axis.grid(True, alpha=0.3)
        if pool_sizes:
            axis.set_xticks(pool_sizes)


def _stalled(cell: Cell) -> bool:
    return "stalled" in cell.flags and cell.requests_per_s == 0


def _value(cell: Cell, throughput: bool) -> float:
    return cell.requests_per_s if throughput else cell.latency_ms_p99


def _start_rows_at_zero(axes: list[list[Axes]]) -> None:
    """Rows share their y axis; scale each from 0 to the highest value drawn in any of its panels."""
    for row in axes:
        tops = [axis.dataLim.ymax for axis in row if axis.has_data() and math.isfinite(axis.dataLim.ymax)]
        row[0].set_ylim(0, max(tops, default=1.0) * 1.1 or 1.0)


def _databases_line(run: RunRecord) -> str:
    parts = []
    for database in run.databases.values():
        notes = [
            note for note, on in (("started by bench", database.embedded), ("SURROGATE", database.surrogate)) if on
        ]
        parts.append(database.label + (f" ({', '.join(notes)})" if notes else ""))
    return "; ".join(parts) or "none"


def _latency(cell: Cell, value: float) -> str:
    return "–" if _stalled(cell) else f"{value:,.0f}"


def _format_pool(value: int | None) -> str:
    return "–" if value is None else str(value)


def summary_markdown(run: RunRecord, points: list[PointRecord], cells: list[Cell], charts: list[Path]) -> str:
    lines = [
        f"# Run {run.run_id}",
        "",
        f"- status: **{run.status}** ({run.points_ok} ok, {run.points_failed} failed of {run.points_planned})",
        f"- scenario: `{run.sweep.get('scenario')}`, closed model, warm-up {run.sweep.get('warmup_s')} s excluded, "
        f"measured {run.sweep.get('duration_s')} s per point, {run.sweep.get('repeat')} repeat(s)",
        f"- databases: {_databases_line(run)}",
        f"- machine: {machine_label(run.environment)}; Python {run.environment.get('python')}",
        f"- started {run.created_at}, finished {run.finished_at or '–'}",
        "",
        "| variant | backend | mode | pool_size | max_overflow | threads | users | requests/s | p50 ms | p99 ms "
        "| errors | repeats | flags |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in cells:
        lines.append(
            f"| {c.variant} | {c.backend_label} | {c.mode} | {_format_pool(c.pool_size)} "
            f"| {_format_pool(c.max_overflow)} | {c.thread_tokens} | {c.users} | {c.requests_per_s:,.0f} "
            f"| {_latency(c, c.latency_ms_p50)} | {_latency(c, c.latency_ms_p99)} "
            f"| {c.error_rate:.2%} | {c.repeats} | {c.flags} |"
        )
    failed = [p for p in points if p.status == "failed"]
    if failed:
        lines += ["", "## Failed points", ""]
        lines += [f"- `{p.point_id}`: {p.error}" for p in failed]
    if charts:
        lines += ["", "## Charts", ""]
        lines += [f"![{chart.stem}]({chart.name})" for chart in charts]
    return "\n".join(lines) + "\n"


def write_report(folder: RunFolder) -> list[Path]:
    """Draw the charts and the summary into <run>/report/; returns the files written."""
    run = folder.load_run()
    points = folder.load_points()
    cells = aggregate(points)
    out_dir = folder.report_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = [*draw_pool_charts(run, cells, out_dir), *draw_variant_bars(run, cells, out_dir)] if cells else []
    summary_path = out_dir / "summary.md"
    write_atomic(summary_path, summary_markdown(run, points, cells, charts))
    return [*charts, summary_path]
