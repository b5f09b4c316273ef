"""Shared base for every workload: the item payloads and ids, the load model, and the recording of every request.

This folder is the only place that imports locust (and so gevent); the harness only reads the JSON summary
written here. Settings arrive through the environment the harness sets (bench/measure/load.py):
  BENCH_DATASET_ROWS      ids 1..N exist in the seeded dataset
  BENCH_WARMUP_S          seconds of warm-up: recorded, but apart from the measured period
  BENCH_DURATION_S        seconds measured after the warm-up (load shapes plan their stages over it)
  BENCH_USERS             users (in the open model: connections), what load shapes scale from
  BENCH_SPAWN_RATE        users started per second at the beginning
  BENCH_LOAD_MODEL        "closed" (each user sends when its last response came back) or "open"
  BENCH_RATE              open model: tasks started per second by all users together
  BENCH_ARRIVALS          open model: "poisson" (each layer of users one Poisson stream) or "uniform" (evenly
                          spread starts); see bench.records.latency
  BENCH_ARRIVAL_SEED      open model, Poisson arrivals: the schedule's seed (every process draws the same one)
  BENCH_SCENARIO_OPTIONS  the workload's options as JSON (validated by the harness against its OPTIONS)
  BENCH_SUMMARY_PATH      where to write the summary (JSON) when Locust quits
  BENCH_STARTED_PATH      where the process that ends the test writes the epoch second its test started (the
                          harness times a fault injection from it)
  BENCH_PROCESS_NAME      this generator process's name in the record (default: host-pid)
  BENCH_SUMMARY_DIR       distributed mode, on the master: where to write each worker's summary

Several processes (Locust's distributed mode, workers local or on other hosts): the master only coordinates and
ends the test after warm-up + duration; each worker records its own requests, and when the master says `bench_end`
ends its measured period and sends its summary in a `bench_summary` message, which the master writes as
locust_summary-<process>.json for the harness to merge (histograms add without loss). Then the master quits,
and its workers with it. In the open model user u of worker w (Locust's worker index, of N workers) takes the
global timetable index u * N + w, so the processes' users interleave instead of firing together.

Open model: user u of N takes arrivals u, u + N, u + 2N, ... of a timetable at `rate` (bench.records.latency): a seeded
Poisson stream by default (PoissonTimetable), or evenly spread starts, t0 + u/rate + k*N/rate (Timetable, wrk2's
and k6's constant arrival rate), sleeping until each; when it is behind (its previous task has not returned) it
starts at once, and the latency counts from the intended start. A task is the scheduled unit: its first
request carries the lateness, the task's later requests (the CRUD lifecycle's read, update, delete) are
measured from when they are sent, since a real client would also send them only after the first returned.

Cost per request: the generator shares the machine with the server, so what it spends per request is taken from
what it measures. Users send through scenarios/lean_client.py (one keep-alive connection each, a pre-built
request head, no header objects), not FastHttpUser's UserAgent. Locust's own statistics (rounded to 2 significant
digits, ~2.5 µs) are switched off, so its end-of-run table is empty; the figures are ours, exact, in HDR histograms
(scenarios/recording.py, ~1.2 µs closed, ~1.7 µs open). What remains is Locust's task loop and gevent's own work.
"""

from __future__ import annotations

import json
import logging
import os
import random
import resource
import socket
import time
from typing import Any, cast

import gevent
import gevent.event
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from bench.records.latency import DEFAULT_ARRIVAL_SEED, Schedule, open_timetable, wait_before
from bench.records.schema import Arrivals
from scenarios.lean_client import LeanHttpUser
from scenarios.recording import Recorder, never_started_summary

DATASET_ROWS = int(os.environ.get("BENCH_DATASET_ROWS", "10000"))
WARMUP_S = float(os.environ.get("BENCH_WARMUP_S", "0"))
DURATION_S = float(os.environ.get("BENCH_DURATION_S", "10"))
USERS = int(os.environ.get("BENCH_USERS", "1"))
SPAWN_RATE = float(os.environ.get("BENCH_SPAWN_RATE", str(USERS)))
LOAD_MODEL = os.environ.get("BENCH_LOAD_MODEL", "closed")
RATE = float(os.environ["BENCH_RATE"]) if os.environ.get("BENCH_RATE") else None
SUMMARY_PATH = os.environ.get("BENCH_SUMMARY_PATH", "")
STARTED_PATH = os.environ.get("BENCH_STARTED_PATH", "")
PROCESS_NAME = os.environ.get("BENCH_PROCESS_NAME") or f"{socket.gethostname()}-{os.getpid()}"
SUMMARY_DIR = os.environ.get("BENCH_SUMMARY_DIR", "")
SUMMARY_MESSAGE = "bench_summary"  # worker -> master: the worker's summary
END_MESSAGE = "bench_end"  # master -> workers: the measured period is over
# The master waits this long for the workers' summaries after stopping them, then quits with what it has.
SUMMARIES_WAIT_S = 30.0
ARRIVALS = cast("Arrivals", os.environ.get("BENCH_ARRIVALS") or "poisson")  # checked below
ARRIVAL_SEED = int(os.environ.get("BENCH_ARRIVAL_SEED") or DEFAULT_ARRIVAL_SEED)
OPEN_MODEL = LOAD_MODEL == "open"
if OPEN_MODEL and not RATE:
    raise SystemExit("the open load model needs BENCH_RATE (tasks per second)")
if ARRIVALS not in ("poisson", "uniform"):
    raise SystemExit(f"BENCH_ARRIVALS must be poisson or uniform, not {ARRIVALS!r}")

logger = logging.getLogger(__name__)


def scenario_options(defaults: dict[str, Any]) -> dict[str, Any]:
    """The workload's options: its defaults, overridden by what the harness passed (already validated there)."""
    given = json.loads(os.environ.get("BENCH_SCENARIO_OPTIONS") or "{}")
    return {key: given.get(key, default) for key, default in defaults.items()}


class _UserIndices:
    """Each running user holds the smallest free index, so after a shape stops users the survivors and the next
    ones still fill the timetable's first slots evenly."""

    def __init__(self) -> None:
        self._taken: set[int] = set()

    def take(self) -> int:
        index = next(i for i in range(len(self._taken) + 1) if i not in self._taken)
        self._taken.add(index)
        return index

    def release(self, index: int) -> None:
        self._taken.discard(index)


_indices = _UserIndices()
_state: dict[str, Any] = {}  # the recorder and ticker of the running test (one per process)


def _recorder() -> Recorder:
    recorder: Recorder = _state["recorder"]
    return recorder


class ItemUser(LeanHttpUser):
    """A client of the item service; workloads subclass it and add weighted tasks (no think time)."""

    abstract = True

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self._index: int | None = None
        self._timetable: Schedule | None = None
        self._slot = 0
        self._due: float | None = None  # intended start of the task under way, until its first request

    def on_start(self) -> None:
        if not OPEN_MODEL:
            return
        assert RATE is not None
        self._index = _indices.take()
        runner = self.environment.runner
        index, processes = (
            (runner.worker_index, _workers(self.environment)) if isinstance(runner, WorkerRunner) else (0, 1)
        )
        global_index = self._index * processes + index
        self._timetable = open_timetable(
            ARRIVALS,
            _recorder().started_at,
            global_index,
            USERS,
            RATE,
            horizon_s=WARMUP_S + DURATION_S,  # one block per run: its arrival count is exactly the rate's
            seed=ARRIVAL_SEED,
        )
        self._slot = self._timetable.first_slot_at_or_after(time.time())
        self._due = self._timetable.intended_start(self._slot)
        gevent.sleep(wait_before(self._due, time.time()))

    def on_stop(self) -> None:
        if self._index is not None:
            _indices.release(self._index)
            self._index = None

    def wait_time(self) -> float:
        """Closed model: none. Open model: until the next slot of this user's timetable (0 when behind)."""
        if self._timetable is None:
            return 0.0
        self._slot += 1
        self._due = self._timetable.intended_start(self._slot)
        return wait_before(self._due, time.time())

    def context(self) -> dict[str, Any]:
        # The client asks once per request; only a task's first request gets the intended start.
        due, self._due = self._due, None
        return {"intended_start": due} if due is not None else {}

    def random_item_id(self) -> int:
        return random.randint(1, DATASET_ROWS)

    def new_item_payload(self) -> dict[str, Any]:
        return {
            "name": f"load-{random.getrandbits(32):08x}",
            "description": "created by the load test",
            "price": round(random.uniform(1, 100), 2),
            "quantity": random.randint(0, 50),
        }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _stage(environment: Environment) -> str | None:
    return getattr(environment.shape_class, "current_stage", None)


def _user_count(environment: Environment) -> int:
    return environment.runner.user_count if environment.runner is not None else 0


@events.init.add_listener
def _drop_locust_statistics(environment: Environment, **_kwargs: Any) -> None:
    """Locust's own per-request statistics duplicate ours (rounded) at ~2.5 µs a request; remove its listener."""
    handlers = environment.events.request._handlers
    kept = [h for h in handlers if getattr(h, "__qualname__", "") != "Runner.__init__.<locals>.on_request"]
    if len(kept) == len(handlers):
        logger.warning("Locust's statistics listener not found; it keeps running (costs CPU, changes nothing)")
    handlers[:] = kept


@events.request.add_listener
def _on_request(
    request_type: str,
    name: str,
    response_time: float,
    start_time: float,
    context: dict[str, Any],
    exception: object = None,
    **_kwargs: Any,
) -> None:
    recorder = _state.get("recorder")
    if recorder is not None:
        recorder.record(request_type, name, start_time, response_time, context.get("intended_start"), exception)


def _tick_every_second(environment: Environment, recorder: Recorder) -> None:
    index = 0
    while True:
        index += 1
        # gevent's timers count from the loop's cached time, so a sleep can end early after a busy stretch.
        while (left := recorder.started_at + index - time.time()) > 0:
            gevent.sleep(left)
        recorder.close_second(users=_user_count(environment), stage=_stage(environment), now=time.time())


def _start_measurement(recorder: Recorder) -> None:
    recorder.start_measuring(time.time(), _cpu_seconds())


def _end_test(environment: Environment) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        # Each worker ends its measurement and sends its summary; then quit with them in hand. (Not
        # runner.stop(): stopped workers leave the master's list, and its quit would then miss them.)
        runner.send_message(END_MESSAGE)
        _state["summaries_in"].wait(timeout=SUMMARIES_WAIT_S)
    if runner is not None:
        runner.quit()


def _workers(environment: Environment) -> int:
    """How many workers the master expects (Locust forwards this option to its workers)."""
    options = environment.parsed_options
    return max(int(getattr(options, "expect_workers", 1) or 1), 1)


@events.init.add_listener
def _collect_summaries_on_the_master(environment: Environment, **_kwargs: Any) -> None:
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        return
    received: set[str] = set()
    _state["summaries_in"] = gevent.event.Event()

    def on_summary(environment: Environment, msg: Any, **_kwargs: Any) -> None:
        summary = msg.data
        received.add(summary["process"])
        if SUMMARY_DIR:
            path = os.path.join(SUMMARY_DIR, f"locust_summary-{_safe(summary['process'])}.json")
            _write_atomically(path, json.dumps(summary))
        if len(received) >= _workers(environment):
            _state["summaries_in"].set()

    runner.register_message(SUMMARY_MESSAGE, on_summary)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100] or "worker"


@events.init.add_listener
def _end_measurement_on_a_worker(environment: Environment, **_kwargs: Any) -> None:
    runner = environment.runner
    if not isinstance(runner, WorkerRunner):
        return

    def on_end(environment: Environment, **_kwargs: Any) -> None:
        _end_measurement(environment)
        runner.send_message(SUMMARY_MESSAGE, _summary())

    runner.register_message(END_MESSAGE, on_end)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_kwargs: Any) -> None:
    recorder = Recorder(open_model=OPEN_MODEL, started_at=time.time(), warmup_s=WARMUP_S, process=PROCESS_NAME)
    _state["recorder"] = recorder
    _state["ticker"] = gevent.spawn(_tick_every_second, environment, recorder)
    if WARMUP_S > 0:
        _state["measurement"] = gevent.spawn_later(WARMUP_S, _start_measurement, recorder)
    else:
        _start_measurement(recorder)
    # Ended here rather than by --run-time (whose clock starts before this event, and which load shapes
    # ignore), so the measured period is the duration asked for, to the timer's precision. A worker waits for
    # its master's quit: ending itself would only drop it from the test.
    if not isinstance(environment.runner, WorkerRunner):
        _state["end"] = gevent.spawn_later(WARMUP_S + DURATION_S, _end_test, environment)
        if STARTED_PATH:
            _write_atomically(STARTED_PATH, repr(recorder.started_at))


@events.test_stopping.add_listener
def _on_test_stopping(environment: Environment, **_kwargs: Any) -> None:
    # The measured period ends when Locust starts stopping users: what completes while they finish is not in it.
    _end_measurement(environment)


def _end_measurement(environment: Environment) -> None:
    recorder = _state.get("recorder")
    if recorder is None:
        return
    for name in ("ticker", "measurement"):
        if name in _state:
            _state.pop(name).kill(block=False)
    recorder.stop(now=time.time(), cpu_s=_cpu_seconds(), users=_user_count(environment), stage=_stage(environment))


@events.quitting.add_listener
def _write_summary(environment: Environment, **_kwargs: Any) -> None:
    if not SUMMARY_PATH:
        return
    recorder = _state.get("recorder")
    if recorder is not None and recorder.current is not None:  # quit without a test_stopping (an error)
        recorder.stop(now=time.time(), cpu_s=_cpu_seconds(), users=_user_count(environment), stage=_stage(environment))
    _write_atomically(SUMMARY_PATH, json.dumps(_summary()))


def _summary() -> dict[str, Any]:
    recorder: Recorder | None = _state.get("recorder")
    if recorder is None:
        return never_started_summary(process=PROCESS_NAME, load_model=LOAD_MODEL, rate=RATE, users=USERS)
    return recorder.summary(load_model=LOAD_MODEL, rate=RATE, users=USERS)


def _write_atomically(path: str, text: str) -> None:
    tmp_path = f"{path}.tmp"
    with open(tmp_path, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp_path, path)
