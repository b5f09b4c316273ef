"""What the raw-driver PostgreSQL variants share that does no I/O: the SQL text, the row shape, psycopg's options.

GET /items/{item_id}/slow runs WAIT_IN_DATABASE (`SELECT pg_sleep($1)`, in seconds) and then SELECT_ITEM on the
one connection the request checked out, so the connection is held while the server sleeps.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from apps.contract import ItemCreate, ItemUpdate
from apps.sql_common import CONNECT_TIMEOUT_S, ITEMS_TABLE, SCHEMA_LOCK_KEY

# What the routes return; FastAPI validates it against ItemResponse like the ORM rows of the SQLAlchemy variants.
ItemDict = dict[str, Any]


# apps/schema.py's table as SQLAlchemy compiles it for PostgreSQL (CREATE TABLE / CREATE INDEX ... IF NOT EXISTS),
# written out so that these variants never import SQLAlchemy (apps/sql_common.py says why); a test compiles
# apps/schema.py and compares, so the table is still defined once.
CREATE_SCHEMA: tuple[str, ...] = (
    f"CREATE TABLE IF NOT EXISTS {ITEMS_TABLE} (\n\tid BIGSERIAL NOT NULL, \n\tname VARCHAR(200) NOT NULL, "
    "\n\tdescription TEXT, \n\tprice DOUBLE PRECISION NOT NULL, \n\tquantity INTEGER NOT NULL, "
    "\n\tPRIMARY KEY (id)\n)",
    f"CREATE INDEX IF NOT EXISTS ix_{ITEMS_TABLE}_name ON {ITEMS_TABLE} (name)",
)


# What apps/sqla.py `prepare_database` does, as statements to run in one transaction: fail fast on a bad URL,
# then create the table if missing. The lock (same key as there) serialises workers of any PostgreSQL variant
# starting together, which IF NOT EXISTS alone does not: two concurrent CREATEs can still collide in the catalog.
PREPARE_DATABASE: tuple[str, ...] = (
    "SELECT 1",
    f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})",
    *CREATE_SCHEMA,
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
# Only these names ever reach the SQL text; the values always travel as parameters. apps/schema.py's columns
# but the key (a test checks).
UPDATABLE_COLUMNS = ("name", "description", "price", "quantity")

T = TypeVar("T")


def psycopg_options(dsn: str) -> dict[str, Any]:
    """psycopg's connect() arguments that do not depend on sync or async (the twins add row and cursor classes)."""
    # Autocommit as asyncpg does: every route is one statement, so it needs no BEGIN/COMMIT round trips.
    options: dict[str, Any] = {"autocommit": True}
    # A keyword argument would override a connect_timeout given in the URL, so only fill the gap.
    if "connect_timeout" not in parse_qs(urlsplit(dsn).query):
        options["connect_timeout"] = CONNECT_TIMEOUT_S
    return options


def insert_args(item: ItemCreate) -> tuple[Any, ...]:
    return (item.name, item.description, item.price, item.quantity)


def update_statement(item_id: int, changes: ItemUpdate) -> tuple[str, tuple[Any, ...]]:
    """An UPDATE of only the given fields that returns the row (or none: the item does not exist)."""
    values = changes.values_given()
    unknown = values.keys() - set(UPDATABLE_COLUMNS)
    if unknown:  # the contract grew a field the table lacks: a bug, never something a request can cause
        raise ValueError(f"no column for {sorted(unknown)}")
    columns = [column for column in UPDATABLE_COLUMNS if column in values]
    assignments = ", ".join(f"{column} = ${number}" for number, column in enumerate(columns, start=2))
    statement = f"UPDATE {ITEMS_TABLE} SET {assignments} WHERE id = $1 RETURNING {_COLUMNS}"
    return statement, (item_id, *(values[column] for column in columns))


def returned(row: T | None) -> T:
    """The row an INSERT ... RETURNING gave back; a missing one is a broken driver, not a 404."""
    if row is None:
        raise RuntimeError("INSERT ... RETURNING returned no row")
    return row
