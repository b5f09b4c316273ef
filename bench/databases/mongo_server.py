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
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from bench.databases.pg_workdirs import pid_alive, process_start_time
from bench.errors import BenchError
from bench.processes import free_port, log_tail, start_child, stop_child

PROGRAM = "secantusd-py"
DIR_PREFIX = "bench-mongo-"
OWNER_FILE = "bench-owner"
SERVER_FILE = "surrogate-pid"
CONFIG_FILE = "secantusd.toml"
LOG_FILE = "secantusd.log"
READY_TIMEOUT_S = 30.0  # a pure-Python server: importing it alone takes about 2 s on a quiet machine
STOP_TIMEOUT_S = 10.0
# secantusdb 0.7.0b3 closes connections beyond this many (server.DEFAULT_MAX_CONNECTIONS; no flag sets it).
MAX_CONNECTIONS = 1000
# A bench-mongo-* dir without an owner file is only a leftover once it is older than its creation can take.
_UNOWNED_GRACE_S = 300.0
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
            process = start_child(command, env=env, log_path=log, cwd=workdir)
        except OSError as error:
            raise BenchError(f"the secantusdb surrogate {program} could not start: {error}") from error
        start_time = process_start_time(process.pid) or ""
        (workdir / SERVER_FILE).write_text(f"{process.pid} {start_time}\n")
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
            if "Address already in use" in _log_since(log, start_offset):
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


def _log_since(log: Path, offset: int) -> str:
    try:
        with log.open("rb") as reader:
            reader.seek(offset)
            return reader.read().decode(errors="replace")
    except OSError:
        return ""


# --- working directories ----------------------------------------------------------------------------------


def make_workdir() -> Path:
    """A fresh `bench-mongo-*` directory owned (per its owner file) by this process."""
    workdir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=tempfile.gettempdir()))
    pid = os.getpid()
    (workdir / OWNER_FILE).write_text(f"{pid} {process_start_time(pid) or ''}\n")
    return workdir


def remove_stale_workdirs(tmp: Path | None = None) -> list[Path]:
    """Remove `bench-mongo-*` dirs whose harness is gone, stopping their surrogate first if it still runs."""
    removed: list[Path] = []
    for workdir in sorted((tmp or Path(tempfile.gettempdir())).glob(f"{DIR_PREFIX}*")):
        try:
            if workdir.is_symlink() or not workdir.is_dir() or _owner_alive(workdir):
                continue
            if not _stop_orphaned_surrogate(workdir):
                continue
        except OSError:
            continue
        shutil.rmtree(workdir, ignore_errors=True)
        if not workdir.exists():
            removed.append(workdir)
    return removed


def _read_pid_file(path: Path) -> tuple[int, str | None] | None:
    try:
        parts = path.read_text().split()
        return int(parts[0]), (parts[1] if len(parts) > 1 else None)
    except (OSError, IndexError, ValueError):
        return None


def _owner_alive(workdir: Path) -> bool:
    if not (workdir / OWNER_FILE).exists():
        return time.time() - workdir.stat().st_mtime < _UNOWNED_GRACE_S
    owner = _read_pid_file(workdir / OWNER_FILE)
    return owner is not None and pid_alive(*owner)


def _stop_orphaned_surrogate(workdir: Path) -> bool:
    """Stop the surrogate recorded in `workdir` if it is alive and really serves it; False if it must be left."""
    server = _read_pid_file(workdir / SERVER_FILE)
    if server is None or not pid_alive(*server):
        return True
    pid = server[0]
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except FileNotFoundError:
        return not pid_alive(pid)
    except OSError:
        return False  # cannot tell what it is (no /proc): leave the directory rather than pull it from under it
    if str(workdir / CONFIG_FILE) not in argv:
        return True  # the PID now belongs to an unrelated process: never signal it
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not pid_alive(pid):
            return True
    return False
