"""Writing a matplotlib figure to a file atomically: a reader (or a full disk) never leaves half a chart behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

PNG_DPI = 110


def write_figure(figure: Figure, path: Path) -> Path:
    """Like records.run_folder.write_atomic, for a figure; the format follows the suffix (.png or .svg). SVG text stays
    text (searchable, selectable, small), with no date and a fixed id salt, so the same records give the same file."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "bench"}):
            figure.savefig(tmp_name, format=path.suffix.lstrip("."), dpi=PNG_DPI, metadata=_metadata(path))
        os.chmod(tmp_name, 0o644)  # mkstemp makes it 0600; results are for whoever may read the folder
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def save_figure(figure: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write `figure` as <stem>.png (for Markdown and quick looks) and <stem>.svg (sharp at any zoom) and close
    it; returns both paths, the PNG first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{stem}.png", out_dir / f"{stem}.svg"
    try:
        write_figure(figure, png)
        write_figure(figure, svg)
    finally:
        plt.close(figure)
    return [png, svg]


def _metadata(path: Path) -> dict[str, str | None]:
    return {"Date": None} if path.suffix == ".svg" else {}
