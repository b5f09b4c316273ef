"""Load: a Locust scenario run headless in its own process, its final summary turned into our metrics."""

from __future__ import annotations

import ast
import json
import math
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TypedDict

from bench.processes import child_environment, log_tail, python_executable, start_child, stop_child
from bench.records import EndpointMetrics, PointMetrics

SCENARIOS_DIR = Path(__file__).resolve().parent.parent / "scenarios"
_NOT_SCENARIOS = {"__init__", "base"}


class LoadError(Exception):
    """The load generator failed; the message says why (from its log)."""


class EntrySummary(TypedDict):
    """One statistics entry as scenarios/base.py writes it (Locust's figures, converted there)."""

    requests: int
    failures: int
    latency_ms_mean: float
    latency_ms_max: float
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p95: float
    latency_ms_p99: float
    latency_ms_p999: float


class LocustSummary(TypedDict):
    measured: bool
    measured_s: float
    generator_cpu_s: float | None
    total: EntrySummary
    by_name: dict[str, EntrySummary]
    failures_by_kind: dict[str, int]
    latency_histogram_ms: dict[str, int]


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    description: str


@cache
def _scenario_catalog() -> dict[str, Scenario]:
    """Every workload file in scenarios/, labelled by its docstring's first line (read without importing)."""
    catalog: dict[str, Scenario] = {}
    for path in sorted(SCENARIOS_DIR.glob("*.py")):
        if path.stem in _NOT_SCENARIOS:
            continue
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or path.stem
        catalog[path.stem] = Scenario(path.stem, path, docstring.strip().splitlines()[0])
    return catalog


def available_scenarios() -> list[str]:
    return list(_scenario_catalog())


def get_scenario(name: str) -> Scenario:
    return _scenario_catalog()[name]


@dataclass(frozen=True)
class LoadSettings:
    scenario: str
    users: int
    spawn_rate: float
    warmup_s: float
    duration_s: float
    dataset_rows: int


def run_load(target_url: str, settings: LoadSettings, raw_dir: Path) -> PointMetrics:
    """Run Locust against `target_url` for warm-up + duration; raw files land in `raw_dir`."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    summary_path = raw_dir / "locust_summary.json"
    log_path = raw_dir / "locust.log"
    run_time_s = math.ceil(settings.warmup_s + settings.duration_s)
    argv = [
        python_executable(), "-m", "locust",
        "-f", str(get_scenario(settings.scenario).path),
        "--headless", "--only-summary",
        "--host", target_url,
        "--users", str(settings.users),
        "--spawn-rate", f"{settings.spawn_rate:g}",
        "--run-time", f"{run_time_s}s",
        "--stop-timeout", "2",
        "--csv", str(raw_dir / "locust"),
        "--exit-code-on-error", "0",  # failed requests are data, recorded per kind, not a crash
        "--loglevel", "WARNING",
    ]  # fmt: skip
    env = child_environment(
        {
            "BENCH_DATASET_ROWS": str(settings.dataset_rows),
            "BENCH_WARMUP_S": f"{settings.warmup_s:g}",
            "BENCH_SUMMARY_PATH": str(summary_path),
            "PYTHONPATH": str(SCENARIOS_DIR.parent),
        }
    )
    process = start_child(argv, env=env, log_path=log_path, cwd=SCENARIOS_DIR.parent)
    try:
        process.wait(timeout=run_time_s + 60)
    except subprocess.TimeoutExpired:
        raise LoadError(f"Locust did not stop within {run_time_s + 60} s") from None
    finally:
        stop_child(process)
    if process.returncode != 0 or not summary_path.exists():
        raise LoadError(f"Locust failed (exit {process.returncode}): {log_tail(log_path) or 'no output'}")
    summary: LocustSummary = json.loads(summary_path.read_text(encoding="utf-8"))
    return metrics_from_summary(summary)


def metrics_from_summary(summary: LocustSummary) -> PointMetrics:
    """Convert Locust's figures into our record once, here at the boundary."""
    if not summary["measured"] or summary["measured_s"] <= 0:
        raise LoadError("the run ended before the warm-up did; lengthen the duration")
    total = summary["total"]
    measured_s = summary["measured_s"]
    requests = total["requests"]
    cpu_s = summary["generator_cpu_s"]
    return PointMetrics(
        requests=requests,
        failures=total["failures"],
        error_rate=total["failures"] / requests if requests else 0.0,
        requests_per_s=requests / measured_s,
        measured_s=measured_s,
        latency_ms_mean=total["latency_ms_mean"],
        latency_ms_p50=total["latency_ms_p50"],
        latency_ms_p90=total["latency_ms_p90"],
        latency_ms_p95=total["latency_ms_p95"],
        latency_ms_p99=total["latency_ms_p99"],
        latency_ms_p999=total["latency_ms_p999"],
        latency_ms_max=total["latency_ms_max"],
        failures_by_kind=summary["failures_by_kind"],
        by_name={name: _endpoint(entry, measured_s) for name, entry in summary["by_name"].items()},
        generator_cpu_s=cpu_s,
        generator_cpu_us_per_request=(cpu_s * 1e6 / requests) if cpu_s is not None and requests else None,
        latency_histogram_ms=summary["latency_histogram_ms"],
    )


def _endpoint(entry: EntrySummary, measured_s: float) -> EndpointMetrics:
    return EndpointMetrics(
        requests=entry["requests"],
        failures=entry["failures"],
        requests_per_s=entry["requests"] / measured_s,
        latency_ms_p50=entry["latency_ms_p50"],
        latency_ms_p99=entry["latency_ms_p99"],
    )
