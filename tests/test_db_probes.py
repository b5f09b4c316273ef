"""Database probes against real servers: the counts follow connections opened and closed by someone else, and
the probe leaves itself out."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, suppress
from typing import Any

import psycopg
import pymysql  # type: ignore[import-untyped]
import pytest
import redis
from pymongo import MongoClient

from bench.databases.backend import Database
from bench.databases.mysql.connect import pymysql_url
from bench.probes.database import (
    DatabaseProbe,
    DatabaseProbeError,
    DatabaseReading,
    MongoProbe,
    MysqlProbe,
    PostgresProbe,
    RedisProbe,
    database_probe,
)
from bench.probes.sampler import TelemetrySampler

EXTRA = 3
DEADLINE_S = 10.0


def database(backend: str, url: str | None) -> Database:
    return Database(backend=backend, url=url, label=backend, version="test", embedded=False)


def wait_for(probe: DatabaseProbe, condition: Callable[[DatabaseReading], bool]) -> DatabaseReading:
    """Read until `condition` holds (a server updates its statistics a little after the fact)."""
    deadline = time.monotonic() + DEADLINE_S
    reading = probe.read()
    while not condition(reading) and time.monotonic() < deadline:
        time.sleep(0.05)
        reading = probe.read()
    return reading


@pytest.fixture
def probe_closer() -> Iterator[list[DatabaseProbe]]:
    probes: list[DatabaseProbe] = []
    yield probes
    for probe in probes:
        probe.close()


def test_registry_has_a_probe_per_server_backend_and_none_for_memory() -> None:
    assert isinstance(database_probe(database("postgresql", "postgresql://u@h/db")), PostgresProbe)
    assert isinstance(database_probe(database("mysql", "mysql://u@h/db")), MysqlProbe)
    assert isinstance(database_probe(database("redis", "redis://h:6379/0")), RedisProbe)
    assert isinstance(database_probe(database("mongodb", "mongodb://h/db")), MongoProbe)
    assert database_probe(database("memory", None)) is None
    assert database_probe(database("memory", "postgresql://u:p@db.invalid/db")) is None
    assert database_probe(None) is None


def test_postgres_counts_follow_extra_connections(postgres_url: str, probe_closer: list[DatabaseProbe]) -> None:
    probe = PostgresProbe(postgres_url)
    probe_closer.append(probe)
    before = probe.read().connections
    with ExitStack() as stack:
        for _ in range(EXTRA):
            stack.enter_context(psycopg.connect(postgres_url, autocommit=True))
        during = wait_for(probe, lambda r: r.connections == before + EXTRA)
        assert during.connections == before + EXTRA
        assert during.by_state.get("idle", 0) >= EXTRA
    after = wait_for(probe, lambda r: r.connections == before)
    assert after.connections == before


def test_postgres_probe_leaves_only_itself_out(postgres_url: str, probe_closer: list[DatabaseProbe]) -> None:
    probe = PostgresProbe(postgres_url)
    probe_closer.append(probe)
    probe.read()
    with psycopg.connect(postgres_url, autocommit=True) as checker:
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_type = %s"
        row = checker.execute(query, ("client backend",)).fetchone()
        assert row is not None
        # The checker sees everyone including itself and the probe; the probe sees everyone but itself.
        assert probe.read().connections == row[0] - 1


def test_postgres_shows_what_an_active_query_waits_for(postgres_url: str, probe_closer: list[DatabaseProbe]) -> None:
    probe = PostgresProbe(postgres_url)
    probe_closer.append(probe)
    with psycopg.connect(postgres_url, autocommit=True) as sleeper:
        worker = threading.Thread(target=lambda: _sleep_until_cancelled(sleeper))
        worker.start()
        try:
            reading = wait_for(probe, lambda r: r.by_state.get("wait:Timeout", 0) >= 1)
        finally:
            sleeper.cancel_safe()
            worker.join(DEADLINE_S)
    assert reading.by_state.get("wait:Timeout", 0) >= 1  # pg_sleep waits on a timeout
    assert reading.by_state.get("active", 0) >= 1


def _sleep_until_cancelled(conn: psycopg.Connection[Any]) -> None:
    with suppress(psycopg.errors.QueryCanceled):
        conn.execute("SELECT pg_sleep(30)")


def test_postgres_probe_error_is_one_line_without_the_password(probe_closer: list[DatabaseProbe]) -> None:
    probe = PostgresProbe("postgresql://bench:s3cret-pw@127.0.0.1:1/bench")
    probe_closer.append(probe)
    with pytest.raises(DatabaseProbeError) as raised:
        probe.read()
    assert "s3cret-pw" not in raised.value.message
    assert "\n" not in raised.value.message
    assert raised.value.message.startswith("PostgreSQL probe:")


def test_mysql_counts_follow_extra_connections(mysql_url: str, probe_closer: list[DatabaseProbe]) -> None:
    probe = MysqlProbe(mysql_url)
    probe_closer.append(probe)
    before = probe.read().connections
    url = pymysql_url(mysql_url)
    with ExitStack() as stack:
        for _ in range(EXTRA):
            connection = pymysql.connect(
                host=url.host,
                port=url.port or 3306,
                user=url.username,
                password=url.password or "",
                database=url.database,
            )
            stack.enter_context(closing(connection))
        during = wait_for(probe, lambda r: r.connections == before + EXTRA)
        assert during.connections == before + EXTRA
        assert during.by_state.get("sleep", 0) >= EXTRA  # idle sessions in the bench database
    after = wait_for(probe, lambda r: r.connections == before)
    assert after.connections == before


def test_redis_counts_follow_extra_clients(redis_url: str, probe_closer: list[DatabaseProbe]) -> None:
    probe = RedisProbe(redis_url)
    probe_closer.append(probe)
    before = probe.read()
    assert before.by_state == {"blocked": 0}
    clients = [redis.Redis.from_url(redis_url, single_connection_client=True) for _ in range(EXTRA)]
    try:
        for client in clients:
            client.ping()  # a single-connection client connects on its first command
        during = probe.read()
        assert during.connections == before.connections + EXTRA
    finally:
        for client in clients:
            client.close()
    after = wait_for(probe, lambda r: r.connections == before.connections)
    assert after.connections == before.connections


def test_redis_counts_the_probe_out(redis_url: str, probe_closer: list[DatabaseProbe]) -> None:
    probe = RedisProbe(redis_url)
    probe_closer.append(probe)
    with redis.Redis.from_url(redis_url, single_connection_client=True) as checker:
        probe.read()  # connects the probe
        seen_by_checker = int(checker.info("clients")["connected_clients"])  # the probe and the checker included
        assert probe.read().connections == seen_by_checker - 1


def test_mongo_counts_follow_extra_clients(mongo_url: str, probe_closer: list[DatabaseProbe]) -> None:
    probe = MongoProbe(mongo_url)
    probe_closer.append(probe)
    # The surrogate is this test session's own; clients of earlier tests may still be closing, so wait until
    # the count has settled at no client but the probe before counting new ones.
    before = wait_for(probe, lambda r: r.connections == 0).connections
    clients: list[MongoClient[dict[str, Any]]] = [
        MongoClient(mongo_url, maxPoolSize=1, serverMonitoringMode="poll") for _ in range(EXTRA)
    ]
    try:
        for client in clients:
            client.admin.command("ping")  # one monitor and one pooled connection each
        during = wait_for(probe, lambda r: r.connections == before + 2 * EXTRA)
        assert during.connections == before + 2 * EXTRA
    finally:
        for client in clients:
            client.close()
    after = wait_for(probe, lambda r: r.connections == before)
    assert after.connections == before


def test_sampler_records_a_database_that_fails_once_and_stops_asking() -> None:
    url = "redis://:s3cret-pw@127.0.0.1:1/0"
    sampler = TelemetrySampler(app_url=None, database=database("redis", url), interval_s=0.01)
    with sampler:
        deadline = time.monotonic() + DEADLINE_S
        while sampler.running and len(sampler.ticks()) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
    telemetry = sampler.summary(0.0, 0.0, time.time())
    assert telemetry.database is None
    assert len(telemetry.errors) == 1
    line = telemetry.errors[0]
    assert "s3cret-pw" not in line
    assert line.startswith("database probe (INFO clients): 3 of 3 samples failed")
    assert "not sampled further" in line


def test_sampler_samples_the_database_and_closes_its_connection_at_the_end(postgres_url: str) -> None:
    sampler = TelemetrySampler(app_url=None, database=database("postgresql", postgres_url), interval_s=0.02)
    with sampler:
        deadline = time.monotonic() + DEADLINE_S
        while len(sampler.ticks()) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    ticks = sampler.ticks()
    telemetry = sampler.summary(ticks[0].at, ticks[0].at, ticks[-1].at)
    assert telemetry.errors == []
    assert telemetry.database is not None
    assert telemetry.database.source == "pg_stat_activity"
    assert telemetry.database.samples == len(ticks)
    assert all(sample.db_connections is not None for sample in telemetry.timeline)
    with psycopg.connect(postgres_url, autocommit=True) as checker:
        query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bench-probe'"
        deadline = time.monotonic() + DEADLINE_S
        while (row := checker.execute(query).fetchone()) is not None and row[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert row is not None and row[0] == 0
