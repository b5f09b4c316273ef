"""No database: items in a dict, the baseline for what FastAPI alone costs; `async def` routes.

GET /items/{item_id}/slow waits with `asyncio.sleep` in the app: there is no database, and no pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from itertools import count, islice

from fastapi import FastAPI, Request

from apps.catalog import VariantSpec
from apps.contract import (
    LIST_LIMIT_DEFAULT,
    WAIT_MS_DEFAULT,
    ItemCreate,
    ItemId,
    ItemResponse,
    ItemUpdate,
    Limit,
    Offset,
    WaitMs,
    create_app,
    or_404,
)
from apps.dataset import seed_items
from apps.settings import AppSettings

VARIANT: VariantSpec = {"backend": "memory", "mode": "async", "driver": "dict", "pooled": False}


class ItemStore:
    """Items by id, filled with the same seeded rows the databases hold."""

    def __init__(self, dataset_rows: int) -> None:
        # Ids only ever grow, so the dict's insertion order is id order, as ORDER BY id gives in SQL.
        self.items = {seed.id: ItemResponse(**seed._asdict()) for seed in seed_items(dataset_rows)}
        self._ids: Iterator[int] = count(dataset_rows + 1)

    def new_id(self) -> int:
        return next(self._ids)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: AppSettings = app.state.settings
    app.state.store = ItemStore(settings.dataset_rows)
    yield


def store_of(request: Request) -> ItemStore:
    """Read from the request rather than through `Depends`: a dependency that only hands out a shared object costs
    FastAPI ~20 µs a request to solve, which a user's module-level dict does not pay."""
    store: ItemStore = request.app.state.store
    return store


async def create_item(request: Request, item: ItemCreate) -> ItemResponse:
    store = store_of(request)
    stored = ItemResponse(id=store.new_id(), **item.model_dump())
    store.items[stored.id] = stored
    return stored


async def read_item(request: Request, item_id: ItemId) -> ItemResponse:
    store = store_of(request)
    return or_404(store.items.get(item_id))


async def read_item_slow(request: Request, item_id: ItemId, wait_ms: WaitMs = WAIT_MS_DEFAULT) -> ItemResponse:
    store = store_of(request)
    await asyncio.sleep(wait_ms / 1000)
    return or_404(store.items.get(item_id))


async def list_items(request: Request, limit: Limit = LIST_LIMIT_DEFAULT, offset: Offset = 0) -> list[ItemResponse]:
    store = store_of(request)
    # Clamped because islice refuses stops beyond sys.maxsize, which offset + limit may pass.
    start = min(offset, len(store.items))
    return list(islice(store.items.values(), start, start + limit))


async def update_item(request: Request, item_id: ItemId, changes: ItemUpdate) -> ItemResponse:
    store = store_of(request)
    stored = or_404(store.items.get(item_id))
    store.items[item_id] = updated = stored.model_copy(update=changes.values_given())
    return updated


async def delete_item(request: Request, item_id: ItemId) -> None:
    store = store_of(request)
    or_404(store.items.pop(item_id, None))


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
    db_wait="asyncio.sleep in the app (no database)",
)
