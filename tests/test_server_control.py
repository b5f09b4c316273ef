"""Fault injection's hold on the servers bench starts (bench.databases.throwaway.control): a restart comes back on
the same port with the same data, a pause freezes the server until it is resumed, and nothing outlives the
context. PostgreSQL is covered end to end in test_faults.py; here Redis and MariaDB, each its own throwaway
server (never the tests' shared one, whose clients a restart would break)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pymysql
import pytest
import redis

from bench.databases.mysql.server import locate_binaries, throwaway_server
from bench.databases.redis.server import throwaway_redis
from bench.databases.throwaway.control import RestartableServer
from tests.test_e2e import alive


def answers_within(ping: object, timeout_s: float) -> bool:
    """Whether `ping()` returns within `timeout_s` (a frozen server does not answer at all)."""
    assert callable(ping)
    done = threading.Event()

    def call() -> None:
        try:
            ping()
            done.set()
        except Exception:  # refused or reset: not an answer
            pass

    threading.Thread(target=call, daemon=True).start()
    return done.wait(timeout_s)


def check_restart_and_pause(control: RestartableServer, ping_new_client: object) -> None:
    assert callable(ping_new_client)
    port, first_pid = control.port, control.process.pid
    assert answers_within(ping_new_client, 5)

    control.stop()
    assert not alive(first_pid)
    assert not answers_within(ping_new_client, 1)
    control.start()
    assert control.port == port and control.process.pid != first_pid
    assert answers_within(ping_new_client, 5)

    control.pause()
    assert not answers_within(ping_new_client, 1.5)  # frozen: connects queue, nothing answers
    control.resume()
    assert answers_within(ping_new_client, 5)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server binary")
def test_a_throwaway_redis_restarts_on_its_port_and_freezes(tmp_path: Path) -> None:
    with throwaway_redis(maxclients=20, log_path=tmp_path / "redis.log") as server:
        assert server.control is not None
        control = server.control

        def client() -> redis.Redis:
            return redis.Redis.from_url(server.url, socket_timeout=3, socket_connect_timeout=3)

        def ping() -> None:
            with client() as connection:
                connection.ping()

        with client() as connection:
            connection.set("bench:restart-check", "kept")
        check_restart_and_pause(control, ping)
        with client() as connection:  # persistence is off, yet a restart keeps the dataset (SHUTDOWN SAVE)
            assert connection.get("bench:restart-check") == b"kept"
        last_pid = control.process.pid
    assert not alive(last_pid)  # the restarted server is stopped with the context


@pytest.mark.skipif(locate_binaries() is None, reason="no MariaDB server binaries")
def test_a_throwaway_mariadb_restarts_on_its_port_with_its_data_and_freezes(tmp_path: Path) -> None:
    binaries = locate_binaries()
    assert binaries is not None
    with throwaway_server(binaries, needed=10, dataset_rows=10, log_path=tmp_path / "mariadb.log") as server:
        assert server.control is not None
        control = server.control
        where = urlsplit(server.url)  # mysql://root@127.0.0.1:PORT/bench

        def query(sql: str) -> tuple[object, ...] | None:
            conn = pymysql.connect(
                host=where.hostname, port=where.port, user=where.username, database=where.path.lstrip("/"),
                connect_timeout=3, read_timeout=3,
            )  # fmt: skip
            with conn, conn.cursor() as cursor:
                cursor.execute(sql)
                conn.commit()
                return cursor.fetchone()

        query("CREATE TABLE IF NOT EXISTS kept (v INT)")
        query("INSERT INTO kept VALUES (42)")
        check_restart_and_pause(control, lambda: query("SELECT 1"))
        assert query("SELECT v FROM kept") == (42,)  # same data directory after the restart
        last_pid = control.process.pid
    assert not alive(last_pid)
