"""The palette: one colour and one marker per variant, the same in every chart of every run."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.colors import to_rgb

from apps.catalog import all_variants

# tab10 first (matplotlib's default cycle, the most distinct colours), then tab20's lighter shades: enough for
# every variant of the catalog to keep its own colour in every chart.
PALETTE: list[tuple[float, float, float]] = [to_rgb(f"C{index}") for index in range(10)] + [
    to_rgb(colour) for colour in plt.get_cmap("tab20")(range(1, 20, 2))
]
# The mode is also in the marker, so sync/async/blocking read apart even where colours are close.
MARKERS = {"sync": "o", "async": "s", "blocking": "v"}


def variant_colour(name: str) -> tuple[float, float, float]:
    """One colour per variant, the same in every chart of every run (by catalog position)."""
    names = list(all_variants())
    index = names.index(name) if name in names else len(names) + sum(map(ord, name))
    return PALETTE[index % len(PALETTE)]
