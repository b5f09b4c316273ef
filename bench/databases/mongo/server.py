"""The secantusdb surrogate as a child process: find `secantusd-py`, start it, wait until it answers, stop it.

Each surrogate gets a working directory `<tmp>/bench-mongo-*` holding its log, an empty config file, the owner
file ("PID START_TIME" of the harness) and the server file (the same for the surrogate). The surrogate's
`:memory:` storage is a temporary directory too; its TMPDIR points into ours, so removing ours removes it,
even after a SIGKILL. A later start removes the directories of harnesses that died, stopping their surrogate
first if it still runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from bench.databases.throwaway import workdirs
from bench.databases.throwaway.log import read_since
from bench.records.errors import BenchError
from bench.system.processes import free_port, log_tail, start_child, stop_child

PROGRAM = "secantusd-py"
DIR_PREFIX = "bench-mongo-"
SERVER_FILE = "surrogate-pid"
CONFIG_FILE = "secantusd.toml"
LOG_FILE = "secantusd.log"
READY_TIMEOUT_S = 30.0  # a pure-Python server: importing it alone takes about 2 s on a quiet machine
STOP_TIMEOUT_S = 10.0
# secantusdb 0.7.0b3 closes connections beyond this many (server.DEFAULT_MAX_CONNECTIONS; no flag sets it).
MAX_CONNECTIONS = 1000
_PORT_ATTEMPTS = 3


@dataclass(frozen=True)
class Surrogate:
    url: str
    pid: int
    port: int
    workdir: Path
    log_path: Path
    program: Path


def locate_surrogate(environ: Mapping[str, str] | None = None) -> Path | None:
    """`secantusd-py` next to the running interpreter (the same venv), else on PATH."""
    beside = Path(sys.executable).parent / PROGRAM
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    env = os.environ if environ is None else environ
    found = shutil.which(PROGRAM, path=env.get("PATH", ""))
    return Path(found) if found else None


@contextlib.contextmanager
def run_surrogate(program: Path, log_path: Path | None = None) -> Iterator[Surrogate]:
    """A surrogate on a free 127.0.0.1 port with in-memory storage, stopped and cleaned up when the context ends."""
    remove_stale_workdirs()
    workdir = make_workdir()
    process: subprocess.Popen[bytes] | None = None
    try:
        # Passing --config turns off secantusdb's search for ./, ~/.secantus/ and /etc/secantus/ config files,
        # so a user's file (auth, cache size, ...) cannot change the server under measurement.
        (workdir / CONFIG_FILE).write_text("# empty on purpose: secantusdb's built-in defaults\n")
        log = log_path or workdir / LOG_FILE
        process, port = _start(program, workdir, log)
        yield Surrogate(
            url=f"mongodb://127.0.0.1:{port}/bench",
            pid=process.pid,
            port=port,
            workdir=workdir,
            log_path=log,
            program=program,
        )
    finally:
        try:
            if process is not None:
                stop_child(process, grace_s=STOP_TIMEOUT_S)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _start(program: Path, workdir: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    env = {**os.environ, "TMPDIR": str(workdir)}  # where its `:memory:` storage directory goes
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        port = free_port()
        command = [
            str(program), "--host", "127.0.0.1", "--port", str(port), "--storage-path", ":memory:",
            # Standalone, as `docker compose up -d mongo` runs mongod: drivers take the same code path
            # (no replica-set discovery, no retryable-write transaction numbers).
            "--standalone",
            "--config", str(workdir / CONFIG_FILE),
        ]  # fmt: skip
        start_offset = log.stat().st_size if log.exists() else 0
        try:
            # SIGKILL if the harness dies: the surrogate's own SIGTERM shutdown sometimes hangs for minutes
            # (seen in about 1 of 5 test runs), and its in-memory store has nothing to save.
            process = start_child(command, env=env, log_path=log, cwd=workdir, death_signal=signal.SIGKILL)
        except OSError as error:
            raise BenchError(f"the secantusdb surrogate {program} could not start: {error}") from error
        workdirs.record_process(workdir / SERVER_FILE, process.pid)
        try:
            if _wait_until_ready(process, port, log, start_offset):
                return process, port
        except BaseException:
            stop_child(process, grace_s=STOP_TIMEOUT_S)
            raise
        if attempt == _PORT_ATTEMPTS:
            raise BenchError(f"the secantusdb surrogate found no free port on 127.0.0.1: {log_tail(log)}")
    raise AssertionError("unreachable")


def _wait_until_ready(process: subprocess.Popen[bytes], port: int, log: Path, start_offset: int) -> bool:
    """True once it answers a ping; False if another process took the port first (try another)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if process.poll() is not None:
            if "Address already in use" in read_since(log, start_offset):
                return False
            raise BenchError(
                f"the secantusdb surrogate exited during start-up (exit code {process.returncode}): "
                f"{log_tail(log)}; see {log}, or pass --mongo-url to use a MongoDB server"
            )
        if answers_ping("127.0.0.1", port):
            return True
        if time.monotonic() > deadline:
            raise BenchError(
                f"the secantusdb surrogate did not answer within {READY_TIMEOUT_S:.0f} s "
                f"(last log line: {log_tail(log) or '(empty)'}); pass --mongo-url to use a MongoDB server"
            )
        time.sleep(0.05)


def answers_ping(host: str, port: int, *, timeout_s: float = 2.0) -> bool:
    """Whether a MongoDB-speaking server answers `ping` at host:port (no credentials: ping needs none)."""
    # A TCP probe first: pymongo would wait out its whole timeout even when the connection is refused.
    try:
        with socket.create_connection((host, port), timeout=min(timeout_s, 0.5)):
            pass
    except OSError:
        return False
    ms = round(timeout_s * 1000)
    client: MongoClient[dict[str, object]] = MongoClient(
        host, port, directConnection=True, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms, appname="bench"
    )
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


# --- working directories ----------------------------------------------------------------------------------


def make_workdir() -> Path:
    """A fresh `bench-mongo-*` directory owned (per its owner file) by this process."""
    return workdirs.make_workdir(DIR_PREFIX)


def remove_stale_workdirs(tmp: Path | None = None) -> list[Path]:
    """Remove `bench-mongo-*` dirs whose harness is gone, stopping their surrogate first if it still runs."""
    return workdirs.remove_stale_workdirs(DIR_PREFIX, _stop_orphaned_surrogate, tmp)


def _stop_orphaned_surrogate(workdir: Path) -> bool:
    """Stop the surrogate recorded in `workdir` if it is alive and really serves it; False if it must be left."""
    try:
        server = workdirs.parse_process_record((workdir / SERVER_FILE).read_text())
    except OSError:
        return True
    if server is None:
        return True
    config = str(workdir / CONFIG_FILE)
    return workdirs.stop_if_ours(
        *server, lambda argv: config in argv, first_signal=signal.SIGTERM, timeout_s=STOP_TIMEOUT_S
    )
