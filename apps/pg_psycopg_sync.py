"""PostgreSQL through psycopg 3 and psycopg_pool, raw SQL; `def` routes run in FastAPI's thread pool."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from psycopg import Connection, RawCursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

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
    psycopg_options,
    returned,
    update_statement,
)
from apps.pooling import max_connections, min_max_pool
from apps.settings import AppSettings
from apps.sql_common import CONNECT_TIMEOUT_S, postgres_dsn
from apps.telemetry_psycopg import pool_class

VARIANT: VariantSpec = {"backend": "postgresql", "mode": "sync", "driver": "psycopg", "pooled": True}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: AppSettings = app.state.settings
    dsn = postgres_dsn(settings)
    options = psycopg_options(dsn) | {"row_factory": dict_row, "cursor_factory": RawCursor}
    # One plain connection first: the pool would retry a bad URL until its timeout and then hide the reason.
    with Connection[DictRow].connect(dsn, **options) as conn, conn.transaction():
        for statement in PREPARE_DATABASE:
            conn.execute(statement)
    pool = pool_class(app, ConnectionPool)(
        dsn,
        connection_class=Connection[DictRow],
        kwargs=options,
        min_size=settings.pool_size,
        max_size=max_connections(settings),
        timeout=settings.pool_timeout_s,
        check=ConnectionPool.check_connection if settings.pool_pre_ping else None,
        open=False,
    )
    try:
        # The pool opens min_size connections up front; wait for them so a start-up failure is seen now.
        pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        app.state.pool = pool
        yield
    finally:
        pool.close()


def get_connection(request: Request) -> Iterator[Connection[DictRow]]:
    pool: ConnectionPool[Connection[DictRow]] = request.app.state.pool
    with pool.connection() as conn:
        yield conn


ConnectionDep = Annotated[Connection[DictRow], Depends(get_connection)]


def create_item(conn: ConnectionDep, item: ItemCreate) -> ItemDict:
    cursor = conn.execute(INSERT_ITEM, insert_args(item))
    return returned(cursor.fetchone())


def read_item(conn: ConnectionDep, item_id: ItemId) -> ItemDict:
    cursor = conn.execute(SELECT_ITEM, (item_id,))
    return or_404(cursor.fetchone())


def read_item_slow(conn: ConnectionDep, item_id: ItemId, wait_ms: WaitMs = WAIT_MS_DEFAULT) -> ItemDict:
    conn.execute(WAIT_IN_DATABASE, (wait_ms / 1000,))
    cursor = conn.execute(SELECT_ITEM, (item_id,))
    return or_404(cursor.fetchone())


def list_items(conn: ConnectionDep, limit: Limit = LIST_LIMIT_DEFAULT, offset: Offset = 0) -> list[ItemDict]:
    cursor = conn.execute(LIST_ITEMS, (limit, offset))
    return cursor.fetchall()


def update_item(conn: ConnectionDep, item_id: ItemId, changes: ItemUpdate) -> ItemDict:
    statement, args = update_statement(item_id, changes)
    cursor = conn.execute(statement, args)
    return or_404(cursor.fetchone())


def delete_item(conn: ConnectionDep, item_id: ItemId) -> None:
    cursor = conn.execute(DELETE_ITEM, (item_id,))
    or_404(cursor.fetchone())


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
