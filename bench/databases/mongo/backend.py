"""MongoDB for a run: a given server (checked for room for the pools), a local mongod on the default port, or
the secantusdb surrogate started as a child process (labelled a surrogate everywhere); and seeding it.

Seeding is idempotent: `bench_dataset` holds the row count and a digest of what `apps.dataset` generates; the
collection is reused when the digest of its documents (in `_id` order) is that digest, else it is rebuilt.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.database import Database as MongoDatabase
from pymongo.errors import OperationFailure, PyMongoError

from apps.dataset import SeedItem, seed_items
from apps.masking import scrub
from apps.mongo_items import (
    BY_ID,
    COUNTERS_COLLECTION,
    DEFAULT_DATABASE,
    ITEM_INDEXES,
    ITEMS_COLLECTION,
    NEXT_ID_FILTER,
    SCHEMES,
    Document,
    reason,
)
from bench.databases.backend import Database, SeedResult
from bench.databases.mongo.server import MAX_CONNECTIONS, answers_ping, locate_surrogate, run_surrogate
from bench.records.errors import BenchError

__all__ = ["MongoBackend", "MongoServer", "NoMongoServerError", "provision_mongo", "seed_mongo"]

LOCAL_HOST, LOCAL_PORT = "127.0.0.1", 27017
LOCAL_URL = f"mongodb://{LOCAL_HOST}:{LOCAL_PORT}/bench"
CONNECT_TIMEOUT_S = 5
# Connections beyond the pools: every client's two monitoring connections per server, seeding, this check.
CONNECTION_HEADROOM = 10
DATASET_COLLECTION = "bench_dataset"
_BATCH_ROWS = 1000
_ITEM_FIELDS = ("_id", "name", "description", "price", "quantity")

NOT_FOUND_HINT = (
    f"no MongoDB server found: nothing answers on {LOCAL_HOST}:{LOCAL_PORT} and the secantusdb surrogate "
    "(secantusd-py) is not installed (pip install 'fastapi-db-bench[mongodb]'); set --mongo-url / MONGO_URL, "
    f"or run `docker compose up -d mongo` and pass `--mongo-url {LOCAL_URL}`"
)


class NoMongoServerError(BenchError):
    """Neither a server to use nor the surrogate to start (tests skip on this one, and fail on the others)."""


@dataclass(frozen=True)
class MongoServer:
    """The MongoDB a run uses, plus what only the harness and its tests need to know about it."""

    database: Database
    pid: int | None  # the surrogate's PID when bench started it
    workdir: Path | None  # its bench-mongo-* directory


@contextmanager
def provision_mongo(
    *, url: str | None, connections_needed: int, log_path: Path | None = None, look_locally: bool = True
) -> Iterator[MongoServer]:
    """Use `url`; else a mongod answering on 127.0.0.1:27017 (if `look_locally`); else start the surrogate
    (stopped on exit)."""
    if url is not None:
        yield MongoServer(_given_server(url, connections_needed, "given URL"), None, None)
        return
    if look_locally and answers_ping(LOCAL_HOST, LOCAL_PORT):
        yield MongoServer(_given_server(LOCAL_URL, connections_needed, "local server on the default port"), None, None)
        return
    program = locate_surrogate()
    if program is None:
        raise NoMongoServerError(NOT_FOUND_HINT)
    if connections_needed + CONNECTION_HEADROOM > MAX_CONNECTIONS:
        raise BenchError(
            f"the run needs {connections_needed} connections (+{CONNECTION_HEADROOM} for monitoring and seeding) "
            f"but the secantusdb surrogate accepts at most {MAX_CONNECTIONS}; lower pool_size/max_overflow or "
            "workers, or pass --mongo-url"
        )
    with run_surrogate(program, log_path) as surrogate:
        with _connect(surrogate.url) as client:
            facts = _describe(client, surrogate.url)
        facts.settings |= {"storage": ":memory:", "max_connections": str(MAX_CONNECTIONS)}
        database = facts.database(surrogate.url, embedded=True, source="secantusdb surrogate started by bench")
        yield MongoServer(database, surrogate.pid, surrogate.workdir)


def _given_server(url: str, needed: int, source: str) -> Database:
    with _connect(url) as client:
        facts = _describe(client, url)
    check_capacity(facts, url, needed)
    return facts.database(url, embedded=False, source=source)


@contextmanager
def _connect(url: str) -> Iterator[MongoClient[Document]]:
    """A client that has answered a ping; any failure becomes a one-line BenchError naming the masked URL."""
    if not url.startswith(SCHEMES):
        raise BenchError(f"the MongoDB URL {scrub(url, url)} must start with mongodb:// or mongodb+srv://")
    timeout_ms = CONNECT_TIMEOUT_S * 1000
    try:
        client: MongoClient[Document] = MongoClient(
            url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms, appname="bench"
        )
    except (PyMongoError, ValueError, TypeError) as error:
        raise BenchError(
            f"invalid MongoDB URL {scrub(url, url)}: {scrub(reason(error), url)}; "
            "expected mongodb://user:password@host:port/database"
        ) from error
    try:
        try:
            client.admin.command("ping")
        except PyMongoError as error:
            raise BenchError(
                f"cannot connect to MongoDB at {scrub(url, url)}: {scrub(reason(error), url)}; "
                "check that the server is running and that host, port, user and password are right"
            ) from error
        yield client
    finally:
        client.close()


@dataclass
class ServerFacts:
    version: str  # MongoDB's version, or secantusdb's own for the surrogate
    surrogate: bool
    connections_available: int | None  # None: not reported (surrogate), or serverStatus not permitted
    settings: dict[str, str]

    def database(self, url: str, *, embedded: bool, source: str) -> Database:
        name = "secantusdb" if self.surrogate else "MongoDB"
        return Database(
            backend="mongodb",
            url=url,
            label=f"{name} {self.version}" + (" (surrogate)" if self.surrogate else ""),
            version=self.version,
            embedded=embedded,
            surrogate=self.surrogate,
            source=source,
            settings=self.settings,
        )


def _describe(client: MongoClient[Document], url: str) -> ServerFacts:
    try:
        build = client.admin.command("buildInfo")
        hello = client.admin.command("hello")
        try:
            status: Document = client.admin.command("serverStatus")
            status_problem = ""
        except OperationFailure as error:  # needs the clusterMonitor role on a server with access control
            status, status_problem = {}, f"unknown (serverStatus: {reason(error)})"
    except PyMongoError as error:
        raise BenchError(f"cannot ask MongoDB at {scrub(url, url)} what it is: {scrub(reason(error), url)}") from error
    # secantusdb reports MongoDB's version for drivers' sake and marks itself in buildInfo and serverStatus.
    surrogate_version = build.get("secantusVersion") or (status.get("secantus") or {}).get("version")
    connections: Document = status.get("connections") or {}
    available = connections.get("available")
    if surrogate_version:
        available = None  # secantusdb always answers 0: a placeholder ("unbounded in practice"), not a limit
        available_text = "not reported (surrogate)"
    elif isinstance(available, int):
        available_text = str(available)
    else:
        available = None
        available_text = status_problem or "unknown"
    settings = {
        "process": str(status.get("process") or status_problem or "unknown"),
        "mongodb_version": str(build.get("version", "")),
        "storage_engine": str((status.get("storageEngine") or {}).get("name") or status_problem or "unknown"),
        "topology": _topology(hello),
        "connections_current": str(connections.get("current", status_problem or "unknown")),
        "connections_available": available_text,
    }
    return ServerFacts(
        version=str(surrogate_version or build.get("version", "unknown")),
        surrogate=bool(surrogate_version),
        connections_available=available,
        settings=settings,
    )


def _topology(hello: Document) -> str:
    if hello.get("msg") == "isdbgrid":
        return "sharded (mongos)"
    if hello.get("setName"):
        return f"replica set {hello['setName']}"
    return "standalone"


def check_capacity(facts: ServerFacts, url: str, needed: int) -> None:
    """BenchError unless the server reports room for `needed` more connections; unknown room is recorded."""
    available = facts.connections_available
    if available is not None and available < needed + CONNECTION_HEADROOM:
        raise BenchError(
            f"the run needs {needed} connections (+{CONNECTION_HEADROOM} for monitoring and seeding) but MongoDB "
            f"at {scrub(url, url)} has {available} available ({facts.settings['connections_current']} in use); "
            "raise net.maxIncomingConnections or the open-files limit, or lower pool_size/max_overflow"
        )


# --- seeding ---------------------------------------------------------------------------------------------


def seed_mongo(url: str, rows: int) -> SeedResult:
    """Make `bench_items` hold exactly `apps.dataset.seed_items(rows)`, with the id counter at `rows`."""
    started = time.perf_counter()
    with _connect(url) as client:
        try:
            reused = _reuse_or_reseed(client.get_default_database(DEFAULT_DATABASE), rows)
        except PyMongoError as error:
            raise BenchError(
                f"cannot seed MongoDB at {scrub(url, url)}: {scrub(reason(error), url)}; "
                "check that the user may write to the database"
            ) from error
    return SeedResult(rows=rows, reused=reused, seconds=time.perf_counter() - started)


def _reuse_or_reseed(db: MongoDatabase[Document], rows: int) -> bool:
    """True if the collection already held the dataset. The digest of the documents themselves decides, so an
    item changed, added or removed by an earlier point (or by hand) is noticed whatever the marker says."""
    expected = _digest(tuple(item) for item in seed_items(rows))
    marker = db[DATASET_COLLECTION].find_one({"_id": ITEMS_COLLECTION})
    items = db[ITEMS_COLLECTION]
    if marker is not None and marker.get("rows") == rows and marker.get("digest") == expected:
        stored = items.find({}, dict.fromkeys(_ITEM_FIELDS, True), sort=BY_ID, batch_size=_BATCH_ROWS)
        if _digest(tuple(document.get(field) for field in _ITEM_FIELDS) for document in stored) == expected:
            # Content is exactly ids 1..rows: every point starts its creates at rows + 1.
            db[COUNTERS_COLLECTION].update_one(NEXT_ID_FILTER, {"$set": {"seq": rows}}, upsert=True)
            return True

    db[DATASET_COLLECTION].delete_one({"_id": ITEMS_COLLECTION})  # an interrupted reseed is never reused
    db.drop_collection(ITEMS_COLLECTION)
    generated = seed_items(rows)
    while batch := [_document(item) for item in islice(generated, _BATCH_ROWS)]:
        items.insert_many(batch)
    items.create_indexes(ITEM_INDEXES)  # after the inserts: one index build instead of one update per row
    db[COUNTERS_COLLECTION].update_one(NEXT_ID_FILTER, {"$set": {"seq": rows}}, upsert=True)
    db[DATASET_COLLECTION].replace_one(
        {"_id": ITEMS_COLLECTION}, {"_id": ITEMS_COLLECTION, "rows": rows, "digest": expected}, upsert=True
    )
    return False


def _document(item: SeedItem) -> Document:
    return {"_id": item.id, "name": item.name, "description": item.description, "price": item.price,
            "quantity": item.quantity}  # fmt: skip


def _digest(rows: Iterable[tuple[Any, ...]]) -> str:
    # repr keeps types apart (1 vs 1.0) and prints floats exactly, so any change of value or type shows.
    digest = hashlib.sha256()
    for row in rows:
        digest.update(repr(row).encode())
        digest.update(b"\n")
    return digest.hexdigest()


class MongoBackend:
    """MongoDB for the harness: a given URL, a local mongod, else the secantusdb surrogate (see provision_mongo)."""

    name = "mongodb"
    url_option = "--mongo-url"
    url_env = "MONGO_URL"

    @contextmanager
    def provision(
        self, *, url: str | None, connections_needed: int, dataset_rows: int, work_dir: Path, local: bool = True
    ) -> Iterator[Database]:
        with provision_mongo(
            url=url, connections_needed=connections_needed, log_path=work_dir / "secantusd.log", look_locally=local
        ) as server:
            yield server.database

    def seed(self, database: Database, rows: int) -> SeedResult:
        assert database.url is not None
        return seed_mongo(database.url, rows)
