"""Yardstick of pg_psycopg_sync: psycopg 3 and psycopg_pool, a connection per request from a `yield` dependency."""

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from psycopg import Connection
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

POOL_SIZE = int(os.environ.get("BENCH_POOL_SIZE", "5"))
MAX_OVERFLOW = int(os.environ.get("BENCH_MAX_OVERFLOW", "10"))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    url = os.environ["BENCH_DATABASE_URL"].replace("+psycopg", "").replace("+asyncpg", "")
    # Autocommit, as the variant: one statement per request needs no BEGIN/COMMIT round trips.
    kwargs = {"autocommit": True, "row_factory": dict_row}
    with ConnectionPool(url, min_size=POOL_SIZE, max_size=POOL_SIZE + MAX_OVERFLOW, kwargs=kwargs) as pool:
        app.state.pool = pool
        yield


class ItemOut(BaseModel):
    id: int
    name: str
    description: str | None
    price: float
    quantity: int


def get_connection(request: Request) -> Iterator[Connection[Any]]:
    with request.app.state.pool.connection() as conn:
        yield conn


ConnectionDep = Annotated[Connection[Any], Depends(get_connection)]
app = FastAPI(lifespan=lifespan)


@app.get("/items/{item_id}", response_model=ItemOut)
def read_item(item_id: int, conn: ConnectionDep) -> Any:
    row = conn.execute("SELECT id, name, description, price, quantity FROM bench_items WHERE id = %s", (item_id,))
    item = row.fetchone()
    if item is None:
        raise HTTPException(status_code=404, detail="item not found")
    return item
