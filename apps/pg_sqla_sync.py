"""PostgreSQL through SQLAlchemy's sync engine on psycopg 3; `def` routes run in FastAPI's thread pool."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
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
from apps.sql_common import Driver
from apps.sqla import apply_update, database_url, db_wait, engine_options, prepare_database, wait_in_database
from apps.telemetry_sqla import pool_class

VARIANT: VariantSpec = {"backend": "postgresql", "mode": "sync", "driver": "sqlalchemy+psycopg", "pooled": True}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: AppSettings = app.state.settings
    url = database_url(settings, app.state.driver)
    engine = create_engine(url, poolclass=pool_class(app, QueuePool), **engine_options(settings, url))
    try:
        with engine.begin() as connection:
            prepare_database(connection)
        app.state.sessions = sessionmaker(engine, expire_on_commit=False)
        yield
    finally:
        engine.dispose()


def get_session(request: Request) -> Iterator[Session]:
    sessions: sessionmaker[Session] = request.app.state.sessions
    with sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def create_item(session: SessionDep, item: ItemCreate) -> ItemRow:
    row = ItemRow(**item.model_dump())
    session.add(row)
    session.commit()
    return row


def read_item(session: SessionDep, item_id: ItemId) -> ItemRow:
    return or_404(session.get(ItemRow, item_id))


def read_item_slow(session: SessionDep, item_id: ItemId, wait_ms: WaitMs = WAIT_MS_DEFAULT) -> ItemRow:
    session.execute(wait_in_database(session.get_bind(), wait_ms))
    return or_404(session.get(ItemRow, item_id))


def list_items(session: SessionDep, limit: Limit = LIST_LIMIT_DEFAULT, offset: Offset = 0) -> Sequence[ItemRow]:
    query = select(ItemRow).order_by(ItemRow.id).limit(limit).offset(offset)
    return session.scalars(query).all()


def update_item(session: SessionDep, item_id: ItemId, changes: ItemUpdate) -> ItemRow:
    row = or_404(session.get(ItemRow, item_id))
    apply_update(row, changes)
    session.commit()
    return row


def delete_item(session: SessionDep, item_id: ItemId) -> None:
    row = or_404(session.get(ItemRow, item_id))
    session.delete(row)
    session.commit()


def build_app(module_name: str, variant: VariantSpec, driver: Driver) -> FastAPI:
    """This service on any SQLAlchemy dialect: mysql_sqla_sync reuses it with another driver."""
    built = create_app(
        module_name,
        variant,
        lifespan,
        create_item=create_item,
        read_item=read_item,
        list_items=list_items,
        update_item=update_item,
        delete_item=delete_item,
        read_item_slow=read_item_slow,
        db_wait=db_wait(driver),
        driver_pool=sqlalchemy_pool,
    )
    built.state.driver = driver
    return built


app = build_app(__name__, VARIANT, "psycopg")
