"""Schemathesis fuzzes the contract's OpenAPI schema against every variant: no 5xx, only documented answers."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis import Case

from apps.catalog import VariantInfo
from apps.contract import WAIT_MS_MAX
from tests.test_contract import BACKEND_FIXTURES, VARIANTS

# Modest and derandomized: the same few hundred requests per variant on every run, CI included. A deeper
# search, e.g. after changing the contract: BENCH_TEST_FUZZ_EXAMPLES=500 (read here, before the fixtures
# clear BENCH_* variables).
EXAMPLES_PER_OPERATION = int(os.environ.get("BENCH_TEST_FUZZ_EXAMPLES", "25"))
# The slow route may wait up to WAIT_MS_MAX; fuzzing only needs to see that it answers.
FUZZ_WAIT_MS_MAX = 5
A_VALID_ITEM = {"name": "fuzz target", "description": "made by tests/test_fuzz.py", "price": 1.5, "quantity": 2}

# Every variant mounts the same contract; test_every_variant_publishes_the_contract_schema holds them to it.
CONTRACT_OPENAPI: dict[str, Any] = importlib.import_module("apps.memory").app.openapi()
schema = schemathesis.openapi.from_dict(CONTRACT_OPENAPI)


@pytest.fixture(params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest) -> VariantInfo:
    info = VARIANTS[request.param]
    if info.backend not in BACKEND_FIXTURES:
        pytest.skip(f"no test fixture for backend {info.backend!r} (variant {info.name}) yet")
    return info


@pytest.fixture
def client(
    variant: VariantInfo, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    for name in [name for name in os.environ if name.startswith("BENCH_")]:
        monkeypatch.delenv(name)
    for name, value in request.getfixturevalue(BACKEND_FIXTURES[variant.backend]).items():
        monkeypatch.setenv(name, value)
    with TestClient(importlib.import_module(variant.module).app) as started:
        yield started


@pytest.fixture
def first_fuzz_id(client: TestClient) -> int:
    """Ids below this one belong to items that existed before the test (the shared seeded dataset)."""
    return create_item(client)


def create_item(client: TestClient) -> int:
    response = client.post("/items", json=A_VALID_ITEM)
    assert response.status_code == 201, response.text
    item_id: int = response.json()["id"]
    return item_id


def as_int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def keep_fuzzing_harmless(case: Case[Any], client: TestClient, first_fuzz_id: int) -> None:
    """Point changes of existing items at a fresh item, and cap the slow route's wait (both stay valid input)."""
    item_id = as_int(case.path_parameters.get("item_id"))
    if case.method in {"PUT", "DELETE"} and item_id is not None and 1 <= item_id < first_fuzz_id:
        case.path_parameters = {**case.path_parameters, "item_id": create_item(client)}
    wait_ms = as_int(case.query.get("wait_ms"))
    if wait_ms is not None and FUZZ_WAIT_MS_MAX < wait_ms <= WAIT_MS_MAX:
        case.query = {**case.query, "wait_ms": FUZZ_WAIT_MS_MAX}


def send(case: Case[Any], client: TestClient) -> httpx.Response:
    """The case as Schemathesis would send it with requests, sent through the app's own TestClient (httpx)."""
    sent = case.as_transport_kwargs(base_url=str(client.base_url))
    request: dict[str, Any] = {key: sent[key] for key in ("method", "url", "headers", "params") if key in sent}
    if "json" in sent:
        # Encoded as requests would (ASCII with \u escapes), which is what Schemathesis itself sends.
        request["content"] = json.dumps(sent["json"], allow_nan=False).encode()
    elif sent.get("data") is not None:
        request["content"] = sent["data"]
    response: httpx.Response = client.request(**request)
    return response


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_input_breaks_the_contract(case: Case[Any], client: TestClient, first_fuzz_id: int) -> None:
    keep_fuzzing_harmless(case, client, first_fuzz_id)

    response = send(case, client)

    case.validate_response(response)
    # Still serving, database included: a request must not leave a broken connection or state behind.
    assert client.get("/items", params={"limit": 1}).status_code == 200


@pytest.mark.parametrize("variant_name", sorted(VARIANTS))
def test_every_variant_publishes_the_contract_schema(variant_name: str) -> None:
    try:
        app = importlib.import_module(VARIANTS[variant_name].module).app
    except ImportError as missing:
        pytest.skip(f"{variant_name}: driver not installed ({missing})")
    published = app.openapi()

    assert {**published, "info": CONTRACT_OPENAPI["info"]} == CONTRACT_OPENAPI


# --- inputs the fuzzer found (or reaches too rarely to guard them in a small run) -------------------------------

# Each gave a 500 on some backend before the contract refused it: NUL on PostgreSQL (psycopg DataError, asyncpg
# CharacterNotInRepertoireError), a lone surrogate everywhere (the 422 that echoed it could not be encoded).
REFUSED_BODIES = {
    "nul-in-name": b'{"name": "a\\u0000b", "price": 1}',
    "nul-in-description": b'{"name": "a", "description": "\\u0000", "price": 1}',
    "lone-surrogate-in-name": b'{"name": "\\ud800", "price": 1}',
    "lone-surrogate-as-key": b'{"\\udfff": 1, "name": "a", "price": 1}',
    "quantity-as-bool": b'{"name": "a", "price": 1, "quantity": true}',
    "price-as-string": b'{"name": "a", "price": "1"}',
    "fractional-quantity": b'{"name": "a", "price": 1, "quantity": 1.5}',
    "huge-quantity": b'{"name": "a", "price": 1, "quantity": 1e300}',
    "huge-price-literal": b'{"name": "a", "price": 1e999}',
}


@pytest.mark.parametrize("body", REFUSED_BODIES.values(), ids=REFUSED_BODIES.keys())
def test_hostile_bodies_are_422_on_create_and_update(client: TestClient, first_fuzz_id: int, body: bytes) -> None:
    headers = {"content-type": "application/json"}

    created = client.post("/items", content=body, headers=headers)
    updated = client.put(f"/items/{first_fuzz_id}", content=body.replace(b'"name": "a", ', b""), headers=headers)

    assert created.status_code == 422, created.text
    assert updated.status_code == 422, updated.text
    assert client.get(f"/items/{first_fuzz_id}").json() == {"id": first_fuzz_id, **A_VALID_ITEM}


# The largest and strangest values the contract accepts: every backend must store them and give them back.
EXTREME_ITEMS = {
    "longest-4-byte-name": {"name": "\U0001f600" * 200, "price": 0.0},
    "longest-description": {"name": "d", "description": "\U00010348" * 2000, "price": 1.0},
    "control-characters": {"name": "\x01\x1f\x7f\u2028\ufeff", "description": "\t\r\n", "price": 1.0},
    "largest-double": {"name": "max", "price": 1.7976931348623157e308, "quantity": 2**31 - 1},
    "smallest-double": {"name": "min", "price": 5e-324},
}


@pytest.mark.parametrize("item", EXTREME_ITEMS.values(), ids=EXTREME_ITEMS.keys())
def test_extreme_valid_items_round_trip(client: TestClient, item: dict[str, Any]) -> None:
    response = client.post("/items", json=item)

    assert response.status_code == 201, response.text
    stored = client.get(f"/items/{response.json()['id']}").json()
    assert stored == {"description": None, "quantity": 0, **item, "id": stored["id"]}


@pytest.mark.parametrize(("path", "methods"), [("/items", "GET, POST"), ("/items/1", "DELETE, GET, PUT")])
def test_405_lists_every_method_of_the_path(client: TestClient, path: str, methods: str) -> None:
    # Starlette named only the methods of the first route matching the path (Schemathesis: ST205).
    response = client.request("PATCH", path, json={"price": 1})

    assert response.status_code == 405
    assert response.headers["allow"] == methods
