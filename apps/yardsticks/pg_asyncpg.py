"""Yardstick of pg_asyncpg: asyncpg's own pool, a connection per request from a `yield` dependency."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel

POOL_SIZE = int(os.environ.get("BENCH_POOL_SIZE", "5"))
MAX_OVERFLOW = int(os.environ.get("BENCH_MAX_OVERFLOW", "10"))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    url = os.environ["BENCH_DATABASE_URL"].replace("+psycopg", "").replace("+asyncpg", "")
    async with asyncpg.create_pool(url, min_size=POOL_SIZE, max_size=POOL_SIZE + MAX_OVERFLOW) as pool:
        app.state.pool = pool
        yield


class ItemOut(BaseModel):
    id: int
    name: str
    description: str | None
    price: float
    quantity: int


async def get_connection(request: Request) -> AsyncIterator[Any]:
    async with request.app.state.pool.acquire() as conn:
        yield conn


ConnectionDep = Annotated[Any, Depends(get_connection)]
app = FastAPI(lifespan=lifespan)


@app.get("/items/{item_id}", response_model=ItemOut)
async def read_item(item_id: int, conn: ConnectionDep) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT id, name, description, price, quantity FROM bench_items WHERE id = $1", item_id)
    if row is None:
        raise HTTPException(status_code=404, detail="item not found")
    return dict(row)
