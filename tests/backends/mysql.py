"""MySQL/MariaDB for the tests: a throwaway MariaDB the harness starts, so nobody's own server is touched.

BENCH_TEST_MYSQL_URL names a server to use instead. Without it and without MariaDB's binaries, the backend's
usual search runs (a local server on 127.0.0.1:3306 that lets root in without a password); if that finds
nothing either, the MySQL tests are skipped, saying why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from sqlalchemy import Engine, create_engine, func, select

from apps.schema import Base, ItemRow
from bench.databases.mysql.backend import MysqlServer, locate_binaries, provision_mysql, throwaway_mysql
from bench.databases.mysql.connect import pymysql_url
from bench.records.errors import BenchError

# Read when the plugin loads: test_contract's clean_env removes every BENCH_* variable before fixtures run.
GIVEN_URL = os.environ.get("BENCH_TEST_MYSQL_URL")
CONNECTIONS_NEEDED = 60
DATASET_ROWS = 1000


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[MysqlServer]:
    binaries = locate_binaries()
    with ExitStack() as stack:
        if GIVEN_URL is None and binaries is not None:
            server = stack.enter_context(
                throwaway_mysql(binaries, connections_needed=CONNECTIONS_NEEDED, dataset_rows=DATASET_ROWS)
            )
        else:
            try:
                server = stack.enter_context(
                    provision_mysql(url=GIVEN_URL, connections_needed=CONNECTIONS_NEEDED, dataset_rows=DATASET_ROWS)
                )
            except BenchError as error:
                if GIVEN_URL is not None:
                    raise
                pytest.skip(f"no MySQL/MariaDB for the tests: {error.message}")
        yield server


@pytest.fixture(scope="session")
def mysql_url(mysql_server: MysqlServer) -> str:
    return mysql_server.url


@pytest.fixture(scope="module")
def mysql_engine(mysql_url: str) -> Iterator[Engine]:
    engine = create_engine(pymysql_url(mysql_url))
    Base.metadata.create_all(engine, checkfirst=True)
    yield engine
    engine.dispose()


@pytest.fixture
def mysql_backend(mysql_url: str, mysql_engine: Engine) -> Iterator[dict[str, str]]:
    """The app environment for a MySQL variant. The table is shared with the harness's own tests:
    remove what the test added, keep the seeded rows."""
    with mysql_engine.connect() as connection:
        last_id_before = connection.scalar(select(func.coalesce(func.max(ItemRow.id), 0)))
    yield {"BENCH_DATABASE_URL": mysql_url}
    with mysql_engine.begin() as connection:
        connection.execute(ItemRow.__table__.delete().where(ItemRow.id > last_id_before))
