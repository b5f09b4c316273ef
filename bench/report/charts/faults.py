"""Recovery after a database fault: requests that succeeded and failed over the measured period, per point."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from bench.records.schema import FaultRecord, PointRecord, RunRecord
from bench.report.charts.common import chart_title, variant_label
from bench.report.faults import faulted
from bench.report.figures import save_figure

# The recorded slices are 100 ms; bars of half a second stay readable over a minute and still show a recovery.
BAR_S = 0.5
TITLE_IN = 0.7  # the suptitle's three lines at 9 pt


def draw_fault_recovery(run: RunRecord, points: list[PointRecord], out_dir: Path) -> list[Path]:
    """One panel per faulted point, the outage shaded; nothing when no point had a fault."""
    shown = [(p, f) for p, f in faulted(points) if f.ok_per_slice]
    if not shown:
        return []
    height_in = 1.9 * len(shown) + 1.6
    figure, axes = plt.subplots(len(shown), 1, figsize=(10, height_in), sharex=True, squeeze=False)
    for axis, (point, fault) in zip(axes[:, 0], shown, strict=True):
        starts, ok, failed = _bars(fault)
        axis.bar(starts, ok, width=BAR_S, align="edge", color="#4c9a2a", label="succeeded")
        axis.bar(starts, failed, width=BAR_S, align="edge", bottom=ok, color="#c0392b", label="failed")
        if fault.injected_at_s is not None:
            back = fault.back_at_s if fault.back_at_s is not None else starts[-1] + BAR_S
            axis.axvspan(fault.injected_at_s, back, color="grey", alpha=0.25, zorder=0, label="database down/frozen")
        config = point.config
        pool = f"pool {config.pool_size}+{config.max_overflow}" if config.pool_size is not None else "no pool"
        ping = ", pre_ping on" if config.pool_pre_ping else ""
        axis.set_title(
            f"{variant_label(run, config.variant, config.mode, config.backend_label)}, {pool}{ping}",
            fontsize=9,
            loc="left",
        )
        axis.set_ylabel(f"req / {BAR_S:g} s", fontsize=8)
    axes[0, 0].legend(fontsize=8, loc="upper right")
    axes[-1, 0].set_xlabel("seconds into the measured period")
    kind = shown[0][1].kind
    figure.suptitle(
        chart_title(run, f"requests around a {kind}", [p.config.backend_label for p, _ in shown]), fontsize=9
    )
    figure.tight_layout(rect=(0, 0, 1, 1 - TITLE_IN / height_in))  # the title's lines keep their own band
    return save_figure(figure, out_dir, "fault_recovery")


def _bars(fault: FaultRecord) -> tuple[list[float], list[int], list[int]]:
    per_bar = max(1, round(BAR_S / fault.slice_s))
    starts, ok, failed = [], [], []
    for first in range(0, len(fault.ok_per_slice), per_bar):
        starts.append(first * fault.slice_s)
        ok.append(sum(fault.ok_per_slice[first : first + per_bar]))
        failed.append(sum(fault.failed_per_slice[first : first + per_bar]))
    return starts, ok, failed
