"""The database's own connection counters, one probe per backend, each on a single connection of its own.

Each probe opens its connection once per point (lazily, in the sampler's thread), reads the counters once per
sample, and excludes itself from the counts where the server lets it. Drivers are optional extras, so each
probe imports its driver only when it opens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from apps.masking import scrub as scrub_password
from bench.databases.backend import Database
from bench.records.errors import BenchError

CONNECT_TIMEOUT_S = 2  # libpq rounds anything below 2 s up to 2 s; the other drivers use the same
QUERY_TIMEOUT_S = 0.5  # one sample's query: a probe that waits longer is skipped, not waited for
PROBE_NAME = "bench-probe"  # application name, where the server records one


@dataclass(frozen=True)
class DatabaseReading:
    connections: int  # client connections, the probe's own excluded
    by_state: dict[str, int] = field(default_factory=dict)


class DatabaseProbeError(Exception):
    """A sample could not be taken; `message` is one line with any password masked."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProbeUnsupportedError(Exception):
    """The server cannot report connection counts (e.g. a surrogate without serverStatus): a note, not an error."""

    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note


class DatabaseProbe(Protocol):
    source: str  # what the counts come from, recorded as DatabaseTelemetry.source

    def read(self) -> DatabaseReading:
        """One sample (connecting first if needed). DatabaseProbeError or ProbeUnsupportedError when it cannot."""
        ...

    def close(self) -> None:
        """Close the probe's connection (safe to call more than once, or without a connection)."""
        ...


def scrub(text: str, url: str) -> str:
    """`text` as one line with the URL's password masked, also where a driver echoes it outside a URL."""
    return scrub_password(" ".join(text.split()), url)


def _describe(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


class PostgresProbe:
    """pg_stat_activity for the URL's database: client backends by state, and what active ones wait for."""

    source = "pg_stat_activity"
    # Client backends only (not autovacuum or WAL writers), the probe's own backend excluded. Another role's
    # session shows NULL backend_type and state to a user without pg_read_all_stats: counted, as "unknown".
    _QUERY = """
        SELECT state, CASE WHEN state = 'active' THEN wait_event_type END, count(*)
        FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()
          AND (backend_type = 'client backend' OR (backend_type IS NULL AND usesysid IS NOT NULL))
        GROUP BY 1, 2
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: Any = None

    def read(self) -> DatabaseReading:
        import psycopg  # noqa: PLC0415 - an optional extra

        from bench.databases.postgres.connect import libpq_url  # noqa: PLC0415 - an optional extra

        try:
            if self._conn is None:
                self._conn = psycopg.connect(
                    libpq_url(self._url),
                    connect_timeout=CONNECT_TIMEOUT_S,
                    autocommit=True,
                    application_name=PROBE_NAME,
                )
                self._conn.execute(f"SET statement_timeout = {int(QUERY_TIMEOUT_S * 1000)}")
            rows = self._conn.execute(self._QUERY).fetchall()
        except (psycopg.Error, ValueError) as error:
            self.close()  # a broken connection is reopened at the next sample
            raise DatabaseProbeError(f"PostgreSQL probe: {scrub(_describe(error), self._url)}") from error
        by_state: dict[str, int] = {}
        for state, wait_event_type, count in rows:
            key = state or "unknown"
            by_state[key] = by_state.get(key, 0) + count
            if wait_event_type:
                # e.g. wait:Client (waiting for the app to send), wait:Lock, wait:Timeout (pg_sleep)
                by_state[f"wait:{wait_event_type}"] = by_state.get(f"wait:{wait_event_type}", 0) + count
        connections = sum(count for _, _, count in rows)
        return DatabaseReading(connections, by_state)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class MysqlProbe:
    """SHOW GLOBAL STATUS Threads_connected (server-wide) less the probe, and the bench database's sessions by
    command from the PROCESSLIST."""

    source = "SHOW GLOBAL STATUS Threads_connected"
    _PROCESSLIST = """
        SELECT COMMAND, STATE, COUNT(*) FROM information_schema.PROCESSLIST
        WHERE DB = DATABASE() AND ID <> CONNECTION_ID() GROUP BY COMMAND, STATE
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: Any = None

    def read(self) -> DatabaseReading:
        import pymysql  # type: ignore[import-untyped]  # noqa: PLC0415 - an optional extra

        from bench.databases.mysql.connect import pymysql_url  # noqa: PLC0415 - an optional extra

        try:
            if self._conn is None:
                url = pymysql_url(self._url)
                self._conn = pymysql.connect(
                    host=url.host or "127.0.0.1",
                    port=url.port or 3306,
                    user=url.username or "root",
                    password=url.password or "",
                    database=url.database,
                    connect_timeout=CONNECT_TIMEOUT_S,
                    read_timeout=QUERY_TIMEOUT_S,
                    write_timeout=QUERY_TIMEOUT_S,
                    autocommit=True,
                    program_name=PROBE_NAME,
                )
            with self._conn.cursor() as cursor:
                cursor.execute("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
                status = cursor.fetchone()
                cursor.execute(self._PROCESSLIST)
                sessions = cursor.fetchall()
        except BenchError as error:
            raise DatabaseProbeError(f"MySQL probe: {scrub(error.message, self._url)}") from error
        except (pymysql.Error, OSError, ValueError) as error:
            self.close()
            raise DatabaseProbeError(f"MySQL probe: {scrub(_mysql_reason(error), self._url)}") from error
        by_state: dict[str, int] = {}
        for command, state, count in sessions:
            key = str(command).lower()  # sleep (idle in the pool), query, ...
            by_state[key] = by_state.get(key, 0) + int(count)
            if key == "query" and state:
                # e.g. "User sleep" (SLEEP()), "Waiting for table metadata lock", "Sending data"
                by_state[f"state:{state}"] = by_state.get(f"state:{state}", 0) + int(count)
        return DatabaseReading(int(status[1]) - 1, by_state)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # PyMySQL raises when the connection is already gone: then there is nothing left to close.
            with contextlib.suppress(Exception):
                conn.close()


def _mysql_reason(error: BaseException) -> str:
    args = error.args
    if len(args) == 2 and isinstance(args[0], int):
        return f"{args[1]} ({args[0]})"
    return _describe(error)


class RedisProbe:
    """INFO clients: connected_clients (server-wide) less the probe, and blocked_clients (BLPOP and kin)."""

    source = "INFO clients"

    def __init__(self, url: str) -> None:
        self._url = url
        self._client: Any = None

    def read(self) -> DatabaseReading:
        import redis  # noqa: PLC0415 - an optional extra

        try:
            if self._client is None:
                # One connection, kept for the point: a pooled client could open more and count them.
                self._client = redis.Redis.from_url(
                    self._url,
                    socket_connect_timeout=CONNECT_TIMEOUT_S,
                    socket_timeout=QUERY_TIMEOUT_S,
                    single_connection_client=True,
                    client_name=PROBE_NAME,
                )
            info = self._client.info("clients")
        except (redis.RedisError, OSError, ValueError) as error:
            self.close()
            raise DatabaseProbeError(f"Redis probe: {scrub(_describe(error), self._url)}") from error
        return DatabaseReading(int(info["connected_clients"]) - 1, {"blocked": int(info.get("blocked_clients", 0))})

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


class MongoProbe:
    """serverStatus connections.current less the probe's own connections (its pooled one and its monitor)."""

    source = "serverStatus connections.current"

    def __init__(self, url: str) -> None:
        self._url = url
        self._client: Any = None

    def read(self) -> DatabaseReading:
        import pymongo  # noqa: PLC0415 - an optional extra
        from pymongo.errors import OperationFailure, PyMongoError  # noqa: PLC0415 - an optional extra

        timeout_ms = int(QUERY_TIMEOUT_S * 1000)
        try:
            if self._client is None:
                # "poll" monitoring keeps one monitor connection per server (the default "stream" mode may add
                # a second for round-trip times), so the probe's own share of the count is known.
                self._client = pymongo.MongoClient(
                    self._url,
                    maxPoolSize=1,
                    serverMonitoringMode="poll",
                    appname=PROBE_NAME,
                    connectTimeoutMS=CONNECT_TIMEOUT_S * 1000,
                    serverSelectionTimeoutMS=CONNECT_TIMEOUT_S * 1000,
                    socketTimeoutMS=timeout_ms,
                )
            status = self._client.admin.command("serverStatus")
        except OperationFailure as error:
            # Not permitted (no clusterMonitor role) or not implemented (a surrogate): asking again won't help.
            self.close()
            raise ProbeUnsupportedError(
                f"no connection counts: serverStatus refused ({scrub(_describe(error), self._url)})"
            ) from error
        except (PyMongoError, ValueError, TypeError) as error:
            self.close()
            raise DatabaseProbeError(f"MongoDB probe: {scrub(_describe(error), self._url)}") from error
        current = (status.get("connections") or {}).get("current")
        if not isinstance(current, int):
            self.close()
            raise ProbeUnsupportedError("no connection counts: serverStatus has no connections.current")
        own = MONGO_MONITOR_CONNECTIONS + 1  # the monitor and the one pooled connection serverStatus ran on
        return DatabaseReading(max(current - own, 0))

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


MONGO_MONITOR_CONNECTIONS = 1

# Registration, not dispatch: a backend with a probe is one entry here; "memory" has no server to ask.
PROBES: dict[str, Callable[[str], DatabaseProbe]] = {
    "postgresql": PostgresProbe,
    "mysql": MysqlProbe,
    "redis": RedisProbe,
    "mongodb": MongoProbe,
}


def database_probe(database: Database | None) -> DatabaseProbe | None:
    """The probe for `database`'s backend, or None when there is nothing to ask (memory, no URL)."""
    if database is None or database.url is None:
        return None
    factory = PROBES.get(database.backend)
    return factory(database.url) if factory is not None else None
