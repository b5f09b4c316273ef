"""bench/measure/queueing.py against known answers: Little's law, Erlang/Crommelin's M/D/1 waiting times (their closed
forms, the Pollaczek-Khinchine and Takacs moments, the exponential tail), D/D/1, and Lindley's recursion."""

from __future__ import annotations

import math
import random

import pytest

from bench.measure.queueing import (
    closed_loop,
    evenly_spread,
    fifo_completions,
    md1,
    md1_mean_wait_s,
    md1_wait_cdf,
    md1_wait_quantile_s,
    md1_wait_tail,
    nearest_rank,
    open_model_completions,
    replay_schedule,
    same_schedule,
)

S = 0.02  # 20 ms, as the selftest serves


def test_closed_loop_is_littles_law() -> None:
    answer = closed_loop(8, S)
    assert answer.requests_per_s == pytest.approx(50)
    assert answer.mean_ms == answer.p50_ms == answer.p99_ms == pytest.approx(160)


def test_evenly_spread_arrivals_below_capacity_never_wait() -> None:
    answer = evenly_spread(40, S)
    assert (answer.requests_per_s, answer.mean_ms, answer.p99_ms) == pytest.approx((40, 20, 20))
    with pytest.raises(ValueError, match="overload"):
        evenly_spread(50, S)


@pytest.mark.parametrize("rho", [0.3, 0.5, 0.8, 0.95])
def test_the_share_that_does_not_wait_is_one_minus_rho(rho: float) -> None:
    assert md1_wait_cdf(0.0, rho, S) == pytest.approx(1 - rho, rel=1e-12)
    assert md1_wait_cdf(-1.0, rho, S) == 0.0
    assert md1_wait_quantile_s(1 - rho - 1e-9, rho, S) == 0.0
    assert md1_wait_quantile_s(1 - rho + 1e-6, rho, S) > 0


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_within_one_service_time_the_cdf_is_erlangs_closed_form(rho: float) -> None:
    """For 0 <= t <= S only the first term remains: P(W <= t) = (1 - rho) e^(lambda t)."""
    for fraction in (0.1, 0.5, 0.99, 1.0):
        assert md1_wait_cdf(fraction * S, rho, S) == pytest.approx((1 - rho) * math.exp(rho * fraction), rel=1e-12)
    assert md1_wait_cdf(S, 0.5, S) == pytest.approx(0.824360635350064, rel=1e-12)  # 0.5 e^0.5


def _integral(function: object, upper: float, steps_per_unit: int = 12) -> float:
    """Simpson's rule on each [k, k+1]: the CDF is analytic inside each, its derivative kinks at whole multiples
    of S, so pieces that end there converge fast."""
    total = 0.0
    for k in range(math.ceil(upper)):
        h = 1 / steps_per_unit
        values = [function(k + i * h) for i in range(steps_per_unit + 1)]  # type: ignore[operator]
        total += h / 3 * (values[0] + values[-1] + 4 * sum(values[1:-1:2]) + 2 * sum(values[2:-1:2]))
    return total


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_the_cdfs_moments_are_pollaczek_khinchine_and_takacs(rho: float) -> None:
    """E[W] = rho S / (2(1 - rho)); E[W^2] = 2 E[W]^2 + lambda E[S^3] / (3(1 - rho)), in units of S here."""
    tail = 60 if rho > 0.6 else 30  # beyond it, 1 - F adds less than 1e-10 to either moment
    mean = _integral(lambda u: 1 - md1_wait_cdf(u, rho, 1.0), tail)
    second = _integral(lambda u: 2 * u * (1 - md1_wait_cdf(u, rho, 1.0)), tail)
    assert mean == pytest.approx(md1_mean_wait_s(rho, 1.0), rel=1e-9)
    assert mean == pytest.approx(rho / (2 * (1 - rho)), rel=1e-9)
    assert second == pytest.approx(2 * mean**2 + rho / (3 * (1 - rho)), rel=1e-9)


def test_far_in_the_tail_the_cdf_keeps_its_digits_and_decays_at_the_known_rate() -> None:
    """P(W > t) ~ C e^(-theta t), theta the root of rho (e^theta - 1) = theta: summed in floats, Crommelin's
    alternating terms would have lost every digit long before u = 80."""
    rho = 0.8
    theta = 1.0
    for _ in range(200):  # fixed point of theta = ln(1 + theta / rho), from above
        theta = math.log(1 + theta / rho)
    tail = [md1_wait_tail(u, rho, 1.0) for u in (40.0, 41.0, 80.0, 81.0)]
    assert all(0 < value < 1e-6 for value in tail)
    assert md1_wait_tail(40.0, rho, 1.0) == pytest.approx(1 - md1_wait_cdf(40.0, rho, 1.0), rel=1e-4)
    assert tail[1] / tail[0] == pytest.approx(math.exp(-theta), rel=1e-6)
    assert tail[3] / tail[2] == pytest.approx(math.exp(-theta), rel=1e-6)


def test_quantiles_invert_the_cdf() -> None:
    for rho, q in ((0.5, 0.99), (0.8, 0.5), (0.8, 0.99), (0.8, 0.999)):
        wait = md1_wait_quantile_s(q, rho, S)
        assert md1_wait_cdf(wait, rho, S) == pytest.approx(q, abs=1e-9)
    with pytest.raises(ValueError, match="quantile"):
        md1_wait_quantile_s(1.0, 0.5, S)
    with pytest.raises(ValueError, match="stable"):
        md1_wait_cdf(0.1, 1.0, S)


def test_m_d_1_response_times_agree_with_a_long_simulation() -> None:
    """An independent check of the quantiles: a million seeded Poisson arrivals through Lindley's recursion."""
    rho = 0.8
    rng = random.Random(7)
    now, arrivals = 0.0, []
    for _ in range(1_000_000):
        now += rng.expovariate(rho)  # S = 1
        arrivals.append(now)
    waits = sorted(
        done - arrival - 1.0 for arrival, done in zip(arrivals, fifo_completions(arrivals, 1.0), strict=True)
    )
    answer = md1(rho, 1.0)
    assert nearest_rank(waits, 0.50) + 1 == pytest.approx(answer.p50_ms / 1000, rel=0.02)
    assert nearest_rank(waits, 0.99) + 1 == pytest.approx(answer.p99_ms / 1000, rel=0.02)
    assert math.fsum(waits) / len(waits) + 1 == pytest.approx(answer.mean_ms / 1000, rel=0.02)
    assert answer.p99_ms / 1000 == pytest.approx(11.356, abs=0.001)  # wait p99 10.356 S, + S


def test_lindley_recursion_queues_behind_the_one_in_service() -> None:
    assert fifo_completions([0.0, 0.005, 0.1], S) == pytest.approx([0.02, 0.04, 0.12])
    # Each request its own service time, in the order served; those beyond the list take their mean.
    assert fifo_completions([0.0, 0.0, 0.0], [0.01, 0.03]) == pytest.approx([0.01, 0.04, 0.06])
    with pytest.raises(ValueError, match="above 0"):
        fifo_completions([0.0], [])


def test_same_schedule_reads_only_what_completes_in_the_window() -> None:
    # Six users, one request each: a burst of four in the warm-up, then two close together.
    schedules = [[0.0], [0.0], [0.0], [0.0], [1.0], [1.01]]
    answer = same_schedule(schedules, S, 0.05, 2.0)
    # Completions: 0.02, 0.04, 0.06, 0.08 (the last two in the window), 1.02, 1.04.
    assert answer.requests_per_s == pytest.approx(4 / 1.95)
    assert answer.mean_ms == pytest.approx((60 + 80 + 20 + 30) / 4)
    assert answer.p50_ms == pytest.approx(30)  # rank round(0.5 * 4) = 2 of 20, 30, 60, 80
    assert answer.p99_ms == pytest.approx(80)
    with pytest.raises(ValueError, match="no request"):
        same_schedule(schedules, S, 5.0, 6.0)


def test_a_user_still_waiting_sends_late_and_its_latency_counts_from_the_intended_start() -> None:
    """One connection due every 10 ms on a 20 ms server: each request waits for its own user's previous one
    (the backlog the open model's correction must show), not only for the server."""
    completions = open_model_completions([[0.0, 0.01, 0.02]], S)
    assert flat(completions) == pytest.approx([0.0, 0.02, 0.01, 0.04, 0.02, 0.06])
    assert same_schedule([[0.0, 0.01, 0.02]], S, 0.0, 1.0).mean_ms == pytest.approx((20 + 30 + 40) / 3)
    # Two users: the server takes requests in the order they are sent; user 1's waits only for the server.
    two = open_model_completions([[0.0, 0.001], [0.005]], [0.02, 0.03, 0.01])
    assert flat(two) == pytest.approx([0.0, 0.02, 0.005, 0.05, 0.001, 0.06])


def flat(pairs: list[tuple[float, float]]) -> list[float]:
    return [value for pair in pairs for value in pair]


def test_with_users_always_free_the_replay_is_lindleys_recursion_over_the_merged_stream() -> None:
    rng = random.Random(3)
    schedules = [sorted(rng.uniform(0, 10) for _ in range(5)) for _ in range(40)]  # gaps far above S
    merged = sorted(start for schedule in schedules for start in schedule)
    replay = sorted(open_model_completions(schedules, S))
    assert [done for _, done in replay] == pytest.approx(fifo_completions(merged, S))


def test_nearest_rank_is_hdrhistograms_percentile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (nearest_rank(values, 0.5), nearest_rank(values, 0.99), nearest_rank(values, 0.0)) == (50, 99, 1)
    assert nearest_rank([5.0, 6.0, 7.0], 0.99) == 7.0


def test_bands_cover_a_few_requests_more_or_fewer_at_the_windows_edges() -> None:
    schedules = [[k * 0.1] for k in range(100)]  # 100 users, one request each, 100 ms apart: no waiting
    replay = replay_schedule(schedules, [0.001 * (k + 1) for k in range(100)], 0.0, 20.0)  # 1, 2, ... 100 ms
    bands = replay.bands(2)
    assert replay.prediction().p50_ms == pytest.approx(50) and bands["p50_ms"] == pytest.approx((48, 52))
    assert bands["p99_ms"] == pytest.approx((97, 100))  # clamped at the slowest
    assert bands["requests_per_s"] == pytest.approx((98 / 20, 102 / 20))
    assert bands["mean_ms"] == pytest.approx((50.5, 50.5))  # the mean keeps its value
    assert replay.bands(0)["p50_ms"] == pytest.approx((50, 50))
