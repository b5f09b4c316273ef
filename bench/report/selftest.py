"""`bench selftest`'s record as a terminal table: measured beside the same-schedule prediction and the theory."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from bench.records.selftest import (
    FIGURES,
    LATENCY_FLOOR_MS,
    LATENCY_TOLERANCE,
    RANK_SLACK,
    THROUGHPUT_TOLERANCE,
    SelftestCase,
    SelftestRecord,
)

_LABELS = {"requests_per_s": "throughput req/s", "mean_ms": "mean ms", "p50_ms": "p50 ms", "p99_ms": "p99 ms"}


def _load_text(case: SelftestCase) -> str:
    served = f"S = {case.service_ms:.2f} ms measured"
    if case.rate is None:
        return f"{case.name}\n{served}"
    return f"{case.name}\n{case.rate:g}/s on {case.users} connections\n{served}"


def _predicted_text(value: float, band: tuple[float, float]) -> str:
    low, high = band
    return f"{value:,.2f}" if high - low < 0.005 else f"{value:,.2f} ({low:,.1f}-{high:,.1f})"


def selftest_table(record: SelftestRecord) -> Table:
    table = Table(
        "load", "figure", "measured", "predicted (same schedule)", "theory", "off by", "", title="bench selftest"
    )
    for case in record.cases:
        for index, name in enumerate(FIGURES):
            error = case.errors[name]
            within = name not in case.failed
            table.add_row(
                _load_text(case) if index == 0 else "",
                _LABELS[name],
                f"{getattr(case.measured, name):,.2f}",
                _predicted_text(getattr(case.predicted, name), case.predicted_band[name]),
                f"{getattr(case.theory, name):,.2f}" if case.theory is not None else "–",
                f"{error:+.1%}",
                Text("ok", style="green") if within else Text("OFF", style="bold red"),
                end_section=index == len(FIGURES) - 1,
            )
    return table


def verdict_text(record: SelftestRecord) -> str:
    tolerances = (
        f"±{THROUGHPUT_TOLERANCE:.0%} throughput, ±{LATENCY_TOLERANCE:.0%} or {LATENCY_FLOOR_MS:g} ms mean/p50/p99, "
        f"±{RANK_SLACK} requests at the window's edges"
    )
    if record.passed:
        return f"selftest passed: every figure matches the same-schedule prediction ({tolerances})"
    off = [f"{case.name}: {', '.join(case.failed)}" for case in record.cases if case.failed]
    failures = [f"{case.name}: {case.failures} requests failed" for case in record.cases if case.failures]
    return f"selftest FAILED (beyond {tolerances}): " + "; ".join(off + failures)
