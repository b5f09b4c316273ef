"""Report: charts of throughput and latency against pool_size (a panel per max_overflow) and a Markdown
summary, drawn only from a run folder's records, never from the live system."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt
from matplotlib.artist import Artist
from matplotlib.axes import Axes

from bench.analysis.cells import Cell, Interval, aggregate, load_model_caption, views
from bench.records.run_folder import RunFolder, write_atomic
from bench.records.schema import PointRecord, RunRecord
from bench.report.charts import draw_catalogue
from bench.report.charts.palette import MARKERS, variant_colour
from bench.report.faults import fault_markdown
from bench.report.figures import save_figure
from bench.system.environment import machine_label


def _chart_title(run: RunRecord, what: str, cells: list[Cell]) -> str:
    scenario = run.sweep.get("scenario", "?")
    backends = ", ".join(sorted({c.backend_label for c in cells}))
    context = textwrap.fill(f"{backends} | {machine_label(run.environment)}", width=110)
    return f"{scenario}: {what}, {load_model_caption(run)}\n{context}"


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
        latency_axis.barh(names, [math.nan if c.stalled else c.latency_ms_p99 for c in chosen], color=colours,
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
                text = "stalled" if cell.stalled else f" {value:,.0f}{unit}"
                axis.annotate(text, xy=(value or 0, row), va="center", fontsize=8)
        what = f"every variant at pool_size={pool_size}, max_overflow={max_overflow}, {view.caption}"
        figure.suptitle(_chart_title(run, what, chosen), fontsize=10)
        figure.tight_layout()
        path = out_dir / f"variants_ps{pool_size}_mo{max_overflow}{view.suffix}.png"
        written.append(save_figure(figure, path.parent, path.stem)[0])
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
        written.append(save_figure(figure, path.parent, path.stem)[0])
    return written


def _draw_panel(throughput_axis: Axes, latency_axis: Axes, cells: list[Cell], overflow: int | None) -> None:
    pooled_cells = [c for c in cells if c.pool_size is not None and c.max_overflow == overflow]
    for variant in sorted({c.variant for c in pooled_cells}):
        series = sorted((c for c in pooled_cells if c.variant == variant), key=lambda c: c.pool_size or 0)
        xs = [c.pool_size or 0 for c in series]
        colour = variant_colour(variant)
        label = f"{variant} ({series[0].mode})" + (", SURROGATE" if "surrogate" in series[0].backend_label else "")
        marker = MARKERS.get(series[0].mode, "D")
        throughput_axis.plot(xs, [c.requests_per_s for c in series], marker=marker, color=colour, label=label)
        # A stalled point measured no latency at all: a gap in the line, never a fast-looking zero.
        latencies = [math.nan if c.stalled else c.latency_ms_p99 for c in series]
        latency_axis.plot(xs, latencies, marker=marker, color=colour, label=label)
        _confidence_band(throughput_axis, xs, [c.requests_per_s_ci for c in series], colour)
        _confidence_band(latency_axis, xs, [None if c.stalled else c.latency_ms_p99_ci for c in series], colour)
        stalled_xs = [c.pool_size or 0 for c in series if c.stalled]
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


def _confidence_band(axis: Axes, xs: list[int], intervals: list[Interval | None], colour: object) -> None:
    """The 95% interval of the median over repeats, shaded around the line (only where repeats exist)."""
    if not any(intervals):
        return
    lows = [interval[0] if interval else math.nan for interval in intervals]
    highs = [interval[1] if interval else math.nan for interval in intervals]
    axis.fill_between(xs, lows, highs, color=colour, alpha=0.15, linewidth=0)


# The telemetry that says why a variant is slow, as (title, value of a cell, unit).
_WHY_PANELS: list[tuple[str, str, str]] = [
    ("waiting for a pool connection, p99", "pool_wait_ms_p99", "ms"),
    ("event-loop lag, p99", "loop_lag_ms_p99", "ms"),
    ("busy threads (most at once)", "threads_busy_max", ""),
]


def draw_why_bars(run: RunRecord, cells: list[Cell], out_dir: Path) -> list[Path]:
    """Per pool setting, every variant's telemetry: connection waits, event-loop lag and busy threads."""
    written: list[Path] = []
    if not any(c.pool_wait_ms_p99 is not None or c.loop_lag_ms_p99 is not None for c in cells):
        return written
    settings: list[tuple[int | None, int | None]] = sorted(
        {(c.pool_size, c.max_overflow) for c in cells if c.pool_size is not None}, key=lambda s: (s[0] or 0, s[1] or 0)
    )
    if len(settings) > MAX_BAR_CHART_SETTINGS:
        return written
    for view, (pool_size, max_overflow) in (
        (v, setting) for v in views(cells) for setting in settings or [(None, None)]
    ):
        chosen = [c for c in view.cells if (c.pool_size, c.max_overflow) in {(pool_size, max_overflow), (None, None)}]
        if not chosen:
            continue
        chosen.sort(key=lambda c: c.requests_per_s)
        names = [c.variant + (" (SURROGATE)" if "surrogate" in c.backend_label else "") for c in chosen]
        figure, axes = plt.subplots(1, len(_WHY_PANELS), figsize=(15, 1.4 + 0.38 * len(chosen)), sharey=True)
        colours = [variant_colour(c.variant) for c in chosen]
        for axis, (title, attribute, unit) in zip(axes, _WHY_PANELS, strict=True):
            values = [getattr(c, attribute) for c in chosen]
            axis.barh(names, [math.nan if v is None else v for v in values], color=colours)
            axis.set_xlabel(f"{title}{', ' + unit if unit else ''}")
            axis.grid(True, axis="x", alpha=0.3)
            for row, (cell, value) in enumerate(zip(chosen, values, strict=True)):
                if value is None:
                    text = " n/a"
                elif attribute == "threads_busy_max" and cell.threads_limit:
                    text = f" {value:,.0f} of {cell.threads_limit}"
                else:
                    text = f" {value:,.1f} {unit}"
                axis.annotate(text, xy=(value or 0, row), va="center", fontsize=8)
        where = f"pool_size={pool_size}, max_overflow={max_overflow}, " if pool_size is not None else ""
        what = f"why: waits and lag per variant at {where}{view.caption}"
        figure.suptitle(_chart_title(run, what, chosen), fontsize=10)
        figure.tight_layout()
        path = out_dir / f"why_ps{pool_size}_mo{max_overflow}{view.suffix}.png"
        written.append(save_figure(figure, path.parent, path.stem)[0])
    return written


def _value(cell: Cell, throughput: bool) -> float:
    return cell.requests_per_s if throughput else cell.latency_ms_p99


def _start_rows_at_zero(axes: list[list[Axes]]) -> None:
    """Rows share their y axis; scale each from 0 to the highest value drawn in any of its panels."""
    for row in axes:
        tops = [axis.dataLim.ymax for axis in row if axis.has_data() and math.isfinite(axis.dataLim.ymax)]
        row[0].set_ylim(0, max(tops, default=1.0) * 1.1 or 1.0)


def databases_text(run: RunRecord, *, short: bool = False) -> str:
    """The run's databases, surrogates marked (`short`: without saying which ones bench started)."""
    parts = []
    for database in run.databases.values():
        noted = (("started by bench", database.embedded and not short), ("SURROGATE", database.surrogate))
        notes = [note for note, on in noted if on]
        parts.append(database.label + (f" ({', '.join(notes)})" if notes else ""))
    return "; ".join(parts) or "none recorded"


def _latency(cell: Cell, value: float) -> str:
    return "–" if cell.stalled else f"{value:,.0f}"


def _optional(value: float | None, template: str) -> str:
    return "–" if value is None else template.format(value)


def _ci_text(interval: Interval | None, template: str) -> str:
    if interval is None:
        return ""
    return f" [{template.format(interval[0])}–{template.format(interval[1])}]"


def _options_text(run: RunRecord) -> str:
    options = run.sweep.get("scenario_options") or {}
    return " (" + ", ".join(f"{key}={value}" for key, value in options.items()) + ")" if options else ""


def _service_text(run: RunRecord) -> str:
    target = run.sweep.get("target_url")
    if target:
        return f"the running service at {target}, not started by bench (its own settings, from its /health)"
    workers = run.sweep.get("workers") or [1]
    return f"uvicorn started by bench on 127.0.0.1 per point, {', '.join(map(str, workers))} worker(s)"


def calibration_text(run: RunRecord) -> str:
    calibration = run.calibration
    if calibration is None:
        return "not calibrated on this machine (`bench calibrate` measures the load generator's ceiling)"
    text = (
        f"ceiling {calibration.locust.requests_per_s:,.0f} req/s on {calibration.variant} ({calibration.measured_at})"
    )
    if calibration.locust_to_wrk is not None:
        text += f", {calibration.locust_to_wrk:.2f}x wrk's throughput"
    return text


def overhead_text(run: RunRecord) -> str:
    overhead = run.overhead
    if overhead is None:
        return "not measured on this machine (`bench overhead` runs each variant beside its yardstick)"
    over = [v.variant for v in overhead.variants if v.over_budget]
    unresolved = [v.variant for v in overhead.variants if v.verdict == "unresolved"]
    parts = [f"over budget: {', '.join(over)}"] if over else []
    if unresolved:
        parts.append(f"outside it by no more than identical apps differ (the A/A control): {', '.join(unresolved)}")
    verdict = "; ".join(parts) or "every variant within budget (≥ 0.95x its yardstick's req/s, p99 ≤ 1.10x)"
    return f"{verdict} (`bench overhead`, {overhead.measured_at})"


def _format_pool(value: int | None) -> str:
    return "–" if value is None else str(value)


def summary_markdown(run: RunRecord, points: list[PointRecord], cells: list[Cell], charts: list[Path]) -> str:
    lines = [
        f"# Run {run.run_id}",
        "",
        f"- status: **{run.status}** ({run.points_ok} ok, {run.points_failed} failed of {run.points_planned})",
        f"- scenario: `{run.sweep.get('scenario')}`{_options_text(run)}, {load_model_caption(run)}, "
        f"warm-up {run.sweep.get('warmup_s')} s kept apart, measured {run.sweep.get('duration_s')} s per point, "
        f"{run.sweep.get('repeat')} repeat(s)",
        f"- load generator: {calibration_text(run)}",
        f"- our own code: {overhead_text(run)}",
        f"- databases: {databases_text(run)}",
        f"- service: {_service_text(run)}",
        f"- machine: {machine_label(run.environment)}; Python {run.environment.get('python')}",
        f"- started {run.created_at}, finished {run.finished_at or '–'}",
        "",
        "Latency is the corrected latency (from each request's intended start) in the open model, the service "
        "time in the closed one. Pool wait, loop lag and busy threads come from the app's /metrics, DB conns "
        "from the database's own counters, sampled every second; gen CPU is the load generator's share of a core.",
        "",
        "| variant | backend | mode | pool_size | max_overflow | threads | load | requests/s | p50 ms | p99 ms "
        "| errors | pool wait p99 ms | loop lag p99 ms | busy threads | DB conns | gen CPU | repeats | flags |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in cells:
        load = f"{c.users} users" if c.rate is None else f"{c.rate:g}/s, {c.users} conns"
        throughput = f"{c.requests_per_s:,.0f}" + _ci_text(c.requests_per_s_ci, "{:,.0f}")
        p99 = _latency(c, c.latency_ms_p99) + ("" if c.stalled else _ci_text(c.latency_ms_p99_ci, "{:,.0f}"))
        if c.service_ms_p99 is not None:
            p99 += f" (service {c.service_ms_p99:,.0f})"
        lines.append(
            f"| {c.variant} | {c.backend_label} | {c.mode} | {_format_pool(c.pool_size)} "
            f"| {_format_pool(c.max_overflow)} | {c.thread_tokens} | {load} | {throughput} "
            f"| {_latency(c, c.latency_ms_p50)} | {p99} | {c.error_rate:.2%} "
            f"| {_optional(c.pool_wait_ms_p99, '{:,.1f}')} | {_optional(c.loop_lag_ms_p99, '{:,.1f}')} "
            f"| {_optional(c.threads_busy_max, '{:,.0f}')}{f' / {c.threads_limit}' if c.threads_limit else ''} "
            f"| {_optional(c.db_connections_max, '{:,.0f}')} | {_optional(c.generator_cpu, '{:.0%}')} "
            f"| {c.repeats} | {c.flags} |"
        )
    lines += fault_markdown(points)
    failed = [p for p in points if p.status == "failed"]
    if failed:
        lines += ["", "## Failed points", ""]
        lines += [f"- `{p.point_id}`: {p.error}" for p in failed]
    if charts:
        lines += ["", "## Charts", ""]
        lines += [f"![{chart.stem}]({chart.name})" for chart in charts]
    return "\n".join(lines) + "\n"


def write_report(folder: RunFolder) -> list[Path]:
    """Draw the charts (PNG and SVG) and the summary into <run>/report/; returns the files written."""
    run = folder.load_run()
    points = folder.load_points()
    cells = aggregate(points)
    out_dir = folder.report_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = (
        [
            *draw_pool_charts(run, cells, out_dir),
            *draw_variant_bars(run, cells, out_dir),
            *draw_why_bars(run, cells, out_dir),
        ]
        if cells
        else []
    )
    catalogue = draw_catalogue(run, points, out_dir) if cells else []
    charts += [path for path in catalogue if path.suffix == ".png"]  # summary.md and index.html link the PNGs
    summary_path = out_dir / "summary.md"
    write_atomic(summary_path, summary_markdown(run, points, cells, charts))
    return [*charts, summary_path]
