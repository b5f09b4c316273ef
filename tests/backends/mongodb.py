"""MongoDB for the tests: the server the harness itself provisions (a local mongod, else the secantusdb
surrogate), or BENCH_TEST_MONGO_URL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from pymongo import DESCENDING, MongoClient

from apps.mongo_items import DEFAULT_DATABASE, ITEMS_COLLECTION
from bench.databases.mongo.backend import NoMongoServerError, provision_mongo


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A MongoDB URL, found or started the way `bench run` does without --mongo-url."""
    given = os.environ.get("BENCH_TEST_MONGO_URL")
    log_path = tmp_path_factory.mktemp("mongo") / "secantusd.log"
    with ExitStack() as stack:
        try:
            server = stack.enter_context(provision_mongo(url=given, connections_needed=60, log_path=log_path))
        except NoMongoServerError as missing:
            pytest.skip(f"no MongoDB for the tests: {missing.message}")
        assert server.database.url is not None
        yield server.database.url


@pytest.fixture(scope="module")
def mongo_client(mongo_url: str) -> Iterator[MongoClient[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url)
    yield client
    client.close()


@pytest.fixture
def mongodb_backend(mongo_url: str, mongo_client: MongoClient[dict[str, Any]]) -> Iterator[dict[str, str]]:
    """The app environment for a MongoDB variant. The collection is shared with the harness's own tests:
    remove what the test added, keep what was there."""
    items = mongo_client.get_default_database(DEFAULT_DATABASE)[ITEMS_COLLECTION]
    last = items.find_one({}, {"_id": True}, sort=[("_id", DESCENDING)])
    last_id_before = 0 if last is None else last["_id"]
    yield {"BENCH_DATABASE_URL": mongo_url}
    items.delete_many({"_id": {"$gt": last_id_before}})
