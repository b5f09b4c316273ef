"""seed_postgres: the dataset exactly, reused only when untouched, ids continuing after it."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from apps.dataset import seed_items
from apps.schema import ItemRow
from apps.sql_common import ITEMS_TABLE
from bench.databases.postgres.backend import seed_postgres
from bench.databases.postgres.seed import DATASET_TABLE, FINGERPRINT_SQL
from bench.records.errors import BenchError
from bench.system.processes import free_port

ROWS = 1000


@pytest.fixture
def url(postgres_url: str) -> Iterator[str]:
    """The session's PostgreSQL with neither table, so every test starts from nothing."""
    _execute(postgres_url, f"DROP TABLE IF EXISTS {ITEMS_TABLE}, {DATASET_TABLE}")
    yield postgres_url
    seed_postgres(postgres_url, ROWS)  # leave the dataset in place for whoever runs next


def _execute(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement.encode())


def _rows(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        query = f"SELECT id, name, description, price, quantity FROM {ITEMS_TABLE} ORDER BY id"
        return conn.execute(query.encode()).fetchall()


def _tuple_versions(url: str) -> list[str]:
    """xmin of every row in both tables: unchanged if and only if nothing was rewritten."""
    with psycopg.connect(url) as conn:
        query = f"SELECT xmin::text FROM {ITEMS_TABLE} UNION ALL SELECT xmin::text FROM {DATASET_TABLE}"
        return sorted(row[0] for row in conn.execute(query.encode()))


def _stored_fingerprint(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT fingerprint FROM {DATASET_TABLE}".encode()).fetchone()
    assert row is not None
    return str(row[0])


def test_seeding_writes_exactly_the_dataset(url: str) -> None:
    result = seed_postgres(url, ROWS)
    assert (result.rows, result.reused) == (ROWS, False)
    assert result.seconds > 0
    rows = _rows(url)
    assert [row[0] for row in rows] == list(range(1, ROWS + 1))
    assert rows == [tuple(item) for item in seed_items(ROWS)]


def test_seeding_is_deterministic_across_fresh_databases(url: str) -> None:
    seed_postgres(url, ROWS)
    first = _stored_fingerprint(url)
    _execute(url, f"DROP TABLE {ITEMS_TABLE}, {DATASET_TABLE}")
    seed_postgres(url, ROWS)
    assert _stored_fingerprint(url) == first


def test_untouched_dataset_is_reused_without_writing(url: str) -> None:
    seed_postgres(url, ROWS)
    before = _tuple_versions(url)
    again = seed_postgres(url, ROWS)
    assert (again.rows, again.reused) == (ROWS, True)
    assert _tuple_versions(url) == before


@pytest.mark.parametrize(
    "tamper",
    [
        f"UPDATE {ITEMS_TABLE} SET name = 'tampered' WHERE id = 500",
        f"UPDATE {ITEMS_TABLE} SET price = price + 0.01 WHERE id = 999",
        f"DELETE FROM {ITEMS_TABLE} WHERE id = 1000",
        f"INSERT INTO {ITEMS_TABLE} (name, price, quantity) VALUES ('posted', 1.5, 1)",
        f"UPDATE {DATASET_TABLE} SET fingerprint = 'stale'",
    ],
    ids=["name", "price", "delete", "insert", "fingerprint"],
)
def test_any_change_is_noticed_and_the_dataset_restored(url: str, tamper: str) -> None:
    seed_postgres(url, ROWS)
    _execute(url, tamper)
    result = seed_postgres(url, ROWS)
    assert result.reused is False
    assert _rows(url) == [tuple(item) for item in seed_items(ROWS)]
    assert seed_postgres(url, ROWS).reused is True


def test_data_from_another_generator_is_reseeded_even_with_a_matching_fingerprint(url: str) -> None:
    # As if apps.dataset changed since the last seed: consistent bookkeeping, but not today's rows.
    seed_postgres(url, ROWS)
    _execute(url, f"UPDATE {ITEMS_TABLE} SET quantity = quantity + 1 WHERE id = 1")
    _execute(url, f"DELETE FROM {DATASET_TABLE}")
    _execute(url, f"INSERT INTO {DATASET_TABLE} (rows, fingerprint) VALUES ({ROWS}, ({FINGERPRINT_SQL}))")
    assert seed_postgres(url, ROWS).reused is False
    assert _rows(url)[0] == tuple(next(seed_items(1)))


def test_a_different_row_count_reseeds(url: str) -> None:
    seed_postgres(url, ROWS)
    smaller = seed_postgres(url, 10)
    assert (smaller.rows, smaller.reused) == (10, False)
    assert _rows(url) == [tuple(item) for item in seed_items(10)]


def test_an_insert_without_id_after_seeding_continues_after_the_dataset(url: str) -> None:
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"), poolclass=NullPool)
    try:
        for _ in range(2):  # the second seed replaces the first POST and rewinds the sequence again
            seed_postgres(url, ROWS)
            with Session(engine) as session:
                posted = ItemRow(name="posted", description=None, price=9.99, quantity=3)
                session.add(posted)
                session.commit()
                assert posted.id == ROWS + 1
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("bad_url", "cause"),
    [
        ("postgresql://bench:s3cret@127.0.0.1:{port}/bench", "Connection refused"),
        ("postgresql+psycopg://bench:s3cret@127.0.0.1:notaport/bench", "notaport"),
    ],
    ids=["unreachable", "malformed"],
)
def test_connection_problems_are_one_line_without_the_password(bad_url: str, cause: str) -> None:
    with pytest.raises(BenchError) as raised:
        seed_postgres(bad_url.format(port=free_port()), 10)
    message = raised.value.message
    assert "bench:***@127.0.0.1" in message
    assert cause in message
    assert "s3cret" not in message and "\n" not in message
