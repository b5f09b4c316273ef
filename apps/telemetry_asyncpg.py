"""/metrics pool hooks for asyncpg's pool.

asyncpg builds its pool inside create_pool() and offers no pool class to swap in, so the checkout is timed
around the public `pool.acquire()` instead: routes acquire through `instrumented_acquire(app, pool)`, which
is `pool.acquire` itself when BENCH_TELEMETRY is off. asyncpg raises TimeoutError when the acquire timeout
passes. The gauges are the pool's get_size() and get_idle_size().
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from fastapi import FastAPI

from apps.telemetry import PoolGauges, PoolTelemetry, overflow_beyond, pool_telemetry

Acquire = Callable[..., AbstractAsyncContextManager[PoolConnectionProxy]]


def instrumented_acquire(app: FastAPI, pool: asyncpg.Pool) -> Acquire:
    """What routes call as `acquire(timeout=...)`: pool.acquire, timed when BENCH_TELEMETRY is on."""
    telemetry = pool_telemetry(app, "asyncpg", is_timeout=lambda error: isinstance(error, TimeoutError))
    if telemetry is None:
        return lambda *, timeout=None: pool.acquire(timeout=_needed(pool, timeout))
    size = telemetry.size

    def gauges() -> PoolGauges:
        open_now = pool.get_size()
        return PoolGauges(
            open=open_now, checked_out=open_now - pool.get_idle_size(), overflow_in_use=overflow_beyond(size, open_now)
        )

    telemetry.gauges = gauges
    return lambda *, timeout=None: _TimedAcquire(pool, telemetry, _needed(pool, timeout))


def _needed(pool: asyncpg.Pool, timeout: float | None) -> float | None:
    """The timeout to give pool.acquire: none when a connected connection is free, since then nothing waits, and
    asyncpg wraps every acquire that has a timeout in asyncio.wait_for, which costs more than the checkout."""
    return None if pool.get_idle_size() else timeout


class _TimedAcquire:
    """`async with` a connection whose checkout is timed (a class: @asynccontextmanager costs more per request)."""

    __slots__ = ("_conn", "_pool", "_telemetry", "_timeout")

    def __init__(self, pool: asyncpg.Pool, telemetry: PoolTelemetry, timeout: float | None) -> None:
        self._pool, self._telemetry, self._timeout = pool, telemetry, timeout
        self._conn: PoolConnectionProxy | None = None

    async def __aenter__(self) -> PoolConnectionProxy:
        with self._telemetry.checkout():
            self._conn = await self._pool.acquire(timeout=self._timeout)
        return self._conn

    async def __aexit__(self, *_exc: object) -> None:
        if self._conn is not None:
            await self._pool.release(self._conn)
