"""The HTML report: one self-contained file (charts embedded as data: URIs, CSS and script inline) that a
reader opens offline, without a server, and that says everything a run recorded about how it was measured."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from apps.masking import mask_url
from bench.analysis.cells import Cell, aggregate, load_model_caption
from bench.analysis.findings import FLAG_MEANINGS, CellKey, cell_flags_text, load_text, unstable_keys
from bench.records.run_folder import RunFolder, write_atomic
from bench.records.schema import PointRecord, RunRecord
from bench.report.faults import EXPLANATION as FAULT_EXPLANATION
from bench.report.faults import HEADERS as FAULT_HEADERS
from bench.report.faults import fault_rows
from bench.report.overhead import overhead_html
from bench.system.environment import machine_label

HTML_FILE = "index.html"
_IMAGE_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}

_STATUS_NOTES = {
    "complete": "every planned point was attempted",
    "incomplete": "the sweep was interrupted: the points below are all that were measured",
    "failed": "the run failed before it finished",
    "running": "still running, or stopped without recording an end: the points below are those written so far",
}

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1400px;padding:1em 2em;
color:#1b1b1b}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0 1em}th,td{border:1px solid #d0d0d0;padding:.25em .5em;
vertical-align:top}th{background:#f2f2f2;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.stalled td{background:#fff0f0}.status{display:inline-block;padding:.1em .6em;border-radius:.3em;color:#fff;
background:#777}.status-complete{background:#2e7d32}.status-incomplete,.status-running{background:#b26a00}
.status-failed{background:#c62828}.surrogate{color:#fff;background:#c62828;font-weight:bold;padding:0 .3em}
.banner{border:2px solid #c62828;background:#fff0f0;padding:.5em 1em;margin:1em 0}
.flags{color:#b00020}figure{margin:1em 0 2em}figure img{max-width:100%;border:1px solid #ddd}
figcaption{color:#444;margin-top:.3em}.broken-note{color:#c62828;font-weight:bold}code{background:#f4f4f4}
nav a{margin-right:1em}dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:bold}
dd{margin:0}
"""

# After load, each image records whether it decoded (naturalWidth 0 means it did not), so a reader sees a
# broken chart named instead of an empty box, and a headless browser's DOM dump shows the outcome.
_SCRIPT = """
window.addEventListener("load", function () {
  var images = document.querySelectorAll("img");
  var broken = 0;
  images.forEach(function (img) {
    img.setAttribute("data-natural-width", String(img.naturalWidth));
    if (!img.complete || img.naturalWidth === 0) {
      broken += 1;
      var note = document.createElement("p");
      note.className = "broken-note";
      note.textContent = "This chart could not be displayed: " + img.getAttribute("alt");
      img.insertAdjacentElement("afterend", note);
    }
  });
  document.body.setAttribute("data-images", String(images.length));
  document.body.setAttribute("data-images-broken", String(broken));
});
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _masked(value: object) -> str:
    return _e(mask_url(str(value)))


def _dl(items: Sequence[tuple[str, str]]) -> str:
    """A definition list; values are HTML already escaped by the caller."""
    return "<dl>" + "".join(f"<dt>{_e(key)}</dt><dd>{value}</dd>" for key, value in items) + "</dl>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int] | None = None) -> str:
    """A table; cell values are HTML already escaped by the caller."""
    numeric = numeric or set()
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{v}</td>' if i in numeric else f"<td>{v}</td>" for i, v in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{_e(anchor)}"><h2>{_e(title)}</h2>{body}</section>'


def _optional(value: float | None, template: str) -> str:
    return "–" if value is None else _e(template.format(value))


def _header(run: RunRecord) -> str:
    status = (
        f'<span class="status status-{_e(run.status)}">{_e(run.status)}</span> '
        f"{_e(_STATUS_NOTES.get(run.status, ''))}: {run.points_ok} ok, {run.points_failed} failed "
        f"of {run.points_planned} planned"
    )
    parts = [f"<h1>Run {_e(run.run_id)}</h1>", f"<p>{status}</p>"]
    if run.error:
        parts.append(f'<p class="banner">Run error: {_masked(run.error)}</p>')
    surrogates = [d.label for d in run.databases.values() if d.surrogate]
    if surrogates:
        parts.append(
            '<p class="banner"><span class="surrogate">SURROGATE</span> '
            f"Measured on a stand-in server ({_e(', '.join(surrogates))}), not the real database: its figures "
            "say nothing about the real server's performance.</p>"
        )
    parts.append(f"<p>Started {_e(run.created_at)}, finished {_e(run.finished_at or '–')}.</p>")
    return "".join(parts)


def _scenario_description(name: str) -> str:
    from bench.measure.load import get_scenario  # noqa: PLC0415 - only the report needs the scenario catalog

    try:
        return get_scenario(name).description
    except (KeyError, ValueError, OSError, SyntaxError):
        return "(no longer in scenarios/)"


def _what_ran(run: RunRecord) -> str:
    sweep = run.sweep
    scenario = str(sweep.get("scenario", "?"))
    options = sweep.get("scenario_options") or {}
    options_text = ", ".join(f"{k}={v}" for k, v in options.items()) if isinstance(options, dict) else str(options)
    rates = sweep.get("rates") or []
    return _dl(
        [
            ("scenario", f"<code>{_e(scenario)}</code>: {_e(_scenario_description(scenario))}"),
            ("scenario options", _e(options_text or "none")),
            ("load model", _e(load_model_caption(run) + (f", rates {rates}" if rates else ""))),
            ("users / connections", _e(sweep.get("users", "?"))),
            ("warm-up", _e(f"{sweep.get('warmup_s', '?')} s per point, kept apart from every figure")),
            ("measured", _e(f"{sweep.get('duration_s', '?')} s per point, {sweep.get('repeat', '?')} repeat(s)")),
        ]
    )


def _databases(run: RunRecord) -> str:
    if not run.databases:
        return "<p>No database (only variants without one).</p>"
    rows = []
    for name, db in run.databases.items():
        label = _e(db.label) + (' <span class="surrogate">SURROGATE</span>' if db.surrogate else "")
        settings = ", ".join(f"{k}={v}" for k, v in db.settings.items())
        rows.append(
            [
                _e(name),
                label,
                _e(db.version),
                _masked(db.url or "–"),
                _e("started by bench" if db.embedded else "given"),
                _e(db.source),
                _e(settings or "–"),
            ]
        )
    return _table(["backend", "database", "version", "URL (password masked)", "who ran it", "source", "settings"], rows)


def _machine(run: RunRecord) -> str:
    env = run.environment
    commit = env.get("git_commit") or "unknown"
    dirty = env.get("git_dirty")
    libraries = env.get("libraries") or {}
    installed = {k: v for k, v in libraries.items() if v} if isinstance(libraries, dict) else {}
    items = [
        ("machine", _e(machine_label(env))),
        ("hostname", _e(env.get("hostname", "?"))),
        ("OS", _e(env.get("os", "?"))),
        ("Python", _e(f"{env.get('python', '?')} ({env.get('python_implementation', '?')})")),
        ("git commit", f"<code>{_e(commit)}</code>" + (" (uncommitted changes)" if dirty else "")),
    ]
    library_rows = [[_e(name), _e(version)] for name, version in sorted(installed.items())]
    return _dl(items) + (_table(["library", "version"], library_rows) if library_rows else "")


def _calibration(run: RunRecord) -> str:
    calibration = run.calibration
    if calibration is None:
        return (
            "<p>Not calibrated on this machine: the load generator's own ceiling is unknown "
            "(<code>bench calibrate</code> measures it).</p>"
        )
    rows = []
    for name, figures in (("Locust (bench)", calibration.locust), ("wrk", calibration.wrk)):
        if figures is None:
            rows.append([_e(name), "not installed", "", "", ""])
            continue
        rows.append(
            [
                _e(name),
                _e(f"{figures.requests_per_s:,.0f}"),
                _e(f"{figures.latency_ms_p50:,.2f}"),
                _e(f"{figures.latency_ms_p99:,.2f}"),
                _optional(figures.cpu_us_per_request, "{:,.0f}"),
            ]
        )
    load = f"rate {calibration.rate:g}/s" if calibration.rate else "closed loop"
    ratio = (
        f" Locust reached {calibration.locust_to_wrk:.2f}x wrk's throughput."
        if calibration.locust_to_wrk is not None
        else ""
    )
    intro = (
        f"<p>{_e(calibration.measured_at)}: {_e(calibration.variant)} on {_e(calibration.backend_label)}, "
        f"{calibration.users} connections, {_e(load)}, {calibration.duration_s:g} s, "
        f"{'pinned' if calibration.pinned else 'not pinned'}.{_e(ratio)}</p>"
    )
    return intro + _table(["generator", "requests/s", "p50 ms", "p99 ms", "CPU µs/request"], rows, {1, 2, 3, 4})


def _summary_row(cell: Cell, unstable: set[CellKey]) -> str:
    stalled = cell.stalled
    backend = _e(cell.backend_label)
    if "surrogate" in cell.backend_label.lower():
        backend += ' <span class="surrogate">SURROGATE</span>'
    throughput = f"{cell.requests_per_s:,.0f}"
    if cell.requests_per_s_ci:
        throughput += f" [{cell.requests_per_s_ci[0]:,.0f}–{cell.requests_per_s_ci[1]:,.0f}]"
    p99 = "–" if stalled else f"{cell.latency_ms_p99:,.1f}"
    if not stalled and cell.latency_ms_p99_ci:
        p99 += f" [{cell.latency_ms_p99_ci[0]:,.1f}–{cell.latency_ms_p99_ci[1]:,.1f}]"
    if cell.service_ms_p99 is not None:
        p99 += f" (service {cell.service_ms_p99:,.1f})"
    busy = _optional(cell.threads_busy_max, "{:,.0f}") + (f" / {cell.threads_limit}" if cell.threads_limit else "")
    values = [
        f"<code>{_e(cell.variant)}</code>",
        backend,
        _e(cell.mode),
        _e("–" if cell.pool_size is None else cell.pool_size),
        _e("–" if cell.max_overflow is None else cell.max_overflow),
        _e(cell.thread_tokens),
        _e(throughput),
        "–" if stalled else _e(f"{cell.latency_ms_p50:,.1f}"),
        _e(p99),
        _e(f"{cell.error_rate:.2%}"),
        _optional(cell.pool_wait_ms_p99, "{:,.1f}"),
        _optional(cell.loop_lag_ms_p99, "{:,.1f}"),
        busy,
        _optional(cell.db_connections_max, "{:,.0f}"),
        _optional(cell.generator_cpu, "{:.0%}"),
        _e(cell.repeats),
        f'<span class="flags">{_e(cell_flags_text(cell, unstable))}</span>',
    ]
    numeric = {3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
    cells_html = "".join(f'<td class="num">{v}</td>' if i in numeric else f"<td>{v}</td>" for i, v in enumerate(values))
    row_class = ' class="stalled"' if stalled else ""
    return f'<tr data-variant="{_e(cell.variant)}"{row_class}>{cells_html}</tr>'


_SUMMARY_HEADERS = [
    "variant", "backend", "mode", "pool_size", "max_overflow", "threads", "requests/s [95% CI]", "p50 ms",
    "p99 ms [95% CI]", "errors", "pool wait p99 ms", "loop lag p99 ms", "busy threads", "DB conns", "gen CPU",
    "repeats", "flags",
]  # fmt: skip


def _summaries(cells: list[Cell], unstable: set[CellKey]) -> str:
    if not cells:
        return "<p>No point completed: there is nothing to summarise.</p>"
    intro = (
        "<p>Medians over repeats, with the 95% interval of the median where there are repeats. Latency is the "
        "corrected latency (from each request's intended start) in the open model, the service time in the closed "
        "one. Pool wait, loop lag and busy threads come from the app's /metrics, DB conns from the database's own "
        "counters, sampled every second; gen CPU is the load generator's share of one core.</p>"
    )
    parts = [intro]
    loads = sorted({(c.users, c.rate) for c in cells}, key=lambda load: (load[0], load[1] or 0))
    head = "".join(f"<th>{_e(h)}</th>" for h in _SUMMARY_HEADERS)
    for users, rate in loads:
        rows = "".join(_summary_row(c, unstable) for c in cells if (c.users, c.rate) == (users, rate))
        parts.append(
            f"<h3>{_e(load_text(users, rate))}</h3>"
            f'<table class="summary" data-load="{_e(load_text(users, rate))}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table>"
        )
    return "".join(parts)


def _flags_explained() -> str:
    return _dl([(name, _e(meaning)) for name, meaning in FLAG_MEANINGS.items()]) + (
        "<p>A count such as <code>stalled 1/3</code> says how many of a configuration's repeats carried the flag.</p>"
    )


def _failures(points: list[PointRecord]) -> str:
    failed = [p for p in points if p.status == "failed"]
    if not failed:
        return "<p>No point failed.</p>"
    rows = [
        [
            f"<code>{_e(p.point_id)}</code>",
            _e(p.config.variant),
            _e(f"{p.config.pool_size}+{p.config.max_overflow}" if p.config.pool_size is not None else "–"),
            _e(load_text(p.config.users, p.config.rate)),
            _masked(p.error or "no reason recorded"),
        ]
        for p in failed
    ]
    return _table(["point", "variant", "pool", "load", "reason"], rows)


def _faults(points: list[PointRecord]) -> str:
    rows = [[_e(cell) for cell in row] for row in fault_rows(points)]
    return f"<p>{_e(FAULT_EXPLANATION)}</p>" + _table(FAULT_HEADERS, rows, numeric={4, 5, 6, 7, 9, 10})


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _sweep(run: RunRecord) -> str:
    rows = [[f"<code>{_e(key)}</code>", _masked(_value_text(value))] for key, value in run.sweep.items()]
    command = " ".join(run.argv)
    return (_table(["setting", "value"], rows) if rows else "<p>No sweep configuration recorded.</p>") + (
        f"<p>Command: <code>{_masked(command)}</code></p>" if command else ""
    )


_CHART_NAME = re.compile(r"(?P<kind>pool_size|variants|why)(?:_ps(?P<ps>\d+|None)_mo(?P<mo>\d+|None))?(?P<load>_u.*)")
_LOAD_SUFFIX = re.compile(r"_u(?P<users>\d+)(?:_rate(?P<rate>[0-9.e+]+))?(?:_t(?P<threads>\d+))?")


def chart_caption(path: Path) -> str:
    """What a chart of bench/report/build.py shows, read from its file name (others: the file name)."""
    match = re.fullmatch(
        r"(?P<kind>pool_size|variants|why)(?:_ps(?P<ps>\w+?)_mo(?P<mo>\w+?))?(?P<load>_u.*)", path.stem
    )
    load = _LOAD_SUFFIX.fullmatch(match.group("load")) if match else None
    if match is None or load is None:
        return path.name
    users = int(load.group("users"))
    where = load_text(users, float(load.group("rate")) if load.group("rate") else None)
    if load.group("threads"):
        where += f", {load.group('threads')} threads for the sync variants"
    setting = f"pool_size={match.group('ps')}, max_overflow={match.group('mo')}"
    captions = {
        "pool_size": "Requests/s (top) and p99 latency (bottom) against pool_size, one panel per max_overflow",
        "variants": f"Every variant side by side at {setting}: requests/s and p99 latency",
        "why": f"Why: p99 wait for a pool connection, event-loop lag p99 and busy threads per variant at {setting}",
    }
    return f"{captions[match.group('kind')]}; {where}. ({path.name})"


def _figure(path: Path) -> str:
    caption = chart_caption(path)
    mime = _IMAGE_TYPES.get(path.suffix.lower())
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f'<figure><p class="broken-note">{_e(path.name)} could not be read: {_e(exc.strerror)}</p></figure>'
    if mime is None:
        return f'<figure><p class="broken-note">{_e(path.name)}: not an image this report embeds</p></figure>'
    uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return f'<figure><img src="{uri}" alt="{_e(path.name)}"><figcaption>{_e(caption)}</figcaption></figure>'


def _slug(title: str) -> str:
    return "extra-" + (re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section")


def render_html(
    run: RunRecord, points: list[PointRecord], charts: Sequence[Path], extra_sections: Sequence[tuple[str, str]] = ()
) -> str:
    """The whole page. `extra_sections` are (title, HTML) pairs: the title is escaped here, the HTML is the
    caller's (already escaped) markup."""
    cells = aggregate(points)
    unstable = unstable_keys(points)
    sections = [
        ("what-ran", "What ran", _what_ran(run)),
        ("databases", "Databases", _databases(run)),
        ("machine", "Machine and software", _machine(run)),
        ("calibration", "Load generator calibration", _calibration(run)),
        ("overhead", "What the harness's own code costs", overhead_html(run.overhead)),
        ("summary", "Summary per load", _summaries(cells, unstable)),
        ("flags", "Flags explained", _flags_explained()),
        *(
            [("faults", "Database fault and recovery", _faults(points))]
            if any(p.fault is not None for p in points)
            else []
        ),
        ("failures", "Failed points", _failures(points)),
        ("sweep", "Sweep configuration", _sweep(run)),
        (
            "charts",
            "Charts",
            "".join(_figure(chart) for chart in charts) or "<p>No charts were drawn for this run.</p>",
        ),
        *((_slug(title), title, body) for title, body in extra_sections),
    ]
    nav = "<nav>" + "".join(f'<a href="#{_e(anchor)}">{_e(title)}</a>' for anchor, title, _ in sections) + "</nav>"
    # Extra sections bring their own HTML; every built-in body is escaped where it is built.
    body = "".join(_section(anchor, title, content) for anchor, title, content in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>bench run {_e(run.run_id)} ({_e(run.status)})</title>"
        f"<style>{_CSS}</style><script>{_SCRIPT}</script></head>"
        f"<body>{_header(run)}{nav}{body}</body></html>\n"
    )


def write_html_report(
    folder: RunFolder, charts: Sequence[Path], extra_sections: Sequence[tuple[str, str]] = ()
) -> Path:
    """Write <run>/report/index.html (atomically) from the run's records and the given chart files."""
    page = render_html(folder.load_run(), folder.load_points(), charts, extra_sections)
    path = folder.report_dir / HTML_FILE
    write_atomic(path, page)
    return path
