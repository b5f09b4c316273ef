"""Fixed-bucket histograms from the app's /metrics: the difference of two snapshots and percentile estimates.

The app sends cumulative histograms (since it started); a reader takes the difference of two snapshots to get
the values recorded in between. Percentiles are estimated by linear interpolation inside the bucket holding the
wanted rank. Error bound: the true percentile lies in that same bucket, so the estimate is off by less than the
bucket's width. With the contract's bounds (10 per decade: 1, 1.25, 1.6, 2, 2.5, 3.2, 4, 5, 6.3, 8 x 10^k) the
widest ratio of upper to lower bound is 1.6/1.25 = 1.28, so an estimate is within 28% of the true value (in
practice much closer: interpolation assumes values spread evenly inside the bucket). Two exceptions: values at
or below the first bound (0.01 ms) are placed in [0, 0.01] ms, and values above the last bound (60 s) in
(60 s, max_ms], where max_ms is known.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, model_validator


class Histogram(BaseModel):
    """One HISTOGRAM of the /metrics contract: counts[i] counts values in (bounds_ms[i-1], bounds_ms[i]]."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    bounds_ms: list[float]
    counts: list[int]
    count: int
    sum_ms: float
    max_ms: float

    @model_validator(mode="after")
    def _check_shape(self) -> Histogram:
        if len(self.counts) != len(self.bounds_ms) + 1:
            raise ValueError(f"counts has {len(self.counts)} entries for {len(self.bounds_ms)} bounds (needs +1)")
        if any(later <= earlier for earlier, later in zip(self.bounds_ms, self.bounds_ms[1:], strict=False)):
            raise ValueError("bounds_ms must increase")
        if any(c < 0 for c in self.counts):
            raise ValueError("counts must not be negative")
        return self


@dataclass(frozen=True)
class Window:
    """The values recorded between two snapshots of one cumulative histogram."""

    bounds_ms: tuple[float, ...]
    counts: tuple[int, ...]
    count: int
    sum_ms: float
    # The largest value in the window: exact when the maximum since start grew during the window; otherwise
    # only bounded: the upper bound of the highest non-empty bucket (capped by the maximum since start).
    max_ms: float | None

    @property
    def mean_ms(self) -> float | None:
        return self.sum_ms / self.count if self.count else None

    def percentile(self, fraction: float) -> float | None:
        """The value below which `fraction` (0..1) of the window's values lie, interpolated in its bucket."""
        if self.count == 0:
            return None
        rank = fraction * self.count
        cumulative = 0
        for index, in_bucket in enumerate(self.counts):
            if in_bucket and cumulative + in_bucket >= rank:
                lower, upper = self._bucket_edges(index)
                estimate = lower + (upper - lower) * max(rank - cumulative, 0.0) / in_bucket
                # A bucket's upper edge can lie above every value seen: never report beyond the known maximum.
                return min(estimate, self.max_ms) if self.max_ms is not None else estimate
            cumulative += in_bucket
        return self.max_ms  # not reached: rank <= count

    def _bucket_edges(self, index: int) -> tuple[float, float]:
        lower = 0.0 if index == 0 else self.bounds_ms[index - 1]
        if index < len(self.bounds_ms):
            return lower, self.bounds_ms[index]
        # The overflow bucket has no upper bound but the maximum, when known.
        return lower, max(lower, self.max_ms if self.max_ms is not None else lower)


def difference(later: Histogram, earlier: Histogram | None) -> Window | None:
    """What `later` recorded after `earlier` (None: since the app started). None when the two cannot be
    compared: different bounds, or counts that went down (the app restarted between the snapshots)."""
    if earlier is None:
        window_max = later.max_ms if later.count else None
        return Window(tuple(later.bounds_ms), tuple(later.counts), later.count, later.sum_ms, window_max)
    if earlier.bounds_ms != later.bounds_ms:
        return None
    counts = tuple(b - a for a, b in zip(earlier.counts, later.counts, strict=True))
    count = later.count - earlier.count
    if count < 0 or any(c < 0 for c in counts):
        return None
    return Window(
        tuple(later.bounds_ms), counts, count, later.sum_ms - earlier.sum_ms, _window_max(later, earlier, counts)
    )


def _window_max(later: Histogram, earlier: Histogram, counts: tuple[int, ...]) -> float | None:
    if not any(counts):
        return None
    if later.max_ms > earlier.max_ms:
        return later.max_ms  # the maximum since start was set inside the window
    highest = max(index for index, c in enumerate(counts) if c)
    if highest < len(later.bounds_ms):
        # Values in that bucket are <= its upper bound; and no value anywhere exceeds the maximum since start.
        return min(later.bounds_ms[highest], later.max_ms)
    return later.max_ms
