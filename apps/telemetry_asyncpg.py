"""/metrics pool hooks for asyncpg's pool.

asyncpg builds its pool inside create_pool() and offers no pool class to swap in, so the checkout is timed
around the public `pool.acquire()` instead: routes acquire through `instrumented_acquire(app, pool)`, which
times nothing when BENCH_TELEMETRY is off. The acquire timeout raises TimeoutError. The gauges are the pool's
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

Acquire = Callable[..., AbstractAsyncContextManager[PoolConnectionProxy]]


def instrumented_acquire(app: FastAPI, pool: asyncpg.Pool) -> Acquire:
    """What routes call as `acquire(timeout=...)`: a checkout from `pool`, timed when BENCH_TELEMETRY is on."""
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
    return lambda *, timeout=None: _Acquire(pool, telemetry, timeout)


async def _checkout(pool: asyncpg.Pool, timeout: float | None) -> PoolConnectionProxy:
    """pool.acquire() bounded by `timeout`, through asyncio.timeout rather than asyncpg's own `timeout=`, which
    wraps every checkout in asyncio.wait_for: on Python 3.11 a new Task per checkout that has to wait, which the
    user's plain `pool.acquire()` does not pay (what that costs under load is below this machine's noise; the
    variant's remaining gap to its yardstick is not this). asyncpg's acquire puts the connection back when
    cancelled, so the two are equivalent; TimeoutError is raised either way. No timer when a connection is idle."""
    if timeout is None or pool.get_idle_size():
        return await pool.acquire()
    async with asyncio.timeout(timeout):
        return await pool.acquire()


class _Acquire:
    """`async with` a connection from the pool, its checkout timed when `telemetry` is given (a class:
    @asynccontextmanager costs more per request)."""

    __slots__ = ("_conn", "_pool", "_telemetry", "_timeout")

    def __init__(self, pool: asyncpg.Pool, telemetry: PoolTelemetry | None, timeout: float | None) -> None:
        self._pool, self._telemetry, self._timeout = pool, telemetry, timeout
        self._conn: PoolConnectionProxy | None = None

    async def __aenter__(self) -> PoolConnectionProxy:
        if self._telemetry is None:
            self._conn = await _checkout(self._pool, self._timeout)
        else:
            with self._telemetry.checkout():
                self._conn = await _checkout(self._pool, self._timeout)
        return self._conn

    async def __aexit__(self, *_exc: object) -> None:
        if self._conn is not None:
            await self._pool.release(self._conn)
