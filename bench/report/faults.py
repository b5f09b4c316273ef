"""The report's table of a database fault's effect, one row per point (Markdown for summary.md, rows for HTML)."""

from __future__ import annotations

from bench.plan.faults import RECOVERED_WINDOW_S
from bench.records.schema import FaultRecord, PointRecord

HEADERS = [
    "variant",
    "pool",
    "pre_ping",
    "fault",
    "down at s",
    "back at s",
    "errors during",
    "errors after back",
    "errors by kind",
    "first success after back",
    "last error after back",
    "recovered",
]

EXPLANATION = (
    'Times are seconds into the measured period. Errors are failed requests by completion time; "after back" '
    "counts those that failed once the database accepted connections again (restart) or was resumed (pause). "
    f"Recovered: requests succeeded and none failed over the last {RECOVERED_WINDOW_S:g} s of the measurement."
)


def faulted(points: list[PointRecord]) -> list[tuple[PointRecord, FaultRecord]]:
    return [(p, p.fault) for p in sorted(points, key=lambda p: p.index) if p.fault is not None]


def fault_rows(points: list[PointRecord]) -> list[list[str]]:
    rows = []
    for point, fault in faulted(points):
        config = point.config
        pool = f"{config.pool_size}+{config.max_overflow}" if config.pool_size is not None else "–"
        kinds = point.metrics.failures_by_kind if point.metrics is not None else {}
        rows.append(
            [
                config.variant,
                pool,
                "on" if config.pool_pre_ping else "off",
                f"{fault.kind} for {fault.down_s:g} s" + (f" ({fault.error})" if fault.error else ""),
                _seconds(fault.injected_at_s),
                _seconds(fault.back_at_s),
                f"{fault.errors_during:,}",
                f"{fault.errors_after:,}",
                ", ".join(f"{kind} × {count:,}" for kind, count in sorted(kinds.items())) or "none",
                _seconds(fault.first_success_after_back_s, none="never"),
                _seconds(fault.last_error_after_back_s, none="none"),
                {True: "yes", False: "NO", None: "too soon to tell"}[fault.recovered],
            ]
        )
    return rows


def fault_markdown(points: list[PointRecord]) -> list[str]:
    """summary.md's section (no lines when no point had a fault)."""
    rows = fault_rows(points)
    if not rows:
        return []
    lines = ["", "## Database fault and recovery", "", EXPLANATION, ""]
    lines.append("| " + " | ".join(HEADERS) + " |")
    lines.append("|" + "---|" * len(HEADERS))
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _seconds(value: float | None, none: str = "–") -> str:
    return none if value is None else f"{value:.2f}"
