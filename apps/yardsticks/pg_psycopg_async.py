"""Yardstick of pg_psycopg_async: psycopg 3's async pool, a connection per request from a `yield` dependency."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

POOL_SIZE = int(os.environ.get("BENCH_POOL_SIZE", "5"))
MAX_OVERFLOW = int(os.environ.get("BENCH_MAX_OVERFLOW", "10"))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    url = os.environ["BENCH_DATABASE_URL"].replace("+psycopg", "").replace("+asyncpg", "")
    # Autocommit, as the variant: one statement per request needs no BEGIN/COMMIT round trips.
    kwargs = {"autocommit": True, "row_factory": dict_row}
    pool = AsyncConnectionPool(url, min_size=POOL_SIZE, max_size=POOL_SIZE + MAX_OVERFLOW, kwargs=kwargs, open=False)
    async with pool:
        app.state.pool = pool
        yield


class ItemOut(BaseModel):
    id: int
    name: str
    description: str | None
    price: float
    quantity: int


async def get_connection(request: Request) -> AsyncIterator[AsyncConnection[Any]]:
    async with request.app.state.pool.connection() as conn:
        yield conn


ConnectionDep = Annotated[AsyncConnection[Any], Depends(get_connection)]
app = FastAPI(lifespan=lifespan)


@app.get("/items/{item_id}", response_model=ItemOut)
async def read_item(item_id: int, conn: ConnectionDep) -> Any:
    cursor = await conn.execute(
        "SELECT id, name, description, price, quantity FROM bench_items WHERE id = %s", (item_id,)
    )
    item = await cursor.fetchone()
    if item is None:
        raise HTTPException(status_code=404, detail="item not found")
    return item
