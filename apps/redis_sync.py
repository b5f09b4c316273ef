"""Redis through redis-py's sync client on a BlockingConnectionPool; `def` routes run in FastAPI's thread pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from redis import BlockingConnectionPool, Redis
from redis.commands.core import Script

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
from apps.pooling import redis_pool
from apps.redis_items import (
    DB_WAIT,
    NEXT_ID_KEY,
    ORDER_KEY,
    UPDATE_ITEM_LUA,
    WAIT_STREAM,
    ItemDict,
    index_range,
    item_from_hash,
    item_from_pairs,
    item_hash,
    item_ids,
    item_key,
    pool_options,
    redis_url,
    update_args,
)
from apps.settings import AppSettings
from apps.telemetry_redis import pool_class

VARIANT: VariantSpec = {"backend": "redis", "mode": "sync", "driver": "redis-py", "pooled": True}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: AppSettings = app.state.settings
    pool = pool_class(app, BlockingConnectionPool).from_url(redis_url(settings), **pool_options(settings))
    client = Redis.from_pool(pool)  # the client owns the pool: closing it closes the pool's connections
    try:
        client.ping()  # fail fast on a bad URL
        app.state.redis = client
        app.state.update_script = client.register_script(UPDATE_ITEM_LUA)
        yield
    finally:
        client.close()


def client_of(request: Request) -> Redis:
    """The app's client, read from the request rather than through `Depends`: a dependency that only hands out a
    shared object costs FastAPI ~20 µs a request to solve, which a user's module-level client does not pay."""
    client: Redis = request.app.state.redis
    return client


def create_item(request: Request, item: ItemCreate) -> ItemResponse:
    client = client_of(request)
    item_id = client.incr(NEXT_ID_KEY)
    with client.pipeline(transaction=True) as pipe:  # MULTI/EXEC: the hash and its place in the order, or neither
        pipe.hset(item_key(item_id), mapping=item_hash(item.model_dump()))
        pipe.zadd(ORDER_KEY, {str(item_id): item_id})
        pipe.execute()
    return ItemResponse(id=item_id, **item.model_dump())


def read_item(request: Request, item_id: ItemId) -> ItemDict:
    client = client_of(request)
    return or_404(item_from_hash(item_id, client.hgetall(item_key(item_id))))


def read_item_slow(request: Request, item_id: ItemId, wait_ms: WaitMs = WAIT_MS_DEFAULT) -> ItemDict:
    client = client_of(request)
    with client.pipeline(transaction=False) as pipe:  # one connection: the server's wait, then the read
        if wait_ms:  # BLOCK 0 would wait forever
            pipe.xread({WAIT_STREAM: "$"}, block=wait_ms)
        pipe.hgetall(item_key(item_id))
        *_, stored = pipe.execute()
    return or_404(item_from_hash(item_id, stored))


def list_items(request: Request, limit: Limit = LIST_LIMIT_DEFAULT, offset: Offset = 0) -> list[ItemDict]:
    client = client_of(request)
    ids = item_ids(client.zrange(ORDER_KEY, *index_range(limit, offset)))
    with client.pipeline(transaction=False) as pipe:  # one round trip for the whole page
        for item_id in ids:
            pipe.hgetall(item_key(item_id))
        stored = pipe.execute()
    # An item deleted between the two round trips has an empty hash by now: it is left out.
    found = (item_from_hash(item_id, fields) for item_id, fields in zip(ids, stored, strict=True))
    return [item for item in found if item is not None]


def update_item(request: Request, item_id: ItemId, changes: ItemUpdate) -> ItemDict:
    update: Script = request.app.state.update_script
    stored = update(keys=[item_key(item_id)], args=update_args(changes))
    return or_404(item_from_pairs(item_id, stored))


def delete_item(request: Request, item_id: ItemId) -> None:
    client = client_of(request)
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(item_key(item_id))
        pipe.zrem(ORDER_KEY, str(item_id))
        deleted, _ = pipe.execute()
    or_404(deleted or None)


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
    db_wait=DB_WAIT,
    driver_pool=redis_pool,
)
