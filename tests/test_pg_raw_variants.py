"""The raw-driver PostgreSQL variants beyond the contract: the DDL they run, the URLs and pool sizes they pass on."""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import make_url

from apps.schema import Base
from apps.sql_common import ITEMS_TABLE
from bench.databases.postgres.backend import seed_postgres

RAW_VARIANTS = ["pg_asyncpg", "pg_psycopg_async", "pg_psycopg_sync"]
# As tests/backends/postgresql.py provisions it, so the next test finds the dataset it expects.
DATASET_ROWS = 1000


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("BENCH_"):
            monkeypatch.delenv(name)
    return monkeypatch


def start(variant: str) -> TestClient:
    return TestClient(importlib.import_module(f"apps.{variant}").app)


def table_shape(engine: Engine) -> dict[str, Any]:
    schema = inspect(engine)
    return {
        "columns": [
            {key: str(value) for key, value in column.items() if key in {"name", "type", "nullable", "default"}}
            for column in schema.get_columns(ITEMS_TABLE)
        ],
        "primary_key": schema.get_pk_constraint(ITEMS_TABLE)["constrained_columns"],
        "indexes": sorted((index["name"], tuple(index["column_names"])) for index in schema.get_indexes(ITEMS_TABLE)),
    }


def eventually(condition: Callable[[], bool], within_s: float = 10) -> bool:
    """A backend outlives its closed connection by a moment; this waits for the state, it times nothing."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def no_table(postgres_url: str, postgres_engine: Engine) -> Iterator[Engine]:
    with postgres_engine.begin() as connection:
        connection.execute(text(f"DROP TABLE IF EXISTS {ITEMS_TABLE}"))
    yield postgres_engine
    seed_postgres(postgres_url, DATASET_ROWS)


@pytest.mark.parametrize("variant", RAW_VARIANTS)
def test_startup_creates_the_table_that_create_all_creates(
    variant: str, no_table: Engine, postgres_url: str, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("BENCH_DATABASE_URL", postgres_url)

    with start(variant) as client:
        assert client.post("/items", json={"name": "first", "price": 1}).json()["id"] == 1
    created_by_variant = table_shape(no_table)
    with no_table.begin() as connection:
        connection.execute(text(f"DROP TABLE {ITEMS_TABLE}"))
        Base.metadata.create_all(connection)

    assert created_by_variant == table_shape(no_table)


def open_connections(engine: Engine, application_name: str) -> int:
    with engine.connect() as connection:
        query = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")
        return int(connection.scalar(query, {"name": application_name}) or 0)


@pytest.mark.parametrize("variant", RAW_VARIANTS)
@pytest.mark.parametrize("scheme", ["postgres", "postgresql+asyncpg", "postgresql+psycopg"])
def test_any_postgresql_url_reaches_the_driver_with_pool_size_connections(
    variant: str, scheme: str, postgres_url: str, postgres_engine: Engine, clean_env: pytest.MonkeyPatch
) -> None:
    # A query parameter both drivers pass to the server, so the server shows which connections are the app's.
    application_name = f"test-{variant}-{scheme.replace('+', '-')}"
    url = make_url(postgres_url).set(drivername=scheme).update_query_dict({"application_name": application_name})
    clean_env.setenv("BENCH_DATABASE_URL", url.render_as_string(hide_password=False))
    clean_env.setenv("BENCH_POOL_SIZE", "3")
    clean_env.setenv("BENCH_MAX_OVERFLOW", "2")

    with start(variant) as client:
        assert client.get("/items", params={"limit": 1}).status_code == 200
        # apps/pooling.py: min_size = pool_size, opened at start-up, before any request needs them.
        assert eventually(lambda: open_connections(postgres_engine, application_name) == 3)
    assert eventually(lambda: open_connections(postgres_engine, application_name) == 0)
