"""The item service under test: `uvicorn apps.<variant>:app` as a child process, healthy or explained."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps.masking import mask_url
from bench.system.environment import PROJECT_ROOT
from bench.system.processes import child_environment, free_port, log_tail, python_executable, start_child, stop_child

HOST = "127.0.0.1"


class ServerStartError(Exception):
    """The app did not become healthy; the message carries the reason from its log."""


@dataclass(frozen=True)
class RunningServer:
    base_url: str
    port: int
    pid: int
    loop: str
    http: str
    health: dict[str, Any]


def event_loop_name() -> str:
    # uvicorn's "auto" picks uvloop and httptools when importable; the record says which ran.
    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def http_parser_name() -> str:
    return "httptools" if importlib.util.find_spec("httptools") else "h11"


def fetch_json(url: str, timeout_s: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.loads(response.read())


def _wait_healthy(
    process: subprocess.Popen[bytes], base_url: str, log_path: Path, timeout_s: float, ready_path: str
) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            reason = mask_url(log_tail(log_path, lines=2)) or f"exit code {process.returncode}"
            raise ServerStartError(f"uvicorn exited during start-up: {reason}")
        try:
            return fetch_json(f"{base_url}{ready_path}", timeout_s=1.0)
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            time.sleep(0.1)
    raise ServerStartError(f"uvicorn not healthy after {timeout_s:.0f} s: {mask_url(log_tail(log_path))}")


@contextmanager
def run_server(
    variant: str,
    *,
    settings: Mapping[str, str],
    log_path: Path,
    workers: int = 1,
    startup_timeout_s: float = 30.0,
    cpus: Sequence[int] | None = None,
    asgi_app: str | None = None,
    ready_path: str = "/health",
) -> Iterator[RunningServer]:
    """Start the variant's app with `settings` (BENCH_* environment), wait until `ready_path` answers with
    JSON, and stop it when the block ends, whatever ends it. `asgi_app` serves another app in the variant's
    place (a yardstick of `bench overhead`, which has no /health: FastAPI serves /openapi.json once started)."""
    port = free_port(HOST)
    argv = [
        python_executable(), "-m", "uvicorn", asgi_app or f"apps.{variant}:app",
        "--host", HOST, "--port", str(port),
        "--workers", str(workers),
        "--no-access-log",  # access logging costs ~15-30% of throughput on small requests
        "--log-level", "warning",
        "--loop", "auto", "--http", "auto",
    ]  # fmt: skip
    process = start_child(argv, env=child_environment(settings), log_path=log_path, cwd=PROJECT_ROOT, cpus=cpus)
    try:
        base_url = f"http://{HOST}:{port}"
        health = _wait_healthy(process, base_url, log_path, startup_timeout_s, ready_path)
        yield RunningServer(base_url, port, process.pid, event_loop_name(), http_parser_name(), health)
    finally:
        stop_child(process)
