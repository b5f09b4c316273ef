"""One contract, every variant: the same requests give the same answers whatever the backend."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anyio.to_thread import current_default_thread_limiter
from fastapi.testclient import TestClient

from apps.catalog import VariantInfo, all_variants
from apps.contract import BIGINT_MAX, BODY_BYTES_MAX, INTEGER_MAX, ITEM_NOT_FOUND, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX
from apps.dataset import seed_items
from apps.masking import mask_url
from apps.settings import StartupError
from tests.backends.memory import FAKE_URL
from tests.conftest import BACKENDS_WITH_FIXTURES

VARIANTS = all_variants()
DATABASE_VARIANTS = sorted(name for name, info in VARIANTS.items() if info.backend != "memory")
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Settings that differ from every default, so /health can only echo them if it really read them.
APP_ENV = {"BENCH_POOL_SIZE": "3", "BENCH_MAX_OVERFLOW": "2", "BENCH_POOL_TIMEOUT_S": "7.5", "BENCH_THREAD_TOKENS": "7"}
MISSING_ID = 10**15


# A variant whose backend has no tests/backends/<backend>.py plugin is skipped, not failed.
BACKEND_FIXTURES = {name: f"{name}_backend" for name in BACKENDS_WITH_FIXTURES}


@pytest.fixture(params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest) -> VariantInfo:
    info = VARIANTS[request.param]
    if info.backend not in BACKEND_FIXTURES:
        pytest.skip(f"no test fixture for backend {info.backend!r} (variant {info.name}) yet")
    return info


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No BENCH_* variable inherited from the shell running the tests."""
    for name in list(os.environ):
        if name.startswith("BENCH_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def app_env(variant: VariantInfo, request: pytest.FixtureRequest, clean_env: pytest.MonkeyPatch) -> dict[str, str]:
    """The variant's BENCH_* environment."""
    env: dict[str, str] = APP_ENV | request.getfixturevalue(BACKEND_FIXTURES[variant.backend])
    for name, value in env.items():
        clean_env.setenv(name, value)
    return env


@pytest.fixture
def client(variant: VariantInfo, app_env: dict[str, str]) -> Iterator[TestClient]:
    # Settings are read when the lifespan starts, so importing the module once is enough.
    module = importlib.import_module(variant.module)
    with TestClient(module.app) as started:
        yield started


def new_item(**overrides: Any) -> dict[str, Any]:
    return {"name": "contract-test", "description": "made by tests", "price": 12.5, "quantity": 3} | overrides


def create(client: TestClient, **overrides: Any) -> dict[str, Any]:
    response = client.post("/items", json=new_item(**overrides))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# --- items ----------------------------------------------------------------------------------------------------


def test_create_returns_201_with_id_and_fields(client: TestClient) -> None:
    first = create(client)
    second = create(client, name="second", description=None, quantity=0)

    assert first == {"id": first["id"], **new_item()}
    assert second == {"id": second["id"], **new_item(name="second", description=None, quantity=0)}
    assert second["id"] > first["id"]
    # Read back too: a backend that stores null as "" would still echo the request correctly.
    assert client.get(f"/items/{second['id']}").json() == second
    assert client.get(f"/items/{first['id']}").json() == first


@pytest.mark.parametrize("price", [1234.5678, 0.1 + 0.2, 1e-7, 123456789.125])
def test_prices_keep_double_precision(client: TestClient, price: float) -> None:
    created = create(client, price=price)

    assert client.get(f"/items/{created['id']}").json()["price"] == price


def test_quantity_defaults_to_zero(client: TestClient) -> None:
    response = client.post("/items", json={"name": "no quantity", "price": 1})

    assert response.status_code == 201
    assert response.json()["quantity"] == 0


def test_read_returns_the_stored_item(client: TestClient) -> None:
    created = create(client, name="to read")

    response = client.get(f"/items/{created['id']}")

    assert response.status_code == 200
    assert response.json() == created


def test_read_missing_is_404(client: TestClient) -> None:
    response = client.get(f"/items/{MISSING_ID}")

    assert response.status_code == 404
    assert response.json() == {"detail": ITEM_NOT_FOUND}


def test_list_is_ordered_by_id_and_paged(client: TestClient) -> None:
    for number in range(LIST_LIMIT_DEFAULT + 1):
        create(client, name=f"listed {number}")

    default_page = client.get("/items").json()
    first_six = client.get("/items", params={"limit": 6, "offset": 0}).json()
    shifted = client.get("/items", params={"limit": 3, "offset": 2}).json()
    past_the_end = client.get("/items", params={"offset": BIGINT_MAX})

    ids = [item["id"] for item in default_page]
    assert len(ids) == LIST_LIMIT_DEFAULT
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert first_six == default_page[:6]
    assert shifted == first_six[2:5]
    assert past_the_end.status_code == 200 and past_the_end.json() == []


def test_list_order_survives_an_update(client: TestClient) -> None:
    # PostgreSQL writes an updated row to a new place in the table, so only ORDER BY keeps it first.
    for number in range(3):
        create(client, name=f"reordered {number}")
    before = client.get("/items", params={"limit": 3}).json()

    client.put(f"/items/{before[0]['id']}", json={"name": "moved by an update"})
    after = client.get("/items", params={"limit": 3}).json()
    # The first rows may be the harness's seeded ones, which other tests expect unchanged.
    client.put(f"/items/{before[0]['id']}", json={"name": before[0]["name"]})

    assert [item["id"] for item in after] == [item["id"] for item in before]


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": LIST_LIMIT_MAX + 1}, {"limit": "ten"}, {"offset": -1}, {"offset": BIGINT_MAX + 1}],
)
def test_list_rejects_out_of_range_paging(client: TestClient, params: dict[str, Any]) -> None:
    assert client.get("/items", params=params).status_code == 422


def test_list_accepts_the_largest_limit(client: TestClient) -> None:
    create(client)

    response = client.get("/items", params={"limit": LIST_LIMIT_MAX})

    assert response.status_code == 200
    assert 0 < len(response.json()) <= LIST_LIMIT_MAX


def test_update_changes_only_the_given_fields(client: TestClient) -> None:
    created = create(client, name="before")

    response = client.put(f"/items/{created['id']}", json={"price": 99.25, "description": None})

    expected = created | {"price": 99.25, "description": None}
    assert response.status_code == 200
    assert response.json() == expected
    assert client.get(f"/items/{created['id']}").json() == expected


def test_update_missing_is_404(client: TestClient) -> None:
    response = client.put(f"/items/{MISSING_ID}", json={"price": 1})

    assert response.status_code == 404
    assert response.json() == {"detail": ITEM_NOT_FOUND}


@pytest.mark.parametrize(
    "changes",
    [{}, {"name": None}, {"price": None}, {"quantity": None}, {"colour": "red"}, {"price": -1}],
    ids=["empty", "null-name", "null-price", "null-quantity", "unknown-field", "negative-price"],
)
def test_update_rejects_invalid_changes(client: TestClient, changes: dict[str, Any]) -> None:
    created = create(client)

    response = client.put(f"/items/{created['id']}", json=changes)

    assert response.status_code == 422
    assert client.get(f"/items/{created['id']}").json() == created


@pytest.mark.parametrize(
    "body",
    [
        new_item(colour="red"),
        new_item(price=-0.01),
        new_item(name="x" * 201),
        new_item(name=""),
        new_item(description="x" * 2001),
        new_item(quantity=-1),
        new_item(quantity=INTEGER_MAX + 1),
        {"name": "no price"},
    ],
    ids=[
        "unknown-field",
        "negative-price",
        "name-too-long",
        "empty-name",
        "description-too-long",
        "negative-quantity",
        "quantity-beyond-integer",
        "missing-price",
    ],
)
def test_create_rejects_invalid_items(client: TestClient, body: dict[str, Any]) -> None:
    assert client.post("/items", json=body).status_code == 422


@pytest.mark.parametrize("price", ["Infinity", "NaN"])
def test_create_rejects_non_finite_price(client: TestClient, price: str) -> None:
    # Python's json module, which parses request bodies, accepts these non-standard literals.
    body = f'{{"name": "not finite", "price": {price}}}'

    response = client.post("/items", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "price"]


def padded_item(size: int) -> bytes:
    """A valid item as JSON, padded with whitespace to exactly `size` bytes."""
    body = json.dumps(new_item()).encode()
    return body + b" " * (size - len(body))


def test_body_of_the_largest_size_is_accepted_and_one_byte_more_is_413(client: TestClient) -> None:
    headers = {"content-type": "application/json"}

    largest = client.post("/items", content=padded_item(BODY_BYTES_MAX), headers=headers)
    too_large = client.post("/items", content=padded_item(BODY_BYTES_MAX + 1), headers=headers)

    assert largest.status_code == 201, largest.text
    assert too_large.status_code == 413
    assert too_large.json() == {"detail": f"request body larger than {BODY_BYTES_MAX} bytes"}


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_body_without_length_is_cut_off_at_the_limit(client: TestClient, method: str) -> None:
    created = create(client)
    body = padded_item(BODY_BYTES_MAX + 1)
    # A generator makes the client send the body chunked, without Content-Length: it is counted as it arrives.
    chunks = (body[start : start + 4096] for start in range(0, len(body), 4096))
    path = "/items" if method == "POST" else f"/items/{created['id']}"

    response = client.request(method, path, content=chunks, headers={"content-type": "application/json"})

    assert response.status_code == 413
    assert client.get(f"/items/{created['id']}").json() == created


def test_longest_allowed_name_is_stored(client: TestClient) -> None:
    created = create(client, name="x" * 200)

    assert client.get(f"/items/{created['id']}").json()["name"] == "x" * 200


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("item_id", ["abc", "1.5", str(BIGINT_MAX + 1), "0", "-1"])
def test_ids_outside_bigint_or_not_integers_are_422(client: TestClient, method: str, item_id: str) -> None:
    response = client.request(method, f"/items/{item_id}", json={"price": 1} if method == "PUT" else None)

    assert response.status_code == 422


def test_largest_bigint_id_is_simply_missing(client: TestClient) -> None:
    assert client.get(f"/items/{BIGINT_MAX}").status_code == 404


def test_delete_returns_204_then_the_item_is_gone(client: TestClient) -> None:
    created = create(client, name="to delete")

    response = client.delete(f"/items/{created['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"/items/{created['id']}").status_code == 404
    assert client.delete(f"/items/{created['id']}").status_code == 404


def test_delete_missing_is_404(client: TestClient) -> None:
    response = client.delete(f"/items/{MISSING_ID}")

    assert response.status_code == 404
    assert response.json() == {"detail": ITEM_NOT_FOUND}


# --- health and settings ------------------------------------------------------------------------------------


def test_health_reports_the_variant_and_its_settings(
    client: TestClient, variant: VariantInfo, app_env: dict[str, str]
) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    body = response.json()
    driver_pool = body["config"].pop("driver_pool")
    if variant.pooled:  # apps/pooling.py: whatever the driver's knobs, at most pool_size + max_overflow = 5
        knobs = dict(driver_pool)
        ceilings = [knobs[key] for key in ("max_size", "maxPoolSize", "max_connections") if key in knobs]
        most = knobs["pool_size"] + knobs["max_overflow"] if "max_overflow" in knobs else ceilings[0]
        assert most == 5, driver_pool
    else:
        assert driver_pool is None
    db_wait = body.pop("db_wait")  # each variant words it its own way; tests/test_slow_route.py checks more
    assert isinstance(db_wait, str) and db_wait
    assert body == {
        "status": "ok",
        "variant": variant.name,
        "backend": variant.backend,
        "mode": variant.mode,
        "driver": variant.driver,
        "pooled": variant.pooled,
        "config": {
            "pool_size": 3,
            "max_overflow": 2,
            "pool_timeout_s": 7.5,
            "pool_pre_ping": False,
            "thread_tokens": 7,
            "database_url": mask_url(app_env["BENCH_DATABASE_URL"]),
            "telemetry": True,
        },
    }


def test_health_masks_the_database_password(clean_env: pytest.MonkeyPatch) -> None:
    # Masking is shared code; the memory variant shows it without needing a database that has a password.
    clean_env.setenv("BENCH_DATABASE_URL", FAKE_URL)
    clean_env.setenv("BENCH_DATASET_ROWS", "0")

    with TestClient(importlib.import_module("apps.memory").app) as memory:
        reported = memory.get("/health").json()["config"]["database_url"]

    assert reported == "postgresql://bench:***@db.invalid:5432/bench"


def test_thread_limiter_is_sized_from_settings(client: TestClient) -> None:
    assert client.portal is not None
    total_tokens = client.portal.call(lambda: current_default_thread_limiter().total_tokens)

    assert total_tokens == 7


def test_invalid_setting_stops_startup_naming_the_variable(
    variant: VariantInfo, app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_POOL_SIZE", "0")
    app = importlib.import_module(variant.module).app

    with pytest.raises(StartupError, match=rf"^{variant.name} could not start.*BENCH_POOL_SIZE='0'"), TestClient(app):
        pass


def test_memory_variant_holds_the_seeded_dataset(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BENCH_DATASET_ROWS", "5")
    seeded = [item._asdict() for item in seed_items(5)]

    with TestClient(importlib.import_module("apps.memory").app) as memory:
        listed = memory.get("/items").json()
        after_seed = memory.post("/items", json=new_item()).json()

    assert listed == seeded
    assert after_seed["id"] == 6


# --- start-up against a database that is not there ----------------------------------------------------------


# Per backend: a URL where nothing listens (port 1), and a URL of another backend that the variant must refuse.
UNREACHABLE_URLS = {
    "postgresql": "postgresql://bench:hunter2@127.0.0.1:1/bench",
    "mysql": "mysql://bench:hunter2@127.0.0.1:1/bench",
    # The variants honour a timeout in the URL; without one each case would wait the full 10 s.
    "mongodb": "mongodb://bench:hunter2@127.0.0.1:1/bench?serverSelectionTimeoutMS=1000",
    "redis": "redis://bench:hunter2@127.0.0.1:1/0",
}
WRONG_BACKEND_URLS = {backend: UNREACHABLE_URLS["mysql" if backend == "postgresql" else "postgresql"]
                      for backend in UNREACHABLE_URLS}  # fmt: skip


@pytest.mark.parametrize("variant_name", DATABASE_VARIANTS)
@pytest.mark.parametrize("case", ["unreachable", "wrong-backend", "unset"])
def test_database_variant_refuses_to_start_without_its_database(
    variant_name: str, case: str, clean_env: pytest.MonkeyPatch
) -> None:
    backend = VARIANTS[variant_name].backend
    url, reason = {
        "unreachable": (UNREACHABLE_URLS[backend], f"(database {mask_url(UNREACHABLE_URLS[backend])}): "),
        "wrong-backend": (WRONG_BACKEND_URLS[backend], "must be a"),
        "unset": (None, "BENCH_DATABASE_URL is not set"),
    }[case]
    if url is not None:
        clean_env.setenv("BENCH_DATABASE_URL", url)
    app = importlib.import_module(VARIANTS[variant_name].module).app

    with pytest.raises(StartupError) as raised, TestClient(app):
        pass

    message = str(raised.value)
    assert message.startswith(f"{variant_name} could not start")
    assert reason in message
    assert "hunter2" not in message and "\n" not in message


@pytest.mark.parametrize("variant_name", DATABASE_VARIANTS)
def test_uvicorn_exits_at_startup_with_a_one_line_reason(variant_name: str) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("BENCH_")}
    url = UNREACHABLE_URLS[VARIANTS[variant_name].backend]
    env["BENCH_DATABASE_URL"] = url
    command = [sys.executable, "-m", "uvicorn", f"apps.{variant_name}:app", "--host", "127.0.0.1", "--port", "0"]

    finished = subprocess.run(
        command, check=False, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )

    log = finished.stderr.splitlines()
    reasons = [line for line in log if "could not start" in line]
    assert finished.returncode != 0
    assert len(reasons) == 1, finished.stderr
    assert reasons[0].startswith(f"ERROR:    {variant_name} could not start (database {mask_url(url)})")
    assert "Traceback" not in finished.stderr and "hunter2" not in finished.stderr
