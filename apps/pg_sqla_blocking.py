"""Anti-pattern, kept to be measured: `async def` routes calling SQLAlchemy's sync engine block the event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

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
from apps.pooling import sqlalchemy_pool
from apps.schema import ItemRow
from apps.settings import AppSettings
from apps.sqla import apply_update, database_url, db_wait, engine_options, prepare_database, wait_in_database
from apps.telemetry_sqla import pool_class

VARIANT: VariantSpec = {"backend": "postgresql", "mode": "blocking", "driver": "sqlalchemy+psycopg", "pooled": True}

# Identical to apps/pg_sqla_sync.py except that every `def` below is an `async def`: FastAPI then calls
# it on the event loop instead of in the thread pool, so each query stalls every other request.


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: AppSettings = app.state.settings
    url = database_url(settings, "psycopg")
    engine = create_engine(url, poolclass=pool_class(app, QueuePool), **engine_options(settings, url))
    try:
        with engine.begin() as connection:
            prepare_database(connection)
        app.state.sessions = sessionmaker(engine, expire_on_commit=False)
        yield
    finally:
        engine.dispose()


async def get_session(request: Request) -> AsyncIterator[Session]:
    sessions: sessionmaker[Session] = request.app.state.sessions
    with sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


async def create_item(session: SessionDep, item: ItemCreate) -> ItemRow:
    row = ItemRow(**item.model_dump())
    session.add(row)
    session.commit()
    return row


async def read_item(session: SessionDep, item_id: ItemId) -> ItemRow:
    return or_404(session.get(ItemRow, item_id))


async def read_item_slow(session: SessionDep, item_id: ItemId, wait_ms: WaitMs = WAIT_MS_DEFAULT) -> ItemRow:
    session.execute(wait_in_database(session.get_bind(), wait_ms))
    return or_404(session.get(ItemRow, item_id))


async def list_items(session: SessionDep, limit: Limit = LIST_LIMIT_DEFAULT, offset: Offset = 0) -> Sequence[ItemRow]:
    query = select(ItemRow).order_by(ItemRow.id).limit(limit).offset(offset)
    return session.scalars(query).all()


async def update_item(session: SessionDep, item_id: ItemId, changes: ItemUpdate) -> ItemRow:
    row = or_404(session.get(ItemRow, item_id))
    apply_update(row, changes)
    session.commit()
    return row


async def delete_item(session: SessionDep, item_id: ItemId) -> None:
    row = or_404(session.get(ItemRow, item_id))
    session.delete(row)
    session.commit()


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
    db_wait=db_wait("psycopg"),
    driver_pool=sqlalchemy_pool,
)
