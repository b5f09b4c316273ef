"""The MongoDB yardsticks (apps/yardsticks/mongo_*.py), each under uvicorn, answer like the variant they measure."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from apps.dataset import seed_items
from bench.databases.mongo.backend import seed_mongo
from bench.system.processes import free_port, log_tail, start_child, stop_child

YARDSTICKS = ["mongo_pymongo", "mongo_pymongo_async", "mongo_motor", "mongo_blocking"]
PROJECT_ROOT = Path(__file__).resolve().parent.parent
ROWS = 20
MISSING_ID = 10**15
START_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def seeded_url(mongo_url: str) -> str:
    seed_mongo(mongo_url, ROWS)
    return mongo_url


@pytest.fixture(params=YARDSTICKS)
def yardstick(request: pytest.FixtureRequest, seeded_url: str, tmp_path: Path) -> Iterator[tuple[str, httpx.Client]]:
    """(variant name, a client of its yardstick running in its own uvicorn process)."""
    name: str = request.param
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("BENCH_")}
    env |= {"BENCH_DATABASE_URL": seeded_url, "BENCH_POOL_SIZE": "2", "BENCH_MAX_OVERFLOW": "1"}
    log = tmp_path / "uvicorn.log"
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        f"apps.yardsticks.{name}:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    process = start_child(argv, env=env, log_path=log, cwd=PROJECT_ROOT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            _wait_until_serving(client, process, log)
            yield name, client
    finally:
        stop_child(process)


def _wait_until_serving(client: httpx.Client, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the yardstick exited during start-up: {log_tail(log)}")
        try:
            client.get("/items/1")
            return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"the yardstick did not answer within {START_TIMEOUT_S:.0f} s: {log_tail(log)}")


@pytest.fixture
def variant_client(
    yardstick: tuple[str, httpx.Client], seeded_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """The variant the yardstick measures, on the same database."""
    for key in list(os.environ):
        if key.startswith("BENCH_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("BENCH_DATABASE_URL", seeded_url)
    with TestClient(importlib.import_module(f"apps.{yardstick[0]}").app) as client:
        yield client


def test_a_yardstick_serves_the_seeded_item_with_the_variants_json(
    yardstick: tuple[str, httpx.Client], variant_client: TestClient
) -> None:
    _, client = yardstick
    seventh = next(item for item in seed_items(ROWS) if item.id == 7)

    answer = client.get("/items/7")

    assert answer.status_code == 200
    assert answer.json() == seventh._asdict()
    assert answer.json() == variant_client.get("/items/7").json()


def test_a_yardstick_answers_a_missing_item_like_the_variant(
    yardstick: tuple[str, httpx.Client], variant_client: TestClient
) -> None:
    _, client = yardstick

    answer = client.get(f"/items/{MISSING_ID}")
    from_variant = variant_client.get(f"/items/{MISSING_ID}")

    assert (answer.status_code, answer.json()) == (404, {"detail": "item not found"})
    assert (answer.status_code, answer.json()) == (from_variant.status_code, from_variant.json())


@pytest.mark.parametrize("name", YARDSTICKS)
def test_a_yardstick_imports_nothing_of_ours(name: str) -> None:
    """A yardstick that shared our code would share its costs."""
    tree = ast.parse((PROJECT_ROOT / "apps" / "yardsticks" / f"{name}.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}

    assert imported, "no imports found: the check would pass vacuously"
    assert not {module for module in imported if module.split(".")[0] in ("apps", "bench", "scenarios")}
