"""What the load generator saw: every request in HDR histograms per phase and kind, per endpoint, per second.

No locust or gevent here: scenarios/base.py feeds it from Locust's request event and a one-second ticker,
and asks it for the summary the harness reads (bench/measure/load.py's LocustSummary is the other side of that file).

Phases: "warmup" from the test start until BENCH_WARMUP_S, then "measure" until the test stops; requests that
complete while Locust stops its users are not recorded (they belong to neither period). Kinds: "service"
(request sent -> response read) always, "corrected" (intended start -> response read) in the open model only.
Per endpoint and per second the figure kept is the latency users saw: corrected in the open model, service in
the closed one. A request belongs to the phase and second in which it completed.
"""

from __future__ import annotations

import re
from typing import Any

from bench.records.latency import (
    LATE_AFTER_MS,
    OUTCOME_BUCKET_S,
    LatencyCounts,
    clamp_us,
    corrected_latency_us,
    nearest_rank_ms,
)


def failure_kind(error: object) -> str:
    """Group failures by what went wrong (an HTTP status or an exception class), not by URL. An exception is read
    through its repr, which starts with its class name (its str may not: "[Errno 111] Connection refused")."""
    if isinstance(error, BaseException):
        status_code = getattr(error, "status_code", None)  # scenarios/lean_client.py's HTTPStatusError
        if isinstance(status_code, int):
            error_kind = getattr(error, "error_kind", None)  # what failed inside the app, e.g. OperationalError
            return f"HTTP {status_code} {error_kind}" if error_kind else f"HTTP {status_code}"
    text = repr(error) if isinstance(error, BaseException) else str(error)
    status = re.search(r"code=(\d{3})|\b(\d{3}) (?:Client|Server) Error", text)
    if status:
        return f"HTTP {status.group(1) or status.group(2)}"
    return text.split("(", 1)[0].strip()[:120] or "unknown"


class _Endpoint:
    __slots__ = ("failures", "latency", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.failures = 0
        self.latency = LatencyCounts()


class Phase:
    """One period's counts and histograms."""

    def __init__(self, name: str, started_at: float, open_model: bool) -> None:
        self.name = name
        self.started_at = started_at
        self.stopped_at: float | None = None
        self.requests = 0
        self.failures = 0
        self.late_requests = 0
        self.service = LatencyCounts()
        self.corrected = LatencyCounts() if open_model else None
        self.endpoints: dict[tuple[str, str], _Endpoint] = {}
        self.failures_by_kind: dict[str, int] = {}

    def summary(self) -> dict[str, Any]:
        histograms = {"service": self.service.encode()}
        if self.corrected is not None:
            histograms["corrected"] = self.corrected.encode()
        return {
            "requests": self.requests,
            "failures": self.failures,
            "late_requests": self.late_requests,
            "started_at": self.started_at,
            "stopped_at": self.stopped_at,
            "histograms": histograms,
            "by_name": {
                f"{method} {name}": {
                    "requests": entry.requests,
                    "failures": entry.failures,
                    "histogram": entry.latency.encode(),
                }
                for (method, name), entry in sorted(self.endpoints.items())
            },
            "failures_by_kind": self.failures_by_kind,
        }


class _Second:
    __slots__ = ("failures", "latencies_us", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.failures = 0
        self.latencies_us: list[int] = []


class Recorder:
    """Fed one call per request (`record`, the hot path: a few µs) and one per second (`close_second`)."""

    def __init__(self, *, open_model: bool, started_at: float, warmup_s: float, process: str) -> None:
        self.open_model = open_model
        self.started_at = started_at
        self.warmup_s = warmup_s
        self.process = process
        self.warmup: Phase | None = Phase("warmup", started_at, open_model)
        self.measure: Phase | None = None
        self.current: Phase | None = self.warmup
        self.timeline: list[dict[str, Any]] = []
        self._second = _Second()
        self._second_index = 0
        # Requests by completion time in OUTCOME_BUCKET_S slices from started_at: fine enough to time a recovery
        # after a database fault (bench/plan/faults.py), cheap enough to keep always (two list updates a request).
        self.ok_by_bucket: list[int] = []
        self.failed_by_bucket: list[int] = []
        self.cpu_started: float | None = None
        self.cpu_stopped: float | None = None

    def record(
        self, method: str, name: str, sent_at: float, service_ms: float, intended_start: float | None, error: object
    ) -> None:
        phase = self.current
        if phase is None:
            return
        service_us = clamp_us(service_ms * 1000)
        phase.service.record(service_us)
        seen_us = service_us
        if phase.corrected is not None:
            seen_us, late = corrected_latency_us(intended_start, sent_at, service_us)
            phase.corrected.record(seen_us)
            if late:
                phase.late_requests += 1
        endpoint = phase.endpoints.get((method, name))
        if endpoint is None:
            endpoint = phase.endpoints[(method, name)] = _Endpoint()
        endpoint.requests += 1
        endpoint.latency.record(seen_us)
        phase.requests += 1
        bucket = int((sent_at + service_ms / 1000 - self.started_at) / OUTCOME_BUCKET_S)
        if bucket >= 0:
            if bucket >= len(self.ok_by_bucket):
                grow = bucket + 1 - len(self.ok_by_bucket)
                self.ok_by_bucket.extend([0] * grow)
                self.failed_by_bucket.extend([0] * grow)
            (self.ok_by_bucket if error is None else self.failed_by_bucket)[bucket] += 1
        second = self._second
        second.requests += 1
        second.latencies_us.append(seen_us)
        if error is not None:
            phase.failures += 1
            endpoint.failures += 1
            second.failures += 1
            kind = failure_kind(error)
            phase.failures_by_kind[kind] = phase.failures_by_kind.get(kind, 0) + 1

    def start_measuring(self, now: float, cpu_s: float) -> None:
        if self.warmup is not None:
            self.warmup.stopped_at = now
        self.measure = self.current = Phase("measure", now, self.open_model)
        self.cpu_started = cpu_s

    def stop(self, *, now: float, cpu_s: float, users: int, stage: str | None) -> None:
        """The test is stopping: close the open phase and the second under way (if at least half of it ran,
        so the timeline keeps one sample per second of the run and no stub)."""
        if self.current is None:
            return
        self.current.stopped_at = now
        if self.current is self.measure:
            self.cpu_stopped = cpu_s
        self.current = None
        # Against the second's nominal start on the run's clock, not the moment the ticker closed the last one:
        # a ticker that woke early (a stalled loop's cached time) must not turn 0.03 s into a stub second.
        if now - (self.started_at + self._second_index) >= 0.5:
            self.close_second(users=users, stage=stage, now=now)

    def close_second(self, *, users: int, stage: str | None, now: float) -> None:
        """End the current one-second sample; its phase is the one under way when the second began."""
        second, self._second = self._second, _Second()
        index = self._second_index
        self._second_index += 1
        latencies = sorted(second.latencies_us)
        self.timeline.append(
            {
                "t_s": float(index),
                "phase": "warmup" if index < self.warmup_s else "measure",
                "users": users,
                "requests": second.requests,
                "failures": second.failures,
                "latency_ms_p50": nearest_rank_ms(latencies, 0.50),
                "latency_ms_p99": nearest_rank_ms(latencies, 0.99),
                "stage": stage,
            }
        )

    def summary(self, *, load_model: str, rate: float | None, users: int) -> dict[str, Any]:
        measure = self.measure
        cpu_s = (
            self.cpu_stopped - self.cpu_started
            if self.cpu_started is not None and self.cpu_stopped is not None
            else None
        )
        return {
            "process": self.process,
            "load_model": load_model,
            "rate": rate,
            "users": users,
            "late_after_ms": LATE_AFTER_MS,
            "started_at": self.started_at,
            "measure_started_at": measure.started_at if measure else None,
            "measure_stopped_at": measure.stopped_at if measure else None,
            "generator_cpu_s": cpu_s,
            "phases": {phase.name: phase.summary() for phase in (self.warmup, measure) if phase is not None},
            "timeline": self.timeline,
            "outcomes": {"bucket_s": OUTCOME_BUCKET_S, "ok": self.ok_by_bucket, "failed": self.failed_by_bucket},
        }


def never_started_summary(*, process: str, load_model: str, rate: float | None, users: int) -> dict[str, Any]:
    """The summary of a run whose test never started (Locust failed first): the harness reports its log."""
    return {
        "process": process,
        "load_model": load_model,
        "rate": rate,
        "users": users,
        "late_after_ms": LATE_AFTER_MS,
        "started_at": None,
        "measure_started_at": None,
        "measure_stopped_at": None,
        "generator_cpu_s": None,
        "phases": {},
        "timeline": [],
        "outcomes": {"bucket_s": OUTCOME_BUCKET_S, "ok": [], "failed": []},
    }
