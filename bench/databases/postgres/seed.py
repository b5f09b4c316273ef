"""Seeding PostgreSQL with the dataset: deterministic, and skipped when the table already holds exactly it.

`bench_dataset` remembers how many rows were seeded and an md5 of the table contents computed by the server
right after seeding. A later call reuses the table when the row count, that fingerprint and the first rows
(compared with what `apps.dataset` generates now) all still match; anything else reseeds from scratch.
"""

from __future__ import annotations

import time
from itertools import islice

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import NullPool

from apps.dataset import seed_items
from apps.masking import scrub
from apps.schema import Base
from apps.sql_common import ITEMS_TABLE
from bench.databases.backend import SeedResult
from bench.databases.postgres.connect import CONNECT_TIMEOUT_S, check_url, first_line, libpq_url, psycopg, sql
from bench.records.errors import BenchError

DATASET_TABLE = "bench_dataset"
# Rows compared one by one with the generator, so a changed generator is noticed without reading it all.
_SAMPLE_ROWS = 1000
_COLUMNS = ("id", "name", "description", "price", "quantity")
# md5 over the rows' md5s in id order: 32 bytes per row to aggregate, so even tens of millions of rows stay
# far below PostgreSQL's 1 GB limit for one text value. extra_float_digits = 1 (the default since
# PostgreSQL 12) prints floats exactly; it is pinned so a server or role setting cannot change the
# fingerprint of unchanged data.
FINGERPRINT_SQL = f"""
    SELECT md5(coalesce(string_agg(md5(
        id::text || '|' || name || '|' || coalesce(description, '') || '|' || price::text || '|' || quantity::text
    ), '' ORDER BY id), ''))
    FROM {ITEMS_TABLE}
"""


def seed_postgres(url: str, rows: int) -> SeedResult:
    """Make `bench_items` hold exactly `apps.dataset.seed_items(rows)`, with the id sequence at rows + 1."""
    started = time.perf_counter()
    check_url(url)
    try:
        engine = create_engine(
            make_url(libpq_url(url)).set(drivername="postgresql+psycopg"),
            poolclass=NullPool,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
        )
    except (ArgumentError, ValueError) as error:
        raise BenchError(
            f"invalid PostgreSQL URL {scrub(url, url)}: {scrub(first_line(error), url)}; "
            "expected postgresql://user:password@host:port/database"
        ) from error
    try:
        with engine.begin() as conn:
            reused = _seed_in_transaction(conn, rows)
        if not reused:
            # Fresh statistics and visibility map, so the first measured point does not pay for them.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(f"VACUUM ANALYZE {ITEMS_TABLE}"))
    except (DBAPIError, psycopg.Error) as error:
        hint = (
            "another session holds a lock on it; stop the apps using this database"
            if "lock timeout" in str(error)
            else "check that the server is running and that the user may create tables"
        )
        raise BenchError(
            f"cannot seed PostgreSQL at {scrub(url, url)}: {scrub(first_line(error), url)}; {hint}"
        ) from error
    finally:
        engine.dispose()
    return SeedResult(rows=rows, reused=reused, seconds=time.perf_counter() - started)


def _seed_in_transaction(conn: Connection, rows: int) -> bool:
    """Reuse or reseed inside one transaction (an interrupted reseed leaves the old data); True if reused."""
    conn.execute(text("SET LOCAL lock_timeout = '10s'"))
    conn.execute(text("SET LOCAL extra_float_digits = 1"))
    Base.metadata.create_all(conn)
    conn.execute(text(f"CREATE TABLE IF NOT EXISTS {DATASET_TABLE} (rows integer NOT NULL, fingerprint text NOT NULL)"))
    conn.execute(text(f"LOCK TABLE {DATASET_TABLE} IN EXCLUSIVE MODE"))  # one seeder at a time
    stored = conn.execute(text(f"SELECT rows, fingerprint FROM {DATASET_TABLE}")).all()
    if (
        len(stored) == 1
        and stored[0].rows == rows
        and _starts_like_generator(conn, rows)
        and stored[0].fingerprint == conn.execute(text(FINGERPRINT_SQL)).scalar_one()
    ):
        return True

    conn.execute(text(f"TRUNCATE {ITEMS_TABLE} RESTART IDENTITY"))
    driver_conn = conn.connection.driver_connection
    assert isinstance(driver_conn, psycopg.Connection)
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(ITEMS_TABLE), sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
    )
    with driver_conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
        for item in seed_items(rows):
            copy.write_row(item)
    # Ids were given explicitly, so the sequence did not move: start it after them so inserts don't collide.
    conn.execute(
        text("SELECT setval(pg_get_serial_sequence(:table, 'id'), :next, false)"),
        {"table": ITEMS_TABLE, "next": rows + 1},
    )
    conn.execute(text(f"DELETE FROM {DATASET_TABLE}"))
    conn.execute(
        text(f"INSERT INTO {DATASET_TABLE} (rows, fingerprint) VALUES (:rows, ({FINGERPRINT_SQL}))"),
        {"rows": rows},
    )
    return False


def _starts_like_generator(conn: Connection, rows: int) -> bool:
    expected = [tuple(item) for item in islice(seed_items(rows), _SAMPLE_ROWS)]
    actual = conn.execute(
        text(f"SELECT {', '.join(_COLUMNS)} FROM {ITEMS_TABLE} ORDER BY id LIMIT :limit"),
        {"limit": _SAMPLE_ROWS},
    ).all()
    return [tuple(row) for row in actual] == expected
