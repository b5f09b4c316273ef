"""What the SQLAlchemy variants share that does no I/O of its own: URL, engine options, schema, updates,
and the statement with which GET /items/{item_id}/slow makes the database wait: `SELECT pg_sleep(s)` on
PostgreSQL, `SELECT SLEEP(s)` on MySQL/MariaDB, run in the request's session, so the read that follows uses
the same connection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypedDict

from sqlalchemy import Connection, Engine, TextClause, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from apps.contract import ItemUpdate
from apps.schema import Base, ItemRow
from apps.settings import AppSettings, StartupError
from apps.sql_common import CONNECT_TIMEOUT_S, DRIVERS, SCHEMA_LOCK_KEY, Driver, url_with_driver

# The io_wait route's statement per dialect, and what /health says about it.
_WAIT_SQL = {"postgresql": "SELECT pg_sleep(:seconds)", "mysql": "SELECT SLEEP(:seconds)"}
_DB_WAITS = {
    "postgresql": "pg_sleep on the server, in the request's session",
    "mysql": "SLEEP() on the server, in the request's session",
}

SCHEMA_LOCK_NAME = "fastapi-db-bench:create-schema"
_SCHEMA_LOCK_TIMEOUT_S = 30


class EngineOptions(TypedDict):
    pool_size: int
    max_overflow: int
    pool_timeout: float
    pool_pre_ping: bool
    connect_args: dict[str, Any]


def database_url(settings: AppSettings, driver: Driver) -> URL:
    """The URL the user gave, with `driver` swapped in whatever driver it named."""
    text_url = url_with_driver(settings, driver)
    try:
        return make_url(text_url)
    except ArgumentError:
        raise StartupError(f"BENCH_DATABASE_URL is not a URL; give a {DRIVERS[driver].dialect}:// URL") from None


def db_wait(driver: Driver) -> str:
    return _DB_WAITS[DRIVERS[driver].dialect]


def wait_in_database(bind: Engine | Connection, wait_ms: int) -> TextClause:
    """The statement that makes the database itself wait wait_ms, holding the connection it runs on."""
    return text(_WAIT_SQL[bind.dialect.name]).bindparams(seconds=wait_ms / 1000)


def engine_options(settings: AppSettings, url: URL) -> EngineOptions:
    timeout_arg = DRIVERS[url.get_driver_name()].timeout_arg
    return EngineOptions(
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout_s,
        pool_pre_ping=settings.pool_pre_ping,
        # connect_args would override a timeout the user put in the URL, so only fill the gap.
        connect_args={} if timeout_arg in url.query else {timeout_arg: CONNECT_TIMEOUT_S},
    )


def prepare_database(connection: Connection) -> None:
    """Fail fast on a bad URL, and create the table when the app runs without the harness."""
    connection.execute(text("SELECT 1"))
    # Several uvicorn workers start together; without the lock two of them may both try CREATE TABLE.
    with _SCHEMA_LOCKS[connection.dialect.name](connection):
        Base.metadata.create_all(connection, checkfirst=True)


@contextmanager
def _postgresql_schema_lock(connection: Connection) -> Iterator[None]:
    # Held until the transaction ends, whatever happens in between.
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
    yield


@contextmanager
def _mysql_schema_lock(connection: Connection) -> Iterator[None]:
    # MySQL's named locks belong to the session, not the transaction (CREATE TABLE commits implicitly
    # anyway), so this one is released explicitly: a pooled connection must not keep it.
    acquired = connection.execute(
        text("SELECT GET_LOCK(:name, :timeout)"), {"name": SCHEMA_LOCK_NAME, "timeout": _SCHEMA_LOCK_TIMEOUT_S}
    ).scalar()
    if acquired != 1:
        raise StartupError(
            f"another session held the lock {SCHEMA_LOCK_NAME!r} for {_SCHEMA_LOCK_TIMEOUT_S} s; "
            "another app's start-up is stuck: stop it and start again"
        )
    try:
        yield
    finally:
        connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": SCHEMA_LOCK_NAME})


_SCHEMA_LOCKS: dict[str, Callable[[Connection], AbstractContextManager[None]]] = {
    "postgresql": _postgresql_schema_lock,
    "mysql": _mysql_schema_lock,
}


def apply_update(row: ItemRow, changes: ItemUpdate) -> None:
    for field, value in changes.values_given().items():
        setattr(row, field, value)
