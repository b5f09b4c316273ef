"""Telemetry every variant shares: `GET /metrics` shows why a variant is slow (waiting for a pool connection,
a blocked event loop, or a saturated thread pool), cheaply enough to leave on.

- Pool: the driver hooks in apps/telemetry_<driver>.py time each connection checkout into a PoolTelemetry
  (one lock per update, no per-request middleware) and read the pool's own gauges when /metrics is asked.
- Event loop: one task sleeps LOOP_LAG_INTERVAL_MS and records how late it woke up; a loop blocked by a sync
  call inside `async def` shows up here as lag.
- Threads: anyio's default limiter, which caps the `def` routes running at once (always reported).

With BENCH_TELEMETRY=false no hook and no task is installed: /metrics then says `telemetry: false` and only
reports threads, so the harness can measure what the telemetry costs.
"""

from __future__ import annotations

import asyncio
import threading
from bisect import bisect_left
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from itertools import pairwise
from time import monotonic, perf_counter
from typing import Literal, NamedTuple, TypeVar, cast

from anyio.to_thread import current_default_thread_limiter
from fastapi import FastAPI, Request
from typing_extensions import TypedDict  # pydantic (the /metrics response model) needs it on Python < 3.12

from apps.pooling import max_connections
from apps.settings import AppSettings

PoolKind = Literal["sqlalchemy", "asyncpg", "psycopg_pool", "pymongo", "redis"]
LOOP_LAG_INTERVAL_MS = 10.0
LOOP_LAG_TASK = "telemetry: event-loop lag"  # the task's name, so tests can see it is (not) running
_MANTISSAS = (1, 1.25, 1.6, 2, 2.5, 3.2, 4, 5, 6.3, 8)
_MAX_BOUND_MS = 60_000.0


def _bounds_ms() -> tuple[float, ...]:
    """10 buckets per decade from 0.01 ms up to 60 s (round(): 1.6 * 10**-2 is not exactly 0.016 otherwise)."""
    bounds = [round(mantissa * 10.0**exponent, 6) for exponent in range(-2, 5) for mantissa in _MANTISSAS]
    return (*(bound for bound in bounds if bound < _MAX_BOUND_MS), _MAX_BOUND_MS)


BOUNDS_MS = _bounds_ms()


class HistogramSnapshot(TypedDict):
    bounds_ms: list[float]
    counts: list[int]  # len(bounds_ms) + 1: counts[i] holds bounds_ms[i-1] < v <= bounds_ms[i]; the last, v > all
    count: int
    sum_ms: float
    max_ms: float


class Histogram:
    """Fixed-bucket, cumulative histogram of milliseconds; safe to record into from any thread."""

    def __init__(self, bounds_ms: Sequence[float] = BOUNDS_MS) -> None:
        if not bounds_ms or any(low >= high for low, high in pairwise(bounds_ms)):
            raise ValueError("bounds_ms must be a non-empty, strictly increasing sequence")
        self.bounds_ms = tuple(bounds_ms)
        self._counts = [0] * (len(self.bounds_ms) + 1)
        self._count = 0
        self._sum_ms = 0.0
        self._max_ms = 0.0
        self.lock = threading.Lock()

    def record(self, value_ms: float) -> None:
        with self.lock:
            self.record_locked(value_ms)

    def record_locked(self, value_ms: float) -> None:
        """record() for a caller already holding `lock` (so a checkout updates everything under one lock)."""
        # bisect_left: a value equal to a bound belongs to that bound's bucket (upper bounds are inclusive).
        self._counts[bisect_left(self.bounds_ms, value_ms)] += 1
        self._count += 1
        self._sum_ms += value_ms
        self._max_ms = max(self._max_ms, value_ms)

    def snapshot(self) -> HistogramSnapshot:
        with self.lock:
            return HistogramSnapshot(
                bounds_ms=list(self.bounds_ms),
                counts=list(self._counts),
                count=self._count,
                sum_ms=self._sum_ms,
                max_ms=self._max_ms,
            )


# --- connection pools -------------------------------------------------------------------------------------------


class PoolGauges(NamedTuple):
    """What a pool holds right now; None where the driver cannot say."""

    open: int | None
    checked_out: int | None
    overflow_in_use: int | None


class PoolSnapshot(TypedDict):
    kind: PoolKind
    limit: int
    size: int
    open: int | None
    checked_out: int | None
    overflow_in_use: int | None
    waiting: int | None
    acquisitions: int
    timeouts: int
    wait_ms: HistogramSnapshot


def _no_gauges() -> PoolGauges:
    return PoolGauges(open=None, checked_out=None, overflow_in_use=None)


class PoolTelemetry:
    """Counters of one app's connection checkouts. A driver hook either wraps each checkout in `checkout()`,
    or reports events it is told about through `started()` and `finished()` (pymongo's CMAP listener)."""

    def __init__(self, kind: PoolKind, *, limit: int, size: int, is_timeout: Callable[[BaseException], bool]) -> None:
        self.kind: PoolKind = kind
        self.limit = limit
        self.size = size
        self.is_timeout = is_timeout
        self.wait_ms = Histogram()
        # The hook replaces this with a reader of the driver's own counts, once the pool exists.
        self.gauges: Callable[[], PoolGauges] = _no_gauges
        self._waiting = 0
        self._acquisitions = 0
        self._timeouts = 0

    def started(self) -> None:
        with self.wait_ms.lock:
            self._waiting += 1

    def finished(self, waited_ms: float, *, acquired: bool, timed_out: bool) -> None:
        """One checkout ended: it got a connection, timed out, or failed otherwise (e.g. could not connect)."""
        with self.wait_ms.lock:
            self._waiting -= 1
            self._acquisitions += acquired
            self._timeouts += timed_out
            self.wait_ms.record_locked(waited_ms)

    def checkout(self) -> _Checkout:
        """Time the driver call that hands out a connection (sync or awaited inside, it is the same clock)."""
        return _Checkout(self)

    def snapshot(self) -> PoolSnapshot:
        gauges = self.gauges()  # outside the lock: the driver takes its own locks
        wait_ms = self.wait_ms.snapshot()
        with self.wait_ms.lock:
            waiting, acquisitions, timeouts = self._waiting, self._acquisitions, self._timeouts
        return PoolSnapshot(
            kind=self.kind,
            limit=self.limit,
            size=self.size,
            open=gauges.open,
            checked_out=gauges.checked_out,
            overflow_in_use=gauges.overflow_in_use,
            waiting=waiting,
            acquisitions=acquisitions,
            timeouts=timeouts,
            wait_ms=wait_ms,
        )


class _Checkout:
    """PoolTelemetry.checkout()'s context manager: a class, not @contextmanager, because it wraps every checkout
    of every request and a generator-based one costs several times as much."""

    __slots__ = ("_began", "_telemetry")

    def __init__(self, telemetry: PoolTelemetry) -> None:
        self._telemetry = telemetry
        self._began = 0.0

    def __enter__(self) -> None:
        self._telemetry.started()
        self._began = perf_counter()

    def __exit__(self, error_type: type[BaseException] | None, error: BaseException | None, _tb: object) -> None:
        waited_ms = (perf_counter() - self._began) * 1000
        if error is None:
            self._telemetry.finished(waited_ms, acquired=True, timed_out=False)
        else:
            self._telemetry.finished(waited_ms, acquired=False, timed_out=self._telemetry.is_timeout(error))


def overflow_beyond(size: int, open_now: int | None) -> int | None:
    return None if open_now is None else max(0, open_now - size)


# --- per-app state, the lag monitor and the route -----------------------------------------------------------------


@dataclass
class Telemetry:
    """What /metrics reads; kept on `app.state.telemetry` from the start of the lifespan."""

    enabled: bool
    started: float = field(default_factory=monotonic)
    pool: PoolTelemetry | None = None
    loop_lag_ms: Histogram | None = None


def pool_telemetry(app: FastAPI, kind: PoolKind, is_timeout: Callable[[BaseException], bool]) -> PoolTelemetry | None:
    """The app's PoolTelemetry, registered for /metrics; None when BENCH_TELEMETRY is off (install no hook then)."""
    settings: AppSettings = app.state.settings
    telemetry: Telemetry = app.state.telemetry
    if not telemetry.enabled:
        return None
    telemetry.pool = PoolTelemetry(
        kind, limit=max_connections(settings), size=settings.pool_size, is_timeout=is_timeout
    )
    return telemetry.pool


T = TypeVar("T")


def timed_subclass(
    base: type[T], telemetry: PoolTelemetry, *, checkout: str, gauges: Callable[[T], PoolGauges]
) -> type[T]:
    """A subclass of a driver's pool class whose public `checkout` method (sync or async) is timed, and whose
    instances report their gauges. Built at run time because the telemetry object belongs to one app; every
    instance re-registers, so a pool the driver recreates (SQLAlchemy's dispose()) is still the one read."""
    original = getattr(base, checkout)

    if asyncio.iscoroutinefunction(original):

        async def timed(self: T, *args: object, **kwargs: object) -> object:
            with telemetry.checkout():
                return await original(self, *args, **kwargs)

    else:

        def timed(self: T, *args: object, **kwargs: object) -> object:  # type: ignore[misc]  # the sync twin
            with telemetry.checkout():
                return original(self, *args, **kwargs)

    def init(self: T, *args: object, **kwargs: object) -> None:
        base.__init__(self, *args, **kwargs)
        telemetry.gauges = lambda: gauges(self)

    return cast(type[T], type(f"Timed{base.__name__}", (base,), {checkout: timed, "__init__": init}))


async def _watch_loop_lag(lag_ms: Histogram, interval_s: float) -> None:
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        lag_ms.record(max(0.0, loop.time() - due) * 1000)


@asynccontextmanager
async def running(app: FastAPI, settings: AppSettings) -> AsyncIterator[None]:
    """Telemetry for the app's lifetime: the state /metrics reads and, when enabled, the loop-lag task."""
    telemetry = Telemetry(enabled=settings.telemetry)
    app.state.telemetry = telemetry
    if not telemetry.enabled:
        yield
        return
    telemetry.loop_lag_ms = Histogram()
    task = asyncio.create_task(_watch_loop_lag(telemetry.loop_lag_ms, LOOP_LAG_INTERVAL_MS / 1000), name=LOOP_LAG_TASK)
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


class EventLoopSnapshot(TypedDict):
    interval_ms: float
    lag_ms: HistogramSnapshot


class ThreadsSnapshot(TypedDict):
    limit: int
    busy: int
    waiting: int


class MetricsResponse(TypedDict):
    variant: str
    telemetry: bool
    uptime_s: float
    pool: PoolSnapshot | None
    event_loop: EventLoopSnapshot | None
    threads: ThreadsSnapshot


def threads_in_use() -> ThreadsSnapshot:
    limiter = current_default_thread_limiter()
    return ThreadsSnapshot(
        limit=int(limiter.total_tokens), busy=limiter.borrowed_tokens, waiting=limiter.statistics().tasks_waiting
    )


def metrics_route(name: str) -> Callable[[Request], Awaitable[MetricsResponse]]:
    # `async def`: /metrics must answer even when every thread-pool token is taken.
    async def metrics(request: Request) -> MetricsResponse:
        telemetry: Telemetry = request.app.state.telemetry
        lag = telemetry.loop_lag_ms
        return MetricsResponse(
            variant=name,
            telemetry=telemetry.enabled,
            uptime_s=round(monotonic() - telemetry.started, 3),
            pool=None if telemetry.pool is None else telemetry.pool.snapshot(),
            event_loop=None
            if lag is None
            else EventLoopSnapshot(interval_ms=LOOP_LAG_INTERVAL_MS, lag_ms=lag.snapshot()),
            threads=threads_in_use(),
        )

    return metrics
