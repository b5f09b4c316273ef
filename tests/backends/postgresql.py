"""PostgreSQL for the tests: the server the harness itself provisions (or BENCH_TEST_DATABASE_URL)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.engine import make_url

from apps.schema import Base, ItemRow
from bench.databases.postgres.backend import provision_postgres

# Read at import: the contract tests remove every BENCH_* variable before the session fixture first runs.
GIVEN_URL = os.environ.get("BENCH_TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL: BENCH_TEST_DATABASE_URL if set, else a throwaway server started by the harness."""
    with provision_postgres(url=GIVEN_URL, max_connections_needed=60, dataset_rows=1000) as server:
        yield server.url


@pytest.fixture(scope="module")
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    engine = create_engine(make_url(postgres_url).set(drivername="postgresql+psycopg"))
    Base.metadata.create_all(engine, checkfirst=True)
    yield engine
    engine.dispose()


@pytest.fixture
def postgresql_backend(postgres_url: str, postgres_engine: Engine) -> Iterator[dict[str, str]]:
    """The app environment for a PostgreSQL variant. The table is shared with the harness's own tests:
    remove what the test added, keep the seeded rows."""
    with postgres_engine.connect() as connection:
        last_id_before = connection.scalar(select(func.coalesce(func.max(ItemRow.id), 0)))
    yield {"BENCH_DATABASE_URL": postgres_url}
    with postgres_engine.begin() as connection:
        connection.execute(ItemRow.__table__.delete().where(ItemRow.id > last_id_before))
