"""End to end through the CLI: real PostgreSQL, uvicorn and Locust processes, a small sweep, and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apps.catalog import all_variants

pytestmark = pytest.mark.e2e

VARIANTS = ["memory", "pg_sqla_sync", "pg_sqla_async", "pg_sqla_blocking"]


def bench_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench", *args]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return env | {"COLUMNS": "200"} | extra


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children started in new sessions are still its children)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found.update(children)
        frontier.extend(children)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_smoke_sweep_records_every_point_and_draws_the_report(tmp_path: Path) -> None:
    results = tmp_path / "results"
    completed = subprocess.run(
        bench_argv(
            "run", "--variant", ",".join(VARIANTS), "--pool-size", "2", "--max-overflow", "0,3",
            "--users", "8", "--warmup", "1", "--duration", "2", "--rows", "300",
            "--results-dir", str(results), "--run-id", "smoke",
        ),
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:] + completed.stdout[-3000:]
    run_dir = results / "smoke"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "complete"
    assert run["points_planned"] == 3 * 2 + 1 and run["points_ok"] == 7 and run["points_failed"] == 0
    assert run["databases"]["postgresql"]["embedded"] is True
    assert run["databases"]["postgresql"]["settings"]["fsync"] == "on"
    assert run["databases"]["memory"]["label"] == "in-memory (no database)"
    assert run["environment"]["libraries"]["locust"]

    points = [json.loads(p.read_text()) for p in sorted((run_dir / "points").glob("*.json"))]
    assert sorted({p["config"]["variant"] for p in points}) == sorted(VARIANTS)
    for point in points:
        metrics = point["metrics"]
        assert point["status"] == "ok", point["error"]
        assert metrics["requests"] > 0 and metrics["failures"] == 0
        assert 0 < metrics["latency_ms_p50"] <= metrics["latency_ms_p99"] <= metrics["latency_ms_max"]
        assert set(metrics["by_name"]) == {"GET /items", "GET /items/{item_id}"}
        reported = point["server"]["app_health"]["config"]
        if point["config"]["pooled"]:
            assert (reported["pool_size"], reported["max_overflow"]) == (2, point["config"]["max_overflow"])
            assert point["seed"]["rows"] == 300
        raw = run_dir / "raw" / point["point_id"]
        assert (raw / "locust_summary.json").exists() and (raw / "uvicorn.log").exists()
        # Schema 3: exact histograms, the warm-up apart, a timeline, and telemetry sampled during the point.
        assert metrics["histograms"]["service"] and metrics["warmup"] is not None and metrics["timeline"]
        assert point["telemetry"]["app"]["samples"] > 0
        assert point["telemetry"]["app"]["threads_limit"] == point["config"]["thread_tokens"]
        if point["config"]["pooled"]:
            assert point["telemetry"]["app"]["acquisitions"] > 0
            assert point["telemetry"]["database"]["connections_max"] >= 1

    report = run_dir / "report"
    assert (report / "pool_size_u8.png").stat().st_size > 10_000
    assert (report / "pool_size_u8.svg").exists()
    assert "<img" in (report / "index.html").read_text()
    summary = (report / "summary.md").read_text()
    assert all(f"| {variant} |" in summary for variant in VARIANTS)

    listed = subprocess.run(
        bench_argv("list", "--results-dir", str(results)), cwd=tmp_path, env=clean_env(),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "smoke" in listed.stdout and "complete" in listed.stdout


def test_given_database_url_is_used_as_is(tmp_path: Path, postgres_url: str) -> None:
    results = tmp_path / "results"
    completed = subprocess.run(
        bench_argv(
            "run", "--variant", "pg_sqla_async", "--pool-size", "3", "--max-overflow", "1", "--users", "4",
            "--warmup", "0", "--duration", "1", "--rows", "200", "--results-dir", str(results), "--run-id", "given",
            "--no-report",
        ),
        cwd=tmp_path, env=clean_env(DATABASE_URL=postgres_url), capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    run = json.loads((results / "given" / "run.json").read_text())
    assert run["databases"]["postgresql"]["embedded"] is False
    assert run["databases"]["postgresql"]["source"] == "given URL"
    assert run["points_ok"] == 1
    assert not (results / "given" / "report").exists()


def test_ctrl_c_stops_every_child_and_keeps_an_incomplete_run(tmp_path: Path) -> None:
    results = tmp_path / "results"
    process = subprocess.Popen(
        bench_argv(
            "run", "--variant", "pg_sqla_sync,pg_sqla_async", "--pool-size", "2,4", "--max-overflow", "0",
            "--users", "4", "--warmup", "0", "--duration", "30", "--rows", "200",
            "--results-dir", str(results), "--run-id", "interrupted",
        ),
        cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        locust_log = results / "interrupted" / "raw"
        while not list(locust_log.glob("*/locust.log")) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # let Locust get going: uvicorn, Locust and PostgreSQL are all running now
        children = descendants(process.pid)
        assert len(children) >= 3, children
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    time.sleep(0.5)
    assert [pid for pid in children if alive(pid)] == []
    run = json.loads((results / "interrupted" / "run.json").read_text())
    assert run["status"] == "incomplete"


def test_every_variant_of_every_backend_runs_through_the_harness(tmp_path: Path) -> None:
    """One short point per variant: each backend is provisioned (or found), seeded, loaded and charted."""
    results = tmp_path / "results"
    names = list(all_variants())
    completed = subprocess.run(
        bench_argv(
            "run", "--variant", ",".join(names), "--pool-size", "2", "--max-overflow", "1", "--users", "4",
            "--warmup", "0", "--duration", "1", "--rows", "200", "--results-dir", str(results), "--run-id", "all",
        ),
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:] + completed.stdout[-3000:]
    run = json.loads((results / "all" / "run.json").read_text())
    points = [json.loads(p.read_text()) for p in sorted((results / "all" / "points").glob("*.json"))]
    failed = {p["config"]["variant"]: p["error"] for p in points if p["status"] != "ok"}
    assert failed == {}
    assert sorted(p["config"]["variant"] for p in points) == sorted(names)
    assert all(p["metrics"]["requests"] > 0 and p["metrics"]["failures"] == 0 for p in points)
    for backend, database in run["databases"].items():
        surrogate_label = "(surrogate)" in database["label"]
        assert database["surrogate"] is surrogate_label, backend
    for point in points:  # the surrogate's label travels with every point measured on it
        database = run["databases"][point["config"]["backend"]]
        assert point["config"]["backend_label"] == database["label"]
    assert (results / "all" / "report" / "pool_size_u4.png").exists()
