"""What `bench selftest` records: per load, the measured figures beside the same-schedule prediction and the theory."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from bench.records.schema import Arrivals, LoadModel

# Version history of results/selftest/*.json:
#   1: first version.
SELFTEST_SCHEMA_VERSION = 1

# How far a measured figure may be from the same-schedule prediction before the selftest fails: a share of it,
# and for latency at least LATENCY_FLOOR_MS, the harness's timing resolution (records.latency.LATE_AFTER_MS: gevent's
# timers round to whole ms, and a process waking from idle on a VM takes a fraction of one more).
THROUGHPUT_TOLERANCE = 0.05
LATENCY_TOLERANCE = 0.10
LATENCY_FLOOR_MS = 2.0
# Requests that may fall on either side of the measured window's edges (bench.measure.queueing.Replay.bands).
RANK_SLACK = 2
FIGURES = ("requests_per_s", "mean_ms", "p50_ms", "p99_ms")


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Figures(_Record):
    requests_per_s: float
    mean_ms: float
    p50_ms: float
    p99_ms: float


class SelftestCase(_Record):
    """One load on the known-answer server."""

    name: str  # e.g. "open poisson rho=0.8"
    load_model: LoadModel
    arrivals: Arrivals | None  # open model only
    users: int  # closed: users; open: connections
    rate: float | None  # open model: requests per second asked for
    utilisation: float | None  # open model: rate x the measured service time (rho)
    service_ms: float  # mean service time the server measured
    service_ms_max: float
    service_count: int
    requests: int  # measured period, at the load generator
    late_requests: int
    failures: int
    measured: Figures
    predicted: Figures  # the same schedule through a FIFO server of the measured service time (the gate)
    # figure -> (low, high): the prediction with RANK_SLACK requests more or fewer in the window
    predicted_band: dict[str, tuple[float, float]]
    theory: Figures | None  # closed loop / M/D/1 / D/D/1 (shown for the reader); None: no textbook answer
    errors: dict[str, float]  # figure -> (measured - nearest end of the band) / it; 0 inside the band
    failed: list[str]  # the figures beyond their tolerance, or "failures" when requests failed
    passed: bool


class SelftestRecord(_Record):
    schema_version: int = SELFTEST_SCHEMA_VERSION
    measured_at: str
    machine: str
    service_ms: float  # asked of the server
    warmup_s: float
    duration_s: float
    arrival_seed: int
    throughput_tolerance: float = THROUGHPUT_TOLERANCE
    latency_tolerance: float = LATENCY_TOLERANCE
    latency_floor_ms: float = LATENCY_FLOOR_MS
    rank_slack: int = RANK_SLACK
    cases: list[SelftestCase]
    passed: bool
