"""wrk as the yardstick of `bench calibrate`: its Lua script and its JSON line, and one real run if installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.measure.server import run_server
from bench.measure.wrk import lua_script, parse_wrk_output, run_wrk, wrk_path
from bench.records.errors import BenchError

SAMPLE = """Running 3s test @ http://127.0.0.1:1234
  1 threads and 20 connections
BENCH_WRK_JSON {"requests": 3000, "duration_us": 3000000, "errors": 2, "p50_us": 1500, "p90_us": 2500, \
"p99_us": 9000, "p999_us": 12000, "max_us": 20000, "mean_us": 1700.5}
"""


def test_the_json_line_becomes_figures_in_milliseconds(tmp_path: Path) -> None:
    result = parse_wrk_output(SAMPLE, cpu_s=0.6, log_path=tmp_path / "wrk.log")
    assert result.requests_per_s == 1000
    assert (result.latency_ms_p50, result.latency_ms_p99, result.latency_ms_p999) == (1.5, 9.0, 12.0)
    assert result.errors == 2
    assert result.cpu_s == 0.6


def test_output_without_the_json_line_is_a_one_line_error(tmp_path: Path) -> None:
    log = tmp_path / "wrk.log"
    log.write_text("unable to connect to 127.0.0.1:1 Connection refused\n")
    with pytest.raises(BenchError, match="Connection refused"):
        parse_wrk_output(log.read_text(), cpu_s=0.0, log_path=log)


def test_the_script_replays_read_heavy_and_paces_only_with_a_rate() -> None:
    unpaced = lua_script(dataset_rows=500, connections=20, rate=None)
    assert "local rows = 500" in unpaced and "local delay_ms = 0" in unpaced
    assert "/items/" in unpaced and "/items?limit=20&offset=" in unpaced
    assert "local delay_ms = 100" in lua_script(dataset_rows=500, connections=20, rate=200)  # 20 conns / 200 per s


@pytest.mark.skipif(wrk_path() is None, reason="wrk is not installed (apt install wrk)")
def test_a_real_wrk_run_against_the_memory_variant(tmp_path: Path) -> None:
    with run_server("memory", settings={"BENCH_DATASET_ROWS": "200"}, log_path=tmp_path / "uvicorn.log") as server:
        result = run_wrk(server.base_url, connections=4, duration_s=1, dataset_rows=200, work_dir=tmp_path / "wrk")
    assert result.requests > 0
    assert result.errors == 0  # every id requested exists: the script stays inside the seeded range
    assert 0 < result.latency_ms_p50 <= result.latency_ms_p99 <= result.latency_ms_max
