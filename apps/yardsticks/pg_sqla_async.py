"""Yardstick of pg_sqla_async (and mysql_sqla_async): SQLAlchemy's asyncio engine, a session from `yield` Depends."""

import os
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict
from sqlalchemy import BigInteger, make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# The driver of the variant measured beside it: asyncpg on PostgreSQL, aiomysql on MySQL/MariaDB.
url = make_url(os.environ["BENCH_DATABASE_URL"])
dialect = "postgresql" if url.get_backend_name() in ("postgresql", "postgres") else "mysql"
engine = create_async_engine(
    url.set(drivername={"postgresql": "postgresql+asyncpg", "mysql": "mysql+aiomysql"}[dialect]),
    pool_size=int(os.environ.get("BENCH_POOL_SIZE", "5")),
    max_overflow=int(os.environ.get("BENCH_MAX_OVERFLOW", "10")),
)


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "bench_items"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str]
    description: Mapped[str | None]
    price: Mapped[float]
    quantity: Mapped[int]


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    description: str | None
    price: float
    quantity: int


async def get_session() -> AsyncIterator[AsyncSession]:
    async with AsyncSession(engine) as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
app = FastAPI()


@app.get("/items/{item_id}", response_model=ItemOut)
async def read_item(item_id: int, session: SessionDep) -> Item:
    item = await session.get(Item, item_id)
    if item is None:
        raise HTTPException(status_code=404, detail="item not found")
    return item
