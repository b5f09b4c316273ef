"""`bench show RUN` and `bench list` as rich renderables: one run's settings and figures per load, and one row
per run, drawn from the records alone."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from bench.analysis.cells import Cell, aggregate, load_model_caption
from bench.analysis.compare import Comparison, change_text
from bench.records.run_folder import RunFolder
from bench.records.schema import PointRecord, RunRecord
from bench.report.build import calibration_text, databases_text
from bench.report.faults import HEADERS as FAULT_HEADERS
from bench.report.faults import fault_rows
from bench.system.environment import machine_label

_STATUS_STYLE = {"complete": "green", "running": "yellow", "incomplete": "yellow", "failed": "red"}


def scenario_text(run: RunRecord) -> str:
    sweep = run.sweep
    options = sweep.get("scenario_options") or {}
    options_text = f" ({', '.join(f'{k}={v}' for k, v in options.items())})" if options else ""
    rates = sweep.get("rates") or []
    rates_text = f" at {', '.join(f'{r:g}' for r in rates)} req/s" if rates else ""
    return (
        f"{sweep.get('scenario', '?')}{options_text}, {load_model_caption(run)}{rates_text}; "
        f"warm-up {sweep.get('warmup_s', '?')} s, measured {sweep.get('duration_s', '?')} s, "
        f"{sweep.get('repeat', 1)} repeat(s) per point"
    )


def _points_text(run: RunRecord) -> str:
    return f"{run.points_ok} ok, {run.points_failed} failed, {run.points_planned} planned"


def run_overview(run: RunRecord) -> Table:
    """The run's settings and context, one line each."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    style = _STATUS_STYLE.get(run.status, "")
    status = Text(run.status, style=style)
    if run.error:
        status.append(f" ({run.error})")
    environment = run.environment
    commit = environment.get("git_commit")
    machine = f"{machine_label(environment)}; Python {environment.get('python', '?')}"
    if commit:
        machine += f"; commit {str(commit)[:12]}{' (dirty)' if environment.get('git_dirty') else ''}"
    rows: list[tuple[str, str | Text]] = [
        ("run", run.run_id),
        ("status", status),
        ("points", _points_text(run)),
        ("started", f"{run.created_at}, finished {run.finished_at or '–'}"),
        ("scenario", scenario_text(run)),
        ("variants", ", ".join(run.sweep.get("variants", [])) or "?"),
        ("databases", databases_text(run)),
        ("machine", machine),
        ("calibration", calibration_text(run)),
    ]
    for name, value in rows:
        table.add_row(name, value if isinstance(value, Text) else Text(value))
    return table


def _optional(value: float | None, template: str) -> str:
    return "–" if value is None else template.format(value)


def _throughput(cell: Cell) -> str:
    text = f"{cell.requests_per_s:,.0f}"
    if cell.requests_per_s_ci is not None:
        low, high = cell.requests_per_s_ci
        # A t-interval over few, scattered repeats can reach below zero; throughput cannot.
        text += f" [{max(low, 0.0):,.0f}–{high:,.0f}]"
    return text


def _p99(cell: Cell) -> str:
    if cell.stalled:
        return "–"
    text = f"{cell.latency_ms_p99:,.1f}"
    if cell.service_ms_p99 is not None:
        text += f" (service {cell.service_ms_p99:,.1f})"
    return text


def _load_caption(users: int, rate: float | None) -> str:
    return f"{users} users" if rate is None else f"{rate:g} req/s on {users} connections"


def load_tables(cells: Sequence[Cell], repeats: int) -> list[Table]:
    """One table per load (users, and the rate in the open model), a row per variant and pool setting."""
    tables = []
    loads = sorted({(c.users, c.rate) for c in cells}, key=lambda load: (load[0], load[1] or 0))
    for users, rate in loads:
        title = _load_caption(users, rate) + (", median over repeats [95% interval]" if repeats > 1 else "")
        table = Table(title=title, title_justify="left", title_style="bold")
        for header in ("variant", "pool", "threads", "requests/s", "p50 ms", "p99 ms", "errors"):
            table.add_column(header, justify="left" if header in {"variant", "pool"} else "right")
        for header in ("pool wait p99 ms", "loop lag p99 ms", "busy threads"):
            table.add_column(header, justify="right")
        table.add_column("flags")
        for cell in (c for c in cells if (c.users, c.rate) == (users, rate)):
            surrogate = " (SURROGATE)" if "surrogate" in cell.backend_label.lower() else ""
            pool = "no pool" if cell.pool_size is None else f"{cell.pool_size}+{cell.max_overflow}"
            busy = _optional(cell.threads_busy_max, "{:,.0f}")
            if cell.threads_busy_max is not None and cell.threads_limit:
                busy += f" of {cell.threads_limit}"
            table.add_row(
                Text(cell.variant + surrogate),
                pool,
                str(cell.thread_tokens) if cell.mode == "sync" else "–",
                _throughput(cell),
                "–" if cell.stalled else f"{cell.latency_ms_p50:,.1f}",
                _p99(cell),
                f"{cell.error_rate:.2%}",
                _optional(cell.pool_wait_ms_p99, "{:,.1f}"),
                _optional(cell.loop_lag_ms_p99, "{:,.1f}"),
                busy,
                Text(cell.flags, style="red" if cell.flags else ""),
            )
        tables.append(table)
    return tables


def failed_points_table(points: Sequence[PointRecord]) -> Table | None:
    failed = [p for p in points if p.status == "failed"]
    if not failed:
        return None
    table = Table(title=f"failed points ({len(failed)})", title_justify="left", title_style="bold red")
    for header in ("point", "variant", "pool", "load", "reason"):
        table.add_column(header)
    for point in failed:
        c = point.config
        pool = "no pool" if c.pool_size is None else f"{c.pool_size}+{c.max_overflow}"
        table.add_row(point.point_id, c.variant, pool, _load_caption(c.users, c.rate), Text(point.error or "?"))
    return table


def fault_table(points: Sequence[PointRecord]) -> Table | None:
    """The report's "Database fault and recovery" table, in the terminal (None when no point had a fault)."""
    rows = fault_rows(list(points))
    if not rows:
        return None
    table = Table(title="database fault and recovery (seconds into the measured period)", title_justify="left")
    for header in FAULT_HEADERS:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def show_run(folder: RunFolder) -> list[RenderableType]:
    """Everything `bench show` prints, in order: the overview, a table per load, a fault's effect, the failed points."""
    run = folder.load_run()
    points = folder.load_points()
    cells = aggregate(points)
    renderables: list[RenderableType] = [run_overview(run)]
    if cells:
        renderables += load_tables(cells, int(run.sweep.get("repeat", 1) or 1))
    else:
        renderables.append(Text("no point measured anything yet", style="yellow"))
    renderables += [table for table in (fault_table(points), failed_points_table(points)) if table is not None]
    return renderables


class RunRow(NamedTuple):
    """One line of `bench list`, as plain text."""

    run_id: str
    status: str
    scenario: str
    load_model: str
    variants: str
    points: str  # ok/failed/planned
    date: str
    databases: str


LIST_HEADERS = ("run", "status", "scenario", "load model", "variants", "points ok/failed/planned", "date", "databases")


def list_rows(runs: Sequence[RunRecord]) -> list[RunRow]:
    rows = []
    for run in runs:
        load_model = run.sweep.get("load_model", "closed")
        rates = run.sweep.get("rates") or []
        if load_model == "open" and rates:
            load_model += f" ({', '.join(f'{r:g}' for r in rates)}/s)"
        rows.append(
            RunRow(
                run_id=run.run_id,
                status=run.status,
                scenario=str(run.sweep.get("scenario", "?")),
                load_model=load_model,
                variants=", ".join(run.sweep.get("variants", [])) or "?",
                points=f"{run.points_ok}/{run.points_failed}/{run.points_planned}",
                date=run.created_at[:16].replace("T", " "),
                databases=databases_text(run, short=True) if run.databases else "–",
            )
        )
    return rows


def runs_table(runs: Sequence[RunRecord]) -> Table:
    """`bench list` as a table; the status coloured."""
    table = Table()
    for header in LIST_HEADERS:  # identifiers and figures stay on one line; names and labels may wrap
        table.add_column(header, no_wrap=header in {"run", "status", "date"})
    for row in list_rows(runs):
        cells = [Text(value) for value in row]
        cells[1].stylize(_STATUS_STYLE.get(row.status, ""))
        table.add_row(*cells)
    return table


_VERDICT_STYLE = {"faster": "green", "slower": "bold red", "no significant difference": "", "not enough repeats": "dim"}


def _figure(value: float, template: str) -> str:
    return "–" if math.isnan(value) else template.format(value)  # NaN: every repeat stalled, nothing measured


def comparison_table(c: Comparison) -> Table:
    """`bench compare` in the terminal: one row per configuration in both runs, its verdict coloured."""
    table = Table(
        title=f"{c.run_b.run_id} (B) against {c.run_a.run_id} (A), change of medians",
        title_justify="left",
        title_style="bold",
    )
    table.add_column("config")
    table.add_column("repeats", justify="right", no_wrap=True)
    table.add_column("requests/s A -> B", justify="right")
    table.add_column("p99 ms A -> B", justify="right")
    table.add_column("verdict")
    for row in c.rows:
        throughput, p99 = row.metrics["requests_per_s"], row.metrics["latency_ms_p99"]
        table.add_row(
            Text(row.label),
            f"{len(row.point_ids_a)}/{len(row.point_ids_b)}",
            f"{_figure(throughput.median_a, '{:,.0f}')} -> {_figure(throughput.median_b, '{:,.0f}')} "
            f"({change_text(throughput)})",
            f"{_figure(p99.median_a, '{:,.1f}')} -> {_figure(p99.median_b, '{:,.1f}')} ({change_text(p99)})",
            Text(row.verdict, style=_VERDICT_STYLE.get(row.verdict, "")),
        )
    return table
