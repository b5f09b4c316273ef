"""/metrics on every variant, and the fixed-bucket histogram behind it."""

# ruff: noqa: F811  (pytest fixtures imported from tests/test_contract.py are parameters by design)
from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from apps.catalog import VariantInfo
from apps.telemetry import BOUNDS_MS, LOOP_LAG_INTERVAL_MS, LOOP_LAG_TASK, Histogram, PoolTelemetry
from tests.test_contract import app_env, clean_env, client, create, variant  # noqa: F401  (fixtures)

POOL_KINDS = {
    "pg_sqla_sync": "sqlalchemy",
    "pg_sqla_async": "sqlalchemy",
    "pg_sqla_blocking": "sqlalchemy",
    "mysql_sqla_sync": "sqlalchemy",
    "mysql_sqla_async": "sqlalchemy",
    "pg_asyncpg": "asyncpg",
    "pg_psycopg_sync": "psycopg_pool",
    "pg_psycopg_async": "psycopg_pool",
    "mongo_pymongo": "pymongo",
    "mongo_pymongo_async": "pymongo",
    "mongo_motor": "pymongo",
    "mongo_blocking": "pymongo",
    "redis_sync": "redis",
    "redis_async": "redis",
}
POOL_KEYS = {
    "kind", "limit", "size", "open", "checked_out", "overflow_in_use", "waiting", "acquisitions", "timeouts", "wait_ms",
}  # fmt: skip


# --- the histogram --------------------------------------------------------------------------------------------


def test_bounds_are_ten_per_decade_from_ten_microseconds_to_a_minute() -> None:
    assert BOUNDS_MS[:10] == (0.01, 0.0125, 0.016, 0.02, 0.025, 0.032, 0.04, 0.05, 0.063, 0.08)
    assert BOUNDS_MS[30:40] == (10, 12.5, 16, 20, 25, 32, 40, 50, 63, 80)
    assert BOUNDS_MS[-3:] == (40_000, 50_000, 60_000)
    assert list(BOUNDS_MS) == sorted(set(BOUNDS_MS))


def test_a_value_on_a_bound_counts_in_that_bound_s_bucket() -> None:
    histogram = Histogram([1, 2, 5])

    for value in (0, 1, 1.0001, 2, 4.9, 5, 5.0001, 1000):
        histogram.record(value)

    snapshot = histogram.snapshot()
    # counts[0]: v <= 1; counts[1]: 1 < v <= 2; counts[2]: 2 < v <= 5; counts[3]: v > 5 (the overflow bucket)
    assert snapshot["counts"] == [2, 2, 2, 2]
    assert snapshot["bounds_ms"] == [1, 2, 5]


def test_count_sum_and_max_are_cumulative() -> None:
    histogram = Histogram([10])

    for value in (3.5, 0.25, 70_000):
        histogram.record(value)
    first = histogram.snapshot()
    histogram.record(1.25)
    second = histogram.snapshot()

    assert (first["count"], first["sum_ms"], first["max_ms"]) == (3, 70_003.75, 70_000)
    assert (second["count"], second["sum_ms"], second["max_ms"]) == (4, 70_005.0, 70_000)
    assert second["counts"] == [3, 1]


def test_an_empty_histogram_reports_zeros() -> None:
    snapshot = Histogram().snapshot()

    assert len(snapshot["counts"]) == len(BOUNDS_MS) + 1
    assert (sum(snapshot["counts"]), snapshot["count"], snapshot["sum_ms"], snapshot["max_ms"]) == (0, 0, 0.0, 0.0)


@pytest.mark.parametrize("bounds", [[], [1, 1], [2, 1]])
def test_bounds_must_increase(bounds: list[float]) -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        Histogram(bounds)


def test_pool_checkout_counts_acquisitions_timeouts_and_failures() -> None:
    telemetry = PoolTelemetry("redis", limit=2, size=1, is_timeout=lambda error: isinstance(error, TimeoutError))

    with telemetry.checkout():
        assert telemetry.snapshot()["waiting"] == 1
    for error in (TimeoutError(), ConnectionRefusedError()):
        with pytest.raises(type(error)), telemetry.checkout():
            raise error

    snapshot = telemetry.snapshot()
    assert (snapshot["acquisitions"], snapshot["timeouts"], snapshot["waiting"]) == (1, 1, 0)
    assert snapshot["wait_ms"]["count"] == 3  # every attempt's wait is recorded, whatever its outcome


# --- /metrics on every variant ----------------------------------------------------------------------------------


def assert_histogram(value: Any) -> None:
    assert set(value) == {"bounds_ms", "counts", "count", "sum_ms", "max_ms"}
    assert value["bounds_ms"] == list(BOUNDS_MS)
    assert len(value["counts"]) == len(BOUNDS_MS) + 1
    assert sum(value["counts"]) == value["count"]
    assert value["sum_ms"] >= value["max_ms"] >= 0


def test_metrics_match_the_contract(client: TestClient, variant: VariantInfo) -> None:
    body = client.get("/metrics").json()

    assert set(body) == {"variant", "telemetry", "uptime_s", "pool", "event_loop", "threads"}
    assert (body["variant"], body["telemetry"]) == (variant.name, True)
    assert body["uptime_s"] >= 0
    assert body["threads"]["limit"] == 7 and body["threads"]["busy"] >= 0 and body["threads"]["waiting"] >= 0
    assert body["event_loop"]["interval_ms"] == LOOP_LAG_INTERVAL_MS
    assert_histogram(body["event_loop"]["lag_ms"])
    if not variant.pooled:
        assert body["pool"] is None
        return
    pool = body["pool"]
    assert set(pool) == POOL_KEYS
    assert (pool["kind"], pool["limit"], pool["size"]) == (POOL_KINDS[variant.name], 5, 3)  # APP_ENV: 3 + 2
    assert pool["checked_out"] == 0 and pool["waiting"] == 0 and pool["timeouts"] == 0
    assert 0 <= pool["open"] <= pool["limit"] and pool["overflow_in_use"] == max(0, pool["open"] - pool["size"])
    assert_histogram(pool["wait_ms"])
    if POOL_KINDS[variant.name] in {"sqlalchemy", "psycopg_pool", "redis"}:
        # The hook is a subclass of the driver's pool: seen here, so its absence with telemetry off means something.
        app: Any = client.app
        assert any(type(value).__name__.startswith("Timed") for value in _state_values(app.state))


def test_every_read_is_an_acquisition(client: TestClient, variant: VariantInfo) -> None:
    if not variant.pooled:
        pytest.skip("no pool")
    created = create(client)
    before = client.get("/metrics").json()["pool"]

    reads = 12
    for _ in range(reads):
        assert client.get(f"/items/{created['id']}").status_code == 200
    after = client.get("/metrics").json()["pool"]

    assert after["acquisitions"] - before["acquisitions"] >= reads
    assert after["wait_ms"]["count"] - before["wait_ms"]["count"] >= reads
    assert after["checked_out"] == 0 and after["open"] >= 1


def eventually(condition: Callable[[], bool], within_s: float = 10) -> bool:
    """Polls a state the test cannot be told about; it times nothing."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.fixture
def one_connection(
    variant: VariantInfo, app_env: dict[str, str], clean_env: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    if not variant.pooled:
        pytest.skip("no pool")
    if variant.mode == "blocking":
        # Its blocked event loop runs the requests one after another, so none ever waits for the pool: that is
        # the anti-pattern's signature, checked by test_only_the_blocking_variants_stall_the_event_loop.
        pytest.skip("requests are serialised by the blocked event loop, never queued at the pool")
    clean_env.setenv("BENCH_POOL_SIZE", "1")
    clean_env.setenv("BENCH_MAX_OVERFLOW", "0")
    with TestClient(importlib.import_module(variant.module).app) as started:
        yield started


def test_a_pool_of_one_makes_concurrent_slow_requests_wait(one_connection: TestClient) -> None:
    item = create(one_connection)
    wait_ms = 300
    seen_waiting: list[int] = []

    def someone_waits() -> bool:
        seen_waiting.append(one_connection.get("/metrics").json()["pool"]["waiting"])
        return seen_waiting[-1] >= 1

    with ThreadPoolExecutor(max_workers=3) as executor:
        slow = [executor.submit(one_connection.get, f"/items/{item['id']}/slow", params={"wait_ms": wait_ms})
                for _ in range(3)]  # fmt: skip
        assert eventually(someone_waits), seen_waiting
        assert all(request.result().status_code == 200 for request in slow)
    pool = one_connection.get("/metrics").json()["pool"]

    assert pool["limit"] == 1 and pool["waiting"] == 0 and pool["checked_out"] == 0
    # At least one request waited while another held the only connection for the whole of its wait.
    assert pool["wait_ms"]["max_ms"] >= wait_ms / 2


def test_a_wait_beyond_the_pool_timeout_fails_that_request_and_counts_a_timeout(
    one_connection: TestClient, clean_env: pytest.MonkeyPatch, variant: VariantInfo
) -> None:
    """The pool timeout still bounds the wait however each variant implements it (pg_asyncpg's is asyncio.timeout
    around a plain acquire, not asyncpg's own wait_for)."""
    clean_env.setenv("BENCH_POOL_TIMEOUT_S", "0.2")
    # The 500 is what a client sees; TestClient would re-raise the server's exception instead.
    with TestClient(importlib.import_module(variant.module).app, raise_server_exceptions=False) as started:
        item = create(started)
        with ThreadPoolExecutor(max_workers=1) as executor:
            holder = executor.submit(started.get, f"/items/{item['id']}/slow", params={"wait_ms": 1500})
            assert eventually(lambda: started.get("/metrics").json()["pool"]["checked_out"] == 1)
            # Answered while the holder still has the connection: a 200 here would mean it waited for it.
            refused = started.get(f"/items/{item['id']}")
            assert holder.result().status_code == 200
        pool = started.get("/metrics").json()["pool"]
        # The connection is free again: the next read gets it.
        assert started.get(f"/items/{item['id']}").status_code == 200

    # PyMongo's retryable reads try the checkout a second time after the first wait-queue timeout.
    checkouts = 2 if variant.backend == "mongodb" else 1
    assert refused.status_code == 500, refused.text
    assert pool["timeouts"] == checkouts and pool["waiting"] == 0


def lag_added(before: dict[str, Any], after: dict[str, Any]) -> float:
    """The lower edge of the highest lag bucket that gained a value between two snapshots (0: none did)."""
    bounds = [0.0, *before["bounds_ms"]]
    grown = [i for i, (old, new) in enumerate(zip(before["counts"], after["counts"], strict=True)) if new > old]
    return bounds[grown[-1]] if grown else 0.0


def test_only_the_blocking_variants_stall_the_event_loop(client: TestClient, variant: VariantInfo) -> None:
    item = create(client)
    wait_ms = 500
    before = client.get("/metrics").json()["event_loop"]["lag_ms"]

    assert client.get(f"/items/{item['id']}/slow", params={"wait_ms": wait_ms}).status_code == 200
    after = client.get("/metrics").json()["event_loop"]["lag_ms"]

    if variant.mode == "blocking":
        # The sync call held the loop for the whole wait: the timer woke at least about that late.
        assert lag_added(before, after) >= wait_ms * 0.6
    else:
        # The loop kept running through the wait; only a stall as long as the wait itself would say otherwise.
        assert lag_added(before, after) < wait_ms


# --- telemetry off ----------------------------------------------------------------------------------------------


def test_telemetry_off_installs_nothing(
    variant: VariantInfo, app_env: dict[str, str], clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("BENCH_TELEMETRY", "false")
    app = importlib.import_module(variant.module).app

    with TestClient(app) as off:
        item = create(off)
        assert off.get(f"/items/{item['id']}").status_code == 200
        body = off.get("/metrics").json()
        health = off.get("/health").json()
        assert off.portal is not None
        tasks = off.portal.call(lambda: {task.get_name() for task in asyncio.all_tasks()})

    assert (body["telemetry"], body["pool"], body["event_loop"]) == (False, None, None)
    assert body["threads"]["limit"] == 7
    assert health["config"]["telemetry"] is False
    assert LOOP_LAG_TASK not in tasks
    assert app.state.telemetry.pool is None and app.state.telemetry.loop_lag_ms is None
    # No timed subclass anywhere in the app's state: the drivers' own pool classes run untouched.
    assert not any(type(value).__name__.startswith("Timed") for value in _state_values(app.state))


def _state_values(state: Any) -> list[object]:
    """Everything on app.state, and the engines and pools reachable from it (sessionmakers, clients, engines).
    Only three levels deep: a pymongo Database answers any attribute with a new Collection, endlessly."""
    found: list[object] = []
    todo: list[tuple[object, int]] = [(value, 0) for value in vars(state).get("_state", {}).values()]
    while todo:
        value, depth = todo.pop()
        if value is None or depth > 3:
            continue
        found.append(value)
        inner = [getattr(value, name, None) for name in ("sync_engine", "pool", "connection_pool")]
        kw = getattr(value, "kw", None)  # a sessionmaker keeps its engine here
        if isinstance(kw, dict):
            inner.append(kw.get("bind"))
        todo.extend((item, depth + 1) for item in inner)
    return found
