"""GET /items/{item_id}/slow on every variant: the database waits wait_ms, then the item is read as usual."""

# ruff: noqa: F811  (pytest fixtures imported from tests/test_contract.py are parameters by design)
from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from apps.catalog import VariantInfo
from apps.contract import ITEM_NOT_FOUND, WAIT_MS_DEFAULT, WAIT_MS_MAX
from tests.test_contract import MISSING_ID, app_env, clean_env, client, create, variant  # noqa: F401  (fixtures)

SLOW_PATH = "/items/{item_id}/slow"


def test_route_is_in_the_openapi_schema(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"][SLOW_PATH]["get"]

    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert parameters["wait_ms"]["in"] == "query"
    assert parameters["wait_ms"]["schema"]["default"] == WAIT_MS_DEFAULT
    assert (parameters["wait_ms"]["schema"]["minimum"], parameters["wait_ms"]["schema"]["maximum"]) == (0, WAIT_MS_MAX)


@pytest.mark.parametrize("wait_ms", ["-1", str(WAIT_MS_MAX + 1), "ten", "1.5"])
def test_wait_outside_its_range_is_422(client: TestClient, wait_ms: str) -> None:
    created = create(client)

    response = client.get(f"/items/{created['id']}/slow", params={"wait_ms": wait_ms})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "wait_ms"]


def test_missing_item_is_404_after_the_wait(client: TestClient) -> None:
    response = client.get(f"/items/{MISSING_ID}/slow", params={"wait_ms": 1})

    assert response.status_code == 404
    assert response.json() == {"detail": ITEM_NOT_FOUND}


def test_invalid_id_is_422(client: TestClient) -> None:
    assert client.get("/items/0/slow").status_code == 422


@pytest.mark.parametrize("wait_ms", [0, 120])
def test_returns_the_item_after_at_least_the_wait(client: TestClient, wait_ms: int) -> None:
    created = create(client, name="slow read")

    began = time.perf_counter()
    response = client.get(f"/items/{created['id']}/slow", params={"wait_ms": wait_ms})
    elapsed_ms = (time.perf_counter() - began) * 1000

    assert response.status_code == 200
    assert response.json() == created
    # A lower bound only (a busy machine makes it longer, never shorter); 5 ms of slack for clock granularity.
    assert elapsed_ms >= wait_ms - 5


def test_default_wait_is_applied(client: TestClient) -> None:
    created = create(client)

    began = time.perf_counter()
    response = client.get(f"/items/{created['id']}/slow")
    elapsed_ms = (time.perf_counter() - began) * 1000

    assert response.status_code == 200
    assert elapsed_ms >= WAIT_MS_DEFAULT - 5


def test_health_says_how_the_variant_waits(client: TestClient, variant: VariantInfo) -> None:
    db_wait = client.get("/health").json()["db_wait"]

    expected_words = {
        "postgresql": "pg_sleep",
        "mysql": "SLEEP()",
        "redis": "XREAD BLOCK",
        "mongodb": "awaitData",
        "memory": "asyncio.sleep",
    }
    assert expected_words[variant.backend] in db_wait
