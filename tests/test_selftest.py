"""`bench selftest`: the known-answer server (FIFO, fixed service, keep-alive, stats, 127.0.0.1 only, always
stopped) and one real quick selftest through the CLI, which must pass."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from bench.measure.selftest import running_target
from bench.measure.selftest_target import parse_head
from tests.test_e2e import bench_argv, clean_env, descendants

SERVICE_MS = 20.0


def get(sock: socket.socket, path: str) -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[1]
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head.split(b"\r\n")[0] + b" " + body


def connect(base_url: str) -> socket.socket:
    host, port = base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def test_the_server_serves_one_request_at_a_time_first_come_first_served(tmp_path: Path) -> None:
    with running_target(SERVICE_MS, tmp_path / "target.log") as base_url:
        sockets = [connect(base_url) for _ in range(4)]
        done: dict[int, float] = {}
        started = time.monotonic()

        def send(index: int) -> None:
            assert get(sockets[index], "/work") == b"HTTP/1.1 200 OK ok"
            done[index] = time.monotonic() - started

        threads = []
        for index in range(4):  # 4 ms apart, so the order they reach the server is known
            threads.append(threading.Thread(target=send, args=(index,)))
            threads[-1].start()
            time.sleep(0.004)
        for thread in threads:
            thread.join(timeout=10)
        assert sorted(done, key=done.__getitem__) == [0, 1, 2, 3]  # answered in the order they came
        # The fourth waited for the three ahead of it: about 4 S after the first was sent, not S.
        assert done[3] >= 4 * SERVICE_MS / 1000
        stats = json.loads(get(sockets[0], "/stats").split(b" ", 3)[3])  # same connection: keep-alive
        assert stats["count"] == 4 and len(stats["service_ms"]) == len(stats["queued_at"]) == 4
        assert SERVICE_MS <= stats["min_ms"] <= stats["mean_ms"] <= stats["max_ms"]
        assert stats["queued_at"] == sorted(stats["queued_at"])  # in the order served, which is FIFO
        assert get(sockets[1], "/nothing-here").startswith(b"HTTP/1.1 404")
        for sock in sockets:
            sock.close()


def test_the_server_listens_on_loopback_only_and_is_stopped_whatever_ends_the_block(tmp_path: Path) -> None:
    before = descendants(os.getpid())  # the session's own servers (PostgreSQL, MariaDB...) are not the target's
    with pytest.raises(RuntimeError, match="boom"), running_target(SERVICE_MS, tmp_path / "target.log") as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        assert base_url.startswith("http://127.0.0.1:")
        listening = [
            line.split()[1]
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
            if line.split()[3] == "0A" and line.split()[1].endswith(f":{port:04X}")  # 0A: LISTEN
        ]
        assert listening == [f"0100007F:{port:04X}"]  # 127.0.0.1, not 0.0.0.0
        children = descendants(os.getpid()) - before
        assert children
        with urllib.request.urlopen(f"{base_url}/health", timeout=5) as response:
            assert json.loads(response.read())["service_ms"] == SERVICE_MS
        raise RuntimeError("boom")
    assert not descendants(os.getpid()) & children


def test_request_heads_are_read_for_what_the_server_needs() -> None:
    assert parse_head(b"GET /work?x=1 HTTP/1.1\r\nHost: a\r\n\r\n") == ("GET", "/work", True, 0)
    assert parse_head(b"POST /work HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\n") == (
        "POST",
        "/work",
        False,
        5,
    )
    assert parse_head(b"GET / HTTP/1.0\r\n\r\n")[2] is False  # HTTP/1.0 closes unless told otherwise
    with pytest.raises(ValueError):
        parse_head(b"garbage\r\n\r\n")


LOADS = ("closed, 8 users", "open, Poisson ρ=0.5", "open, Poisson ρ=0.8", "open, uniform ρ=0.8",
         "open, Poisson ρ=0.5, 2 conns")  # fmt: skip


def selftest(results: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        bench_argv("selftest", "--quick", "--results-dir", str(results)),
        cwd=results.parent, env=clean_env(), capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_a_quick_selftest_passes_through_the_cli(tmp_path: Path) -> None:
    """The real thing, short: five loads on the known-answer server through Locust, about 35 s.

    Tried three times at most, and only when a figure is off (exit 1): another process on a 2-core machine can
    stall the generator for tens of milliseconds during one run and move one p99 out of ±10% (uniform rho=0.8's
    p99 was 5-10 ms over in two runs in a row on a busy host, and passed alone a minute later), but a harness
    that measures wrong (a broken timetable, correction or window) is off in every run. Any other failure counts.
    """
    results = tmp_path / "results"
    attempts: list[str] = []
    completed = selftest(results)
    while completed.returncode == 1 and len(attempts) < 2:
        attempts.append(completed.stdout[-2000:])
        completed = selftest(results)
    output = completed.stdout
    earlier = "\n---\n".join(attempts)
    assert completed.returncode == 0, f"{earlier}\n---\n{output[-4000:]}{completed.stderr[-2000:]}"
    for load in LOADS:
        assert load.split(",")[0] in output
        assert f"selftest {load}: ok" in completed.stderr
    for figure in ("throughput req/s", "mean ms", "p50 ms", "p99 ms", "same schedule", "theory"):
        assert figure in output
    assert "selftest passed" in output and "Traceback" not in output + completed.stderr
    record = json.loads((results / "selftest" / "latest.json").read_text())
    assert record["passed"] and [case["name"] for case in record["cases"] if case["passed"]] == list(LOADS)
    assert (results / "selftest" / "latest.json").exists() and len(list((results / "selftest").glob("*.json"))) >= 2
    closed, poisson_05, poisson_08, uniform, few = record["cases"]
    for case in record["cases"]:  # each figure's band holds its prediction
        for name, (low, high) in case["predicted_band"].items():
            assert low <= case["predicted"][name] <= high
    assert closed["predicted"]["mean_ms"] == pytest.approx(8 * closed["service_ms"])  # Little's law
    assert poisson_05["utilisation"] == pytest.approx(0.5, rel=0.1)
    assert poisson_08["predicted"]["p99_ms"] > uniform["predicted"]["p99_ms"]  # Poisson arrivals queue
    assert uniform["theory"]["p99_ms"] == pytest.approx(uniform["service_ms"])  # D/D/1: nobody waits
    # Two connections cannot carry the schedule on time: users wait for their own last response, and the
    # latency that passed counts that wait (measured against a replay that does), with no textbook answer.
    # (Its prediction is not compared with the 50-connection run's: each replays its own measured service times,
    # so the two differ by noise as much as by the waiting, and the comparison failed once in the full suite.)
    assert few["users"] == 2 and few["late_requests"] > 0 and few["theory"] is None
