"""Locust workers on other hosts: the board a run publishes each point on, and the `bench worker` loop.

The load itself is spread by Locust's own distributed mode: per point the harness starts a master on
`--master-bind HOST:PORT` that waits for its local processes plus `--remote-workers N` others. What a worker must
know to run the point's scenario (which scenario, its settings) is what Locust cannot forward before importing the
locustfile, so the run publishes it on a small JSON board at PORT + 1: `bench worker --master HOST:PORT` polls it,
starts `locust --worker` with those settings for each new point, and sends its figures to the master like any
worker (bench merges them). The worker checks that its scenario file is the master's (same SHA-256), so two
versions of a workload never mix in one point. The board says "done" when the run ends and the workers exit.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.records.errors import BenchError
from bench.system.processes import child_environment, python_executable, start_child, stop_child

DEFAULT_MASTER_PORT = 5557  # Locust's own default
POLL_S = 0.5
DONE_GRACE_S = 2 * POLL_S  # the board says "done" this long before it closes, so polling workers see it


class PointBoard:
    """GET / on PORT + 1 answers {"state": "idle" | "point" | "done", ...} for `bench worker`s."""

    def __init__(self, bind: str, master_port: int) -> None:
        self._document: dict[str, Any] = {"state": "idle"}
        self._serial = 0
        self._lock = threading.Lock()
        board = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps(board.document()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # no line per poll on the run's console

        try:
            self._server = http.server.ThreadingHTTPServer((bind, master_port + 1), Handler)
        except OSError as error:
            raise BenchError(
                f"cannot listen on {bind}:{master_port + 1} for remote workers: {error.strerror}"
            ) from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="point-board", daemon=True)
        self._thread.start()

    def document(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._document)

    def publish(self, point: dict[str, Any] | None) -> None:
        """The point now waiting for workers (its master is starting), or None between points."""
        with self._lock:
            if point is None:
                self._document = {"state": "idle"}
            else:
                self._serial += 1
                self._document = {"state": "point", "serial": self._serial, **point}

    def close(self) -> None:
        with self._lock:
            self._document = {"state": "done"}
        time.sleep(DONE_GRACE_S)
        self._server.shutdown()
        self._server.server_close()


def parse_master(text: str) -> tuple[str, int]:
    """`HOST[:PORT]` -> (host, port); ValueError (one line) when malformed."""
    host, _, port_text = text.strip().partition(":")
    port_text = port_text or str(DEFAULT_MASTER_PORT)
    if not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65534:
        raise ValueError(f"{text!r} is not HOST[:PORT] (a port from 1 to 65534)")
    return host, int(port_text)


def run_worker(
    host: str, port: int, scenarios_dir: Path, log_dir: Path, say: Callable[[str], None], wait_s: float
) -> int:
    """Join every point the run at host:port publishes until it says "done"; returns the points joined. Gives
    up (BenchError) when the board has not answered for `wait_s` seconds before anything was joined."""
    board_url = f"http://{host}:{port + 1}/"
    joined = 0
    last_serial = 0
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with urllib.request.urlopen(board_url, timeout=5) as response:
                document = json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as error:
            if joined and time.monotonic() > deadline:
                return joined  # the run ended while we were looking the other way
            if time.monotonic() > deadline:
                reason = getattr(error, "reason", error)
                raise BenchError(f"no bench run publishes points at {board_url}: {reason}") from None
            time.sleep(POLL_S)
            continue
        deadline = time.monotonic() + wait_s
        if document.get("state") == "done":
            return joined
        if document.get("state") == "point" and int(document.get("serial", 0)) > last_serial:
            last_serial = int(document["serial"])
            say(f"joining point {document.get('point')} ({document.get('scenario')})")
            _run_locust_worker(document, host, scenarios_dir, log_dir)
            joined += 1
        time.sleep(POLL_S)


def _run_locust_worker(document: dict[str, Any], host: str, scenarios_dir: Path, log_dir: Path) -> None:
    scenario = scenarios_dir / f"{document['scenario']}.py"
    if not scenario.is_file() or hashlib.sha256(scenario.read_bytes()).hexdigest() != document["scenario_sha256"]:
        raise BenchError(
            f"this host's scenarios/{document['scenario']}.py is not the run's; install the same bench version here"
        )
    argv = [
        python_executable(), "-m", "locust", "-f", str(scenario), "--worker",
        "--master-host", host, "--master-port", str(document["master_port"]), "--loglevel", "WARNING",
    ]  # fmt: skip
    env = {str(k): str(v) for k, v in document["env"].items()} | {"PYTHONPATH": str(scenarios_dir.parent)}
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"locust-worker-{os.getpid()}-{document['serial']}.log"
    process = start_child(argv, env=child_environment(env), log_path=log_path, cwd=scenarios_dir.parent)
    try:
        process.wait()
    except BaseException:
        stop_child(process)
        raise
    if process.returncode not in (0, None):
        raise BenchError(f"the Locust worker failed (exit {process.returncode}); see {log_path}")
