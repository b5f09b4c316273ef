"""PostgreSQL through asyncpg and its own pool, raw SQL; `async def` routes await on the event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from fastapi import Depends, FastAPI, Request

from apps.catalog import VariantSpec
from apps.contract import (
    LIST_LIMIT_DEFAULT,
    WAIT_MS_DEFAULT,
    ItemCreate,
    ItemId,
    ItemUpdate,
    Limit,
    Offset,
    WaitMs,
    create_app,
    or_404,
)
from apps.pg_raw import (
    DB_WAIT,
    DELETE_ITEM,
    INSERT_ITEM,
    LIST_ITEMS,
    PREPARE_DATABASE,
    SELECT_ITEM,
    WAIT_IN_DATABASE,
    ItemDict,
    insert_args,
    returned,
    update_statement,
)
from apps.pooling import max_connections, min_max_pool
from apps.settings import AppSettings, StartupError
from apps.sql_common import CONNECT_TIMEOUT_S, postgres_dsn
from apps.telemetry_asyncpg import Acquire, instrumented_acquire

VARIANT: VariantSpec = {"backend": "postgresql", "mode": "async", "driver": "asyncpg", "pooled": True}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: AppSettings = app.state.settings
    # create_pool opens min_size connections before it returns and raises the first connect error as is.
    try:
        pool = await asyncpg.create_pool(
            postgres_dsn(settings),
            min_size=settings.pool_size,
            max_size=max_connections(settings),
            # asyncpg's DSN has no connect-timeout parameter, so it is always this argument.
            timeout=CONNECT_TIMEOUT_S,
            setup=ping if settings.pool_pre_ping else None,
        )
    except TimeoutError:
        # asyncpg's own timeout error has no message at all.
        raise StartupError(f"PostgreSQL did not answer within {CONNECT_TIMEOUT_S} s") from None
    try:
        async with pool.acquire() as conn, conn.transaction():
            for statement in PREPARE_DATABASE:
                await conn.execute(statement)
        app.state.pool = pool
        app.state.acquire = instrumented_acquire(app, pool, settings.pool_timeout_s)
        yield
    finally:
        await pool.close()


async def ping(conn: PoolConnectionProxy) -> None:
    """BENCH_POOL_PRE_PING for asyncpg, whose pool has none: the same round trip on every checkout. Unlike
    SQLAlchemy's, a failed ping fails that request (asyncpg closes the connection and reopens it next time)."""
    await conn.execute("SELECT 1")


async def get_connection(request: Request) -> AsyncIterator[PoolConnectionProxy]:
    acquire: Acquire = request.app.state.acquire  # pool.acquire with the pool timeout, timed for /metrics
    async with acquire() as conn:
        yield conn


# asyncpg's classes are generic only in its stubs, so no [Record] here: it would fail at import.
ConnectionDep = Annotated[PoolConnectionProxy, Depends(get_connection)]


async def create_item(conn: ConnectionDep, item: ItemCreate) -> ItemDict:
    return dict(returned(await conn.fetchrow(INSERT_ITEM, *insert_args(item))))


async def read_item(conn: ConnectionDep, item_id: ItemId) -> ItemDict:
    return dict(or_404(await conn.fetchrow(SELECT_ITEM, item_id)))


async def read_item_slow(conn: ConnectionDep, item_id: ItemId, wait_ms: WaitMs = WAIT_MS_DEFAULT) -> ItemDict:
    await conn.execute(WAIT_IN_DATABASE, wait_ms / 1000)
    return dict(or_404(await conn.fetchrow(SELECT_ITEM, item_id)))


async def list_items(conn: ConnectionDep, limit: Limit = LIST_LIMIT_DEFAULT, offset: Offset = 0) -> list[ItemDict]:
    return [dict(row) for row in await conn.fetch(LIST_ITEMS, limit, offset)]


async def update_item(conn: ConnectionDep, item_id: ItemId, changes: ItemUpdate) -> ItemDict:
    statement, args = update_statement(item_id, changes)
    return dict(or_404(await conn.fetchrow(statement, *args)))


async def delete_item(conn: ConnectionDep, item_id: ItemId) -> None:
    or_404(await conn.fetchrow(DELETE_ITEM, item_id))


app = create_app(
    __name__,
    VARIANT,
    lifespan,
    create_item=create_item,
    read_item=read_item,
    list_items=list_items,
    update_item=update_item,
    delete_item=delete_item,
    read_item_slow=read_item_slow,
    db_wait=DB_WAIT,
    driver_pool=min_max_pool,
)
