"""A throwaway MariaDB as a child process: find the binaries, initialise a data dir, start, wait, stop, clean up.

Everything lives in `<tmp>/bench-mysql-*` (data/, the socket, the pid file, the log unless the caller chose
where it goes, and the owner file of `workdirs`), which is removed when the context exits. A directory
whose harness died without cleaning up (SIGKILL, power loss) is removed by the next start, after stopping
its server if that still runs. The server only listens on 127.0.0.1, and root has no password there.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bench.databases.mysql.connect import accepts_connections, connect
from bench.databases.throwaway import workdirs
from bench.databases.throwaway.control import RestartableServer
from bench.databases.throwaway.log import ServerLog
from bench.databases.throwaway.user import (
    ServerUser,
    extra_groups_of,
    find_server_user,
    gid_of,
    reachable_by,
    uid_of,
)
from bench.records.errors import BenchError
from bench.system.processes import die_with_parent, free_port, stop_child

DIR_PREFIX = "bench-mysql-"
SERVER_PROGRAMS = ("mariadbd", "mysqld")
INSTALL_PROGRAMS = ("mariadb-install-db", "mysql_install_db")
# Debian/Ubuntu put mariadbd in /usr/sbin, which is not on an ordinary user's PATH.
SYSTEM_DIRS = (Path("/usr/sbin"), Path("/usr/bin"), Path("/usr/local/sbin"), Path("/usr/local/bin"))
SERVER_USERS = ("mysql", "nobody")  # who runs the server when the harness runs as root

# Connections beyond the pools: seeding, probes, the capacity check.
CONNECTION_HEADROOM = 10
MIN_BUFFER_POOL_MB = 128  # MariaDB's default
# About 1 KiB per row, twice over (rows + index + slack): the whole dataset stays in the buffer pool.
_BYTES_PER_ROW = 1024
READY_TIMEOUT_S = 60.0
INSTALL_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0  # a clean shutdown flushes the buffer pool; SIGKILL only after this
# mariadbd gets SIGTERM if the harness dies: a normal shutdown that disconnects clients, flushes and exits.
DEATH_SIGNAL = signal.SIGTERM
_PID_FILE = "mariadbd.pid"


@dataclass(frozen=True)
class MysqlBinaries:
    server: Path  # mariadbd
    install_db: Path  # mariadb-install-db
    version: str  # `mariadbd --version`, e.g. "mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu ..."


@dataclass(frozen=True)
class ThrowawayServer:
    url: str  # mysql://root@127.0.0.1:PORT/bench
    pid: int
    workdir: Path
    binaries: MysqlBinaries
    control: RestartableServer | None = None  # for fault injection: stop/start on the same port, freeze/thaw


def locate_binaries(path: str | None = None, system_dirs: Sequence[Path] = SYSTEM_DIRS) -> MysqlBinaries | None:
    """MariaDB's server and installer from PATH, else the system directories; None when either is missing.

    Only MariaDB: MySQL 8 has no mysql_install_db, and its mysqld initialises differently.
    """
    search = os.pathsep.join([os.environ.get("PATH", "") if path is None else path, *map(str, system_dirs)])
    server = _which(SERVER_PROGRAMS, search)
    install_db = _which(INSTALL_PROGRAMS, search)
    if server is None or install_db is None:
        return None
    try:
        version = subprocess.run(
            [str(server), "--no-defaults", "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return MysqlBinaries(server, install_db, version) if "mariadb" in version.lower() else None


def _which(programs: Sequence[str], search: str) -> Path | None:
    for program in programs:
        found = shutil.which(program, path=search)
        if found:
            return Path(found)
    return None


def server_user() -> ServerUser | None:
    """None when not root; else `mysql` if it exists, otherwise `nobody` (mariadbd refuses to run as root)."""
    return find_server_user(
        SERVER_USERS,
        "bench runs as root and MariaDB refuses to, but there is no `mysql` or `nobody` user to run it as; "
        "run bench as an ordinary user or pass --mysql-url",
    )


def server_options(needed: int, dataset_rows: int) -> list[str]:
    """Sized for the run; durability (innodb_flush_log_at_trx_commit, sync_binlog) stays at the defaults."""
    wanted_mb = math.ceil(max(dataset_rows, 0) * _BYTES_PER_ROW * 2 / 2**20)
    ceiling_mb = _physical_memory_mb() // 4
    buffer_pool_mb = max(MIN_BUFFER_POOL_MB, min(wanted_mb, ceiling_mb) if ceiling_mb else wanted_mb)
    return [f"--max-connections={max(needed, 0) + CONNECTION_HEADROOM}", f"--innodb-buffer-pool-size={buffer_pool_mb}M"]


def _physical_memory_mb() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (ValueError, OSError):
        return 0


@contextmanager
def throwaway_server(
    binaries: MysqlBinaries, needed: int, dataset_rows: int, log_path: Path | None = None
) -> Iterator[ThrowawayServer]:
    """Start a MariaDB for this run; stop it and remove its directory when the context exits."""
    remove_stale_servers()
    user = server_user()
    workdir = make_server_dir()
    log: ServerLog | None = None
    control: RestartableServer | None = None
    try:
        log = mariadb_log(log_path or workdir / "mariadb.log")
        prepare_server_dir(workdir, user)
        install_data_dir(binaries, workdir, user, log)
        start_on = partial(start_server, binaries, workdir, user, log, server_options(needed, dataset_rows))
        control = RestartableServer(start_on(None), start_on=start_on, stop=stop_server)
        url = f"mysql://root@127.0.0.1:{control.port}/bench"
        _create_database(control.port)
        yield ThrowawayServer(url=url, pid=control.process.pid, workdir=workdir, binaries=binaries, control=control)
    finally:
        try:
            if control is not None:
                control.close()  # whichever server runs now (a fault may have restarted it)
        finally:
            if log is not None:
                log.close()
            shutil.rmtree(workdir, ignore_errors=True)


def prepare_server_dir(workdir: Path, user: ServerUser | None) -> None:
    """Give `workdir` (and its tmp/) to the user that runs the server, checking that it can reach them."""
    (workdir / "tmp").mkdir(exist_ok=True)
    if user is None:
        return
    if not reachable_by(workdir.parent, user):
        raise BenchError(
            f"the temporary directory {workdir.parent} is not accessible to the `{user.name}` user that "
            "runs MariaDB (bench runs as root); set TMPDIR to a directory it can reach, e.g. /tmp"
        )
    for path in (workdir, workdir / "tmp"):
        os.chown(path, user.uid, user.gid)


def _create_database(port: int) -> None:
    with connect(f"mysql://root@127.0.0.1:{port}/") as conn:
        conn.exec_driver_sql("CREATE DATABASE bench")


def _child_env(workdir: Path) -> dict[str, str]:
    # MYSQL_* variables (MYSQL_UNIX_PORT, MYSQL_TCP_PORT, MYSQL_HOME) would silently change what the programs
    # do; the server user may not reach the harness's TMPDIR.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MYSQL", "MARIADB"))}
    env |= {"LC_ALL": "C", "TMPDIR": str(workdir / "tmp")}
    return env


def install_data_dir(binaries: MysqlBinaries, workdir: Path, user: ServerUser | None, log: ServerLog) -> None:
    """mariadb-install-db: system tables, and root@localhost/127.0.0.1 without a password (normal auth)."""
    command = [
        str(binaries.install_db), "--no-defaults", f"--datadir={workdir / 'data'}",
        "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve",
    ]  # fmt: skip
    log.mark()
    try:
        done = subprocess.run(
            command, stdin=subprocess.DEVNULL, stdout=log.file, stderr=subprocess.STDOUT, env=_child_env(workdir),
            cwd=workdir, timeout=INSTALL_TIMEOUT_S, check=False,
            user=uid_of(user), group=gid_of(user), extra_groups=extra_groups_of(user),
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as error:
        raise BenchError(f"{binaries.install_db} could not run: {error}; pass --mysql-url instead") from error
    if done.returncode != 0:
        raise BenchError(
            f"{binaries.install_db} failed: {log.telling_line()}; pass --mysql-url to use an existing server"
        )


def start_server(
    binaries: MysqlBinaries,
    workdir: Path,
    user: ServerUser | None,
    log: ServerLog,
    options: list[str],
    port: int | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start mariadbd on `port` of 127.0.0.1 (default: a free one, retried if another process takes it first) and
    wait for it."""
    attempts = 3 if port is None else 1
    given = port
    for attempt in range(1, attempts + 1):
        port = given if given is not None else free_port()
        command = [
            str(binaries.server), "--no-defaults",  # must come first: no my.cnf of the machine's own server
            f"--datadir={workdir / 'data'}", f"--socket={workdir / 'mysqld.sock'}",
            f"--pid-file={workdir / _PID_FILE}", f"--tmpdir={workdir / 'tmp'}",
            f"--port={port}", "--bind-address=127.0.0.1", "--skip-networking=0", "--skip-name-resolve",
            # What Debian's my.cnf sets; without a config file the server would default to latin1.
            "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
            *options,
        ]  # fmt: skip
        if user is not None:
            # We already switched to this user before exec (so PR_SET_PDEATHSIG survives); naming it keeps
            # mariadbd's root check quiet and documents who it runs as.
            command.append(f"--user={user.name}")
        log.mark()
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log.file, stderr=subprocess.STDOUT,
                env=_child_env(workdir), cwd=workdir, close_fds=True,
                start_new_session=True,  # a terminal Ctrl-C reaches only us; we then stop it cleanly
                preexec_fn=die_with_parent(DEATH_SIGNAL),  # noqa: PLW1509 - only prctl and getppid, no locks or imports
                user=uid_of(user), group=gid_of(user), extra_groups=extra_groups_of(user),
            )  # fmt: skip
        except OSError as error:
            raise BenchError(f"{binaries.server} could not run: {error}; pass --mysql-url instead") from error
        try:
            _wait_until_ready(process, port, log)
        except _PortTakenError:
            stop_server(process)
            if attempt < attempts:
                continue
            raise BenchError(f"MariaDB found no free port on 127.0.0.1: {log.telling_line()}") from None
        except BaseException:
            stop_server(process)
            raise
        return process, port
    raise AssertionError("unreachable")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a normal shutdown), then SIGKILL after STOP_TIMEOUT_S; only ever our own child."""
    stop_child(process, grace_s=STOP_TIMEOUT_S)


class _PortTakenError(Exception):
    """Another process took the port between our probe and mariadbd binding it: try another."""


def _wait_until_ready(process: subprocess.Popen[bytes], port: int, log: ServerLog) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if process.poll() is not None:
            if "Address already in use" in log.text():
                raise _PortTakenError
            raise BenchError(
                f"the throwaway MariaDB exited during start-up: {log.telling_line()}; "
                "pass --mysql-url to use an existing server"
            )
        if accepts_connections(port):
            return
        if time.monotonic() > deadline:
            raise BenchError(
                f"the throwaway MariaDB did not accept connections within {READY_TIMEOUT_S:.0f} s "
                f"(log: {log.telling_line()}); pass --mysql-url to use an existing server"
            )
        time.sleep(0.05)


def mariadb_log(path: Path) -> ServerLog:
    """The output of mariadb-install-db and mariadbd. Its telling line is the first error, from its marker on:
    MariaDB follows the cause with consequences and a final "[ERROR] Aborting"."""
    return ServerLog(path, ("[ERROR]", "FATAL", "ERROR"), first_error=True, from_marker=True)


# --- working directories ------------------------------------------------------------------------------------


def make_server_dir() -> Path:
    """A fresh `bench-mysql-*` directory owned (per its owner file) by this process."""
    return workdirs.make_workdir(DIR_PREFIX)


def remove_stale_servers(tmp: Path | None = None) -> list[Path]:
    """Remove `bench-mysql-*` dirs whose owning harness is gone, stopping their server first if it runs."""
    return workdirs.remove_stale_workdirs(DIR_PREFIX, _stop_orphaned_server, tmp)


def _stop_orphaned_server(workdir: Path) -> bool:
    """Stop the mariadbd recorded in `workdir`'s pid file, if it is alive and really serves `workdir`."""
    try:
        pid = int((workdir / _PID_FILE).read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return True
    return workdirs.stop_if_ours(
        pid,
        None,  # the pid file holds no start time; the command line check tells a reused PID apart
        lambda argv: _is_server_of(argv, workdir / "data"),
        first_signal=signal.SIGTERM,  # a normal shutdown: disconnect clients, flush, exit
        timeout_s=STOP_TIMEOUT_S,
    )


def _is_server_of(argv: list[str], datadir: Path) -> bool:
    if not argv or Path(argv[0]).name not in SERVER_PROGRAMS:
        return False
    given = [arg.removeprefix("--datadir=") for arg in argv if arg.startswith("--datadir=")]
    return bool(given) and os.path.realpath(given[0]) == os.path.realpath(datadir)
