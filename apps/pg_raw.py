"""What the raw-driver PostgreSQL variants share that does no I/O: the URL, the SQL text and the row shape.

GET /items/{item_id}/slow runs WAIT_IN_DATABASE (`SELECT pg_sleep($1)`, in seconds) and then SELECT_ITEM on the
one connection the request checked out, so the connection is held while the server sleeps.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.sql.ddl import ExecutableDDLElement

from apps.contract import ItemCreate, ItemUpdate
from apps.schema import ITEMS_TABLE, Base, ItemRow
from apps.settings import AppSettings
from apps.sqla import _SCHEMA_LOCK_KEY, CONNECT_TIMEOUT_S, database_url

# What the routes return; FastAPI validates it against ItemResponse like the ORM rows of the SQLAlchemy variants.
ItemDict = dict[str, Any]


def _create_schema() -> tuple[str, ...]:
    """CREATE TABLE / CREATE INDEX ... IF NOT EXISTS, compiled from apps/schema.py so the table is defined once."""
    # Found through a URL because the dialect classes' own constructors are untyped; any PostgreSQL driver's
    # dialect compiles the same DDL, and finding the class imports no driver.
    dialect = make_url("postgresql+psycopg://").get_dialect()()
    ddl: list[ExecutableDDLElement] = []
    for table in Base.metadata.sorted_tables:
        ddl.append(CreateTable(table, if_not_exists=True))
        ddl.extend(CreateIndex(index, if_not_exists=True) for index in table.indexes)
    return tuple(str(element.compile(dialect=dialect)).strip() for element in ddl)


# What apps/sqla.py `prepare_database` does, as statements to run in one transaction: fail fast on a bad URL,
# then create the table if missing. The lock (same key as there) serialises workers of any PostgreSQL variant
# starting together, which IF NOT EXISTS alone does not: two concurrent CREATEs can still collide in the catalog.
PREPARE_DATABASE: tuple[str, ...] = (
    "SELECT 1",
    f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK_KEY})",
    *_create_schema(),
)

# PostgreSQL's own `$n` placeholders: asyncpg takes nothing else, psycopg takes them through RawCursor, so both
# drivers run exactly the same text.
_COLUMNS = "id, name, description, price, quantity"
INSERT_ITEM = (
    f"INSERT INTO {ITEMS_TABLE} (name, description, price, quantity) VALUES ($1, $2, $3, $4) RETURNING {_COLUMNS}"
)
SELECT_ITEM = f"SELECT {_COLUMNS} FROM {ITEMS_TABLE} WHERE id = $1"
LIST_ITEMS = f"SELECT {_COLUMNS} FROM {ITEMS_TABLE} ORDER BY id LIMIT $1 OFFSET $2"
WAIT_IN_DATABASE = "SELECT pg_sleep($1)"
DB_WAIT = "pg_sleep on the server, on the request's connection"
DELETE_ITEM = f"DELETE FROM {ITEMS_TABLE} WHERE id = $1 RETURNING id"
# Only these names ever reach the SQL text; the values always travel as parameters.
_UPDATABLE_COLUMNS = tuple(column.name for column in ItemRow.__table__.columns if not column.primary_key)

T = TypeVar("T")


def postgres_dsn(settings: AppSettings) -> str:
    """The user's URL as plain postgresql://, which libpq and asyncpg both read (any `+driver` dropped)."""
    # database_url refuses other schemes and words every error as the SQLAlchemy variants do.
    url = database_url(settings, "psycopg")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def psycopg_options(dsn: str) -> dict[str, Any]:
    """psycopg's connect() arguments that do not depend on sync or async (the twins add row and cursor classes)."""
    # Autocommit as asyncpg does: every route is one statement, so it needs no BEGIN/COMMIT round trips.
    options: dict[str, Any] = {"autocommit": True}
    # A keyword argument would override a connect_timeout given in the URL, so only fill the gap.
    if "connect_timeout" not in make_url(dsn).query:
        options["connect_timeout"] = CONNECT_TIMEOUT_S
    return options


def insert_args(item: ItemCreate) -> tuple[Any, ...]:
    return (item.name, item.description, item.price, item.quantity)


def update_statement(item_id: int, changes: ItemUpdate) -> tuple[str, tuple[Any, ...]]:
    """An UPDATE of only the given fields that returns the row (or none: the item does not exist)."""
    values = changes.values_given()
    unknown = values.keys() - set(_UPDATABLE_COLUMNS)
    if unknown:  # the contract grew a field the table lacks: a bug, never something a request can cause
        raise ValueError(f"no column for {sorted(unknown)}")
    columns = [column for column in _UPDATABLE_COLUMNS if column in values]
    assignments = ", ".join(f"{column} = ${number}" for number, column in enumerate(columns, start=2))
    statement = f"UPDATE {ITEMS_TABLE} SET {assignments} WHERE id = $1 RETURNING {_COLUMNS}"
    return statement, (item_id, *(values[column] for column in columns))


def returned(row: T | None) -> T:
    """The row an INSERT ... RETURNING gave back; a missing one is a broken driver, not a 404."""
    if row is None:
        raise RuntimeError("INSERT ... RETURNING returned no row")
    return row
