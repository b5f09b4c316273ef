"""Yardstick of redis_async: redis.asyncio's client on a BlockingConnectionPool, items as hashes, `async def` route."""

import os
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from redis.asyncio import BlockingConnectionPool, Redis

pool = BlockingConnectionPool.from_url(
    os.environ["BENCH_DATABASE_URL"],
    max_connections=int(os.environ.get("BENCH_POOL_SIZE", "5")) + int(os.environ.get("BENCH_MAX_OVERFLOW", "10")),
    decode_responses=True,
)
redis = Redis(connection_pool=pool)


class ItemOut(BaseModel):
    id: int
    name: str
    description: str | None
    price: float
    quantity: int


app = FastAPI()


@app.get("/items/{item_id}", response_model=ItemOut)
async def read_item(item_id: int) -> dict[str, Any]:
    fields: dict[str, str] = await redis.hgetall(f"bench:item:{item_id}")  # type: ignore[assignment]  # decoded
    if not fields:
        raise HTTPException(status_code=404, detail="item not found")
    return {"id": item_id, "description": None, **fields}
