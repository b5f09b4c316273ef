"""A throwaway `redis-server` as a child process in `<tmp>/bench-redis-*`: started, waited for, stopped, removed.

The server keeps nothing on disk (`--save "" --appendonly no`): the dataset is seeded again whenever it is not
in place, so persistence would only add fsyncs and snapshots to the measurements. The directory holds the
owner file ("PID START_TIME" of the harness) and the server's own PID file, so a later run can clean up after
a harness that was killed before it could (SIGKILL, power loss).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import redis

from bench.databases.throwaway import workdirs
from bench.databases.throwaway.control import RestartableServer
from bench.databases.throwaway.log import read_since
from bench.records.errors import BenchError
from bench.system.processes import free_port, start_child, stop_child

DIR_PREFIX = "bench-redis-"
SERVER_PID_FILE = "redis-server.pid"
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
NOT_FOUND = (
    "no Redis to use: nothing answers on 127.0.0.1:6379 and redis-server is not on PATH; set --redis-url "
    "(or REDIS_URL), or run `docker compose up -d redis` and pass --redis-url redis://127.0.0.1:6379/0"
)


@dataclass(frozen=True)
class RedisServer:
    url: str
    pid: int
    workdir: Path
    binary: str
    control: RestartableServer | None = None  # for fault injection: stop/start on the same port, freeze/thaw


@contextmanager
def throwaway_redis(*, maxclients: int, log_path: Path | None = None) -> Iterator[RedisServer]:
    """Start a redis-server on a free 127.0.0.1 port; stop it and remove its directory when the context ends."""
    remove_stale_dirs()
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError(NOT_FOUND)
    workdir = make_workdir()
    control: RestartableServer | None = None
    try:
        start_on = partial(_start, binary, workdir, maxclients, log_path or workdir / "redis.log")
        started = start_on(None)
        control = RestartableServer(started, start_on=start_on, stop=partial(_stop_keeping_data, port=started[1]))
        yield RedisServer(
            url=f"redis://127.0.0.1:{control.port}/0",
            pid=control.process.pid,
            workdir=workdir,
            binary=binary,
            control=control,
        )
    finally:
        try:
            if control is not None:
                control.close()  # whichever server runs now (a fault may have restarted it)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _stop_keeping_data(process: subprocess.Popen[bytes], *, port: int) -> None:
    """Stop the server for a db-restart fault so that it comes back with its data: SHUTDOWN SAVE writes a snapshot
    into its directory, which it loads at start-up (persistence is off, so a plain SIGTERM would lose the
    dataset, and every request after the restart would be a 404 about data, not about the driver)."""
    if process.poll() is None:
        # A bare socket: redis-py's client retries (with back-off) when the server closes on it, which is exactly
        # what SHUTDOWN does, and that cost seconds of "downtime" the fault did not ask for.
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b"SHUTDOWN SAVE\r\n")
            conn.recv(64)  # returns when the server closes the connection on its way out
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT_S)
    stop_child(process, grace_s=STOP_TIMEOUT_S)


def server_arguments(port: int, workdir: Path, maxclients: int) -> list[str]:
    return [
        "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir),
        "--daemonize", "no", "--logfile", "",  # log to stdout, which goes to the log file
        "--save", "", "--appendonly", "no",  # no persistence: see the module docstring
        "--maxclients", str(maxclients),
        # Blocking commands time out on the server's timer tick (100 ms at the default hz 10); io_wait's
        # server-side wait needs 10 ms steps to mean what its wait_ms says.
        "--hz", "100",
    ]  # fmt: skip


def _start(
    binary: str, workdir: Path, maxclients: int, log_path: Path, port: int | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """Start redis-server on `port` (default: a free one, retried if another process takes it first)."""
    attempts = 3 if port is None else 1
    given = port
    for attempt in range(1, attempts + 1):
        port = given if given is not None else free_port()
        log_start = log_path.stat().st_size if log_path.exists() else 0
        try:
            process = start_child(
                [binary, *server_arguments(port, workdir, maxclients)], env=dict(os.environ), log_path=log_path,
                cwd=workdir,
            )  # fmt: skip
        except OSError as error:
            raise BenchError(f"redis-server ({binary}) could not start: {error}") from error
        workdirs.record_process(workdir / SERVER_PID_FILE, process.pid)
        try:
            if _wait_until_ready(process, port, log_path, log_start):
                return process, port
        except BaseException:
            stop_child(process, grace_s=STOP_TIMEOUT_S)
            raise
        if attempt == attempts:  # another process took the port between our probe and the server binding it
            raise BenchError(f"redis-server found no free port on 127.0.0.1: {_last_line(log_path, log_start)}")
    raise AssertionError("unreachable")


def _wait_until_ready(process: subprocess.Popen[bytes], port: int, log_path: Path, log_start: int) -> bool:
    """True once the server answers PING; False if it exited because its port was taken; else BenchError."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    # from_url: unlike Redis(host=...), it does not retry a refused connection with back-off, which would only
    # delay noticing that the server is up.
    client = redis.Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.5, socket_timeout=1)
    try:
        while True:
            if process.poll() is not None:
                if "Address already in use" in read_since(log_path, log_start):
                    return False
                raise BenchError(
                    f"the throwaway Redis exited during start-up: {_last_line(log_path, log_start)}; "
                    "pass --redis-url to use an existing server"
                )
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    return True
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the throwaway Redis did not answer within {READY_TIMEOUT_S:.0f} s (last log line: "
                    f"{_last_line(log_path, log_start)}); pass --redis-url to use an existing server"
                )
            time.sleep(0.02)
    finally:
        client.close()


def _last_line(log_path: Path, start: int) -> str:
    lines = [line.strip() for line in read_since(log_path, start).splitlines() if line.strip()]
    return lines[-1] if lines else f"(nothing in {log_path})"


def make_workdir() -> Path:
    """A fresh `bench-redis-*` directory owned (per its owner file) by this process."""
    return workdirs.make_workdir(DIR_PREFIX)


def remove_stale_dirs(tmp: Path | None = None) -> list[Path]:
    """Remove `bench-redis-*` dirs whose owning harness is gone, stopping their server first if it still runs."""
    return workdirs.remove_stale_workdirs(DIR_PREFIX, _stop_orphaned_server, tmp)


def _stop_orphaned_server(workdir: Path) -> bool:
    """Stop the redis-server recorded in `workdir`'s PID file if it still runs; False if it could not be stopped.

    Only a process with the recorded PID *and* start time is signalled (a reused PID is someone else's), and
    only if it is a redis-server: redis-server rewrites its command line, so the name is all there is to check.
    """
    try:
        server = workdirs.parse_process_record((workdir / SERVER_PID_FILE).read_text())
    except FileNotFoundError:
        return True
    if server is None or server[1] is None or not workdirs.pid_alive(*server):
        return True  # without a start time the PID cannot be told apart from its reuse: never signal it
    pid = server[0]
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return not workdirs.pid_alive(pid)
    if name != "redis-server":
        return True
    return workdirs.stop_process(pid, signal.SIGTERM, STOP_TIMEOUT_S)
