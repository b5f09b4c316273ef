"""Findings: a short Markdown page of what one run says about sync vs async on the machine it ran on, with
the numbers behind each statement and the conditions (flags) that qualify them."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.analysis.cells import Cell, aggregate, load_model_caption, views
from bench.records.errors import BenchError
from bench.records.run_folder import RunFolder, write_atomic
from bench.records.schema import GENERATOR_LIMITED, RATE_NOT_REACHED, STALLED, PointRecord, RunRecord
from bench.records.stats import group_repeats
from bench.system.environment import machine_label

# What each flag means for the numbers it sits on; the HTML report prints the same words.
UNSTABLE = "unstable"
FLAG_MEANINGS: dict[str, str] = {
    STALLED: "no request completed in the measured period (e.g. a sync variant whose thread pool and "
    "connection pool wait on each other): a real result, not a slow run; it has no latency figures.",
    GENERATOR_LIMITED: "the load generator's CPU was saturated, or the point reached the generator's "
    "calibrated ceiling: the requests/s figure is the generator's limit, not the service's.",
    RATE_NOT_REACHED: "the open model fell short of the requested rate (too few connections for the latency, "
    "or the generator could not keep up): the point measured a lighter load than its label says.",
    UNSTABLE: "the repeats of this configuration disagree (coefficient of variation above 10% for requests/s or "
    "p50, above 25% for p99): one number does not describe it; repeat on a quieter machine.",
}

# aggregate() groups points by these fields; the same key finds a cell's repeat statistics.
CellKey = tuple[str, int | None, int | None, int, int, float | None]


def cell_key(cell: Cell) -> CellKey:
    return (cell.variant, cell.pool_size, cell.max_overflow, cell.users, cell.thread_tokens, cell.rate)


def unstable_keys(points: Iterable[PointRecord]) -> set[CellKey]:
    """The cells whose repeats disagree (bench.records.stats decides, per configuration)."""
    keys: set[CellKey] = set()
    for group in group_repeats(list(points)):
        c = group.config
        if group.unstable:
            keys.add((c.variant, c.pool_size, c.max_overflow, c.users, c.thread_tokens, c.rate))
    return keys


def cell_flag_names(cell: Cell, unstable: set[CellKey]) -> list[str]:
    """The flag names on a cell (Cell.flags reads "stalled 1/3, generator-limited 2/3"), plus "unstable"."""
    names = [part.rsplit(" ", 1)[0] for part in cell.flags.split(", ") if part]
    return [*names, UNSTABLE] if cell_key(cell) in unstable else names


def cell_flags_text(cell: Cell, unstable: set[CellKey]) -> str:
    """Cell.flags with "unstable" appended where the repeats disagree."""
    return ", ".join(part for part in (cell.flags, UNSTABLE if cell_key(cell) in unstable else "") if part)


def setting_text(cell: Cell) -> str:
    """Where a cell was measured: its pool setting, and the thread-pool size where requests use it."""
    text = "no pool" if cell.pool_size is None else f"pool_size={cell.pool_size}, max_overflow={cell.max_overflow}"
    return f"{text}, {cell.thread_tokens} threads" if cell.mode == "sync" else text


def load_text(users: int, rate: float | None) -> str:
    return f"{users} users" if rate is None else f"{rate:g} requests/s on {users} connections"


def _ms(value: float) -> str:
    return f"{value:,.1f} ms" if value < 10 else f"{value:,.0f} ms"


def _rps(value: float) -> str:
    return f"{value:,.0f} req/s"


@dataclass(frozen=True)
class Best:
    """A variant's highest requests/s at one load, over every pool (and thread) setting it was measured at."""

    variant: str
    mode: str
    cell: Cell | None  # None: stalled at every setting
    settings: int  # how many settings were measured


def best_per_variant(cells: list[Cell]) -> dict[str, Best]:
    by_variant: dict[str, list[Cell]] = defaultdict(list)
    for cell in cells:
        by_variant[cell.variant].append(cell)
    result = {}
    for variant, members in sorted(by_variant.items()):
        measured = [c for c in members if not c.stalled]
        best = max(measured, key=lambda c: c.requests_per_s) if measured else None
        result[variant] = Best(variant, members[0].mode, best, len(members))
    return result


def _intervals_note(a: Cell, b: Cell) -> str:
    if a.requests_per_s_ci is None or b.requests_per_s_ci is None:
        repeats = min(a.repeats, b.repeats)
        return f"{repeats} repeat(s), so no 95% interval: repeat the run (`--repeat 3` or more) to judge the gap"
    (a_low, a_high), (b_low, b_high) = a.requests_per_s_ci, b.requests_per_s_ci
    if a_low <= b_high and b_low <= a_high:
        return "their 95% intervals overlap: this run does not separate them"
    return "their 95% intervals do not overlap"


def _chart_links(folder: RunFolder, cells: list[Cell], users: int, rate: float | None, base: Path) -> list[str]:
    """Relative links to the charts `bench report` drew for this load (only those that exist)."""
    report_dir = folder.report_dir
    names: list[str] = []
    for view in views(cells):
        if (view.users, view.rate) != (users, rate):
            continue
        names.append(f"pool_size{view.suffix}.png")
        per_setting = re.compile(r"(variants|why)_ps(\d+|None)_mo(\d+|None)" + re.escape(view.suffix) + r"\.png")
        if report_dir.is_dir():
            names += sorted(p.name for p in report_dir.iterdir() if per_setting.fullmatch(p.name))
    links = []
    for name in dict.fromkeys(names):
        path = report_dir / name
        if path.is_file():
            relative = Path(os.path.relpath(path, base)).as_posix()
            links.append(f"- [{name}]({relative})")
    return links


def _best_table(best: dict[str, Best], unstable: set[CellKey]) -> list[str]:
    lines = [
        "| variant | mode | measured on | best requests/s [95% interval] | at | p99 there | settings | flags there |",
        "|---|---|---|---:|---|---:|---:|---|",
    ]
    for entry in best.values():
        cell = entry.cell
        if cell is None:
            lines.append(f"| `{entry.variant}` | | | stalled at every setting | | | {entry.settings} | stalled |")
            continue
        interval = (
            f" [{cell.requests_per_s_ci[0]:,.0f}–{cell.requests_per_s_ci[1]:,.0f}]" if cell.requests_per_s_ci else ""
        )
        lines.append(
            f"| `{cell.variant}` | {cell.mode} | {cell.backend_label} | {cell.requests_per_s:,.0f}{interval} "
            f"| {setting_text(cell)} | {_ms(cell.latency_ms_p99)} | {entry.settings} "
            f"| {cell_flags_text(cell, unstable) or '–'} |"
        )
    return lines


def _async_vs_sync(best: dict[str, Best]) -> list[str]:
    """Every async variant against every sync variant measured on the same backend, each at its best."""
    measured = [b.cell for b in best.values() if b.cell is not None]
    lines: list[str] = []
    for backend in sorted({c.backend_label for c in measured}):
        syncs = [c for c in measured if c.backend_label == backend and c.mode == "sync"]
        asyncs = [c for c in measured if c.backend_label == backend and c.mode == "async"]
        for sync in syncs:
            for asynchronous in asyncs:
                ratio = asynchronous.requests_per_s / sync.requests_per_s if sync.requests_per_s else float("nan")
                lines.append(
                    f"- {backend}: `{asynchronous.variant}` / `{sync.variant}` = **{ratio:.2f}x** requests/s "
                    f"({_rps(asynchronous.requests_per_s)} at {setting_text(asynchronous)} vs "
                    f"{_rps(sync.requests_per_s)} at {setting_text(sync)}); p99 there "
                    f"{_ms(asynchronous.latency_ms_p99)} vs {_ms(sync.latency_ms_p99)}; "
                    f"{_intervals_note(asynchronous, sync)}."
                )
    stalled_everywhere = [b.variant for b in best.values() if b.cell is None and b.mode in ("sync", "async")]
    lines += [f"- `{name}` stalled at every setting: no ratio." for name in stalled_everywhere]
    return lines or ["- No backend in this run had both a sync and an async variant measured."]


def _blocking_penalty(best: dict[str, Best], drivers: dict[str, str]) -> list[str]:
    """The anti-pattern (sync driver in `async def`) against the sync variant of its backend, same driver first,
    and against the best async variant there."""
    measured = [b.cell for b in best.values() if b.cell is not None]
    lines: list[str] = []
    for blocking in (c for c in measured if c.mode == "blocking"):
        same_backend = [c for c in measured if c.backend_label == blocking.backend_label]
        syncs = sorted(
            (c for c in same_backend if c.mode == "sync"),
            key=lambda c: (drivers.get(c.variant) != drivers.get(blocking.variant), -c.requests_per_s),
        )
        asyncs = sorted((c for c in same_backend if c.mode == "async"), key=lambda c: -c.requests_per_s)
        text = (
            f"- `{blocking.variant}`: best {_rps(blocking.requests_per_s)} at {setting_text(blocking)}, "
            f"p99 {_ms(blocking.latency_ms_p99)}"
        )
        if blocking.loop_lag_ms_p99 is not None:
            text += f", event-loop lag p99 {_ms(blocking.loop_lag_ms_p99)}"
        for other in syncs[:1] + asyncs[:1]:
            ratio = blocking.requests_per_s / other.requests_per_s if other.requests_per_s else float("nan")
            text += (
                f"; {ratio:.2f}x the requests/s of `{other.variant}` ({_rps(other.requests_per_s)}, "
                f"p99 {_ms(other.latency_ms_p99)})"
            )
        lines.append(text + ".")
    lines += [
        f"- `{b.variant}` stalled at every setting." for b in best.values() if b.cell is None and b.mode == "blocking"
    ]
    return lines


def _stalls(cells: list[Cell]) -> list[str]:
    return [
        f"- `{c.variant}` at {setting_text(c)}: {c.flags} (no request completed in the measured period)."
        for c in cells
        if "stalled" in c.flags
    ]


def _qualifiers(run: RunRecord, cells: list[Cell], best: dict[str, Best], unstable: set[CellKey]) -> list[str]:
    lines: list[str] = []
    for entry in best.values():
        if entry.cell is None:
            continue
        for name in cell_flag_names(entry.cell, unstable):
            meaning = FLAG_MEANINGS.get(name, "see the run's records")
            lines.append(f"- `{entry.variant}`'s best point is flagged **{name}**: {meaning}")
        if entry.cell.error_rate > 0:
            lines.append(f"- `{entry.variant}`'s best point had {entry.cell.error_rate:.2%} failed requests.")
    for backend in sorted({c.backend_label for c in cells if "surrogate" in c.backend_label.lower()}):
        lines.append(f"- Measured on **{backend} (SURROGATE)**: a stand-in server, not the real database's figures.")
    repeats = sorted({c.repeats for c in cells})
    if repeats == [1]:
        lines.append("- One repeat per configuration: no intervals; differences of a few percent may be noise.")
    if run.calibration is None:
        lines.append("- The load generator was not calibrated on this machine (`bench calibrate`).")
    lines.extend(_overhead_qualifiers(run, {c.variant for c in cells}))
    return lines


def _overhead_qualifiers(run: RunRecord, variants: set[str]) -> list[str]:
    """What our own apps cost beside the ~30 lines a user would write, for the variants of this comparison."""
    if run.overhead is None:
        return ["- What our own code costs was not measured on this machine (`bench overhead`)."]
    lines = []
    for entry in run.overhead.variants:
        if entry.variant in variants and entry.over_budget:
            lines.append(
                f"- `{entry.variant}` served {entry.requests_ratio.median:.2f}x its yardstick's requests/s "
                f"(p99 {entry.p99_ratio.median:.2f}x) in `bench overhead`: part of its figures is our code's, not "
                "the access pattern's."
            )
        elif entry.variant in variants and entry.verdict == "unresolved":
            lines.append(
                f"- `{entry.variant}` served {entry.requests_ratio.median:.2f}x its yardstick's requests/s "
                f"(p99 {entry.p99_ratio.median:.2f}x) in `bench overhead`, outside the 5% budget, but the A/A "
                f"control (a yardstick beside itself) differed as much on this machine (p {entry.control_p:.2f}): "
                "not resolved."
            )
    return lines


def _scenario_section(
    folder: RunFolder, run: RunRecord, scenario: str, points: list[PointRecord], base: Path
) -> list[str]:
    cells = aggregate(points)
    unstable = unstable_keys(points)
    drivers = {p.config.variant: p.config.driver for p in points}
    lines = [f"## Scenario `{scenario}`", ""]
    if not cells:
        return [*lines, "No point of this scenario completed: nothing to compare.", ""]
    loads = sorted({(c.users, c.rate) for c in cells}, key=lambda load: (load[0], load[1] or 0))
    for users, rate in loads:
        at_load = [c for c in cells if (c.users, c.rate) == (users, rate)]
        best = best_per_variant(at_load)
        lines += [f"### {load_text(users, rate)}", "", "Best requests/s per variant (median over repeats):", ""]
        lines += [*_best_table(best, unstable), "", "Async vs sync, each at its own best setting:", ""]
        lines += [*_async_vs_sync(best), ""]
        if blocking := _blocking_penalty(best, drivers):
            lines += ["The blocking anti-pattern (a sync driver called inside `async def`):", "", *blocking, ""]
        if stalls := _stalls(at_load):
            lines += ["Stalls:", "", *stalls, ""]
        if qualifiers := _qualifiers(run, at_load, best, unstable):
            lines += ["What qualifies these numbers:", "", *qualifiers, ""]
        if links := _chart_links(folder, cells, users, rate, base):
            lines += ["Charts:", "", *links, ""]
        else:
            lines += [f"Charts: none drawn yet (`bench report {run.run_id}` draws them).", ""]
    return lines


def findings_markdown(folder: RunFolder, link_base: Path | None = None) -> str:
    """The findings page of a run; chart links are relative to `link_base` (default: the run's report/)."""
    run = folder.load_run()
    points = folder.load_points()
    base = link_base if link_base is not None else folder.report_dir
    python = run.environment.get("python", "?")
    repeat = run.sweep.get("repeat", "?")
    lines = [
        f"# Findings: run {run.run_id}",
        "",
        f"On this machine ({machine_label(run.environment)}; Python {python}), with the {load_model_caption(run)}, "
        f"{run.sweep.get('duration_s', '?')} s measured per point, {repeat} repeat(s). Run status: {run.status} "
        f"({run.points_ok} ok, {run.points_failed} failed of {run.points_planned} planned). Figures are medians "
        "over repeats; other machines, databases and loads will give other numbers.",
        "",
    ]
    by_scenario: dict[str, list[PointRecord]] = defaultdict(list)
    for point in points:
        by_scenario[point.config.scenario].append(point)
    if not by_scenario:
        lines += ["No point was recorded in this run.", ""]
    for scenario, members in sorted(by_scenario.items()):
        lines += _scenario_section(folder, run, scenario, members, base)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_findings(folder: RunFolder, out: Path) -> Path:
    """Write the findings page to `out` (atomically); its chart links are relative to where it is written."""
    out = out.resolve()
    text = findings_markdown(folder, link_base=out.parent)
    try:
        write_atomic(out, text)
    except OSError as exc:
        raise BenchError(f"cannot write {out}: {exc.strerror or exc}; choose another output file") from None
    return out
