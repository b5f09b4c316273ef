"""Yardstick of mongo_motor: Motor's AsyncIOMotorClient awaited in an `async def` route."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorCollection
from pydantic import BaseModel

POOL_SIZE = int(os.environ.get("BENCH_POOL_SIZE", "5"))
MAX_OVERFLOW = int(os.environ.get("BENCH_MAX_OVERFLOW", "10"))


class ItemOut(BaseModel):
    id: int
    name: str
    description: str | None
    price: float
    quantity: int


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    client: AsyncIOMotorClient[dict[str, Any]] = AsyncIOMotorClient(
        os.environ["BENCH_DATABASE_URL"], minPoolSize=POOL_SIZE, maxPoolSize=POOL_SIZE + MAX_OVERFLOW
    )
    app.state.items = client.get_default_database("bench")["bench_items"]
    yield
    client.close()


app = FastAPI(lifespan=lifespan)


@app.get("/items/{item_id}", response_model=ItemOut)
async def read_item(item_id: int, request: Request) -> dict[str, Any]:
    items: AsyncIOMotorCollection[dict[str, Any]] = request.app.state.items
    item = await items.find_one({"_id": item_id})
    if item is None:
        raise HTTPException(status_code=404, detail="item not found")
    return {"id": item["_id"], **item}
