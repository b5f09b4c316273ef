"""What the MongoDB variants share that does no I/O of its own: URL, client options, documents, errors.

GET /items/{item_id}/slow makes the server wait with a tailable awaitData cursor on the capped collection
`bench_wait`, which holds one anchor document and to which nothing else is ever written: the find answers at
once, and the getMore after it is held by the server for maxAwaitTimeMS (wait_ms) waiting for a document that
never comes, holding its pooled connection meanwhile. This works on mongod and on the secantusdb surrogate,
which has neither `$where`/`$function` nor a `sleep` command (its failCommand blockTimeMS would stall every
client, not one request). Unlike SQL, the drivers check out a connection per operation, so the read after the
wait checks one out again (the pool is LIFO: usually the same one). maxAwaitTimeMS 0 is not "no wait" on every
server, so wait_ms=0 skips the cursor.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Generic, Protocol, TypedDict, TypeVar
from urllib.parse import parse_qsl, urlsplit

from pymongo import ASCENDING, CursorType, IndexModel
from pymongo.errors import CollectionInvalid, OperationFailure, PyMongoError, ServerSelectionTimeoutError

from apps.contract import ItemCreate, ItemUpdate
from apps.masking import scrub
from apps.pooling import max_connections
from apps.settings import AppSettings, StartupError

Document = dict[str, Any]
# What the routes return; FastAPI validates it against ItemResponse once, as it does the SQL variants' rows.
ItemDict = dict[str, Any]
C = TypeVar("C")
C_co = TypeVar("C_co", covariant=True)

# The same names as the SQL tables, so pointing the harness at a shared server never touches a user's `items`.
ITEMS_COLLECTION: Final = "bench_items"
COUNTERS_COLLECTION: Final = "bench_counters"
DEFAULT_DATABASE: Final = "bench"  # when the URL names none (mongodb://host:port/)
SCHEMES: Final = ("mongodb://", "mongodb+srv://")

# Items keep integer ids (the `_id`), as in SQL, so every backend answers the same JSON and no ObjectId leaks.
# New ids come from one counter document, moved atomically by find_one_and_update.
NEXT_ID_FILTER: Final[Document] = {"_id": ITEMS_COLLECTION}
NEXT_ID_UPDATE: Final[Document] = {"$inc": {"seq": 1}}
ITEM_INDEXES: Final = [IndexModel([("name", ASCENDING)], name=f"ix_{ITEMS_COLLECTION}_name")]
BY_ID: Final = [("_id", ASCENDING)]
_FIELDS: Final = ("name", "description", "price", "quantity")

# The io_wait route's capped collection; a tailable cursor on an empty collection dies at once, hence the anchor.
WAIT_COLLECTION: Final = "bench_wait"
WAIT_COLLECTION_OPTIONS: Final[Document] = {"capped": True, "size": 4096, "max": 1}
WAIT_ANCHOR: Final[Document] = {"_id": "anchor"}
KEEP_ANCHOR: Final[Document] = {"$setOnInsert": {"anchor": True}}
# find() arguments: matches nothing, so the getMore always waits its full maxAwaitTimeMS.
WAIT_QUERY: Final[Document] = {"filter": {"never": True}, "cursor_type": CursorType.TAILABLE_AWAIT}
DB_WAIT: Final = "a tailable awaitData getMore held by the server (maxAwaitTimeMS) on a capped collection"
_NAMESPACE_EXISTS: Final = 48

# Without a limit an unreachable server makes start-up wait 30 s (pymongo's default) before failing.
CONNECT_TIMEOUT_S: Final = 10


class ClientOptions(TypedDict, total=False):
    """Keyword arguments of MongoClient, AsyncMongoClient and AsyncIOMotorClient (they share the options)."""

    minPoolSize: int
    maxPoolSize: int
    waitQueueTimeoutMS: int
    serverSelectionTimeoutMS: int
    connectTimeoutMS: int


def database_url(settings: AppSettings) -> str:
    """The MongoDB URL the user gave; StartupError when it is missing or names another database system."""
    url = settings.database_url
    if url is None:
        raise StartupError("BENCH_DATABASE_URL is not set; give it a mongodb:// URL")
    if not url.startswith(SCHEMES):
        given = f"{url.partition('://')[0]}://" if "://" in url else "a value without a scheme"
        raise StartupError(f"BENCH_DATABASE_URL must be a mongodb:// URL (or mongodb+srv://), not {given}")
    return url


def client_options(settings: AppSettings, url: str) -> ClientOptions:
    """apps/pooling.py's mapping of pool_size/max_overflow, and start-up timeouts the URL does not set itself.

    pool_pre_ping has no counterpart: the drivers already check a connection's socket before reusing it once
    it has been idle for a second."""
    # waitQueueTimeoutMS is what bounds the wait for a connection (pool_timeout_s). It has a price on CPython
    # 3.11 only: AsyncMongoClient then waits through asyncio.wait_for, a new Task per checkout that has to wait,
    # so an exhausted pool costs it CPU that the driver's default (no timeout) does not; 3.12's wait_for has no
    # Task. Kept anyway: without it pool_timeout_s would mean nothing for the MongoDB variants.
    options = ClientOptions(
        minPoolSize=settings.pool_size,
        maxPoolSize=max_connections(settings),
        waitQueueTimeoutMS=round(settings.pool_timeout_s * 1000),
    )
    # Keyword arguments override URL options in pymongo, so only fill the gaps (URL options are case-insensitive).
    in_url = {name.lower() for name, _ in parse_qsl(urlsplit(url).query)}
    if "serverselectiontimeoutms" not in in_url:
        options["serverSelectionTimeoutMS"] = CONNECT_TIMEOUT_S * 1000
    if "connecttimeoutms" not in in_url:
        options["connectTimeoutMS"] = CONNECT_TIMEOUT_S * 1000
    return options


class _Database(Protocol[C_co]):
    """What pymongo's Database, AsyncDatabase and Motor's AsyncIOMotorDatabase share: collections by name."""

    def __getitem__(self, name: str) -> C_co: ...


@dataclass(frozen=True, slots=True)
class Collections(Generic[C]):
    """The collections the routes use, looked up once at start-up and read from `request.app.state`.

    `db[name]` builds a new collection object on every call (12 µs a request on AsyncMongoClient under py-spy),
    and a dependency that only hands out a shared object costs FastAPI ~20 µs a request to solve; a user's
    module-level collection pays neither, and neither is what the variants compare."""

    items: C
    counters: C
    waits: C


def collections(db: _Database[C]) -> Collections[C]:
    return Collections(items=db[ITEMS_COLLECTION], counters=db[COUNTERS_COLLECTION], waits=db[WAIT_COLLECTION])


def counter_at_least(last_item: Document | None) -> Document:
    """Move the id counter past the highest id present (items written without the harness), creating it if
    missing, so that the first create never collides with an existing `_id`."""
    last_id = last_item["_id"] if last_item is not None and isinstance(last_item["_id"], int) else 0
    return {"$max": {"seq": last_id}}


def new_document(counter: Document | None, item: ItemCreate) -> Document:
    if counter is None:  # upsert=True with ReturnDocument.AFTER always returns the counter
        raise RuntimeError(f"the id counter {NEXT_ID_FILTER} was not returned")
    return {"_id": counter["seq"], **item.model_dump()}


def to_item(document: Document) -> ItemDict:
    """The contract's item; only its own fields are read, so nothing MongoDB-specific reaches the JSON."""
    return {"id": document["_id"], **{field: document.get(field) for field in _FIELDS}}


def set_changes(changes: ItemUpdate) -> Document:
    # Only the fields given; an explicit null description is stored as null, as in SQL.
    return {"$set": changes.values_given()}


# --- errors ---------------------------------------------------------------------------------------------------

_CONFIGURED_TIMEOUTS = re.compile(r"\s*\(configured timeouts:[^)]*\)")
_SELECTION_TIMEOUT = re.compile(r", Timeout: (?P<seconds>[0-9.]+)s, ")


def reason(error: BaseException) -> str:
    """A driver error in one short line: pymongo appends topology descriptions and raw server replies."""
    if isinstance(error, ServerSelectionTimeoutError):
        # "<host>: <cause> (configured timeouts: ...), Timeout: 10.0s, Topology Description: <...>"
        message = str(error)
        waited = _SELECTION_TIMEOUT.search(message)
        within = f" within {float(waited['seconds']):g} s" if waited else ""
        text = _CONFIGURED_TIMEOUTS.sub("", message.split(", Timeout:", 1)[0])
        return f"no MongoDB server answered{within} ({' '.join(text.split())})"
    if isinstance(error, OperationFailure):
        details = error.details or {}
        text = str(details.get("errmsg") or str(error).split(", full error:", 1)[0])
        return f"{type(error).__name__}: {' '.join(text.split())} (code {error.code})"
    text = " ".join(str(error).split()) or "(no message)"
    return f"{type(error).__name__}: {text}"


@contextmanager
def unless_it_exists() -> Iterator[None]:
    """Create a collection unless another worker just did (the losing create fails, with either error)."""
    try:
        yield
    except CollectionInvalid:
        pass
    except OperationFailure as error:
        if error.code != _NAMESPACE_EXISTS:
            raise


@contextmanager
def startup_errors(url: str) -> Iterator[None]:
    """Turn a driver error at start-up (bad URL, no server, failed login) into a one-line StartupError."""
    try:
        yield
    except (PyMongoError, ValueError, TypeError) as error:
        raise StartupError(scrub(reason(error), url)) from error
