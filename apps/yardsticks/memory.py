"""Yardstick of memory: items in a dict, an `async def` route, no database."""

import os
import random
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

rng = random.Random(42)
items = {
    item_id: {
        "id": item_id,
        "name": f"item-{item_id:06d}",
        "description": f"seeded item {item_id}",
        "price": round(rng.uniform(0.5, 500.0), 2),
        "quantity": rng.randint(0, 1000),
    }
    for item_id in range(1, int(os.environ.get("BENCH_DATASET_ROWS", "10000")) + 1)
}


class ItemOut(BaseModel):
    id: int
    name: str
    description: str | None
    price: float
    quantity: int


app = FastAPI()


@app.get("/items/{item_id}", response_model=ItemOut)
async def read_item(item_id: int) -> dict[str, Any]:
    item = items.get(item_id)
    if item is None:
        raise HTTPException(status_code=404, detail="item not found")
    return item
