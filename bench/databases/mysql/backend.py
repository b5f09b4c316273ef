"""MySQL/MariaDB for a run: a given server (checked for room for the pools), a local one, or a throwaway one.

Without a URL: a server on 127.0.0.1:3306 that lets root in without a password is used (its `bench`
database is created if missing); otherwise, where MariaDB's binaries are installed, a throwaway server is
started as a child process (see mysql_server) and stopped when the context exits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from apps.masking import scrub
from bench.databases.backend import Database, SeedResult, ServerControl
from bench.databases.mysql.connect import connect, make_engine, reason
from bench.databases.mysql.seed import seed_mysql
from bench.databases.mysql.server import MysqlBinaries, locate_binaries, throwaway_server
from bench.records.errors import BenchError

__all__ = [
    "MysqlBackend",
    "MysqlServer",
    "check_capacity",
    "locate_binaries",
    "provision_mysql",
    "seed_mysql",
    "throwaway_mysql",
]

RECORDED_SETTINGS = (
    "max_connections",
    "innodb_buffer_pool_size",
    "innodb_flush_log_at_trx_commit",
    "sync_binlog",
    "log_bin",  # sync_binlog only matters with the binary log on
)
LOCAL_PORT = 3306
LOCAL_SOURCE = "local server on the default port"
NO_SERVER_HINT = (
    "set --mysql-url or MYSQL_URL, or run `docker compose up -d mariadb` and pass "
    "--mysql-url mysql://root:mariadb@127.0.0.1:3306/bench"
)


@dataclass(frozen=True)
class MysqlServer:
    """The MySQL/MariaDB a run uses and what it is, for the run's record."""

    url: str  # as the user gave it, or mysql://root@127.0.0.1:PORT/bench
    version: str  # SELECT VERSION(), e.g. "10.11.19-MariaDB-0+deb12u1"
    settings: dict[str, str]  # RECORDED_SETTINGS as the server reports them
    embedded: bool  # True when the harness started it
    source: str  # "given URL", LOCAL_SOURCE, or where the throwaway server's binaries are
    pid: int | None = None  # the throwaway server's PID
    workdir: Path | None = None  # the throwaway server's directory
    control: ServerControl | None = None  # the throwaway server's, for fault injection

    @property
    def label(self) -> str:
        """The name shown in tables and charts, e.g. "MariaDB 10.11.19" or "MySQL 8.0.36"."""
        number = self.version.split("-")[0]
        return f"MariaDB {number}" if "mariadb" in self.version.lower() else f"MySQL {number}"


@contextmanager
def provision_mysql(
    *,
    url: str | None,
    connections_needed: int,
    dataset_rows: int,
    log_path: Path | None = None,
    look_locally: bool = True,
) -> Iterator[MysqlServer]:
    """Yield a MySQL/MariaDB that accepts `connections_needed` more connections; see the module docstring."""
    if url is not None:
        yield _checked(url, connections_needed, embedded=False, source="given URL")
        return
    local, local_problem = (
        _local_server(connections_needed) if look_locally else (None, "a local server was not wanted (--fresh-servers)")
    )
    if local is not None:
        yield local
        return
    binaries = locate_binaries()
    if binaries is None:
        raise BenchError(
            f"no MySQL URL given, {local_problem}, and no MariaDB server binaries (mariadbd and "
            f"mariadb-install-db) to start one; {NO_SERVER_HINT}"
        )
    with throwaway_mysql(
        binaries, connections_needed=connections_needed, dataset_rows=dataset_rows, log_path=log_path
    ) as server:
        yield server


@contextmanager
def throwaway_mysql(
    binaries: MysqlBinaries, *, connections_needed: int, dataset_rows: int, log_path: Path | None = None
) -> Iterator[MysqlServer]:
    """A MariaDB started for this run from `binaries` (see locate_binaries), stopped when the context exits."""
    with throwaway_server(binaries, connections_needed, dataset_rows, log_path) as started:
        source = f"throwaway server from {binaries.server}"
        server = _checked(started.url, connections_needed, embedded=True, source=source)
        yield replace(server, pid=started.pid, workdir=started.workdir, control=started.control)


def _local_server(needed: int) -> tuple[MysqlServer | None, str]:
    """The server on 127.0.0.1:LOCAL_PORT if root may log in there without a password, else why not."""
    engine = make_engine(f"mysql://root@127.0.0.1:{LOCAL_PORT}/", timeout_s=2)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE DATABASE IF NOT EXISTS bench")
    except DBAPIError as error:
        return None, f"nothing on 127.0.0.1:{LOCAL_PORT} lets root in without a password ({reason(error)})"
    finally:
        engine.dispose()
    url = f"mysql://root@127.0.0.1:{LOCAL_PORT}/bench"
    return _checked(url, needed, embedded=False, source=LOCAL_SOURCE), ""


def _checked(url: str, needed: int, *, embedded: bool, source: str) -> MysqlServer:
    with connect(url) as conn:
        check_capacity(conn, url, needed)
        version = _variable(conn, url, "version")
        return MysqlServer(url=url, version=version, settings=_settings(conn, url), embedded=embedded, source=source)


def check_capacity(conn: Connection, url: str, needed: int) -> None:
    """BenchError unless the server has `needed` connections free right now (this one not counted)."""
    try:
        max_connections = int(_variable(conn, url, "max_connections"))
        max_user_connections = int(_variable(conn, url, "max_user_connections"))
        row = conn.execute(text("SHOW GLOBAL STATUS LIKE 'Threads_connected'")).one()
    except DBAPIError as error:
        raise BenchError(f"cannot read connection limits from MySQL at {scrub(url, url)}: {reason(error)}") from error
    in_use = int(row[1]) - 1  # this check's own connection is closed before the run
    allowed = max_connections - in_use
    limit = f"max_connections {max_connections} - {in_use} in use"
    if 0 < max_user_connections < allowed:
        allowed, limit = max_user_connections, f"max_user_connections {max_user_connections}"
    if allowed < needed:
        raise BenchError(
            f"the run needs {needed} connections but MySQL at {scrub(url, url)} allows {allowed} ({limit}); "
            "raise max_connections (SET GLOBAL max_connections = ...) or lower pool_size/max_overflow"
        )


def _settings(conn: Connection, url: str) -> dict[str, str]:
    return {name: _variable(conn, url, name) for name in RECORDED_SETTINGS}


def _variable(conn: Connection, url: str, name: str) -> str:
    """A global system variable as the server prints it, `''` for one this server lacks."""
    try:
        row = conn.execute(text("SHOW GLOBAL VARIABLES LIKE :name"), {"name": name}).first()
    except DBAPIError as error:
        raise BenchError(f"cannot read {name} from MySQL at {scrub(url, url)}: {reason(error)}") from error
    return "" if row is None or row[1] is None else str(row[1])


class MysqlBackend:
    """MySQL/MariaDB for the harness: a given URL, a local server, else a throwaway one (see provision_mysql)."""

    name = "mysql"
    url_option = "--mysql-url"
    url_env = "MYSQL_URL"

    @contextmanager
    def provision(
        self, *, url: str | None, connections_needed: int, dataset_rows: int, work_dir: Path, local: bool = True
    ) -> Iterator[Database]:
        log_path = work_dir / "mysql.log" if url is None else None
        with provision_mysql(
            url=url,
            connections_needed=connections_needed,
            dataset_rows=dataset_rows,
            log_path=log_path,
            look_locally=local,
        ) as server:
            yield Database(
                backend=self.name,
                url=server.url,
                label=server.label,
                version=server.version,
                embedded=server.embedded,
                source=server.source,
                settings=server.settings,
                control=server.control,
            )

    def seed(self, database: Database, rows: int) -> SeedResult:
        assert database.url is not None
        return seed_mysql(database.url, rows)
