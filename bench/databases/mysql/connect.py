"""Connecting to MySQL/MariaDB for the harness (PyMySQL through SQLAlchemy), failures as one-line BenchErrors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pymysql  # type: ignore[import-untyped]  # no stubs; a missing driver is a BenchError via the registry
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import NullPool

from apps.masking import scrub
from bench.records.errors import BenchError

CONNECT_TIMEOUT_S = 5
CHECK_READ_TIMEOUT_S = 10  # connect()'s connections only run short checks (versions, settings, grants)
SCHEMES = ("mysql", "mariadb")
URL_EXAMPLE = "mysql://user:password@host:3306/database"


def reason(error: BaseException) -> str:
    """A driver error as one line: PyMySQL's `(2003, "Can't connect ...")` becomes `Can't connect ... (2003)`."""
    # SQLAlchemy wraps the driver's exception; its own message adds SQL and a link, the driver's is the cause.
    cause: BaseException = getattr(error, "orig", None) or error
    args = cause.args
    if len(args) == 2 and isinstance(args[0], int):
        message = f"{args[1]} ({args[0]})"
    else:
        message = str(cause) or type(cause).__name__
    return " ".join(message.split())


def error_code(error: BaseException) -> int | None:
    """The server's error number (1205: lock wait timeout, 1045: access denied, ...), if there is one."""
    cause: BaseException = getattr(error, "orig", None) or error
    code = cause.args[0] if cause.args else None
    return code if isinstance(code, int) else None


def pymysql_url(url: str) -> URL:
    """`url` (mysql://, mariadb://, or either with any +driver) as SQLAlchemy's PyMySQL URL."""
    if urlsplit(url.strip()).netloc.count("@") > 1:
        # SQLAlchemy would take what follows the first `@` for the host and echo it in errors.
        raise BenchError(
            f"the user or password in the MySQL URL {scrub(url, url)} contains '@'; percent-encode it as %40"
        )
    try:
        parsed = make_url(url.strip())
    except (ArgumentError, ValueError) as error:
        raise BenchError(
            f"invalid MySQL URL {scrub(url, url)}: {scrub(reason(error), url)}; expected {URL_EXAMPLE}"
        ) from error
    if parsed.get_backend_name() not in SCHEMES:
        raise BenchError(
            f"the MySQL URL {scrub(url, url)} must start with mysql:// (or mariadb://); e.g. {URL_EXAMPLE}"
        )
    return parsed.set(drivername="mysql+pymysql")


def make_engine(url: str, *, timeout_s: int = CONNECT_TIMEOUT_S, read_timeout_s: int | None = None) -> Engine:
    """An engine without a pool (each connect() is a new connection, closed when done) on PyMySQL."""
    parsed = pymysql_url(url)
    connect_args: dict[str, int] = {} if "connect_timeout" in parsed.query else {"connect_timeout": timeout_s}
    if read_timeout_s is not None:
        connect_args["read_timeout"] = read_timeout_s
    return create_engine(parsed, poolclass=NullPool, connect_args=connect_args)


@contextmanager
def connect(url: str, *, timeout_s: int = CONNECT_TIMEOUT_S) -> Iterator[Connection]:
    """A connection to `url`; a failure to connect becomes a BenchError naming the masked URL."""
    # connect_timeout covers only the TCP connect: a port held by something that waits for the client to speak
    # first (an HTTP server) would leave PyMySQL waiting for MySQL's greeting for ever without a read timeout.
    engine = make_engine(url, timeout_s=timeout_s, read_timeout_s=CHECK_READ_TIMEOUT_S)
    try:
        try:
            conn = engine.connect()
        except DBAPIError as error:
            raise BenchError(
                f"cannot connect to MySQL at {scrub(url, url)}: {scrub(reason(error), url)}; "
                "check that the server is running and that host, port, user, password and database are right"
            ) from error
        with conn:
            yield conn
    finally:
        engine.dispose()


def accepts_connections(port: int, *, user: str = "root", timeout_s: int = 2) -> bool:
    """Whether a server on 127.0.0.1:`port` lets `user` in without a password (used to wait for start-up)."""
    try:
        pymysql.connect(host="127.0.0.1", port=port, user=user, connect_timeout=timeout_s).close()
    except pymysql.Error:
        return False
    return True
