"""/metrics pool hooks for psycopg_pool (ConnectionPool and AsyncConnectionPool).

The checkout is timed by subclassing the pool: `pool.connection()` gets its connection through the public
`getconn()`, which raises PoolTimeout after the pool's timeout. The gauges are the pool's own `get_stats()`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from apps.telemetry import PoolGauges, overflow_beyond, pool_telemetry, timed_subclass

P = TypeVar("P", ConnectionPool[Any], AsyncConnectionPool[Any])


def pool_class(app: FastAPI, base: type[P]) -> type[P]:
    """`base` itself when BENCH_TELEMETRY is off, else a subclass whose getconn() is timed."""
    telemetry = pool_telemetry(app, "psycopg_pool", is_timeout=lambda error: isinstance(error, PoolTimeout))
    if telemetry is None:
        return base
    size = telemetry.size

    def gauges(pool: P) -> PoolGauges:
        stats = pool.get_stats()  # keys are documented as optional: a counter that never moved is left out
        open_now = stats.get("pool_size", 0)
        return PoolGauges(
            open=open_now,
            checked_out=open_now - stats.get("pool_available", 0),
            overflow_in_use=overflow_beyond(size, open_now),
        )

    return timed_subclass(base, telemetry, checkout="getconn", gauges=gauges)
