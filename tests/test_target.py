"""`bench run --target-url`: measuring a bench app bench did not start (as on another host), and the ways a
target can be wrong, each refused in one line before anything is written."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.measure.server import run_server
from tests.test_e2e import bench_argv, clean_env

ROWS = 300


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The in-memory variant started by hand, the way a user would start it on another machine."""
    log = tmp_path_factory.mktemp("service") / "uvicorn.log"
    with run_server(
        "memory", settings={"BENCH_DATASET_ROWS": str(ROWS), "BENCH_THREAD_TOKENS": "7"}, log_path=log
    ) as s:
        yield s.base_url


@pytest.fixture
def not_a_bench_app() -> Iterator[str]:
    """Some other web server: /health is not ours."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        bench_argv("run", "--results-dir", str(tmp_path / "results"), *args),
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_a_running_service_is_measured_as_it_is(tmp_path: Path, service: str) -> None:
    result = bench(
        tmp_path, "--target-url", service + "/", "--users", "2,3", "--rows", str(ROWS), "--warmup", "0.5",
        "--duration", "1.5", "--run-id", "remote", "--no-report",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "results" / "remote"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "complete" and run["sweep"]["target_url"] == service  # the trailing slash dropped
    assert run["sweep"]["variants"] == ["memory"] and run["sweep"]["thread_tokens"] == [7]  # from its /health
    points = [json.loads(p.read_text()) for p in sorted((run_dir / "points").glob("*.json"))]
    assert [p["config"]["users"] for p in points] == [2, 3]
    for point in points:
        assert point["status"] == "ok" and point["metrics"]["requests"] > 0
        assert point["config"]["target_url"] == service and point["config"]["thread_tokens"] == 7
        assert point["server"]["pid"] == 0 and point["server"]["app_health"]["variant"] == "memory"
        assert not any("uvicorn" in name for name in point["raw_files"])  # bench started no app
        assert point["telemetry"]["app"] is not None  # its /metrics was still sampled


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--pool-size", "5"], "drop --pool-size"),
        (["--thread-tokens", "80", "--pre-ping", "on"], "drop --thread-tokens, --pre-ping"),
        (["--fault", "db-restart:at=1s,down=1s"], "drop --fault"),
        (["--variant", "pg_sqla_async"], "runs memory, not pg_sqla_async"),
    ],
)
def test_settings_a_target_keeps_for_itself_are_refused(
    tmp_path: Path, service: str, args: list[str], expected: str
) -> None:
    result = bench(tmp_path, "--target-url", service, *args)
    assert_one_line(result, expected)
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_a_target_that_does_not_answer(tmp_path: Path) -> None:
    assert_one_line(bench(tmp_path, "--target-url", "http://127.0.0.1:1"), "does not answer at /health")


def test_a_target_that_is_not_a_bench_app(tmp_path: Path, not_a_bench_app: str) -> None:
    result = bench(tmp_path, "--target-url", not_a_bench_app)
    assert_one_line(result, "is it a bench app?")


@pytest.mark.parametrize("url", ["ftp://host", "127.0.0.1:8000", "http://host:notaport"])
def test_a_malformed_target_url(tmp_path: Path, url: str) -> None:
    assert_one_line(bench(tmp_path, "--target-url", url), "invalid --target-url")


def assert_one_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 2, result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.stderr, result.stderr
