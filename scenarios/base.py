"""Shared base for every workload: the item payloads and ids, the warm-up cut and the final summary file.

This folder is the only place that imports locust (and so gevent); the harness only reads the JSON summary
written here. Settings arrive through the environment the harness sets:
  BENCH_DATASET_ROWS  ids 1..N exist in the seeded dataset
  BENCH_WARMUP_S      seconds of warm-up; statistics are reset when it ends, so figures cover only the rest
  BENCH_SUMMARY_PATH  where to write the final statistics (JSON) when Locust quits
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import time
from typing import Any

import gevent
from locust import FastHttpUser, events
from locust.env import Environment

DATASET_ROWS = int(os.environ.get("BENCH_DATASET_ROWS", "10000"))
WARMUP_S = float(os.environ.get("BENCH_WARMUP_S", "0"))
SUMMARY_PATH = os.environ.get("BENCH_SUMMARY_PATH", "")
PERCENTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p999": 0.999}

_measurement: dict[str, float] = {}


class ItemUser(FastHttpUser):
    """A client of the item service; workloads subclass it and add weighted tasks."""

    abstract = True

    def random_item_id(self) -> int:
        return random.randint(1, DATASET_ROWS)

    def new_item_payload(self) -> dict[str, Any]:
        return {
            "name": f"load-{random.getrandbits(32):08x}",
            "description": "created by the load test",
            "price": round(random.uniform(1, 100), 2),
            "quantity": random.randint(0, 50),
        }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _start_measurement(environment: Environment) -> None:
    # Warm-up requests stay in Locust's own log but not in the figures: statistics restart here.
    environment.stats.reset_all()
    _measurement["started"] = time.time()
    _measurement["cpu_started"] = _cpu_seconds()


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_kwargs: Any) -> None:
    if WARMUP_S > 0:
        gevent.spawn_later(WARMUP_S, _start_measurement, environment)
    else:
        _start_measurement(environment)


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_kwargs: Any) -> None:
    _measurement["stopped"] = time.time()
    _measurement["cpu_stopped"] = _cpu_seconds()


def _failure_kind(error: str) -> str:
    """Group failures by what went wrong (an HTTP status or an exception class), not by URL."""
    status = re.search(r"code=(\d{3})|\b(\d{3}) (?:Client|Server) Error", error)
    if status:
        return f"HTTP {status.group(1) or status.group(2)}"
    return error.split("(", 1)[0].strip()[:120] or "unknown"


def _entry_summary(entry: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "latency_ms_mean": entry.avg_response_time,
        "latency_ms_max": entry.max_response_time,
    }
    for key, fraction in PERCENTILES.items():
        summary[f"latency_ms_{key}"] = entry.get_response_time_percentile(fraction) if entry.num_requests else 0
    return summary


@events.quitting.add_listener
def _write_summary(environment: Environment, **_kwargs: Any) -> None:
    if not SUMMARY_PATH:
        return
    stats = environment.stats
    started = _measurement.get("started")
    stopped = _measurement.get("stopped", time.time())
    failures: dict[str, int] = {}
    for error in stats.errors.values():
        kind = _failure_kind(str(error.error))
        failures[kind] = failures.get(kind, 0) + error.occurrences
    summary = {
        "measured": started is not None,
        "measured_s": (stopped - started) if started is not None else 0.0,
        "generator_cpu_s": (_measurement.get("cpu_stopped", _cpu_seconds()) - _measurement["cpu_started"])
        if started is not None
        else None,
        "total": _entry_summary(stats.total),
        "by_name": {
            f"{method} {name}": _entry_summary(entry) for (name, method), entry in sorted(stats.entries.items())
        },
        "failures_by_kind": failures,
        "latency_histogram_ms": {str(k): v for k, v in sorted(stats.total.response_times.items())},
    }
    tmp_path = f"{SUMMARY_PATH}.tmp"
    with open(tmp_path, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    os.replace(tmp_path, SUMMARY_PATH)
