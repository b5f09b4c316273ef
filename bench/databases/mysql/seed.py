"""Seeding MySQL/MariaDB with the dataset: deterministic, and skipped when the table already holds exactly it.

`bench_dataset` remembers how many rows were seeded and a fingerprint of the table computed by the server
right after seeding. A later call reuses the table when the row count, that fingerprint and the first rows
(compared with what `apps.dataset` generates now) all still match; anything else reseeds from scratch.

MySQL commits implicitly around DDL, so a reseed cannot be one transaction as on PostgreSQL: the bookkeeping
row is deleted first, TRUNCATE empties the table (and resets AUTO_INCREMENT), then the rows and the new
bookkeeping row are inserted in one transaction. An interrupted reseed therefore leaves no bookkeeping, and
the next call reseeds instead of trusting a half-filled table.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from apps.dataset import seed_items
from apps.masking import scrub
from apps.schema import Base
from apps.sql_common import ITEMS_TABLE
from bench.databases.backend import SeedResult
from bench.databases.mysql.connect import error_code, make_engine, reason
from bench.records.errors import BenchError

DATASET_TABLE = "bench_dataset"
# Rows compared one by one with the generator, so a changed generator is noticed without reading it all.
_SAMPLE_ROWS = 1000
_COLUMNS = ("id", "name", "description", "price", "quantity")
_BATCH_ROWS = 5000  # PyMySQL turns each batch into multi-row INSERTs of up to 1 MB
LOCK_TIMEOUT_S = 10
# Named locks are server-wide, so the name includes the database (names are limited to 64 characters).
_SEED_LOCK_NAME = "LEFT(CONCAT('fastapi-db-bench:seed:', COALESCE(DATABASE(), '')), 64)"
_LOCK_WAIT_TIMEOUT = 1205
# Two sums of 64-bit halves of each row's md5 (the row includes its id, so order needs no aggregation of a
# huge string, which GROUP_CONCAT would silently truncate); SUM over BIGINT UNSIGNED is exact DECIMAL.
FINGERPRINT_SQL = f"""
    SELECT CONCAT_WS(':', COUNT(*),
                     COALESCE(SUM(CAST(CONV(LEFT(h, 16), 16, 10) AS UNSIGNED)), 0),
                     COALESCE(SUM(CAST(CONV(RIGHT(h, 16), 16, 10) AS UNSIGNED)), 0))
    FROM (SELECT MD5(CONCAT_WS('|', id, name, COALESCE(description, ''), price, quantity)) AS h
          FROM {ITEMS_TABLE}) AS hashed
"""


def seed_mysql(url: str, rows: int) -> SeedResult:
    """Make `bench_items` hold exactly `apps.dataset.seed_items(rows)`, with AUTO_INCREMENT at rows + 1."""
    started = time.perf_counter()
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            # Seeding runs before the apps start; a lock held by something else is an error, not a wait.
            conn.execute(text(f"SET SESSION lock_wait_timeout = {LOCK_TIMEOUT_S}"))
            conn.execute(text(f"SET SESSION innodb_lock_wait_timeout = {LOCK_TIMEOUT_S}"))
            with _one_seeder_at_a_time(conn):
                reused = _reuse_or_reseed(conn, rows)
    except DBAPIError as error:
        hint = (
            "another session holds a lock on the table; stop the apps using this database"
            if error_code(error) == _LOCK_WAIT_TIMEOUT
            else "check that the server is running and that the user may create tables"
        )
        raise BenchError(f"cannot seed MySQL at {scrub(url, url)}: {scrub(reason(error), url)}; {hint}") from error
    finally:
        engine.dispose()
    return SeedResult(rows=rows, reused=reused, seconds=time.perf_counter() - started)


@contextmanager
def _one_seeder_at_a_time(conn: Connection) -> Iterator[None]:
    # A named lock: it belongs to the session (not a transaction), so it spans the implicit commits below.
    acquired = conn.execute(text(f"SELECT GET_LOCK({_SEED_LOCK_NAME}, {LOCK_TIMEOUT_S})")).scalar()
    if acquired != 1:
        raise BenchError(f"another bench has been seeding this database for {LOCK_TIMEOUT_S} s; wait for it or stop it")
    try:
        yield
    finally:
        conn.rollback()  # after an error, first undo what it left half done, then let the next seeder in
        conn.execute(text(f"SELECT RELEASE_LOCK({_SEED_LOCK_NAME})"))


def _reuse_or_reseed(conn: Connection, rows: int) -> bool:
    """True if the table already held the dataset (nothing written), else reseed it and return False."""
    Base.metadata.create_all(conn)
    conn.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {DATASET_TABLE} "
            "(dataset_rows BIGINT NOT NULL, fingerprint VARCHAR(100) NOT NULL) ENGINE=InnoDB"
        )
    )
    conn.commit()
    stored = conn.execute(text(f"SELECT dataset_rows, fingerprint FROM {DATASET_TABLE}")).all()
    reusable = (
        len(stored) == 1
        and stored[0].dataset_rows == rows
        and _starts_like_generator(conn, rows)
        and stored[0].fingerprint == conn.execute(text(FINGERPRINT_SQL)).scalar_one()
    )
    conn.rollback()
    if reusable:
        return True

    conn.execute(text(f"DELETE FROM {DATASET_TABLE}"))
    conn.commit()
    conn.execute(text(f"TRUNCATE TABLE {ITEMS_TABLE}"))
    conn.commit()
    insert = f"INSERT INTO {ITEMS_TABLE} ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})"
    items = seed_items(rows)
    while batch := list(islice(items, _BATCH_ROWS)):
        conn.exec_driver_sql(insert, [tuple(item) for item in batch])
    conn.execute(
        text(f"INSERT INTO {DATASET_TABLE} (dataset_rows, fingerprint) SELECT :rows, ({FINGERPRINT_SQL})"),
        {"rows": rows},
    )
    conn.commit()
    # TRUNCATE reset the counter and the explicit ids moved it past them; this states the intent (and is
    # instant: only the counter changes). Then fresh statistics, so the first measured point has good plans.
    conn.execute(text(f"ALTER TABLE {ITEMS_TABLE} AUTO_INCREMENT = {rows + 1}"))
    conn.execute(text(f"ANALYZE TABLE {ITEMS_TABLE}")).all()
    conn.commit()
    return False


def _starts_like_generator(conn: Connection, rows: int) -> bool:
    expected = [tuple(item) for item in islice(seed_items(rows), _SAMPLE_ROWS)]
    actual = conn.execute(
        text(f"SELECT {', '.join(_COLUMNS)} FROM {ITEMS_TABLE} ORDER BY id LIMIT :limit"), {"limit": _SAMPLE_ROWS}
    ).all()
    return [tuple(row) for row in actual] == expected
