"""Latency arithmetic shared by the load generator and the harness: HDR histograms and the open-model timetables.

Pure functions only (no locust, no gevent): scenarios/base.py records with them inside the Locust process and
bench/measure/load.py summarises with them afterwards, so both sides agree on units and precision.

Histograms hold microseconds from 1 µs to 60 s at 3 significant digits (HdrHistogram's usual setting: 0.1%
resolution at any magnitude). They travel as base64 of HdrHistogram's compressed encoding, which every
HdrHistogram implementation reads, and merge without loss.

Coordinated omission: a closed-loop client sends its next request only when the previous one returned, so
when the server stalls the client stops asking and the stall shows up as one slow request instead of the
hundreds that real, independent users would have sent and waited on. The open model fixes the timetable in
advance (wrk2's approach): each request has an intended start, and the latency a user would have seen counts
from it ("corrected"), while the time the server took once the request was sent is kept apart ("service").
The timetable is a seeded Poisson stream by default (PoissonTimetable: users arrive independently, at random) or
evenly spread starts (Timetable); both are pure functions of the run's settings, so the harness can rebuild the
schedule a run sent (bench/measure/selftest.py does, to predict what a server should have done with it).
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, Protocol

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from bench.records.schema import Arrivals, LatencySummary

LOWEST_US = 1
HIGHEST_US = 60_000_000  # 60 s: longer than any request timeout the harness sets
SIGNIFICANT_DIGITS = 3
HISTOGRAM_KINDS = ("service", "corrected")

# A request sent more than this after its intended start counts as late. gevent sleeps on libev timers whose
# epoll backend rounds timeouts up to whole milliseconds, so an on-time wake-up can already be up to ~1 ms
# behind; 2 ms is the smallest threshold that does not count that timer rounding, and anything above it means
# the user was still waiting for its previous response or the generator process had no CPU to send with.
LATE_AFTER_MS = 2.0
# Requests are also counted by completion time in slices this long (recovery timing after a database fault).
OUTCOME_BUCKET_S = 0.1

Histogram = Any  # hdrh ships no type information


# ---------------------------------------------------------------- histograms


def new_histogram() -> Histogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def clamp_us(value_us: float) -> int:
    """A latency as a value the histogram accepts: whole microseconds within its range (it drops others)."""
    return min(max(int(value_us), LOWEST_US), HIGHEST_US)


def histogram_of(values_us: Iterable[float]) -> Histogram:
    histogram = new_histogram()
    for value in values_us:
        histogram.record_value(clamp_us(value))
    return histogram


# HdrHistogram keeps 2 * 10^digits values exact, rounded up to a power of two: 2048 sub-buckets (11 bits) for
# 3 digits. Above that, a value shares its bucket with the values that agree with it in the top 11 bits.
SUB_BUCKET_BITS = math.ceil(math.log2(2 * 10**SIGNIFICANT_DIGITS))


def bucket_floor(value_us: int) -> int:
    """The lowest value in `value_us`'s histogram bucket (HdrHistogram's lowest equivalent value)."""
    shift = value_us.bit_length() - SUB_BUCKET_BITS
    return value_us if shift <= 0 else (value_us >> shift) << shift


class LatencyCounts:
    """An HDR histogram's counts kept in a dict while recording: hdrh records in pure Python at ~1 µs a value,
    this at ~0.2 µs, with the same buckets, so turning it into a histogram loses nothing."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def record(self, value_us: int) -> None:
        """Record a value already clamped to the histogram's range (clamp_us)."""
        key = bucket_floor(value_us)
        self.counts[key] = self.counts.get(key, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def histogram(self) -> Histogram:
        histogram = new_histogram()
        for value, count in self.counts.items():
            histogram.record_value(value, count)
        return histogram

    def encode(self) -> str:
        return encode(self.histogram())


def encode(histogram: Histogram) -> str:
    encoded = histogram.encode()
    return encoded.decode("ascii") if isinstance(encoded, bytes) else str(encoded)


def decode(encoded: str) -> Histogram:
    return HdrHistogram.decode(encoded.encode("ascii"))


def merge(encoded: Sequence[str]) -> str:
    """One histogram holding every count of `encoded` (same bucket layout, so nothing is re-binned)."""
    merged = new_histogram()
    for item in encoded:
        merged.decode_and_add(item.encode("ascii"))
    return encode(merged)


def percentiles_ms(histogram: Histogram, percentiles: Sequence[float]) -> dict[float, float]:
    """Values at the given percentiles (0-100) in milliseconds; 0.0 for an empty histogram."""
    if histogram.get_total_count() == 0:
        return dict.fromkeys(percentiles, 0.0)
    values = histogram.get_percentile_to_value_dict(list(percentiles))
    return {p: values[p] / 1000 for p in percentiles}


def summary_of(histogram: Histogram) -> LatencySummary:
    count = int(histogram.get_total_count())
    at = percentiles_ms(histogram, (50.0, 90.0, 95.0, 99.0, 99.9))
    return LatencySummary(
        count=count,
        mean_ms=float(histogram.get_mean_value()) / 1000 if count else 0.0,
        p50_ms=at[50.0],
        p90_ms=at[90.0],
        p95_ms=at[95.0],
        p99_ms=at[99.0],
        p999_ms=at[99.9],
        max_ms=float(histogram.get_max_value()) / 1000 if count else 0.0,
    )


def summarise(encoded: str) -> LatencySummary:
    return summary_of(decode(encoded))


def nearest_rank_ms(sorted_values_us: Sequence[int], fraction: float) -> float | None:
    """The nearest-rank percentile of an already sorted, small sample (one second of a timeline), in ms."""
    if not sorted_values_us:
        return None
    rank = max(math.ceil(fraction * len(sorted_values_us)), 1)
    return sorted_values_us[rank - 1] / 1000


# ---------------------------------------------------------------- open model: timetable and correction


def van_der_corput(n: int) -> float:
    """n-th point of the base-2 van der Corput sequence (0, 1/2, 1/4, 3/4, 1/8, ...): each new point falls
    in the largest gap the earlier ones left."""
    result, denominator = 0.0, 1.0
    while n:
        denominator *= 2
        n, bit = divmod(n, 2)
        result += bit / denominator
    return result


@cache
def spread_order(count: int) -> tuple[int, ...]:
    """The positions 0..count-1 in an order whose every prefix is spread evenly over the range: the first
    two are half the range apart, the first four a quarter, ... (van der Corput points scaled to count)."""
    order: list[int] = []
    seen: set[int] = set()
    point = 0
    while len(order) < count:
        position = int(van_der_corput(point) * count)
        point += 1
        if position not in seen:
            seen.add(position)
            order.append(position)
    return tuple(order)


@dataclass(frozen=True)
class Timetable:
    """When user `user_index` of `users` starts its tasks so that all users together start `rate` per second.

    Each user starts one task every `users / rate` seconds, at an offset that is a multiple of 1 / rate: with
    exactly `users` users they tick one after the other every 1 / rate seconds. Offsets follow
    `spread_order`, so fewer users (a ramp's first steps) are still spread over the interval rather than
    bunched at its start. Users beyond `users` (a burst's spike: each user keeps this per-user rate, so the
    total rate grows with the users) take the same offsets shifted by a van der Corput fraction of 1 / rate
    per extra layer: the second layer half way between the first layer's starts, the next at the quarters.
    """

    started_at: float  # epoch seconds the timetable counts from (the test start, common to every user)
    user_index: int
    users: int
    rate: float

    def __post_init__(self) -> None:
        if self.users < 1 or self.rate <= 0 or self.user_index < 0:
            raise ValueError(f"a timetable needs users >= 1, rate > 0, user_index >= 0 (got {self})")

    @property
    def interval_s(self) -> float:
        return self.users / self.rate

    @property
    def offset_s(self) -> float:
        layer, index = divmod(self.user_index, self.users)
        return (spread_order(self.users)[index] + van_der_corput(layer)) / self.rate

    def intended_start(self, slot: int) -> float:
        """Epoch seconds at which this user's `slot`-th task is due."""
        return self.started_at + self.offset_s + slot * self.interval_s

    def first_slot_at_or_after(self, at: float) -> int:
        """The slot a user joining at `at` takes: its next one, not a backlog of slots from before it existed."""
        return max(math.ceil((at - self.started_at - self.offset_s) / self.interval_s - 1e-9), 0)


DEFAULT_ARRIVAL_SEED = 1  # a fixed default, so two runs of the same sweep send on the same schedule


@lru_cache(maxsize=64)
def poisson_block(seed: int, layer: int, block: int, count: int, horizon_s: float) -> tuple[float, ...]:
    """`count` arrival offsets (seconds into the block) of one block of one layer's stream: sorted iid uniforms
    over [0, horizon_s), i.e. a Poisson process conditioned on its count. A string seed, because Random hashes
    it with SHA-512 (not Python's per-process hash), so every generator process draws the same blocks."""
    rng = random.Random(f"bench-arrivals/{seed}/{layer}/{block}")
    return tuple(sorted(rng.random() * horizon_s for _ in range(count)))


@dataclass(frozen=True)
class PoissonTimetable:
    """Timetable's Poisson twin: all users of a layer together start tasks as one Poisson stream of `rate`.

    Independent users arrive at random, and the bursts that randomness makes are what builds queues; an evenly
    spread timetable (Timetable) never makes one below capacity. The stream comes in blocks of `horizon_s` (the
    run's warm-up + duration), each holding exactly round(rate * horizon_s) arrivals placed as sorted uniforms:
    inter-arrival times are exponential, yet the count over the run is the rate asked for, not a Poisson draw
    from it. Arrival j of the stream goes to user j mod `users` (round robin, as in Timetable), so the users
    share it without overlap, and a server sees the whole Poisson stream as long as each user is free by its
    next arrival (the gap between a user's arrivals averages users / rate). Users beyond `users` (a burst's
    spike) form further layers, each an independent stream of the same rate.
    """

    started_at: float  # epoch seconds the timetable counts from (the test start, common to every user)
    user_index: int
    users: int
    rate: float
    horizon_s: float
    seed: int = DEFAULT_ARRIVAL_SEED

    def __post_init__(self) -> None:
        if self.users < 1 or self.rate <= 0 or self.user_index < 0 or self.horizon_s <= 0:
            raise ValueError(f"a timetable needs users >= 1, rate > 0, user_index >= 0, horizon_s > 0 (got {self})")

    @property
    def per_block(self) -> int:
        return max(1, round(self.rate * self.horizon_s))

    def _block(self, block: int) -> tuple[float, ...]:
        return poisson_block(self.seed, self.user_index // self.users, block, self.per_block, self.horizon_s)

    def intended_start(self, slot: int) -> float:
        """Epoch seconds at which this user's `slot`-th task is due."""
        block, position = divmod(self.user_index % self.users + slot * self.users, self.per_block)
        return self.started_at + block * self.horizon_s + self._block(block)[position]

    def first_slot_at_or_after(self, at: float) -> int:
        """The slot a user joining at `at` takes: its next one, not a backlog of slots from before it existed."""
        offset = at - self.started_at
        if offset <= 0:
            return 0
        block = int(offset // self.horizon_s)
        # The stream's first arrival at or after `at`; every later one is later too (blocks follow each other).
        first = block * self.per_block + bisect.bisect_left(self._block(block), offset - block * self.horizon_s)
        return max(-((self.user_index % self.users - first) // self.users), 0)  # ceil((first - index) / users)


class Schedule(Protocol):
    """What a user of the open model asks its timetable (Timetable or PoissonTimetable)."""

    def intended_start(self, slot: int) -> float: ...
    def first_slot_at_or_after(self, at: float) -> int: ...


def open_timetable(
    arrivals: Arrivals,
    started_at: float,
    user_index: int,
    users: int,
    rate: float,
    *,
    horizon_s: float,
    seed: int = DEFAULT_ARRIVAL_SEED,
) -> Schedule:
    """User `user_index`'s timetable under the run's arrival process."""
    if arrivals == "poisson":
        return PoissonTimetable(started_at, user_index, users, rate, horizon_s, seed)
    return Timetable(started_at, user_index, users, rate)


def user_schedules(
    arrivals: Arrivals, users: int, rate: float, *, horizon_s: float, until_s: float, seed: int = DEFAULT_ARRIVAL_SEED
) -> list[list[float]]:
    """Each of users 0..users-1's (one layer's) intended starts before `until_s`, in seconds from the test start:
    the schedules the generator follows, for predicting what a server should have done with them."""
    schedules: list[list[float]] = []
    for user in range(users):
        timetable = open_timetable(arrivals, 0.0, user, users, rate, horizon_s=horizon_s, seed=seed)
        schedule: list[float] = []
        while (start := timetable.intended_start(len(schedule))) < until_s:
            schedule.append(start)
        schedules.append(schedule)
    return schedules


def arrival_offsets(
    arrivals: Arrivals, users: int, rate: float, *, horizon_s: float, until_s: float, seed: int = DEFAULT_ARRIVAL_SEED
) -> list[float]:
    """Every user's intended starts merged and sorted: the stream a server sees when no user is ever busy."""
    schedules = user_schedules(arrivals, users, rate, horizon_s=horizon_s, until_s=until_s, seed=seed)
    return sorted(start for schedule in schedules for start in schedule)


def wait_before(intended_start: float, now: float) -> float:
    """Seconds to sleep until a task is due; 0 when it is already due or overdue (then it is sent at once)."""
    return max(intended_start - now, 0.0)


def lateness_ms(intended_start: float, sent_at: float) -> float:
    return max(sent_at - intended_start, 0.0) * 1000


def is_late(intended_start: float, sent_at: float) -> bool:
    return lateness_ms(intended_start, sent_at) > LATE_AFTER_MS


def corrected_latency_us(intended_start: float | None, sent_at: float, service_us: int) -> tuple[int, bool]:
    """What a user whose request was due at `intended_start` waited (the delay before it could be sent plus
    the service time, in histogram range), and whether it was late. Without an intended start (a task's
    later requests, the closed model) it is the service time; a request sent a little early (a timer firing
    ahead) is not credited for it. One function, not two, because it runs for every request."""
    if intended_start is None:
        return service_us, False
    delay_s = sent_at - intended_start
    if delay_s <= 0:
        return service_us, False
    return clamp_us(service_us + delay_s * 1_000_000), delay_s * 1000 > LATE_AFTER_MS
