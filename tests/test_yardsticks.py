"""The yardsticks of `bench overhead` answer GET /items/{id} exactly as their variants do, on the same database."""

from __future__ import annotations

import ast
import importlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from apps.catalog import all_variants
from bench.measure.overhead import YARDSTICKS_DIR, yardstick_names
from bench.measure.server import run_server
from tests.conftest import BACKENDS_WITH_FIXTURES

VARIANTS = all_variants()
MISSING_ID = 10**15


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_every_yardstick_is_named_after_a_variant() -> None:
    assert yardstick_names(), "no yardstick found"
    assert set(yardstick_names()) <= set(VARIANTS)


@pytest.mark.parametrize("name", yardstick_names())
def test_a_yardstick_imports_nothing_of_the_harness_or_of_the_variants(name: str) -> None:
    """A yardstick sharing our code would share its costs; another yardstick may be reused."""
    tree = ast.parse((YARDSTICKS_DIR / f"{name}.py").read_text(encoding="utf-8"))
    imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    ours = {module for module in imported if module.split(".")[0] in ("apps", "bench")}
    assert all(module.startswith("apps.yardsticks.") for module in ours), ours


@pytest.mark.parametrize("name", yardstick_names())
def test_a_yardstick_answers_as_its_variant(
    name: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    backend = VARIANTS[name].backend
    if backend not in BACKENDS_WITH_FIXTURES:
        pytest.skip(f"no test fixture for backend {backend!r}")
    env: dict[str, str] = {"BENCH_POOL_SIZE": "2", "BENCH_MAX_OVERFLOW": "1"}
    env |= request.getfixturevalue(f"{backend}_backend")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    item = {"name": "yardstick-test", "description": None, "price": 3.25, "quantity": 7}
    with TestClient(importlib.import_module(VARIANTS[name].module).app) as variant:
        created = variant.post("/items", json=item).json()
        expected = variant.get(f"/items/{created['id']}").json()
    assert expected == created | item

    with run_server(
        name,
        settings=env,
        log_path=tmp_path / "uvicorn.log",
        asgi_app=f"apps.yardsticks.{name}:app",
        ready_path="/openapi.json",
    ) as yardstick:
        found = _get(f"{yardstick.base_url}/items/{created['id']}")
        first = _get(f"{yardstick.base_url}/items/1")
        missing = _get(f"{yardstick.base_url}/items/{MISSING_ID}")
    if backend == "memory":  # the yardstick holds its own dict, without the item posted to the variant
        assert found[0] == 404
        assert first[0] == 200
        assert {key: type(value) for key, value in first[1].items()} == {
            "id": int, "name": str, "description": str, "price": float, "quantity": int
        }  # fmt: skip
    else:
        assert found == (200, expected)
    assert missing == (404, {"detail": "item not found"})
