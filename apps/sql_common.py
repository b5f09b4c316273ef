"""What every SQL variant shares without importing SQLAlchemy: the database URL, checked, and a few constants.

The raw-driver PostgreSQL variants (asyncpg, psycopg) must not load SQLAlchemy: its ~38,000 objects stay alive
in the process, and every full garbage collection walks them while requests wait. Under load, beside the ~30-line
yardstick, that import alone made each full collection pause 44 ms instead of 31 ms and the p99 21-36% higher
(README, "What our own code costs"). apps/sqla.py builds the SQLAlchemy URL on top of the same check, so all
variants word their URL errors alike.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

from apps.settings import AppSettings, StartupError

Driver = Literal["psycopg", "asyncpg", "pymysql", "aiomysql"]


class DriverInfo(NamedTuple):
    dialect: str  # SQLAlchemy's dialect for it: the `postgresql` of `postgresql+psycopg://`
    schemes: frozenset[str]  # the URL backends a user may give for it (any `+driver` suffix is swapped)
    timeout_arg: str  # its connect() argument limiting how long a connection attempt may take


_POSTGRESQL = frozenset({"postgresql", "postgres"})
_MYSQL = frozenset({"mysql", "mariadb"})
DRIVERS: dict[str, DriverInfo] = {
    "psycopg": DriverInfo("postgresql", _POSTGRESQL, "connect_timeout"),
    "asyncpg": DriverInfo("postgresql", _POSTGRESQL, "timeout"),
    "pymysql": DriverInfo("mysql", _MYSQL, "connect_timeout"),
    "aiomysql": DriverInfo("mysql", _MYSQL, "connect_timeout"),
}

# Prefixed so that pointing the harness at an existing database never touches a user's own `items` table.
ITEMS_TABLE = "bench_items"
# Without a limit an unreachable host makes start-up hang for minutes instead of failing.
CONNECT_TIMEOUT_S = 10
# Any constant works: it only has to be the same in every worker that may run the schema's DDL at once.
SCHEMA_LOCK_KEY = 0x62656E6368

# What SQLAlchemy's make_url accepts before `://`: a backend, optionally `+driver`.
_SCHEME = re.compile(r"[\w+]+")


def url_with_driver(settings: AppSettings, driver: Driver) -> str:
    """The URL the user gave, with `driver`'s dialect and driver in place of whatever scheme it named
    (`postgres://` and `postgresql+asyncpg://` both become `postgresql+psycopg://` for psycopg); the rest of
    the URL is passed on as given, password included."""
    info = DRIVERS[driver]
    wanted = f"a {info.dialect}:// URL"
    if settings.database_url is None:
        raise StartupError(f"BENCH_DATABASE_URL is not set; give it {wanted}")
    scheme, separator, rest = settings.database_url.partition("://")
    if not separator or not _SCHEME.fullmatch(scheme):
        raise StartupError(f"BENCH_DATABASE_URL is not a URL; give {wanted}")
    if scheme.partition("+")[0] not in info.schemes:
        raise StartupError(f"BENCH_DATABASE_URL must be {wanted}, not {scheme}://")
    return f"{info.dialect}+{driver}://{rest}"


def postgres_dsn(settings: AppSettings) -> str:
    """The user's URL as plain postgresql://, which libpq and asyncpg both read (any `+driver` dropped)."""
    return "postgresql://" + url_with_driver(settings, "psycopg").partition("://")[2]
