"""The chart catalogue: heatmaps, latency-throughput knees, percentile spectra, time series inside a point and
sync/async ratios, each saved as PNG and SVG, drawn only from a run's records.

Every chart is skipped, without a file, when the records lack what it needs (one pool setting, one load, no
histograms, no timelines, no sync/async pair).
"""

from __future__ import annotations

from pathlib import Path

from bench.analysis.cells import aggregate
from bench.records.schema import PointRecord, RunRecord
from bench.report.charts.faults import draw_fault_recovery
from bench.report.charts.heatmaps import draw_heatmaps
from bench.report.charts.knee import draw_knee_curves
from bench.report.charts.ratio import draw_ratio_charts
from bench.report.charts.spectrum import draw_spectra
from bench.report.charts.timeseries import draw_timelines


def draw_catalogue(run: RunRecord, points: list[PointRecord], out_dir: Path) -> list[Path]:
    """Draw every chart the records support into `out_dir`; returns the files written (a PNG and an SVG each)."""
    cells = aggregate(points)
    if not cells:
        return []
    return [
        *draw_heatmaps(run, cells, out_dir),
        *draw_knee_curves(run, cells, out_dir),
        *draw_spectra(run, points, cells, out_dir),
        *draw_timelines(run, points, out_dir),
        *draw_ratio_charts(run, points, cells, out_dir),
        *draw_fault_recovery(run, points, out_dir),
    ]
