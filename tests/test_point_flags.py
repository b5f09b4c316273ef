"""Flags a reader must see before trusting a point: stalled, generator-limited, rate-not-reached."""

from __future__ import annotations

import os
from typing import Any

import pytest

from bench.measure.run import point_flags
from bench.records.errors import BenchError
from bench.records.schema import (
    GENERATOR_LIMITED,
    RATE_NOT_REACHED,
    STALLED,
    Calibration,
    GeneratorFigures,
    PointConfig,
    PointMetrics,
)
from bench.system.cpus import plan_cpus


def _config(**changes: Any) -> PointConfig:
    values: dict[str, Any] = {
        "variant": "memory", "backend": "memory", "backend_label": "none", "mode": "async", "driver": "dict",
        "pooled": False, "scenario": "read_heavy", "pool_size": None, "max_overflow": None, "users": 10,
        "spawn_rate": 10, "warmup_s": 1, "duration_s": 5, "repeat_index": 1, "pool_timeout_s": 30,
        "pool_pre_ping": False, "thread_tokens": 40, "workers": 1, "dataset_rows": 100,
    }  # fmt: skip
    return PointConfig(**(values | changes))


def _metrics(requests_per_s: float, cpu: float | None = 0.3) -> PointMetrics:
    requests = int(requests_per_s * 5)
    return PointMetrics(
        requests=requests, failures=0, error_rate=0, requests_per_s=requests_per_s, measured_s=5,
        latency_ms_mean=1, latency_ms_p50=1, latency_ms_p90=1, latency_ms_p95=1, latency_ms_p99=1,
        latency_ms_p999=1, latency_ms_max=1, generator_cpu_utilisation=cpu,
    )  # fmt: skip


def _calibration(ceiling: float) -> Calibration:
    figures = GeneratorFigures(
        requests_per_s=ceiling, latency_ms_p50=1, latency_ms_p99=2, latency_ms_p999=3, cpu_s=1, cpu_us_per_request=300
    )
    return Calibration(
        measured_at="2026-11-28T00:00:00+00:00", machine="m", variant="memory", backend_label="none", users=50,
        rate=None, duration_s=10, pinned=False, locust=figures,
    )  # fmt: skip


def test_a_healthy_point_has_no_flags() -> None:
    assert point_flags(_config(), _metrics(1000)) == []


def test_no_request_at_all_is_stalled() -> None:
    assert STALLED in point_flags(_config(), _metrics(0, cpu=0.01))


def test_a_saturated_generator_process_flags_the_point() -> None:
    assert GENERATOR_LIMITED in point_flags(_config(), _metrics(1000, cpu=0.95))
    assert GENERATOR_LIMITED not in point_flags(_config(), _metrics(1000, cpu=0.5))


def test_reaching_the_calibrated_ceiling_flags_the_point_for_the_same_workload_only() -> None:
    calibration = _calibration(ceiling=3000)
    assert GENERATOR_LIMITED in point_flags(_config(), _metrics(2900), calibration)
    assert GENERATOR_LIMITED not in point_flags(_config(), _metrics(1000), calibration)
    assert GENERATOR_LIMITED not in point_flags(_config(scenario="io_wait"), _metrics(2900), calibration)


def test_an_open_model_point_below_its_rate_is_flagged() -> None:
    assert RATE_NOT_REACHED in point_flags(_config(load_model="open", rate=500), _metrics(300))
    assert RATE_NOT_REACHED not in point_flags(_config(load_model="open", rate=500), _metrics(495))


def test_cpu_pinning_splits_the_cpus_in_two() -> None:
    if len(os.sched_getaffinity(0)) < 2:
        with pytest.raises(BenchError, match="at least 2 CPUs"):
            plan_cpus(True)
        return
    plan = plan_cpus(True)
    assert plan.server and plan.generator
    assert not set(plan.server) & set(plan.generator)
    assert plan_cpus(False).server is None
