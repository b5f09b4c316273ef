"""/metrics pool hooks for redis-py's BlockingConnectionPool (sync and redis.asyncio).

The checkout is timed by subclassing the pool: every command gets its connection through the public
`get_connection()`, which waits up to the pool's timeout and then raises ConnectionError("No connection
available."). The gauges are the pool's public `get_connection_count()` (idle, in use).
"""

from __future__ import annotations

from typing import TypeVar

import redis
import redis.asyncio
from fastapi import FastAPI

from apps.telemetry import PoolGauges, overflow_beyond, pool_telemetry, timed_subclass

P = TypeVar("P", redis.BlockingConnectionPool, redis.asyncio.BlockingConnectionPool)
# redis-py raises the same exception class for "cannot connect" and for "no free connection in time".
NO_CONNECTION_AVAILABLE = "No connection available."


def pool_class(app: FastAPI, base: type[P]) -> type[P]:
    """`base` itself when BENCH_TELEMETRY is off, else a subclass whose get_connection() is timed."""
    telemetry = pool_telemetry(app, "redis", is_timeout=_is_timeout)
    if telemetry is None:
        return base
    size = telemetry.size

    def gauges(pool: P) -> PoolGauges:
        (idle, _), (in_use, _) = pool.get_connection_count()
        return PoolGauges(open=idle + in_use, checked_out=in_use, overflow_in_use=overflow_beyond(size, idle + in_use))

    return timed_subclass(base, telemetry, checkout="get_connection", gauges=gauges)


def _is_timeout(error: BaseException) -> bool:
    return isinstance(error, redis.ConnectionError) and str(error) == NO_CONNECTION_AVAILABLE
