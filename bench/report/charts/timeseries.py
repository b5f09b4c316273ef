"""Second-by-second time series inside a point: load, latency, pool and threads, event-loop lag, on one x axis.

A figure per point is too many for a big run, so `timeline_points` chooses: every point when there are at most
MAX_ALL_POINTS of them with a timeline, otherwise one per variant, its worst point: a stalled one first (what
happened second by second is what a stall needs explained), else the one with the highest p99. The warm-up
is shaded (its figures are excluded from everything else); a load shape's stages are marked where they change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench.records.schema import PointRecord, RunRecord, TimelineSample
from bench.records.telemetry import TelemetrySample
from bench.report.charts.common import chart_title, setting_text, variant_label
from bench.report.charts.palette import variant_colour
from bench.report.figures import save_figure

MAX_ALL_POINTS = 8
_SECONDARY_COLOURS = ("0.2", "0.45", "0.65")


@dataclass(frozen=True)
class Series:
    """One line of a panel: a label and the values over time (None where not sampled)."""

    label: str
    times: list[float]
    values: list[float | None]
    style: str = "-"


def timeline_points(points: list[PointRecord]) -> list[PointRecord]:
    """The points whose time series are drawn (see the module docstring for the choice)."""
    candidates = [p for p in points if p.status == "ok" and p.metrics is not None and _has_timeline(p)]
    if len(candidates) <= MAX_ALL_POINTS:
        return candidates
    worst: dict[str, PointRecord] = {}
    for point in candidates:
        current = worst.get(point.config.variant)
        if current is None or _badness(point) > _badness(current):
            worst[point.config.variant] = point
    return sorted(worst.values(), key=lambda p: p.index)


def draw_timelines(run: RunRecord, points: list[PointRecord], out_dir: Path) -> list[Path]:
    written: list[Path] = []
    for point in timeline_points(points):
        panels = [(title, series) for title, series in _panels(point) if series]
        if not panels:
            continue
        figure, axes = plt.subplots(len(panels), 1, figsize=(12.5, 1.4 + 2.1 * len(panels)), sharex=True,
                                    squeeze=False)  # fmt: skip
        colour = variant_colour(point.config.variant)
        for row, (axis, (title, series)) in enumerate(zip(axes[:, 0], panels, strict=True)):
            _shade_warmup(axis, point, labelled=row == 0)
            # The panel's first line in the variant's colour, the others in greys told apart by their dashes.
            for line, line_colour in zip(series, [colour, *_SECONDARY_COLOURS], strict=False):
                values = [float("nan") if v is None else v for v in line.values]
                axis.plot(line.times, values, line.style, label=line.label, color=line_colour)
            axis.set_ylabel(title, fontsize=8)
            axis.grid(True, alpha=0.3)
            axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside, never over the data
        _mark_stages(axes[0][0], point.metrics.timeline if point.metrics else [])
        axes[-1][0].set_xlabel("seconds since the start of the warm-up")
        figure.suptitle(chart_title(run, _what(run, point), [point.config.backend_label]), fontsize=10)
        figure.tight_layout()
        written += save_figure(figure, out_dir, f"timeline_{point.point_id}")
    return written


def _has_timeline(point: PointRecord) -> bool:
    return bool((point.metrics and point.metrics.timeline) or (point.telemetry and point.telemetry.timeline))


def _badness(point: PointRecord) -> tuple[bool, float, int]:
    stalled = point.stalled
    p99 = point.metrics.latency_ms_p99 if point.metrics else 0.0
    return (stalled, p99, -point.index)  # ties: the earlier point


def _what(run: RunRecord, point: PointRecord) -> str:
    c = point.config
    label = variant_label(run, c.variant, c.mode, c.backend_label)
    load = f"{c.users} users" if c.rate is None else f"{c.rate:g} req/s on {c.users} connections"
    flags = f" [{', '.join(point.flags)}]" if point.flags else ""
    threads = f", {c.thread_tokens} threads" if c.mode == "sync" else ""  # only `def` routes use the thread pool
    return (
        f"second by second, {label} at {setting_text(c.pool_size, c.max_overflow)}{threads}, {load}, "
        f"repeat {c.repeat_index}{flags}"
    )


def _panels(point: PointRecord) -> list[tuple[str, list[Series]]]:
    load = point.metrics.timeline if point.metrics else []
    probes = point.telemetry.timeline if point.telemetry else []
    return [
        ("requests/s", _series(load, [
            ("requests", lambda s: s.requests, "-"),
            ("failures", lambda s: s.failures, ":"),
        ])),
        ("latency, ms", _series(load, [
            ("p99", lambda s: s.latency_ms_p99, "-"),
            ("p50", lambda s: s.latency_ms_p50, "--"),
        ])),
        ("connections, threads", _series(probes, [
            ("pool checked out", lambda s: s.checked_out, "-"),
            ("waiting for a connection", lambda s: s.waiting, ":"),
            ("threads busy", lambda s: s.threads_busy, "-."),
            ("database connections", lambda s: s.db_connections, "--"),
        ])),
        ("ms", _series(probes, [
            ("event-loop lag, max", lambda s: s.loop_lag_ms_max, "-"),
            ("pool wait p99", lambda s: s.pool_wait_ms_p99, "--"),
        ])),
    ]  # fmt: skip


Sample = TypeVar("Sample", TimelineSample, TelemetrySample)


def _series(
    samples: Sequence[Sample], lines: list[tuple[str, Callable[[Sample], float | int | None], str]]
) -> list[Series]:
    """The lines that have at least one value (a probe that was off leaves its lines out)."""
    times = [sample.t_s for sample in samples]
    result = []
    for label, value_of, style in lines:
        values = [value_of(sample) for sample in samples]
        if any(value is not None for value in values):
            result.append(Series(label, times, [None if v is None else float(v) for v in values], style))
    return result


def _shade_warmup(axis: Axes, point: PointRecord, labelled: bool) -> None:
    timeline = point.metrics.timeline if point.metrics else []
    warmup_times = [s.t_s for s in timeline if s.phase == "warmup"]
    end = max(point.config.warmup_s, max(warmup_times, default=0.0))
    if end > 0:
        axis.axvspan(0, end, color="0.85", alpha=0.6, label="warm-up (excluded)" if labelled else None)


def _mark_stages(axis: Axes, timeline: list[TimelineSample]) -> None:
    previous: str | None = None
    for sample in timeline:
        if sample.stage is not None and sample.stage != previous:
            axis.axvline(sample.t_s, color="0.4", linestyle=":", linewidth=1)
            axis.annotate(sample.stage, (sample.t_s, 1.0), xycoords=("data", "axes fraction"), xytext=(2, -10),
                          textcoords="offset points", fontsize=7, color="0.3")  # fmt: skip
        previous = sample.stage
