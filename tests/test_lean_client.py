"""scenarios/lean_client.py against the real in-memory variant, a refused port and a server that drops connections.

The client runs under gevent, which Locust monkey-patches into every process that imports it; so each case runs
in a child process (this file run as `python -m tests.test_lean_client <case> <url>`) that prints the request
events it fired as JSON, and the assertions stay here, in a process gevent never entered.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.measure.load import LoadSettings, run_load
from bench.measure.server import HOST, PROJECT_ROOT, run_server
from bench.system.processes import free_port

ROWS = 50


@pytest.fixture(scope="module")
def memory_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("memory") / "uvicorn.log"
    with run_server("memory", settings={"BENCH_DATASET_ROWS": str(ROWS)}, log_path=log) as server:
        yield server.base_url


def run_case(case: str, url: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "tests.test_lean_client", case, url],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, Any] = json.loads(completed.stdout.splitlines()[-1])
    return result


def test_requests_go_to_their_paths_with_json_bodies(memory_url: str) -> None:
    events = run_case("crud", memory_url)["events"]
    assert [(e["request_type"], e["name"], e["status"]) for e in events] == [
        ("POST", "/items", 201),
        ("GET", "/items/{item_id}", 200),
        ("PUT", "/items/{item_id}", 200),
        ("DELETE", "/items/{item_id}", 204),
        ("GET", "/items/{item_id}", 404),
    ]
    created, read, updated = (e["body"] for e in events[:3])
    assert created["name"] == "lean-client-test" and created["quantity"] == 7  # the POST's JSON body arrived
    assert read == created and events[1]["url"] == f"/items/{created['id']}"
    assert updated["price"] == 12.5 and updated["name"] == "lean-client-test"  # the PUT's JSON body arrived
    assert all(e["response_time"] > 0 and e["start_time"] > 0 for e in events)
    assert [e["failure_kind"] for e in events] == [None, None, None, None, "HTTP 404"]


def test_a_refused_connection_is_a_failure_and_the_next_request_tries_again() -> None:
    events = run_case("refused", f"http://{HOST}:{free_port(HOST)}")["events"]
    assert [(e["status"], e["failure_kind"]) for e in events] == [(0, "ConnectionRefusedError")] * 3


def test_a_dropped_connection_is_reopened() -> None:
    result = run_case("dropped", f"http://{HOST}:{free_port(HOST)}")
    # 1: keep-alive answer, then the server closes while idle (the client resends on a new connection);
    # 2: answer with "Connection: close"; 3: on a new connection again. Every request succeeded.
    assert [(e["status"], e["failure_kind"]) for e in result["events"]] == [(200, None)] * 3
    assert result["connections"] == 3
    assert result["requests_seen"] == ["GET /first", "GET /second", "GET /third"]


def test_a_user_facing_a_refused_port_keeps_going_and_records_every_failure(tmp_path: Path) -> None:
    settings = LoadSettings("read_heavy", users=1, spawn_rate=1.0, warmup_s=0.0, duration_s=1.0, dataset_rows=ROWS)
    metrics = run_load(f"http://{HOST}:{free_port(HOST)}", settings, tmp_path).metrics
    assert metrics.requests > 1 and metrics.failures == metrics.requests
    assert metrics.failures_by_kind == {"ConnectionRefusedError": metrics.requests}


# ---------------------------------------------------------------- the child process's side (gevent from here on)
# Imports of locust, gevent and scenarios.lean_client stay inside these functions: pytest's process never runs them.


def _client(url: str, fired: list[dict[str, Any]]) -> Any:
    from locust.event import EventHook  # noqa: PLC0415

    from scenarios.lean_client import LeanHttpClient, LeanResponse  # noqa: PLC0415
    from scenarios.recording import failure_kind  # noqa: PLC0415

    def on_request(response: LeanResponse, exception: Exception | None, **meta: Any) -> None:
        body = response.json() if response.content else None
        kind = failure_kind(exception) if exception is not None else None
        fired.append(meta | {"status": response.status_code, "failure_kind": kind, "body": body})

    event = EventHook()
    event.add_listener(on_request)
    return LeanHttpClient(url, request_event=event, connection_timeout=5, network_timeout=5)


def _crud(url: str) -> dict[str, Any]:
    fired: list[dict[str, Any]] = []
    client = _client(url, fired)
    payload = {"name": "lean-client-test", "description": "x", "price": 3.0, "quantity": 7}
    path = f"/items/{client.post('/items', json=payload, name='/items').json()['id']}"
    client.get(path, name="/items/{item_id}")
    client.put(path, json={"price": 12.5}, name="/items/{item_id}")
    client.delete(path, name="/items/{item_id}")
    client.get(path, name="/items/{item_id}")
    client.close()
    return {"events": fired}


def _refused(url: str) -> dict[str, Any]:
    fired: list[dict[str, Any]] = []
    client = _client(url, fired)
    for _ in range(3):
        client.get("/items/1")
    return {"events": fired}


def _dropped(url: str) -> dict[str, Any]:
    from gevent.server import StreamServer  # noqa: PLC0415

    seen: list[str] = []
    connections = 0

    def handle(sock: Any, _address: Any) -> None:
        nonlocal connections
        connections += 1
        request_line = sock.recv(65536).split(b"\r\n", 1)[0].decode()
        seen.append(request_line.rsplit(" ", 1)[0])
        if request_line.startswith("GET /first"):
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")  # keep-alive, then closed while idle
        elif request_line.startswith("GET /second"):
            sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}")
        else:
            sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
        sock.close()

    port = int(url.rsplit(":", 1)[1])
    server = StreamServer(("127.0.0.1", port), handle)
    server.start()
    fired: list[dict[str, Any]] = []
    client = _client(url, fired)
    for path in ("/first", "/second", "/third"):
        client.get(path)
    client.close()
    server.stop()
    return {"events": fired, "connections": connections, "requests_seen": seen}


if __name__ == "__main__":
    import locust  # noqa: F401  (its gevent monkey-patching, as in a real run)

    _CASES = {"crud": _crud, "refused": _refused, "dropped": _dropped}
    print(json.dumps(_CASES[sys.argv[1]](sys.argv[2])))
