"""apps/sql_common.py: the SQL variants' URL check and the schema the raw-driver variants write out by hand,
which must stay what SQLAlchemy makes of apps/schema.py, and the reason for writing it out: no SQLAlchemy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from apps.pg_raw import CREATE_SCHEMA, UPDATABLE_COLUMNS
from apps.schema import Base, ItemRow
from apps.settings import AppSettings, StartupError
from apps.sql_common import postgres_dsn, url_with_driver

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RAW_VARIANTS = ["pg_asyncpg", "pg_psycopg_async", "pg_psycopg_sync"]


def settings(url: str | None) -> AppSettings:
    return AppSettings(database_url=url)


def test_the_written_out_schema_is_what_sqlalchemy_compiles_from_apps_schema() -> None:
    compiled: list[str] = []
    for table in Base.metadata.sorted_tables:
        compiled.append(str(CreateTable(table, if_not_exists=True).compile(dialect=postgresql.dialect())).strip())
        compiled.extend(
            str(CreateIndex(index, if_not_exists=True).compile(dialect=postgresql.dialect())).strip()
            for index in table.indexes
        )

    assert tuple(compiled) == CREATE_SCHEMA
    assert tuple(column.name for column in ItemRow.__table__.columns if not column.primary_key) == UPDATABLE_COLUMNS


@pytest.mark.parametrize("variant", RAW_VARIANTS)
def test_a_raw_driver_variant_does_not_load_sqlalchemy(variant: str) -> None:
    # A fresh interpreter: this one has SQLAlchemy loaded already.
    code = f"import sys, apps.{variant}; print(sorted(m for m in sys.modules if m.startswith('sqlalchemy'))[:3])"
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("given", "driver", "expected"),
    [
        (
            "postgres://u:p%40ss@db:5433/items?sslmode=disable",
            "psycopg",
            "postgresql+psycopg://u:p%40ss@db:5433/items?sslmode=disable",
        ),
        ("postgresql+asyncpg://u@db/items", "psycopg", "postgresql+psycopg://u@db/items"),
        ("postgresql+psycopg://u@db/items", "asyncpg", "postgresql+asyncpg://u@db/items"),
        ("mariadb://root@db:3306/items", "aiomysql", "mysql+aiomysql://root@db:3306/items"),
        ("mysql+pymysql://root@db/items", "aiomysql", "mysql+aiomysql://root@db/items"),
    ],
)
def test_the_url_gets_the_drivers_scheme_and_keeps_everything_else(given: str, driver: str, expected: str) -> None:
    assert url_with_driver(settings(given), driver) == expected  # type: ignore[arg-type]


def test_the_raw_drivers_get_a_plain_postgresql_url() -> None:
    assert postgres_dsn(settings("postgresql+asyncpg://u:secret@db/items")) == "postgresql://u:secret@db/items"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (None, "BENCH_DATABASE_URL is not set; give it a postgresql:// URL"),
        ("db.example:5432/items", "BENCH_DATABASE_URL is not a URL; give a postgresql:// URL"),
        ("post gres://u@db/items", "BENCH_DATABASE_URL is not a URL; give a postgresql:// URL"),
        ("mysql://root@db/items", "BENCH_DATABASE_URL must be a postgresql:// URL, not mysql://"),
        ("mongodb+srv://u@db/items", "BENCH_DATABASE_URL must be a postgresql:// URL, not mongodb+srv://"),
    ],
)
def test_a_url_the_driver_cannot_take_is_one_clear_error(given: str | None, message: str) -> None:
    with pytest.raises(StartupError) as raised:
        postgres_dsn(settings(given))

    assert str(raised.value) == message
