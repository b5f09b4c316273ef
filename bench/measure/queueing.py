"""Queueing theory's known answers for one FIFO server with a fixed service time (what `bench selftest` checks).

Three loads, three answers (S the service time, λ the arrival rate, rho = λS the utilisation):
- closed loop, N users and no think time: the server is never idle and every request waits for the N - 1
  ahead of it, so throughput is 1/S and every latency is N·S (Little's law: N = throughput x latency).
- Poisson arrivals (M/D/1): the mean wait is rho·S / (2(1 - rho)) (Pollaczek-Khinchine); the waiting-time
  distribution is Erlang's, in Crommelin's form, computed exactly here (`md1_wait_cdf`).
- evenly spread arrivals below capacity (D/D/1): each request finds the server free; latency is S.
Latency is the response time: wait + S.

Why the selftest gates on `same_schedule`, not on the theory: a run of a few seconds holds a few hundred
requests, and its p99 is then one of its few slowest, which swings by tens of percent from one Poisson sample
to the next however exact the harness is. The theory describes the average over all samples; the harness is
only to be judged on the sample it actually sent. `same_schedule` replays that sample (the generator's seeded
arrival times, every one from the test start so the queue at the start of the measured period is right)
through a FIFO server of the measured service time (the Lindley recursion, with each user's connection
busy until its response is back) and reads the requests that completed inside the measured period, as the
load generator does. What is left between it and the measurement is the harness's own error, which is what
the selftest is about. The theory is printed beside it for the reader. The replay takes each request's own
service time as the server measured it: on a busy machine the server's service is not quite fixed (a thread
waiting for a CPU), and that is the server's doing, not a measurement error. Two things stay below what any
generator can resolve, so the replay gives bands for them (Replay.bands): which of the requests completing
within milliseconds of the window's edges fall inside it, and so the percentile ranks.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext


@dataclass(frozen=True)
class Prediction:
    """What a load should measure: completions per second and the response time's mean and percentiles."""

    requests_per_s: float
    mean_ms: float
    p50_ms: float
    p99_ms: float


# ---------------------------------------------------------------- closed loop and D/D/1


def closed_loop(users: int, service_s: float) -> Prediction:
    """N users with no think time on one FIFO server: always N in the system, so 1/S per second and N·S each."""
    latency_ms = users * service_s * 1000
    return Prediction(1 / service_s, latency_ms, latency_ms, latency_ms)


def evenly_spread(rate: float, service_s: float) -> Prediction:
    """D/D/1 below capacity: the previous request is done before the next one comes, so nobody waits."""
    if rate * service_s >= 1:
        raise ValueError(f"evenly spread arrivals at {rate:g}/s overload a {service_s * 1000:g} ms server")
    return Prediction(rate, service_s * 1000, service_s * 1000, service_s * 1000)


# ---------------------------------------------------------------- M/D/1


def md1_mean_wait_s(rho: float, service_s: float) -> float:
    """Pollaczek-Khinchine for a fixed service time: rho·S / (2(1 - rho))."""
    _check_load(rho)
    return rho * service_s / (2 * (1 - rho))


def md1_wait_cdf(t_s: float, rho: float, service_s: float) -> float:
    """P(W <= t) for M/D/1 FIFO, Erlang's formula as Crommelin wrote it (u = t/S, λ = rho/S):

        P(W <= t) = (1 - rho) Σ_{k=0}^{⌊u⌋} (-rho(u - k))^k / k! · e^{rho(u - k)}

    The terms alternate in sign and grow like e^{2rho·u} while the sum stays below 1, so in floating point the sum
    loses every digit by u ≈ 40 at rho = 0.8. It is summed in decimal arithmetic with enough digits to spare.
    """
    return 0.0 if t_s < 0 else min(float(_md1_cdf(t_s / service_s, rho)), 1.0)


def md1_wait_tail(t_s: float, rho: float, service_s: float) -> float:
    """P(W > t), from the same exact sum: 1 - md1_wait_cdf in floats would keep no digit of a tail of 1e-16."""
    return 1.0 if t_s < 0 else max(float(1 - _md1_cdf(t_s / service_s, rho)), 0.0)


def _md1_cdf(u: float, rho: float) -> Decimal:
    _check_load(rho)
    with localcontext() as context:
        context.prec = 30 + math.ceil(2 * rho * u / math.log(10))  # digits lost to cancellation, and 30 kept
        r, du = Decimal(rho), Decimal(u)
        total = (r * du).exp()  # k = 0 (Decimal refuses 0 ** 0 when u is whole)
        factorial = Decimal(1)
        for k in range(1, math.floor(u) + 1):
            factorial *= k
            x = r * (du - k)
            total += (-x) ** k / factorial * x.exp()
        return +((1 - r) * total)  # unary plus: rounded to the context's digits before it is left


def md1_wait_quantile_s(q: float, rho: float, service_s: float) -> float:
    """The q-quantile of the M/D/1 wait (0 for q <= 1 - rho: that share finds the server idle)."""
    _check_load(rho)
    if not 0 <= q < 1:
        raise ValueError(f"a quantile needs 0 <= q < 1 (got {q})")
    if q <= 1 - rho:
        return 0.0
    low, high = 0.0, service_s
    while md1_wait_cdf(high, rho, service_s) < q:
        low, high = high, 2 * high
    for _ in range(60):  # bisection: the CDF is continuous and increasing above its atom at 0
        middle = (low + high) / 2
        low, high = (middle, high) if md1_wait_cdf(middle, rho, service_s) < q else (low, middle)
    return (low + high) / 2


def md1(rate: float, service_s: float) -> Prediction:
    """Poisson arrivals at `rate` on a FIFO server of fixed `service_s`: response time = wait + S."""
    rho = rate * service_s
    return Prediction(
        requests_per_s=rate,
        mean_ms=(md1_mean_wait_s(rho, service_s) + service_s) * 1000,
        p50_ms=(md1_wait_quantile_s(0.50, rho, service_s) + service_s) * 1000,
        p99_ms=(md1_wait_quantile_s(0.99, rho, service_s) + service_s) * 1000,
    )


def _check_load(rho: float) -> None:
    if not 0 < rho < 1:
        raise ValueError(f"a stable queue needs 0 < rho < 1 (got rho = {rho:g})")


# ---------------------------------------------------------------- the schedule that was sent


ServiceTimes = float | Sequence[float]  # one fixed time, or each request's own in the order served


def fifo_completions(arrivals_s: Sequence[float], service_s: ServiceTimes) -> list[float]:
    """When each request (arrivals sorted) leaves a FIFO server (Lindley's recursion: each starts when it
    arrives or when the one before it leaves, whichever is later). With a list of service times, the n-th
    request takes the n-th (FIFO: the n-th to arrive is the n-th served); requests beyond it take their mean."""
    times = [service_s] if isinstance(service_s, float | int) else list(service_s)
    if not times or min(times) <= 0:
        raise ValueError("service times must be above 0")
    beyond = math.fsum(times) / len(times)
    completions: list[float] = []
    free_at = -math.inf
    for index, arrival in enumerate(arrivals_s):
        service = beyond if isinstance(service_s, float | int) or index >= len(times) else times[index]
        free_at = max(arrival, free_at) + service
        completions.append(free_at)
    return completions


def open_model_completions(
    schedules_s: Sequence[Sequence[float]], service_s: ServiceTimes
) -> list[tuple[float, float]]:
    """(intended start, completion) of every request of users who each follow their own schedule on one
    connection, as the open model's users do: a user sends when its request is due or, when its previous one
    has not come back yet, the moment it does (the wait then counts in its latency: the intended-start
    correction). The server serves in the order requests are sent, the n-th taking the n-th service time.
    With users always free by their next due time this is fifo_completions over the merged schedule."""
    times = [service_s] if isinstance(service_s, float | int) else list(service_s)
    if not times or min(times) <= 0:
        raise ValueError("service times must be above 0")
    beyond = math.fsum(times) / len(times)
    # Sends in time order: a user's next send is never before its last completion, which is never before the
    # send being served, so nothing pushed can precede what was popped.
    sends = [(schedule[0], schedule[0], user, 0) for user, schedule in enumerate(schedules_s) if schedule]
    heapq.heapify(sends)
    done: list[tuple[float, float]] = []
    free_at = -math.inf
    while sends:
        sent, intended, user, slot = heapq.heappop(sends)
        service = times[len(done)] if len(done) < len(times) and not isinstance(service_s, float | int) else beyond
        free_at = max(sent, free_at) + service
        done.append((intended, free_at))
        schedule = schedules_s[user]
        if slot + 1 < len(schedule):
            heapq.heappush(sends, (max(schedule[slot + 1], free_at), schedule[slot + 1], user, slot + 1))
    return done


@dataclass(frozen=True)
class Replay:
    """The response times (sorted) of the replayed requests that completed in a measured window."""

    responses_s: tuple[float, ...]
    window_s: float

    def prediction(self) -> Prediction:
        return Prediction(
            requests_per_s=len(self.responses_s) / self.window_s,
            mean_ms=math.fsum(self.responses_s) / len(self.responses_s) * 1000,
            p50_ms=nearest_rank(self.responses_s, 0.50) * 1000,
            p99_ms=nearest_rank(self.responses_s, 0.99) * 1000,
        )

    def bands(self, slack: int) -> dict[str, tuple[float, float]]:
        """Each figure's range when up to `slack` requests more or fewer fall inside the window: whether one
        completing within milliseconds of an edge is in or out is below any generator's timing resolution, and
        in a short run one rank can move a percentile by tens of ms (Poisson samples cluster in busy periods).
        The mean moves little with one request, so it keeps its value."""
        count = len(self.responses_s)
        point = self.prediction()

        def around(q: float) -> tuple[float, float]:
            rank = max(int(q * count + 0.5), 1)
            low, high = max(rank - slack, 1), min(rank + slack, count)
            return self.responses_s[low - 1] * 1000, self.responses_s[high - 1] * 1000

        return {
            "requests_per_s": (max(count - slack, 0) / self.window_s, (count + slack) / self.window_s),
            "mean_ms": (point.mean_ms, point.mean_ms),
            "p50_ms": around(0.50),
            "p99_ms": around(0.99),
        }


def replay_schedule(
    schedules_s: Sequence[Sequence[float]], service_s: ServiceTimes, window_start_s: float, window_end_s: float
) -> Replay:
    """What a FIFO server does with exactly these users' schedules (seconds from the test start, the warm-up
    included; see open_model_completions) at these service times, read as the load generator reads it: the
    latency from each intended start of the requests completing within the window."""
    responses_s = sorted(
        completed - intended
        for intended, completed in open_model_completions(schedules_s, service_s)
        if window_start_s <= completed < window_end_s
    )
    if not responses_s or window_end_s <= window_start_s:
        raise ValueError("no request of the schedule completes in the measured window")
    return Replay(tuple(responses_s), window_end_s - window_start_s)


def same_schedule(
    schedules_s: Sequence[Sequence[float]], service_s: ServiceTimes, window_start_s: float, window_end_s: float
) -> Prediction:
    """replay_schedule's figures."""
    return replay_schedule(schedules_s, service_s, window_start_s, window_end_s).prediction()


def nearest_rank(sorted_values: Sequence[float], q: float) -> float:
    """The percentile as HdrHistogram reports it: the value at rank round(q·n), at least the first."""
    rank = max(int(q * len(sorted_values) + 0.5), 1)
    return sorted_values[min(rank, len(sorted_values)) - 1]
