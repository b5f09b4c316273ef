"""/metrics pool hooks for asyncpg's pool.

asyncpg builds its pool inside create_pool() and offers no pool class to swap in, so the checkout is timed
around the public `pool.acquire()` instead: routes acquire through `instrumented_acquire(app, pool, timeout)`,
which times nothing when BENCH_TELEMETRY is off. The acquire timeout raises TimeoutError. The gauges are the pool's
get_size() and get_idle_size().
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from fastapi import FastAPI

from apps.telemetry import PoolGauges, PoolTelemetry, overflow_beyond, pool_telemetry

Acquire = Callable[[], AbstractAsyncContextManager[PoolConnectionProxy]]


def instrumented_acquire(app: FastAPI, pool: asyncpg.Pool, timeout: float | None) -> Acquire:
    """What routes call as `acquire()`: a checkout from `pool` that waits at most `timeout` seconds for a free
    connection, timed when BENCH_TELEMETRY is on."""
    telemetry = pool_telemetry(app, "asyncpg", is_timeout=lambda error: isinstance(error, TimeoutError))
    if telemetry is not None:
        size = telemetry.size

        def gauges() -> PoolGauges:
            open_now = pool.get_size()
            return PoolGauges(
                open=open_now,
                checked_out=open_now - pool.get_idle_size(),
                overflow_in_use=overflow_beyond(size, open_now),
            )

        telemetry.gauges = gauges
    checkouts = _Checkouts(pool, telemetry, timeout)
    return lambda: _Acquire(checkouts)


class _Checkouts:
    """The pool's checkouts through the routes, counted, so that a checkout knows without asking the pool
    whether it may have to wait: pool.get_idle_size() sums over every connection holder on each call (65 Python
    calls a request at pool size 16, most of what this variant ran beyond its yardstick under cProfile)."""

    __slots__ = ("in_use", "max_size", "pool", "telemetry", "timeout")

    def __init__(self, pool: asyncpg.Pool, telemetry: PoolTelemetry | None, timeout: float | None) -> None:
        self.pool, self.telemetry, self.timeout = pool, telemetry, timeout
        self.max_size = pool.get_max_size()
        self.in_use = 0

    async def checkout(self) -> PoolConnectionProxy:
        """pool.acquire() bounded by `timeout`, through asyncio.timeout rather than asyncpg's own `timeout=`, which
        wraps every checkout in asyncio.wait_for (on Python 3.11 a new Task per checkout that has to wait); the
        user's plain `pool.acquire()` pays neither. asyncpg's acquire puts the connection back when cancelled, and
        TimeoutError is raised either way. No timer while a holder is free: then acquire() does not queue (a
        holder whose connection is closed reconnects, bounded by the connect timeout, as SQLAlchemy's
        pool_timeout does not bound a connect either)."""
        if self.timeout is None or self.in_use < self.max_size:
            conn = await self.pool.acquire()
        else:
            async with asyncio.timeout(self.timeout):
                conn = await self.pool.acquire()
        self.in_use += 1
        return conn

    async def release(self, conn: PoolConnectionProxy) -> None:
        try:
            await self.pool.release(conn)
        finally:
            # Only once the holder is back in the pool's queue: counted free earlier, a checkout could skip the
            # timer and then wait for asyncpg's reset of this connection without a bound.
            self.in_use -= 1


class _Acquire:
    """`async with` a connection from the pool, its checkout timed when telemetry is on (a class:
    @asynccontextmanager costs more per request)."""

    __slots__ = ("_checkouts", "_conn")

    def __init__(self, checkouts: _Checkouts) -> None:
        self._checkouts = checkouts
        self._conn: PoolConnectionProxy | None = None

    async def __aenter__(self) -> PoolConnectionProxy:
        checkouts = self._checkouts
        if checkouts.telemetry is None:
            self._conn = await checkouts.checkout()
        else:
            with checkouts.telemetry.checkout():
                self._conn = await checkouts.checkout()
        return self._conn

    async def __aexit__(self, *_exc: object) -> None:
        if self._conn is not None:
            await self._checkouts.release(self._conn)
