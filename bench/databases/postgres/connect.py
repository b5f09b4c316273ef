"""Connecting to PostgreSQL with psycopg, turning driver errors into one-line, password-free BenchErrors."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from apps.masking import scrub
from bench.records.errors import BenchError

# The other PostgreSQL modules import psycopg from here (see __all__), so a missing extra is a BenchError.
try:
    import psycopg
    from psycopg import sql
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise BenchError("PostgreSQL support is not installed; run: pip install 'fastapi-db-bench[postgresql]'") from exc

__all__ = [
    "CONNECT_TIMEOUT_S",
    "Connection",
    "accepts_connections",
    "check_url",
    "connect",
    "first_line",
    "libpq_url",
    "psycopg",
    "scrub",
    "show",
    "sql",
]

CONNECT_TIMEOUT_S = 5

# SQLAlchemy-style URLs (postgresql+psycopg://, postgresql+asyncpg://) are accepted everywhere; libpq wants
# the bare scheme.
_DRIVER_SUFFIX = re.compile(r"^(?P<scheme>postgres(?:ql)?)\+[A-Za-z0-9_]+://")
_SCHEME = re.compile(r"^postgres(?:ql)?(?:\+[A-Za-z0-9_]+)?$")

Connection = psycopg.Connection[tuple[Any, ...]]


def libpq_url(url: str) -> str:
    """`url` without a SQLAlchemy driver suffix, as libpq and psycopg understand it."""
    return _DRIVER_SUFFIX.sub(lambda m: f"{m.group('scheme')}://", url.strip(), count=1)


def check_url(url: str) -> None:
    """Refuse a URL of another database (libpq would call it a malformed keyword string), and one whose
    password contains a raw `@`: libpq would read part of it as the host name and echo it in its error."""
    scheme, sep, _ = url.strip().partition("://")
    if sep and not _SCHEME.match(scheme):
        raise BenchError(f"the PostgreSQL URL {scrub(url, url)} must start with postgresql:// (or postgres://)")
    if urlsplit(url).netloc.count("@") > 1:
        raise BenchError(
            f"the user or password in the PostgreSQL URL {scrub(url, url)} contains '@'; percent-encode it as %40"
        )


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message (driver errors run over several lines)."""
    # SQLAlchemy wraps the driver's exception; its own message adds SQL and a link, the driver's is the cause.
    cause: BaseException = getattr(error, "orig", None) or error
    for line in str(cause).splitlines():
        if line.strip():
            return line.strip()
    return type(cause).__name__


def connect(url: str, *, timeout_s: int = CONNECT_TIMEOUT_S) -> Connection:
    """An autocommit connection to `url`; any failure becomes a BenchError naming the masked URL."""
    check_url(url)
    try:
        return psycopg.connect(libpq_url(url), connect_timeout=timeout_s, autocommit=True)
    except (psycopg.Error, ValueError) as error:
        raise BenchError(
            f"cannot connect to PostgreSQL at {scrub(url, url)}: {scrub(first_line(error), url)}; "
            "check that the server is running and that host, port, user, password and database are right"
        ) from error


def accepts_connections(conninfo: str) -> bool:
    """Whether a server answers at `conninfo` (used to wait for start-up; "starting up" counts as no)."""
    try:
        with psycopg.connect(conninfo, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def show(conn: Connection, name: str) -> str:
    """`SHOW name` as the server formats it (e.g. `128MB`), or `''` for a setting this version lacks."""
    row = conn.execute("SELECT current_setting(%s, true)", (name,)).fetchone()
    return "" if row is None or row[0] is None else str(row[0])
