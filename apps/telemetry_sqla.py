"""/metrics pool hooks for SQLAlchemy (sync QueuePool and asyncio AsyncAdaptedQueuePool, any dialect).

The checkout is timed by subclassing the pool class given as `poolclass`: its public `Pool.connect()` is what
the engine calls for every checkout (queue wait, any new connection it opens and pre-ping included), and
SQLAlchemy raises its own TimeoutError there when pool_timeout passes. Pool events were the alternative, but
they fire only once a connection is in hand (`checkout`), so they cannot see the wait itself.
"""

from __future__ import annotations

from typing import TypeVar

from fastapi import FastAPI
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import QueuePool

from apps.telemetry import PoolGauges, overflow_beyond, pool_telemetry, timed_subclass

P = TypeVar("P", bound=QueuePool)


def pool_class(app: FastAPI, base: type[P]) -> type[P]:
    """The `poolclass` to give create_engine: `base` itself when BENCH_TELEMETRY is off, else a timed subclass."""
    telemetry = pool_telemetry(app, "sqlalchemy", is_timeout=lambda error: isinstance(error, PoolTimeoutError))
    if telemetry is None:
        return base
    return timed_subclass(base, telemetry, checkout="connect", gauges=_gauges)


def _gauges(pool: QueuePool) -> PoolGauges:
    # overflow() counts from -pool_size (no connection open yet) up to max_overflow, so size + overflow is open.
    open_now = pool.size() + pool.overflow()
    return PoolGauges(
        open=open_now, checked_out=pool.checkedout(), overflow_in_use=overflow_beyond(pool.size(), open_now)
    )
