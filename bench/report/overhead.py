"""`bench overhead`'s record as a terminal table and as the report's section "What the harness's own code costs"."""

from __future__ import annotations

from html import escape

from rich.table import Table

from bench.records.overhead import P99_RATIO_MAX, REQUESTS_RATIO_MIN, OverheadRecord, Ratio, VariantOverhead

# Ratios are variant / yardstick; "req/s" gives both apps' figures in the round whose ratio is the median.
_HEADERS = ("variant", "req/s ×", "p50 ×", "p99 ×", "req/s", "")


SURROGATE_NOTE = "SURROGATE: measured on a stand-in server, not the real database"


def _ratio(ratio: Ratio) -> str:
    """The median and, in brackets, the range: "0.97 (.95-1.02)" (short: it must fit 80 columns)."""
    return f"{ratio.median:.2f} ({ratio.low:.2f}-{ratio.high:.2f})".replace("(0.", "(.").replace("-0.", "-.")


def _medians(variant: VariantOverhead) -> tuple[str]:
    ordered = sorted(variant.rounds, key=lambda r: r.requests_ratio)
    middle = ordered[len(ordered) // 2]  # the round whose ratio is the median (or the upper middle one)
    return (f"{middle.variant.requests_per_s:,.0f}/{middle.yardstick.requests_per_s:,.0f}",)


def _verdict(variant: VariantOverhead) -> str:
    # Short: the table must fit 80 columns. p: the Mann-Whitney p-value against the A/A control.
    if variant.verdict == "unresolved":
        # Outside the budget, but the control's identical apps differ as much: more rounds, or a quieter machine.
        verdict = f"noise? p {_p(variant.control_p)}"
    elif variant.over_budget:
        verdict = "OVER" if variant.control_p is None else f"OVER p {_p(variant.control_p)}"
    else:
        verdict = "ok"
    if variant.errors:
        verdict += f", {variant.errors} errors"
    return verdict + ("*" if variant.surrogate else "")


def _p(p_value: float | None) -> str:
    """The p-value in at most four characters: .008, .42, 1."""
    if p_value is None:
        return "?"
    if p_value >= 0.995:
        return "1"
    return (f"{p_value:.3f}" if p_value < 0.01 else f"{p_value:.2f}").removeprefix("0")


def _row(v: VariantOverhead, name: str, verdict: str) -> tuple[str, ...]:
    return (name, _ratio(v.requests_ratio), f"{v.p50_ratio.median:.2f}", _ratio(v.p99_ratio), *_medians(v), verdict)


def _rows(record: OverheadRecord) -> list[tuple[str, ...]]:
    rows = [_row(v, v.variant, _verdict(v)) for v in record.variants]
    if record.control is not None:
        # First: every ratio below is read against what identical apps gave.
        rows.insert(0, _row(record.control, "A/A control", "noise floor"))
    return rows


def setup_text(record: OverheadRecord) -> str:
    """What was measured and how to read the table, in lines that fit 80 columns (joined by spaces in HTML)."""
    rounds = max((len(v.rounds) for v in record.variants), default=0)
    lines = [
        f"{record.measured_at}, {record.machine}",
        f"{rounds} interleaved rounds, {record.generator}, {record.connections} connections, GET /items/{{id}},",
        f"{record.warmup_s:g} s warm-up + {record.duration_s:g} s, pool {record.pool_size} + {record.max_overflow}, "
        f"telemetry {'on' if record.telemetry else 'off'}",
        f"budget: req/s >= {REQUESTS_RATIO_MIN:.2f}x and p99 <= {P99_RATIO_MAX:.2f}x the yardstick's",
        "×: variant / yardstick, the median of the rounds (their range)",
        "req/s: variant/yardstick in the median round",
    ]
    if record.control is not None:
        lines += [
            f"A/A control: {record.control.variant}'s yardstick beside itself, the noise floor;",
            "OVER: outside the budget and unlike the control (Mann-Whitney p < 0.05);",
            "noise?: outside the budget, but the control differed as much",
        ]
    return "\n".join(lines)


def overhead_table(record: OverheadRecord) -> Table:
    # Compact and unwrapped: a cut figure ("0.9…") is worse than a table wider than the terminal.
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    for header in _HEADERS:
        table.add_column(header, no_wrap=True, overflow="fold")
    for row in _rows(record):
        table.add_row(*row)
    if any(v.surrogate for v in record.variants):
        table.caption = f"* {SURROGATE_NOTE}"
    return table


def overhead_html(record: OverheadRecord | None) -> str:
    if record is None:
        return (
            "<p>Not measured on this machine yet: <code>bench overhead</code> runs every variant beside its "
            "yardstick (the ~30-line app a user would write) and shows what our own code costs.</p>"
        )
    head = "".join(f"<th>{escape(h)}</th>" for h in _HEADERS)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in _rows(record))
    note = f"<p>* {escape(SURROGATE_NOTE)}.</p>" if any(v.surrogate for v in record.variants) else ""
    setup = "<br>".join(escape(line) for line in setup_text(record).splitlines())
    return f"<p>{setup}.</p><table><tr>{head}</tr>{body}</table>{note}"
