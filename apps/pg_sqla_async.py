"""PostgreSQL through SQLAlchemy's asyncio engine on asyncpg; `async def` routes await on the event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

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

VARIANT: VariantSpec = {"backend": "postgresql", "mode": "async", "driver": "sqlalchemy+asyncpg", "pooled": True}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: AppSettings = app.state.settings
    url = database_url(settings, app.state.driver)
    engine = create_async_engine(url, poolclass=pool_class(app, AsyncAdaptedQueuePool), **engine_options(settings, url))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(prepare_database)
        app.state.sessions = async_sessionmaker(engine, expire_on_commit=False)
        yield
    finally:
        await engine.dispose()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def create_item(session: SessionDep, item: ItemCreate) -> ItemRow:
    row = ItemRow(**item.model_dump())
    session.add(row)
    await session.commit()
    return row


async def read_item(session: SessionDep, item_id: ItemId) -> ItemRow:
    return or_404(await session.get(ItemRow, item_id))


async def read_item_slow(session: SessionDep, item_id: ItemId, wait_ms: WaitMs = WAIT_MS_DEFAULT) -> ItemRow:
    await session.execute(wait_in_database(session.get_bind(), wait_ms))
    return or_404(await session.get(ItemRow, item_id))


async def list_items(session: SessionDep, limit: Limit = LIST_LIMIT_DEFAULT, offset: Offset = 0) -> Sequence[ItemRow]:
    query = select(ItemRow).order_by(ItemRow.id).limit(limit).offset(offset)
    return (await session.scalars(query)).all()


async def update_item(session: SessionDep, item_id: ItemId, changes: ItemUpdate) -> ItemRow:
    row = or_404(await session.get(ItemRow, item_id))
    apply_update(row, changes)
    await session.commit()
    return row


async def delete_item(session: SessionDep, item_id: ItemId) -> None:
    row = or_404(await session.get(ItemRow, item_id))
    await session.delete(row)
    await session.commit()


def build_app(module_name: str, variant: VariantSpec, driver: Driver) -> FastAPI:
    """This service on any SQLAlchemy dialect: mysql_sqla_async reuses it with another driver."""
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


app = build_app(__name__, VARIANT, "asyncpg")
