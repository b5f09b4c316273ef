"""`bench selftest`: the harness measures a server whose answers queueing theory knows, and must find them.

The server (bench/measure/selftest_target.py) is one FIFO queue with a fixed service time S. It is driven through the
harness's own load path (bench.measure.load.run_load, real Locust, the open model's timetables and intended-start
correction), under five loads: a closed loop of 8 users, Poisson arrivals at rho = 0.5 and 0.8 and evenly
spread arrivals at rho = 0.8 on 50 connections (each always free by its next arrival, so the server sees the
whole stream), and Poisson arrivals at rho = 0.5 on 2 connections, where a user is often still waiting for
its last response when the next is due: the load that proves the intended-start correction (with many
connections, corrected and service latency differ only by the generator's own lateness). Each measured
figure is compared with what a FIFO server of the measured S does with the very schedules the generator sent
(bench.measure.queueing.same_schedule, which says why that, and not the theory, is the gate); the theory (Little's
law, M/D/1, D/D/1; none for the 2 connections) is shown beside it. A fresh server per load, so each starts
with an empty queue and reports the service times of its own requests.
"""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
import time
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.measure.load import LoadError, LoadResult, LoadSettings, run_load
from bench.measure.queueing import Prediction, closed_loop, evenly_spread, md1, replay_schedule
from bench.measure.selftest_target import HOST
from bench.measure.server import fetch_json
from bench.records.errors import BenchError
from bench.records.latency import DEFAULT_ARRIVAL_SEED, user_schedules
from bench.records.measurements import store_measurement
from bench.records.schema import Arrivals, LoadModel
from bench.records.selftest import (
    FIGURES,
    LATENCY_FLOOR_MS,
    LATENCY_TOLERANCE,
    RANK_SLACK,
    THROUGHPUT_TOLERANCE,
    Figures,
    SelftestCase,
    SelftestRecord,
)
from bench.system.environment import PROJECT_ROOT, collect_environment, machine_label
from bench.system.processes import (
    child_environment,
    free_port,
    log_tail,
    python_executable,
    sigterm_as_interrupt,
    start_child,
    stop_child,
)

SELFTEST_DIR = "selftest"
SCENARIO = "selftest_work"
TARGET_START_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class SelftestOptions:
    results_dir: Path
    # 40 ms. The harness's own error per request is absolute (timer rounding, and on a busy machine each process
    # waiting for a CPU when it wakes: about 0.5 ms idle, 2-3 ms with both cores saturated), so against 10 % of
    # the figures a longer S is more robust; a shorter one gives more requests per second of load. At 40 ms an
    # open load still has 100-160 requests in 8 s, so its p99 is not just its slowest request.
    service_ms: float = 40.0
    warmup_s: float = 2.0  # the queue settles and every connection is open before the measured period
    duration_s: float = 8.0
    closed_users: int = 8
    # Many connections per rate: a user's arrivals are on average users / rate apart, so each connection is
    # free again long before its next one and the server sees the whole Poisson stream, not a thinned one.
    open_users: int = 50
    arrival_seed: int = DEFAULT_ARRIVAL_SEED


QUICK_WARMUP_S, QUICK_DURATION_S = 1.0, 3.0  # about 35 s in all, for CI


def quick_options(options: SelftestOptions) -> SelftestOptions:
    return replace(options, warmup_s=QUICK_WARMUP_S, duration_s=QUICK_DURATION_S)


@dataclass(frozen=True)
class Load:
    name: str
    load_model: LoadModel
    arrivals: Arrivals | None
    users: int
    utilisation: float | None  # open model: the rho asked for, from the nominal service time


# Connections of the load that checks the intended-start correction: so few that a user is often still waiting
# for its last response when its next request is due, and that wait must show in its latency.
FEW_CONNECTIONS = 2


def planned_loads(options: SelftestOptions) -> list[Load]:
    n = options.closed_users
    return [
        Load(f"closed, {n} users", "closed", None, n, None),
        Load("open, Poisson ρ=0.5", "open", "poisson", options.open_users, 0.5),
        Load("open, Poisson ρ=0.8", "open", "poisson", options.open_users, 0.8),
        Load("open, uniform ρ=0.8", "open", "uniform", options.open_users, 0.8),
        Load(f"open, Poisson ρ=0.5, {FEW_CONNECTIONS} conns", "open", "poisson", FEW_CONNECTIONS, 0.5),
    ]


CaseDone = Callable[[SelftestCase], None]


def run_selftest(options: SelftestOptions, on_case: CaseDone | None = None) -> SelftestRecord:
    """Measure every planned load, store the record under results/selftest/ and return it. BenchError (one
    line) on bad options or when the server or the load generator fails; KeyboardInterrupt after stopping both."""
    _check(options)
    machine = machine_label(collect_environment())
    cases: list[SelftestCase] = []
    with sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="bench-selftest-") as work:
        for number, load in enumerate(planned_loads(options), start=1):
            case = measure_case(load, options, Path(work) / f"load-{number}")
            cases.append(case)
            if on_case is not None:
                on_case(case)
    record = SelftestRecord(
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=machine,
        service_ms=options.service_ms,
        warmup_s=options.warmup_s,
        duration_s=options.duration_s,
        arrival_seed=options.arrival_seed,
        cases=cases,
        passed=all(case.passed for case in cases),
    )
    store_measurement(options.results_dir / SELFTEST_DIR, record)
    return record


def _check(options: SelftestOptions) -> None:
    if not 1 <= options.service_ms <= 1000:
        raise BenchError(f"invalid --service-ms: {options.service_ms:g} (between 1 and 1000)")
    if options.duration_s < 2 or options.duration_s > 600:
        raise BenchError(f"invalid --duration: {options.duration_s:g} (between 2 and 600 seconds)")
    if options.warmup_s < 0.5 or options.warmup_s > 60:
        raise BenchError(f"invalid --warmup: {options.warmup_s:g} (between 0.5 and 60 seconds: the queue must settle)")


def measure_case(load: Load, options: SelftestOptions, work_dir: Path) -> SelftestCase:
    """One load on a fresh server: measured, predicted from its own schedule, and judged."""
    rate = load.utilisation / (options.service_ms / 1000) if load.utilisation is not None else None
    settings = LoadSettings(
        scenario=SCENARIO,
        users=load.users,
        spawn_rate=float(load.users * 20),  # every user within 50 ms, well before the warm-up ends
        warmup_s=options.warmup_s,
        duration_s=options.duration_s,
        dataset_rows=1,
        load_model=load.load_model,
        rate=rate,
        arrivals=load.arrivals or "poisson",
        arrival_seed=options.arrival_seed,
    )
    with running_target(options.service_ms, work_dir / "target.log") as base_url:
        try:
            result = run_load(base_url, settings, work_dir / "locust")
        except LoadError as exc:
            raise BenchError(f"selftest ({load.name}): {exc}") from None
        stats = _service_stats(base_url)
    service_s = float(stats["mean_ms"]) / 1000
    served_s = [float(ms) / 1000 for ms in stats["service_ms"]]
    predicted, bands, theory = predictions(load, rate, served_s, result, options)
    metrics = result.metrics
    measured = Figures(
        requests_per_s=metrics.requests_per_s,
        mean_ms=metrics.latency_ms_mean,  # corrected latency in the open model: from each intended start
        p50_ms=metrics.latency_ms_p50,
        p99_ms=metrics.latency_ms_p99,
    )
    judged = {name: judge(name, getattr(measured, name), bands[name]) for name in FIGURES}
    errors = {name: error for name, (error, _) in judged.items()}
    failed = [name for name, (_, within) in judged.items() if not within]
    if metrics.failures:
        failed.append("failures")
    return SelftestCase(
        name=load.name,
        load_model=load.load_model,
        arrivals=load.arrivals,
        users=load.users,
        rate=rate,
        utilisation=rate * service_s if rate is not None else None,
        service_ms=service_s * 1000,
        service_ms_max=float(stats["max_ms"]),
        service_count=int(stats["count"]),
        requests=metrics.requests,
        late_requests=metrics.late_requests,
        failures=metrics.failures,
        measured=measured,
        predicted=_figures(predicted),
        predicted_band=bands,
        theory=_figures(theory) if theory is not None else None,
        errors=errors,
        failed=failed,
        passed=not failed,
    )


def predictions(
    load: Load, rate: float | None, served_s: list[float], result: LoadResult, options: SelftestOptions
) -> tuple[Prediction, dict[str, tuple[float, float]], Prediction | None]:
    """(same-schedule prediction, its bands, theory) for a load: the replay at each request's service time as
    the server measured it (in the order served), the theory at their mean. No theory for users too few to
    carry the load: what they see is not M/D/1 (their own backlog adds to it), and only the replay knows it."""
    service_s = math.fsum(served_s) / len(served_s)
    # The measured period on the generator's clock, which its timetable counts from too.
    start_s = result.measure_started_at - result.started_at
    end_s = result.measure_stopped_at - result.started_at
    if load.load_model == "closed" or rate is None or load.arrivals is None:
        answer = closed_loop(load.users, service_s)  # no schedule: the answer is the same for every sample
        count = (end_s - start_s) * answer.requests_per_s
        bands = {name: (getattr(answer, name), getattr(answer, name)) for name in FIGURES}
        bands["requests_per_s"] = ((count - RANK_SLACK) / (end_s - start_s), (count + RANK_SLACK) / (end_s - start_s))
        return answer, bands, answer
    horizon_s = options.warmup_s + options.duration_s  # as scenarios/base.py builds its timetable
    schedules = user_schedules(
        load.arrivals, load.users, rate, horizon_s=horizon_s, until_s=end_s, seed=options.arrival_seed
    )
    replay = replay_schedule(schedules, served_s, start_s, end_s)
    if load.users < options.open_users:
        return replay.prediction(), replay.bands(RANK_SLACK), None
    theory = md1(rate, service_s) if load.arrivals == "poisson" else evenly_spread(rate, service_s)
    return replay.prediction(), replay.bands(RANK_SLACK), theory


def judge(figure: str, measured: float, band: tuple[float, float]) -> tuple[float, bool]:
    """(relative distance from the predicted band, 0 inside it; whether that is within tolerance)."""
    low, high = band
    if low <= measured <= high:
        return 0.0, True
    edge = low if measured < low else high
    error = (measured - edge) / edge if edge else float("inf")
    if figure == "requests_per_s":
        return error, abs(error) <= THROUGHPUT_TOLERANCE
    return error, abs(measured - edge) <= max(LATENCY_TOLERANCE * edge, LATENCY_FLOOR_MS)


def _figures(prediction: Prediction) -> Figures:
    return Figures(
        requests_per_s=prediction.requests_per_s,
        mean_ms=prediction.mean_ms,
        p50_ms=prediction.p50_ms,
        p99_ms=prediction.p99_ms,
    )


def _service_stats(base_url: str) -> dict[str, Any]:
    try:
        stats: dict[str, Any] = fetch_json(f"{base_url}/stats", timeout_s=5.0)
    except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as exc:
        raise BenchError(f"selftest: the target server did not report its service times: {exc}") from None
    if not stats.get("count"):
        raise BenchError("selftest: the target server served no request")
    return stats


# ---------------------------------------------------------------- the target server as a child


@contextmanager
def running_target(service_ms: float, log_path: Path) -> Iterator[str]:
    """Start bench/measure/selftest_target.py on a free 127.0.0.1 port, wait until it answers, and stop it when the
    block ends, whatever ends it (an error, Ctrl-C). Yields its base URL."""
    port = free_port(HOST)
    argv = [
        python_executable(), "-m", "bench.measure.selftest_target",
        "--port", str(port), "--service-ms", f"{service_ms:g}",
    ]  # fmt: skip
    process = start_child(argv, env=child_environment({}), log_path=log_path, cwd=PROJECT_ROOT)
    try:
        base_url = f"http://{HOST}:{port}"
        _wait_until_up(process, base_url, log_path)
        yield base_url
    finally:
        stop_child(process)


def _wait_until_up(process: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + TARGET_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            reason = log_tail(log_path, lines=2) or f"exit code {process.returncode}"
            raise BenchError(f"selftest: the target server exited during start-up: {reason}")
        try:
            fetch_json(f"{base_url}/health", timeout_s=1.0)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            time.sleep(0.05)
    raise BenchError(f"selftest: the target server did not answer within {TARGET_START_TIMEOUT_S:.0f} s")
