"""The summaries the load generator's processes write (scenarios/recording.py), merged into one point's metrics.

Each Locust process that sends requests writes one summary. Several processes (Locust's distributed mode) merge
here without loss: HDR histograms add, counts add, and each process keeps its own entry in `generators`. Only
the per-second timeline's percentiles cannot be merged exactly (each process kept its own second's latencies);
there the merged second carries the highest of the processes' values, an upper bound, and says so nowhere else
because the exact figures of the point come from the histograms.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import TypedDict

from bench.records.latency import merge, summarise
from bench.records.schema import (
    EndpointMetrics,
    GeneratorSummary,
    LoadModel,
    PhaseSummary,
    PointMetrics,
    TimelineSample,
)


class LoadError(Exception):
    """The load generator failed; the message says why (from its log)."""


class EndpointSummary(TypedDict):
    requests: int
    failures: int
    histogram: str  # the latency users saw (corrected in the open model), encoded


class PhaseDump(TypedDict):
    requests: int
    failures: int
    late_requests: int
    started_at: float
    stopped_at: float | None
    histograms: dict[str, str]  # kind ("service", "corrected") -> encoded histogram
    by_name: dict[str, EndpointSummary]
    failures_by_kind: dict[str, int]


class TimelineDump(TypedDict):
    t_s: float
    phase: str
    users: int
    requests: int
    failures: int
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    stage: str | None


class OutcomesDump(TypedDict):
    bucket_s: float
    ok: list[int]
    failed: list[int]


class LocustSummary(TypedDict, total=False):
    process: str
    load_model: LoadModel
    rate: float | None
    users: int
    late_after_ms: float
    started_at: float | None
    measure_started_at: float | None
    measure_stopped_at: float | None
    generator_cpu_s: float | None
    phases: dict[str, PhaseDump]  # "warmup", "measure"
    timeline: list[TimelineDump]
    outcomes: OutcomesDump  # absent from summaries written before it existed


@dataclass(frozen=True)
class Outcomes:
    """Requests that completed, ok and failed, per `bucket_s` slice from `started_at` (epoch seconds)."""

    started_at: float
    bucket_s: float
    ok: list[int]
    failed: list[int]


@dataclass(frozen=True)
class LoadResult:
    metrics: PointMetrics
    # Epoch seconds, so the harness can line up its telemetry samples with the load generator's periods.
    started_at: float
    measure_started_at: float
    measure_stopped_at: float
    outcomes: Outcomes | None = None


def result_from_summary(summary: LocustSummary) -> LoadResult:
    return result_from_summaries([summary])


def result_from_summaries(summaries: list[LocustSummary]) -> LoadResult:
    """One point's result from its processes' summaries (LoadError when none of them measured anything)."""
    measured = [s for s in summaries if _measured(s)]
    if not measured or len(measured) < len(summaries):
        raise LoadError("the run ended before the warm-up did; lengthen the duration")
    return LoadResult(
        metrics=metrics_from_summaries(measured),
        started_at=min(_float(s.get("started_at")) for s in measured),
        measure_started_at=min(_float(s.get("measure_started_at")) for s in measured),
        measure_stopped_at=max(_float(s.get("measure_stopped_at")) for s in measured),
        outcomes=_merged_outcomes(measured),
    )


def _measured(summary: LocustSummary) -> bool:
    started, stopped = summary.get("measure_started_at"), summary.get("measure_stopped_at")
    return (
        "measure" in summary.get("phases", {})
        and started is not None
        and stopped is not None
        and stopped > started
        and summary.get("started_at") is not None
    )


def _float(value: float | None) -> float:
    assert value is not None  # checked by _measured
    return value


def metrics_from_summaries(summaries: list[LocustSummary]) -> PointMetrics:
    """The measured period's figures; latency_ms_* are the corrected latency in the open model, the service
    time in the closed one, all from the HDR histograms (exact to 3 significant digits)."""
    measures = [s["phases"]["measure"] for s in summaries]
    generators = [_generator(s["process"], m, s["generator_cpu_s"]) for s, m in zip(summaries, measures, strict=True)]
    histograms = {
        kind: merge([g.histograms[kind] for g in generators])
        for kind in ("service", "corrected")
        if all(kind in g.histograms for g in generators)
    }
    open_model = summaries[0]["load_model"] == "open"
    service = summarise(histograms["service"])
    corrected = summarise(histograms["corrected"]) if open_model else None
    seen = corrected or service
    requests = sum(g.requests for g in generators)
    failures = sum(g.failures for g in generators)
    # Each process measured over its own (nearly equal) period: rates add, the period is their median.
    seconds = [_seconds(m) for m in measures]
    measured_s = statistics.median(seconds)
    requests_per_s = sum(m["requests"] / s for m, s in zip(measures, seconds, strict=True))
    cpus = [g.cpu_s for g in generators]
    cpu_s = sum(c for c in cpus if c is not None) if all(c is not None for c in cpus) else None
    warmups = [s["phases"]["warmup"] for s in summaries if "warmup" in s["phases"]]
    return PointMetrics(
        requests=requests,
        failures=failures,
        error_rate=failures / requests if requests else 0.0,
        requests_per_s=requests_per_s,
        measured_s=measured_s,
        latency_ms_mean=seen.mean_ms,
        latency_ms_p50=seen.p50_ms,
        latency_ms_p90=seen.p90_ms,
        latency_ms_p95=seen.p95_ms,
        latency_ms_p99=seen.p99_ms,
        latency_ms_p999=seen.p999_ms,
        latency_ms_max=seen.max_ms,
        failures_by_kind=_added([m["failures_by_kind"] for m in measures]),
        by_name=_endpoints(measures, measured_s),
        generator_cpu_s=cpu_s,
        generator_cpu_us_per_request=(cpu_s * 1e6 / requests) if cpu_s is not None and requests else None,
        load_model=summaries[0]["load_model"],
        service_time=service,
        corrected_latency=corrected,
        late_requests=sum(m["late_requests"] for m in measures),
        generator_cpu_utilisation=cpu_s / measured_s if cpu_s is not None else None,
        histograms=histograms,
        warmup=_warmup(warmups) if len(warmups) == len(summaries) else None,
        timeline=_timeline([s["timeline"] for s in summaries]),
        generators=generators,
    )


def _seconds(phase: PhaseDump) -> float:
    return (phase["stopped_at"] or phase["started_at"]) - phase["started_at"]


def _generator(process: str, measure: PhaseDump, cpu_s: float | None) -> GeneratorSummary:
    return GeneratorSummary(
        process=process,
        requests=measure["requests"],
        failures=measure["failures"],
        cpu_s=cpu_s,
        histograms=measure["histograms"],
    )


def _added(counts: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = defaultdict(int)
    for each in counts:
        for key, value in each.items():
            total[key] += value
    return dict(total)


def _warmup(phases: list[PhaseDump]) -> PhaseSummary:
    histograms = {kind: merge([p["histograms"][kind] for p in phases]) for kind in phases[0]["histograms"]}
    return PhaseSummary(
        requests=sum(p["requests"] for p in phases),
        failures=sum(p["failures"] for p in phases),
        seconds=statistics.median(_seconds(p) for p in phases),
        service_time=summarise(histograms["service"]),
        histograms=histograms,
    )


def _endpoints(measures: list[PhaseDump], measured_s: float) -> dict[str, EndpointMetrics]:
    names = sorted({name for m in measures for name in m["by_name"]})
    endpoints = {}
    for name in names:
        entries = [m["by_name"][name] for m in measures if name in m["by_name"]]
        latency = summarise(merge([e["histogram"] for e in entries]))
        requests = sum(e["requests"] for e in entries)
        endpoints[name] = EndpointMetrics(
            requests=requests,
            failures=sum(e["failures"] for e in entries),
            requests_per_s=requests / measured_s,
            latency_ms_p50=latency.p50_ms,
            latency_ms_p99=latency.p99_ms,
        )
    return endpoints


def _timeline(timelines: list[list[TimelineDump]]) -> list[TimelineSample]:
    """Seconds line up by their index (each process counts from its own start, a few ms apart)."""
    if len(timelines) == 1:
        return [TimelineSample.model_validate(sample) for sample in timelines[0]]
    merged = []
    for index in range(min(len(t) for t in timelines)):
        seconds = [t[index] for t in timelines]
        p50s = [s["latency_ms_p50"] for s in seconds if s["latency_ms_p50"] is not None]
        p99s = [s["latency_ms_p99"] for s in seconds if s["latency_ms_p99"] is not None]
        merged.append(
            TimelineSample.model_validate(
                seconds[0]
                | {
                    "users": sum(s["users"] for s in seconds),
                    "requests": sum(s["requests"] for s in seconds),
                    "failures": sum(s["failures"] for s in seconds),
                    "latency_ms_p50": max(p50s) if p50s else None,
                    "latency_ms_p99": max(p99s) if p99s else None,
                }
            )
        )
    return merged


def _merged_outcomes(summaries: list[LocustSummary]) -> Outcomes | None:
    """Every process's outcome slices placed on one clock (the earliest start)."""
    dumps = [(_float(s.get("started_at")), s["outcomes"]) for s in summaries if "outcomes" in s]
    if len(dumps) < len(summaries):
        return None
    origin = min(started for started, _ in dumps)
    bucket_s = dumps[0][1]["bucket_s"]
    ok: list[int] = []
    failed: list[int] = []
    for started, dump in dumps:
        shift = round((started - origin) / bucket_s)
        for series, counts in ((ok, dump["ok"]), (failed, dump["failed"])):
            needed = shift + len(counts)
            if needed > len(series):
                series.extend([0] * (needed - len(series)))
            for index, count in enumerate(counts):
                series[shift + index] += count
    length = max(len(ok), len(failed))
    ok.extend([0] * (length - len(ok)))
    failed.extend([0] * (length - len(failed)))
    return Outcomes(started_at=origin, bucket_s=bucket_s, ok=ok, failed=failed)
