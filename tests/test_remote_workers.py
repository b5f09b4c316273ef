"""Locust workers on another host (`bench worker`), played here by a second process with its own folder and no
settings of its own: it learns each point from the run's board, joins the point's master, and its figures are
merged into the run's like a local process's."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from bench.measure.remote_workers import DEFAULT_MASTER_PORT, parse_master
from bench.system.processes import free_port
from tests.test_e2e import bench_argv, clean_env


def test_master_addresses() -> None:
    assert parse_master("10.0.0.5") == ("10.0.0.5", DEFAULT_MASTER_PORT)
    assert parse_master("bench-host:6000") == ("bench-host", 6000)
    for bad in ("", ":5557", "host:port", "host:0", "host:65535"):
        with pytest.raises(ValueError, match="is not HOST"):
            parse_master(bad)


def free_port_pair() -> int:
    """A port whose successor is free too (the master and its board)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")


@pytest.mark.e2e
def test_a_remote_worker_joins_every_point_and_its_figures_are_merged(tmp_path: Path) -> None:
    port = free_port_pair()
    elsewhere = tmp_path / "other-host"
    elsewhere.mkdir()
    run = subprocess.Popen(
        bench_argv("run", "--variant", "memory", "--users", "4,6", "--rows", "200", "--warmup", "0.5",
                   "--duration", "2", "--remote-workers", "1", "--master-bind", f"127.0.0.1:{port}",
                   "--results-dir", str(tmp_path / "results"), "--run-id", "spread", "--no-report"),
        cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    worker = subprocess.Popen(
        bench_argv("worker", "--master", f"127.0.0.1:{port}", "--wait", "60", "--log-dir", str(elsewhere / "logs")),
        cwd=elsewhere, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _, run_err = run.communicate(timeout=300)
        worker_out, worker_err = worker.communicate(timeout=60)
    finally:
        for process in (run, worker):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert run.returncode == 0, run_err
    assert worker.returncode == 0, worker_err
    assert "joined 2 point(s)" in worker_out
    points = [json.loads(p.read_text()) for p in sorted((tmp_path / "results" / "spread" / "points").glob("*.json"))]
    assert len(points) == 2
    for point in points:
        metrics = point["metrics"]
        names = [g["process"] for g in metrics["generators"]]
        assert sorted(n.startswith("local-") for n in names) == [False, True]  # one local, one remote process
        assert all(g["requests"] > 0 for g in metrics["generators"])
        assert sum(g["requests"] for g in metrics["generators"]) == metrics["requests"]
        assert point["config"]["generator_processes"] == 1  # the local ones; the record lists every process


def test_a_worker_with_no_run_to_join_says_so(tmp_path: Path) -> None:
    port = free_port_pair()
    result = subprocess.run(
        bench_argv("worker", "--master", f"127.0.0.1:{port}", "--wait", "1"),
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no bench run publishes points" in lines[0], result.stderr


def test_a_bad_master_address_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        bench_argv("worker", "--master", "host:notaport"),
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and result.stderr.startswith("error: invalid --master"), result.stderr
