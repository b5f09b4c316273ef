"""/metrics pool hooks for asyncpg's pool.

asyncpg builds its pool inside create_pool() and offers no pool class to swap in, so the checkout is timed
around the public `pool.acquire()` instead: routes acquire through `instrumented_acquire(app, pool)`, which
is `pool.acquire` itself when BENCH_TELEMETRY is off. asyncpg raises TimeoutError when the acquire timeout
passes. The gauges are the pool's get_size() and get_idle_size().
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from fastapi import FastAPI

from apps.telemetry import PoolGauges, overflow_beyond, pool_telemetry

Acquire = Callable[..., AbstractAsyncContextManager[PoolConnectionProxy]]


def instrumented_acquire(app: FastAPI, pool: asyncpg.Pool) -> Acquire:
    """What routes call as `acquire(timeout=...)`: pool.acquire, timed when BENCH_TELEMETRY is on."""
    telemetry = pool_telemetry(app, "asyncpg", is_timeout=lambda error: isinstance(error, TimeoutError))
    if telemetry is None:
        return pool.acquire
    size = telemetry.size

    def gauges() -> PoolGauges:
        open_now = pool.get_size()
        return PoolGauges(
            open=open_now, checked_out=open_now - pool.get_idle_size(), overflow_in_use=overflow_beyond(size, open_now)
        )

    telemetry.gauges = gauges

    @asynccontextmanager
    async def acquire(*, timeout: float | None = None) -> AsyncIterator[PoolConnectionProxy]:
        with telemetry.checkout():
            conn = await pool.acquire(timeout=timeout)
        try:
            yield conn
        finally:
            await pool.release(conn)

    return acquire
