"""`bench overhead`'s record as a terminal table and as the report's section "What the harness's own code costs"."""

from __future__ import annotations

from html import escape

from rich.table import Table

from bench.overhead_records import P99_RATIO_MAX, REQUESTS_RATIO_MIN, OverheadRecord, Ratio, VariantOverhead

_HEADERS = ("variant", "req/s variant / yardstick", "p50 ratio", "p99 ratio", "variant req/s", "yardstick req/s", "")


def _ratio(ratio: Ratio) -> str:
    return f"{ratio.median:.2f}x ({ratio.low:.2f}-{ratio.high:.2f})"


def _medians(variant: VariantOverhead) -> tuple[str, str]:
    ordered = sorted(variant.rounds, key=lambda r: r.requests_ratio)
    middle = ordered[len(ordered) // 2]  # the round whose ratio is the median (or the upper middle one)
    return f"{middle.variant.requests_per_s:,.0f}", f"{middle.yardstick.requests_per_s:,.0f}"


def _verdict(variant: VariantOverhead) -> str:
    verdict = "within budget" if variant.within_budget else "OVER BUDGET"
    if variant.errors:
        verdict += f", {variant.errors} errors"
    return verdict + (", SURROGATE" if variant.surrogate else "")


def _rows(record: OverheadRecord) -> list[tuple[str, ...]]:
    return [
        (v.variant, _ratio(v.requests_ratio), _ratio(v.p50_ratio), _ratio(v.p99_ratio), *_medians(v), _verdict(v))
        for v in record.variants
    ]


def setup_text(record: OverheadRecord) -> str:
    rounds = max((len(v.rounds) for v in record.variants), default=0)
    return (
        f"{record.measured_at}, {record.machine}: {rounds} interleaved rounds, {record.generator}, "
        f"{record.connections} connections, GET /items/{{id}}, {record.warmup_s:g} s warm-up + "
        f"{record.duration_s:g} s, pool {record.pool_size} + {record.max_overflow}, "
        f"telemetry {'on' if record.telemetry else 'off'}; budget: req/s >= {REQUESTS_RATIO_MIN:.2f}x and "
        f"p99 <= {P99_RATIO_MAX:.2f}x the yardstick (median of the rounds, range in brackets)"
    )


def overhead_table(record: OverheadRecord) -> Table:
    table = Table(*_HEADERS)
    for row in _rows(record):
        table.add_row(*row)
    return table


def overhead_html(record: OverheadRecord | None) -> str:
    if record is None:
        return (
            "<p>Not measured on this machine yet: <code>bench overhead</code> runs every variant beside its "
            "yardstick (the ~30-line app a user would write) and shows what our own code costs.</p>"
        )
    head = "".join(f"<th>{escape(h)}</th>" for h in _HEADERS)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in _rows(record))
    return f"<p>{escape(setup_text(record))}.</p><table><tr>{head}</tr>{body}</table>"
