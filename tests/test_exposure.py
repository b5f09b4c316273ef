"""Nothing the harness starts is reachable from another machine: every listening socket binds 127.0.0.1
(read from the kernel's socket tables while the servers run), and docker-compose.yml publishes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from sqlalchemy import create_engine, text

from bench.databases.mysql.backend import MysqlServer
from bench.databases.mysql.connect import pymysql_url
from tests.test_e2e import descendants

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's `st` column

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc socket tables")


# ---------------------------------------------------------------- listening sockets, from /proc


def _address(hex_address: str) -> str:
    # The kernel prints the address as 32-bit words in host (little-endian) order.
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET if len(words) == 4 else socket.AF_INET6, words)


def listening_sockets() -> dict[int, tuple[str, int]]:
    """Every TCP socket in LISTEN state, IPv4 and IPv6: inode -> (address, port)."""
    found: dict[int, tuple[str, int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:  # no IPv6
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == _LISTEN:
                hex_address, hex_port = fields[1].split(":")
                found[int(fields[9])] = (_address(hex_address), int(hex_port, 16))
    return found


def listeners_of(pid: int, sockets: dict[int, tuple[str, int]] | None = None) -> set[tuple[str, int]]:
    """The (address, port) pairs process `pid` listens on; empty if it has gone."""
    sockets = listening_sockets() if sockets is None else sockets
    found: set[tuple[str, int]] = set()
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return found
    for descriptor in descriptors:
        try:
            target = os.readlink(descriptor)
        except OSError:
            continue
        if target.startswith("socket:[") and (inode := int(target[8:-1])) in sockets:
            found.add(sockets[inode])
    return found


def addresses_listening_on(port: int) -> set[str]:
    return {address for address, bound_port in listening_sockets().values() if bound_port == port}


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


def test_the_socket_tables_show_a_wildcard_bind() -> None:
    # The checks below pass on an empty answer too: this one shows they would see 0.0.0.0.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert ("0.0.0.0", port) in listeners_of(os.getpid())
        assert addresses_listening_on(port) == {"0.0.0.0"}


# ---------------------------------------------------------------- a real run: uvicorn, PostgreSQL, Locust


@pytest.mark.e2e
def test_every_process_of_a_run_listens_on_loopback_only(tmp_path: Path) -> None:
    results = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"COLUMNS": "200"}
    argv = [
        sys.executable, "-m", "bench", "run", "-v", "pg_sqla_async", "-p", "2", "-o", "0", "-u", "2",
        "--warmup", "0", "--duration", "2", "--rows", "200", "--no-report", "--results-dir", str(results),
        "--run-id", "exposure",
    ]  # fmt: skip
    seen: dict[tuple[str, int], str] = {}  # (address, port) -> the listening program
    with subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as bench:
        # Sampled until the run ends: the throwaway PostgreSQL for all of it, uvicorn and Locust per point.
        while bench.poll() is None:
            sockets = listening_sockets()
            for pid in descendants(bench.pid):
                for listener in listeners_of(pid, sockets):
                    try:
                        seen[listener] = Path(f"/proc/{pid}/comm").read_text().strip()
                    except OSError:
                        seen[listener] = "?"
            time.sleep(0.1)
        stdout, stderr = bench.communicate(timeout=60)
    assert bench.returncode == 0, stderr.decode()[-3000:] + stdout.decode()[-3000:]
    run_dir = results / "exposure"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["databases"]["postgresql"]["embedded"] is True
    (point_file,) = run_dir.glob("points/*.json")
    started = {
        "uvicorn": json.loads(point_file.read_text())["server"]["port"],
        "postgres": port_of(run["databases"]["postgresql"]["url"]),
    }
    seen_ports = {port for _, port in seen}
    assert set(started.values()) <= seen_ports, f"not seen listening: {started}, seen {seen}"
    elsewhere = {f"{address}:{port} ({program})" for (address, port), program in seen.items() if address != LOOPBACK}
    assert not elsewhere, f"listening beyond 127.0.0.1: {sorted(elsewhere)}"


# ---------------------------------------------------------------- the throwaway servers of the other backends


def test_throwaway_mariadb_listens_on_loopback_only(mysql_server: MysqlServer) -> None:
    if mysql_server.pid is None:
        pytest.skip(f"the MySQL of the tests was not started by the harness ({mysql_server.source})")
    port = port_of(mysql_server.url)
    listeners = listeners_of(mysql_server.pid)
    assert (LOOPBACK, port) in listeners
    assert {address for address, _ in listeners} == {LOOPBACK}, listeners
    engine = create_engine(pymysql_url(mysql_server.url))
    try:
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT @@bind_address")) == LOOPBACK
    finally:
        engine.dispose()


def test_throwaway_redis_listens_on_loopback_only(redis_url: str) -> None:
    if os.environ.get("BENCH_TEST_REDIS_URL"):
        pytest.skip("BENCH_TEST_REDIS_URL names a server the harness did not start")
    assert addresses_listening_on(port_of(redis_url)) == {LOOPBACK}
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        assert client.config_get("bind")["bind"] == LOOPBACK


def test_mongo_surrogate_listens_on_loopback_only(mongo_url: str) -> None:
    if os.environ.get("BENCH_TEST_MONGO_URL"):
        pytest.skip("BENCH_TEST_MONGO_URL names a server the harness did not start")
    assert addresses_listening_on(port_of(mongo_url)) == {LOOPBACK}


# ---------------------------------------------------------------- docker-compose.yml


def published_ports(compose: str) -> list[str]:
    """Every entry of every `ports:` list, in the flow (`ports: ["a:b"]`) or block (`- "a:b"`) style; a form
    this reader does not know (the long syntax) fails, so that nothing goes unchecked."""
    entries: list[str] = []
    lines = compose.splitlines()
    for index, line in enumerate(lines):
        key, _, value = line.strip().partition(":")
        if key != "ports":
            continue
        value = value.strip()
        if value:
            assert value.startswith("[") and value.endswith("]"), f"unrecognised ports: {line!r}"
            entries += [item.strip().strip("\"'") for item in value[1:-1].split(",") if item.strip()]
            continue
        indent = len(line) - len(line.lstrip())
        for item in lines[index + 1 :]:
            if item.strip() and len(item) - len(item.lstrip()) <= indent:
                break
            if item.strip():
                assert item.strip().startswith("- "), f"unrecognised ports entry: {item!r}"
                entry = item.strip()[2:].strip().strip("\"'")
                assert "target:" not in entry, f"long syntax: give host_ip 127.0.0.1 and teach this test: {item!r}"
                entries.append(entry)
    return entries


def test_the_compose_reader_sees_both_styles_and_a_wildcard() -> None:
    compose = 'services:\n  a:\n    ports: ["127.0.0.1:1:1", "2:2"]\n  b:\n    ports:\n      - "3:3"\n  c:\n'
    assert published_ports(compose) == ["127.0.0.1:1:1", "2:2", "3:3"]


def test_compose_publishes_every_port_on_loopback_only() -> None:
    compose = (PROJECT_ROOT / "docker-compose.yml").read_text()
    entries = published_ports(compose)
    services_with_ports = sum(1 for line in compose.splitlines() if line.strip().startswith("ports:"))
    assert services_with_ports >= 4 and len(entries) >= services_with_ports
    assert all(entry.startswith(f"{LOOPBACK}:") for entry in entries), entries
