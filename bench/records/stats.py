"""Statistics over repeats of a point: the median with an honest 95% interval for the few repeats users run,
variation (CV) with an "unstable" flag, and the Mann-Whitney U test for `bench compare`.

Why the median and these intervals: benchmark repeats are few (2-10) and skewed (a repeat that met a noisy
neighbour is slow, never fast), so the median is the robust centre. For it, the distribution-free interval
between two order statistics x(k) <= median <= x(n+1-k) covers the true median with probability
1 - 2 * P(Binomial(n, 1/2) <= k - 1), whatever the distribution; that first reaches 95% at n = 6 (96.9%).
Below 6 repeats no pair of order statistics reaches 95% ([min, max] covers 50% at n = 2, 93.8% at n = 5), and
a bootstrap is worse still (its interval never leaves [min, max]), so we fall back to Student's t-interval of
the mean: it assumes roughly normal repeats, where mean and median estimate the same centre, and it is wide
for small n (12.7 standard errors at n = 2), which is the honest answer. It always contains the median:
|mean - median| <= the standard deviation, and t(0.975, n-1) / sqrt(n) >= 1.24 for n <= 5. `method` says
which was used.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from itertools import pairwise

import numpy as np
from pydantic import BaseModel, ConfigDict

from bench.records.schema import PointConfig, PointRecord

CONFIDENCE = 0.95
ORDER_STATISTIC_MIN_N = 6  # the smallest n whose [x(1), x(n)] covers the median with >= 95%
# Student's t, two-sided 95% (0.975 quantile) for n - 1 = 1..4 degrees of freedom: scipy is not a dependency.
T_975 = {1: 12.7062047, 2: 4.30265273, 3: 3.18244631, 4: 2.77644511}

# CV above which a metric's repeats disagree too much to trust one number (and why these levels):
# throughput and the median latency average over every request of a run, so repeats on a quiet machine agree
# within a few percent; 10% means something outside the variant (another process, CPU frequency, a cache)
# moved the result. p99 rests on the slowest 1% of requests, a few hundred in a short run, so it varies
# more between honest repeats: 25%. The error rate has no threshold: near zero its CV is meaningless (one
# failed request in one repeat is a CV above 100%), and errors are flagged by the point itself.
UNSTABLE_CV = {"requests_per_s": 0.10, "latency_ms_p50": 0.10, "latency_ms_p99": 0.25}
REPEAT_METRICS = ("requests_per_s", "latency_ms_p50", "latency_ms_p99", "error_rate")

# Mann-Whitney: the exact distribution (ties included) is enumerated up to this many values in both samples
# together; beyond, the normal approximation is already close.
EXACT_MAX_N = 20


class _Stats(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RepeatStats(_Stats):
    n: int
    median: float
    ci_low: float | None  # 95% interval for the median; None for a single value
    ci_high: float | None
    mean: float
    stdev: float | None  # sample standard deviation (n - 1); None for a single value
    cv: float | None  # stdev / mean; 0 for identical values; None when undefined (one value, or mean 0)
    method: str  # how the interval was computed, e.g. "order statistics x(1)..x(6), 96.9%"

    @property
    def interval(self) -> tuple[float, float] | None:
        """(ci_low, ci_high), or None for a single value."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_low, self.ci_high)


class RepeatGroup(_Stats):
    config: PointConfig  # the shared configuration, with the first point's repeat_index
    point_ids: list[str]
    stats: dict[str, RepeatStats]  # by metric: requests_per_s, latency_ms_p50, latency_ms_p99, error_rate
    unstable: bool
    unstable_metrics: list[str]


def summarise(values: Sequence[float]) -> RepeatStats:
    """Median, its 95% interval, mean, standard deviation and CV of one metric over repeats."""
    data = np.sort(np.asarray(values, dtype=float))
    n = len(data)
    if n == 0:
        raise ValueError("summarise needs at least one value")
    if not np.all(np.isfinite(data)):
        raise ValueError("summarise needs finite values")
    median = float(np.median(data))
    mean = float(np.mean(data))
    if n == 1:
        return RepeatStats(
            n=1, median=median, ci_low=None, ci_high=None, mean=mean, stdev=None, cv=None, method="single value"
        )
    stdev = float(np.std(data, ddof=1))
    if stdev == 0.0:
        cv: float | None = 0.0
    else:
        cv = stdev / abs(mean) if mean != 0 else None
    if n >= ORDER_STATISTIC_MIN_N:
        k, coverage = _order_statistic_rank(n)
        low, high = float(data[k - 1]), float(data[n - k])
        method = f"order statistics x({k})..x({n + 1 - k}), {coverage:.1%} (distribution-free)"
    else:
        half = T_975[n - 1] * stdev / math.sqrt(n)
        low, high = mean - half, mean + half
        method = f"t-interval of the mean, 95% (n={n} < {ORDER_STATISTIC_MIN_N}: too few for a distribution-free one)"
    return RepeatStats(n=n, median=median, ci_low=low, ci_high=high, mean=mean, stdev=stdev, cv=cv, method=method)


def _order_statistic_rank(n: int) -> tuple[int, float]:
    """The largest k whose interval [x(k), x(n+1-k)] still covers the median with >= 95%, and its coverage."""
    best = (1, _coverage(n, 1))
    for k in range(2, n // 2 + 1):
        coverage = _coverage(n, k)
        if coverage < CONFIDENCE:
            break
        best = (k, coverage)
    return best


def _coverage(n: int, k: int) -> float:
    # P(x(k) <= median <= x(n+1-k)) = 1 - 2 * P(Binomial(n, 1/2) <= k - 1)
    tail: float = sum(math.comb(n, i) for i in range(k)) / 2**n
    return 1.0 - 2.0 * tail


def group_repeats(points: Sequence[PointRecord]) -> list[RepeatGroup]:
    """Group the ok points whose configurations are equal apart from repeat_index, in order of first
    appearance, with the statistics of each metric over the group."""
    groups: dict[str, list[PointRecord]] = {}
    for point in points:
        if point.status != "ok" or point.metrics is None:
            continue
        groups.setdefault(_config_key(point.config), []).append(point)
    return [_group(members) for members in groups.values()]


def _config_key(config: PointConfig) -> str:
    # Sorted keys: configurations equal as values (dicts in another order) must group together.
    return json.dumps(config.model_dump(mode="json", exclude={"repeat_index"}), sort_keys=True)


def _group(members: list[PointRecord]) -> RepeatGroup:
    stats: dict[str, RepeatStats] = {}
    for metric in REPEAT_METRICS:
        stats[metric] = summarise([float(getattr(p.metrics, metric)) for p in members])
    unstable_metrics = [
        metric for metric, threshold in UNSTABLE_CV.items() if (cv := stats[metric].cv) is not None and cv > threshold
    ]
    return RepeatGroup(
        config=members[0].config,
        point_ids=[p.point_id for p in members],
        stats=stats,
        unstable=bool(unstable_metrics),
        unstable_metrics=unstable_metrics,
    )


def mann_whitney_u(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test: (U of `a`, p-value). Exact (ties included) when both samples together
    hold at most EXACT_MAX_N values; otherwise the normal approximation with tie and continuity corrections."""
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        raise ValueError("mann_whitney_u needs at least one value in each sample")
    ranks = _midranks([*a, *b])
    u = float(sum(ranks[:n1]) - n1 * (n1 + 1) / 2)
    if n1 + n2 <= EXACT_MAX_N:
        return u, _exact_p(ranks, n1, u)
    return u, _normal_p(ranks, n1, n2, u)


def _midranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..N, tied values sharing the mean of their ranks."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def _exact_p(ranks: list[float], n1: int, u: float) -> float:
    """P-value from the permutation distribution of U: every way to pick which n1 of the pooled midranks
    belong to `a` is equally likely under the null hypothesis. Counted by dynamic programming on doubled rank
    sums (midranks are multiples of 1/2, so doubled they are integers)."""
    doubled = [round(2 * r) for r in ranks]
    # ways[j][s]: how many j-element subsets of the ranks seen so far have doubled sum s
    ways: list[dict[int, int]] = [{} for _ in range(n1 + 1)]
    ways[0][0] = 1
    for r in doubled:
        for j in range(n1, 0, -1):
            for s, count in ways[j - 1].items():
                ways[j][s + r] = ways[j].get(s + r, 0) + count
    total = math.comb(len(ranks), n1)
    offset = n1 * (n1 + 1)  # doubled n1(n1+1)/2
    observed = round(2 * u)
    at_most = sum(c for s, c in ways[n1].items() if s - offset <= observed) / total
    at_least = sum(c for s, c in ways[n1].items() if s - offset >= observed) / total
    return min(1.0, 2.0 * min(at_most, at_least))


def _normal_p(ranks: list[float], n1: int, n2: int, u: float) -> float:
    n = n1 + n2
    ties = _tie_sizes(ranks)
    mean_u = n1 * n2 / 2
    variance = n1 * n2 / 12 * ((n + 1) - sum(t**3 - t for t in ties) / (n * (n - 1)))
    if variance <= 0:
        return 1.0  # every value equal: no evidence of any difference
    z = (abs(u - mean_u) - 0.5) / math.sqrt(variance)  # continuity correction towards the mean
    return min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))


def _tie_sizes(ranks: list[float]) -> list[int]:
    ordered = sorted(ranks)
    sizes, run = [], 1
    for previous, current in pairwise(ordered):
        if current == previous:
            run += 1
        else:
            sizes.append(run)
            run = 1
    sizes.append(run)
    return [s for s in sizes if s > 1]
