"""Anti-pattern, kept to be measured: `async def` routes calling PyMongo's sync MongoClient block the event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from pymongo import DESCENDING, MongoClient, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database

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
from apps.mongo_items import (
    BY_ID,
    COUNTERS_COLLECTION,
    DB_WAIT,
    DEFAULT_DATABASE,
    ITEM_INDEXES,
    ITEMS_COLLECTION,
    KEEP_ANCHOR,
    NEXT_ID_FILTER,
    NEXT_ID_UPDATE,
    WAIT_ANCHOR,
    WAIT_COLLECTION,
    WAIT_COLLECTION_OPTIONS,
    WAIT_QUERY,
    Collections,
    Document,
    ItemDict,
    client_options,
    collections,
    counter_at_least,
    database_url,
    new_document,
    set_changes,
    startup_errors,
    to_item,
    unless_it_exists,
)
from apps.pooling import mongo_pool
from apps.settings import AppSettings
from apps.telemetry_mongo import pool_listeners

VARIANT: VariantSpec = {"backend": "mongodb", "mode": "blocking", "driver": "pymongo", "pooled": True}

# Identical to apps/mongo_pymongo.py except that every `def` below is an `async def`: FastAPI then calls
# it on the event loop instead of in the thread pool, so each query stalls every other request.


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: AppSettings = app.state.settings
    url = database_url(settings)
    with startup_errors(url):
        client: MongoClient[Document] = MongoClient(
            url, **client_options(settings, url), event_listeners=pool_listeners(app)
        )
    try:
        with startup_errors(url):
            app.state.collections = collections(prepare_database(client))
        yield
    finally:
        client.close()


def prepare_database(client: MongoClient[Document]) -> Database[Document]:
    """Fail fast on a bad URL, and create the indexes and the id counter when the app runs without the harness."""
    client.admin.command("ping")
    db = client.get_default_database(DEFAULT_DATABASE)
    db[ITEMS_COLLECTION].create_indexes(ITEM_INDEXES)
    last_item = db[ITEMS_COLLECTION].find_one({}, {"_id": True}, sort=[("_id", DESCENDING)])
    db[COUNTERS_COLLECTION].update_one(NEXT_ID_FILTER, counter_at_least(last_item), upsert=True)
    with unless_it_exists():
        db.create_collection(WAIT_COLLECTION, **WAIT_COLLECTION_OPTIONS)
    db[WAIT_COLLECTION].update_one(WAIT_ANCHOR, KEEP_ANCHOR, upsert=True)
    return db


def collections_of(request: Request) -> Collections[Collection[Document]]:
    """Read from the request rather than through `Depends` (see apps/mongo_items.py `Collections`)."""
    found: Collections[Collection[Document]] = request.app.state.collections
    return found


async def create_item(request: Request, item: ItemCreate) -> ItemDict:
    counter = collections_of(request).counters.find_one_and_update(
        NEXT_ID_FILTER, NEXT_ID_UPDATE, upsert=True, return_document=ReturnDocument.AFTER
    )
    document = new_document(counter, item)
    collections_of(request).items.insert_one(document)
    return to_item(document)


async def read_item(request: Request, item_id: ItemId) -> ItemDict:
    return to_item(or_404(collections_of(request).items.find_one({"_id": item_id})))


async def read_item_slow(request: Request, item_id: ItemId, wait_ms: WaitMs = WAIT_MS_DEFAULT) -> ItemDict:
    if wait_ms:  # maxAwaitTimeMS 0 is not "no wait" everywhere
        with collections_of(request).waits.find(**WAIT_QUERY).max_await_time_ms(wait_ms) as cursor:
            next(cursor, None)  # the find: answered at once, leaving the cursor open at the end
            next(cursor, None)  # the getMore: the server holds it wait_ms for a document that never comes
    return to_item(or_404(collections_of(request).items.find_one({"_id": item_id})))


async def list_items(request: Request, limit: Limit = LIST_LIMIT_DEFAULT, offset: Offset = 0) -> list[ItemDict]:
    cursor = collections_of(request).items.find(sort=BY_ID, skip=offset, limit=limit)
    return [to_item(document) for document in cursor]


async def update_item(request: Request, item_id: ItemId, changes: ItemUpdate) -> ItemDict:
    document = collections_of(request).items.find_one_and_update(
        {"_id": item_id}, set_changes(changes), return_document=ReturnDocument.AFTER
    )
    return to_item(or_404(document))


async def delete_item(request: Request, item_id: ItemId) -> None:
    or_404(collections_of(request).items.find_one_and_delete({"_id": item_id}, projection={"_id": True}))


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
    driver_pool=mongo_pool,
)
