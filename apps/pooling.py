"""One mapping from the harness's `pool_size` / `max_overflow` to each driver's own pool knobs, so that a
chart's x axis means the same thing for every variant. Every app reports its knobs at /health
(`config.driver_pool`), and the harness records them with each point.

| driver                                   | knobs                                                        |
|------------------------------------------|--------------------------------------------------------------|
| SQLAlchemy (sync and asyncio, any DBAPI) | pool_size = pool_size, max_overflow = max_overflow           |
| asyncpg.create_pool, psycopg_pool        | min_size = pool_size, max_size = pool_size + max_overflow    |
| pymongo, Motor, AsyncMongoClient         | minPoolSize = pool_size, maxPoolSize = pool_size + max_overflow |
| redis-py, redis.asyncio                  | BlockingConnectionPool(max_connections = pool_size + max_overflow, |
|                                          | timeout = pool_timeout_s); pre-ping = PING after 1 s idle    |

SQLAlchemy keeps `pool_size` connections open and closes overflow ones when they are returned; the min/max
pools keep at least `min_size` and grow to `max_size`; so in every row the most connections a process opens
is pool_size + max_overflow, and requests beyond that wait (up to pool_timeout_s) instead of failing.
"""

from __future__ import annotations

from apps.settings import AppSettings

DriverPool = dict[str, int | float]
# redis-py pings a connection before use only when it was idle this long: its nearest pre-ping.
PRE_PING_IDLE_S = 1


def max_connections(settings: AppSettings) -> int:
    return settings.pool_size + settings.max_overflow


def sqlalchemy_pool(settings: AppSettings) -> DriverPool:
    return {"pool_size": settings.pool_size, "max_overflow": settings.max_overflow}


def min_max_pool(settings: AppSettings) -> DriverPool:
    """asyncpg and psycopg_pool."""
    return {"min_size": settings.pool_size, "max_size": max_connections(settings)}


def mongo_pool(settings: AppSettings) -> DriverPool:
    return {
        "minPoolSize": settings.pool_size,
        "maxPoolSize": max_connections(settings),
        "waitQueueTimeoutMS": round(settings.pool_timeout_s * 1000),
    }


def redis_pool(settings: AppSettings) -> DriverPool:
    return {
        "max_connections": max_connections(settings),
        "timeout": settings.pool_timeout_s,
        "health_check_interval": PRE_PING_IDLE_S if settings.pool_pre_ping else 0,
    }
