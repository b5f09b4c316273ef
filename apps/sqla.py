"""What the SQLAlchemy variants share that does no I/O of its own: URL, engine options, schema, updates."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from sqlalchemy import Connection, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from apps.contract import ItemUpdate
from apps.schema import Base, ItemRow
from apps.settings import AppSettings, StartupError

Driver = Literal["psycopg", "asyncpg"]

# Without a limit an unreachable host makes start-up hang for minutes instead of failing.
CONNECT_TIMEOUT_S = 10
_CONNECT_TIMEOUT_ARG: dict[str, str] = {"psycopg": "connect_timeout", "asyncpg": "timeout"}
# Any constant works: it only has to be the same in every worker that may run create_all at once.
_SCHEMA_LOCK_KEY = 0x62656E6368


class EngineOptions(TypedDict):
    pool_size: int
    max_overflow: int
    pool_timeout: float
    pool_pre_ping: bool
    connect_args: dict[str, Any]


def database_url(settings: AppSettings, driver: Driver) -> URL:
    """The PostgreSQL URL the user gave, with `driver` swapped in whatever driver it named."""
    if settings.database_url is None:
        raise StartupError("BENCH_DATABASE_URL is not set; give it a postgresql:// URL")
    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        raise StartupError("BENCH_DATABASE_URL is not a URL; give a postgresql:// URL") from None
    if url.get_backend_name() not in {"postgresql", "postgres"}:
        raise StartupError(f"BENCH_DATABASE_URL must be a postgresql:// URL, not {url.drivername}://")
    return url.set(drivername=f"postgresql+{driver}")


def engine_options(settings: AppSettings, url: URL) -> EngineOptions:
    timeout_arg = _CONNECT_TIMEOUT_ARG[url.get_driver_name()]
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
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
    Base.metadata.create_all(connection, checkfirst=True)


def apply_update(row: ItemRow, changes: ItemUpdate) -> None:
    for field, value in changes.values_given().items():
        setattr(row, field, value)
