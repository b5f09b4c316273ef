"""bench/measure/load.py running real Locust against the real in-memory variant, in both load models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.measure.load import LoadError, LoadResult, LoadSettings, result_from_summary, run_load
from bench.measure.server import run_server
from bench.records.latency import merge, summarise
from bench.records.schema import LatencySummary

ROWS = 300
WARMUP_S = 1.0
DURATION_S = 2.0


@pytest.fixture(scope="module")
def memory_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("memory") / "uvicorn.log"
    with run_server("memory", settings={"BENCH_DATASET_ROWS": str(ROWS)}, log_path=log) as server:
        yield server.base_url


def run(memory_url: str, raw_dir: Path, **given: object) -> LoadResult:
    settings = {
        "scenario": "read_heavy",
        "users": 4,
        "spawn_rate": 100.0,
        "warmup_s": WARMUP_S,
        "duration_s": DURATION_S,
        "dataset_rows": ROWS,
    } | given
    return run_load(memory_url, LoadSettings(**settings), raw_dir)  # type: ignore[arg-type]


def check_common(result: LoadResult, processes: int = 1) -> None:
    """What holds in either model: periods, warm-up apart, histograms, timeline, generator."""
    metrics = result.metrics
    assert result.started_at < result.measure_started_at < result.measure_stopped_at
    assert result.measure_started_at - result.started_at == pytest.approx(WARMUP_S, abs=0.3)
    assert metrics.measured_s == pytest.approx(DURATION_S, abs=0.3)
    assert metrics.requests > 0 and metrics.failures == 0

    warmup = metrics.warmup
    assert warmup is not None and warmup.requests > 0 and warmup.seconds == pytest.approx(WARMUP_S, abs=0.3)
    assert warmup.service_time is not None and warmup.service_time.count == warmup.requests
    assert metrics.service_time is not None and metrics.service_time.count == metrics.requests  # warm-up not in

    for kind, encoded in metrics.histograms.items():  # decode, and merge with the warm-up without loss
        assert summarise(encoded).count == metrics.requests
        both = summarise(merge([encoded, warmup.histograms[kind]]))
        assert both.count == metrics.requests + warmup.requests
    assert metrics.latency_histogram_ms == {}

    timeline = metrics.timeline
    seconds = round(WARMUP_S + DURATION_S)
    assert [sample.t_s for sample in timeline] == [float(s) for s in range(seconds)]
    assert [sample.phase for sample in timeline] == ["warmup"] * round(WARMUP_S) + ["measure"] * round(DURATION_S)
    assert all(sample.users == 4 and sample.requests > 0 for sample in timeline)
    recorded = sum(sample.requests for sample in timeline)
    assert 0.8 * (metrics.requests + warmup.requests) <= recorded <= metrics.requests + warmup.requests

    assert [g.process for g in metrics.generators] == [f"local-{n}" for n in range(1, processes + 1)]
    assert sum(g.requests for g in metrics.generators) == metrics.requests
    assert all(g.requests > 0 for g in metrics.generators)
    assert metrics.generator_cpu_s is not None and metrics.generator_cpu_s > 0
    assert metrics.generator_cpu_utilisation == pytest.approx(metrics.generator_cpu_s / metrics.measured_s)
    assert set(metrics.by_name) == {"GET /items", "GET /items/{item_id}"}
    assert sum(e.requests for e in metrics.by_name.values()) == metrics.requests


def as_tuple(summary: LatencySummary) -> tuple[float, ...]:
    return (summary.p50_ms, summary.p90_ms, summary.p95_ms, summary.p99_ms, summary.p999_ms, summary.max_ms)


def test_closed_model_reports_service_time_from_hdr_histograms(memory_url: str, tmp_path: Path) -> None:
    result = run(memory_url, tmp_path)
    check_common(result)
    metrics = result.metrics
    assert metrics.load_model == "closed"
    assert metrics.corrected_latency is None and set(metrics.histograms) == {"service"}
    assert metrics.late_requests == 0
    service = metrics.service_time
    assert service is not None
    assert (metrics.latency_ms_p50, metrics.latency_ms_p99) == (service.p50_ms, service.p99_ms)
    assert (tmp_path / "locust_summary.json").exists() and (tmp_path / "locust.log").exists()


@pytest.mark.parametrize("arrivals", ["poisson", "uniform"])
def test_open_model_keeps_its_rate_and_corrects_latency(memory_url: str, tmp_path: Path, arrivals: str) -> None:
    rate = 200.0
    result = run(memory_url, tmp_path, load_model="open", rate=rate, arrivals=arrivals)
    check_common(result)
    metrics = result.metrics
    assert metrics.load_model == "open" and set(metrics.histograms) == {"service", "corrected"}
    assert 0.6 * rate * DURATION_S <= metrics.requests <= 1.3 * rate * DURATION_S
    service, corrected = metrics.service_time, metrics.corrected_latency
    assert service is not None and corrected is not None
    assert corrected.count == service.count == metrics.requests
    assert all(c >= s for c, s in zip(as_tuple(corrected), as_tuple(service), strict=True))
    assert corrected.mean_ms >= service.mean_ms
    assert metrics.latency_ms_p99 == corrected.p99_ms  # the headline figure is what users saw
    assert 0 <= metrics.late_requests <= metrics.requests


def test_open_model_needs_a_rate(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="needs a rate"):
        run_load("http://127.0.0.1:9", LoadSettings("read_heavy", 1, 1, 0, 1, ROWS, load_model="open"), tmp_path)


def test_a_run_that_never_measured_is_an_error() -> None:
    summary = {
        "process": "local-1", "load_model": "closed", "rate": None, "users": 1, "late_after_ms": 2.0,
        "started_at": 1.0, "measure_started_at": None, "measure_stopped_at": None, "generator_cpu_s": None,
        "phases": {}, "timeline": [],
    }  # fmt: skip
    with pytest.raises(LoadError, match="before the warm-up"):
        result_from_summary(summary)  # type: ignore[arg-type]


@pytest.mark.parametrize("load_model", ["closed", "open"])
def test_two_processes_merge_into_one_result_without_loss(memory_url: str, tmp_path: Path, load_model: str) -> None:
    """Locust's distributed mode: a master and two workers, each worker's summary merged into one point."""
    given = {"load_model": "open", "rate": 200.0} if load_model == "open" else {}
    result = run(memory_url, tmp_path, processes=2, **given)
    check_common(result, processes=2)
    metrics = result.metrics
    for kind, encoded in metrics.histograms.items():  # the merged histogram is the sum of the workers' own
        assert summarise(encoded).count == sum(summarise(g.histograms[kind]).count for g in metrics.generators)
    assert metrics.generator_cpu_s == pytest.approx(sum(g.cpu_s or 0 for g in metrics.generators))
    assert result.outcomes is not None and sum(result.outcomes.ok) >= metrics.requests
    assert {p.name for p in tmp_path.glob("locust_summary-*.json")} == {
        "locust_summary-local-1.json",
        "locust_summary-local-2.json",
    }
    assert (tmp_path / "locust-master.log").exists() and not (tmp_path / "locust_summary.json").exists()
