"""Versioned record types for what a run writes: one RunRecord per run, one PointRecord per sweep point."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bench.records.overhead import OverheadRecord
from bench.records.telemetry import Telemetry

# Version history (bump on any change of meaning or shape; results.load_* upgrades older files):
#   1: first version (walking skeleton): closed-model Locust load, Locust percentiles.
#   2: several backends per run: RunRecord.database -> RunRecord.databases (by backend); DatabaseInfo gains
#      `surrogate` and `source`; PointRecord.flags.
#   3: measurement you can trust: PointConfig gains load_model, rate, scenario_options, cpu pinning and
#      telemetry; PointMetrics gains HDR histograms (service time and corrected latency), the warm-up kept
#      apart, a per-second timeline and per-generator figures; PointRecord gains app and database telemetry.
#      Every new field has a default, so a v2 file reads as v3 with only the version changed.
#   4: robustness and scale-out: PointConfig gains generator_processes, fault and target_url; PointRecord gains
#      `fault` (what a database fault injected mid-measurement did). Defaults again: v3 reads as v4.
#   5: measurement truth: PointConfig (and the run's sweep) gain arrivals and arrival_seed, the open model's arrival
#      process (Poisson, the new default, or the evenly spread timetable). Open-model records of v4 and before
#      read as "uniform", which is what they ran; closed-model ones keep None (no timetable). RunRecord gains
#      `overhead`, the latest `bench overhead` on the machine (None in older files: it was never measured).
#   6: RunRecord.overhead gains `control`, the A/A control (a yardstick beside itself), and each variant's
#      `verdict` and `control_p` against it. Defaults (None: judged by the budget alone): v5 reads as v6.
SCHEMA_VERSION = 6

RunStatus = Literal["running", "complete", "incomplete", "failed"]
PointStatus = Literal["ok", "failed"]
# closed: a fixed number of users, each sending its next request when the previous one returned (Locust's own).
# open: requests start on a timetable at a constant rate whether or not earlier ones have returned; latency
# counts from each request's intended start, so a stalled server cannot hide its backlog (wrk2's correction).
LoadModel = Literal["closed", "open"]
# The open model's arrival process (records/latency.py): poisson, every layer of users one Poisson stream at the rate;
# uniform, intended starts evenly spread (k6's and wrk2's constant-arrival-rate style, kept for comparison).
Arrivals = Literal["poisson", "uniform"]
ScenarioOptionValue = int | float | str | list[int]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PointConfig(_Record):
    """Everything that defines a point; two points with equal configs are repeats of each other."""

    variant: str
    backend: str
    backend_label: str  # what the numbers were measured on, e.g. "PostgreSQL 15.19" or "secantusdb (surrogate)"
    mode: str
    driver: str
    pooled: bool
    scenario: str
    pool_size: int | None  # None for variants without a pool (the in-memory baseline)
    max_overflow: int | None
    users: int
    spawn_rate: float
    warmup_s: float
    duration_s: float
    repeat_index: int
    pool_timeout_s: float
    pool_pre_ping: bool
    thread_tokens: int
    workers: int
    dataset_rows: int
    load_model: LoadModel = "closed"
    rate: float | None = None  # open model: requests started per second by all users together
    arrivals: Arrivals | None = None  # open model only: how the intended starts are spread
    arrival_seed: int | None = None  # open model only: the seed of the Poisson schedule
    scenario_options: dict[str, ScenarioOptionValue] = Field(default_factory=dict)  # every option, defaults too
    server_cpus: list[int] | None = None  # CPU pinning (sched_setaffinity); None: not pinned
    generator_cpus: list[int] | None = None
    telemetry: bool = True  # the app's /metrics instrumentation on (its cost is measured with it off)
    generator_processes: int = 1  # Locust processes that sent the load (more than 1: distributed mode)
    fault: str | None = None  # e.g. "db-restart:at=20s,down=5s" (bench/plan/faults.py)
    target_url: str | None = None  # a service the harness did not start (--target-url), password masked


class EndpointMetrics(_Record):
    requests: int
    failures: int
    requests_per_s: float
    latency_ms_p50: float
    latency_ms_p99: float


class LatencySummary(_Record):
    """Percentiles of one HDR histogram (recorded in microseconds, 3 significant digits), in milliseconds."""

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float


class PhaseSummary(_Record):
    """The warm-up: kept so a reader can see it, excluded from every other figure of the point."""

    requests: int
    failures: int
    seconds: float
    service_time: LatencySummary | None = None
    histograms: dict[str, str] = Field(default_factory=dict)  # as PointMetrics.histograms


class TimelineSample(_Record):
    """One second of the load generator's view (t_s counts from the start of the warm-up)."""

    t_s: float
    phase: Literal["warmup", "measure"]
    users: int
    requests: int
    failures: int
    latency_ms_p50: float | None = None  # corrected latency in the open model, service time in the closed
    latency_ms_p99: float | None = None
    stage: str | None = None  # a load shape's stage (burst: "steady"/"spike"; ramp: "step 3")


class GeneratorSummary(_Record):
    """One load-generator process: its own figures, so processes and repeats merge without loss."""

    process: str  # e.g. "local-1" or a worker's host and pid
    requests: int
    failures: int
    cpu_s: float | None
    histograms: dict[str, str] = Field(default_factory=dict)


class PointMetrics(_Record):
    requests: int
    failures: int
    error_rate: float
    requests_per_s: float
    measured_s: float
    latency_ms_mean: float
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p95: float
    latency_ms_p99: float
    latency_ms_p999: float
    latency_ms_max: float
    failures_by_kind: dict[str, int] = Field(default_factory=dict)
    by_name: dict[str, EndpointMetrics] = Field(default_factory=dict)
    # CPU the load generator spent during the measured period: on 2 cores it competes with the server.
    generator_cpu_s: float | None = None
    generator_cpu_us_per_request: float | None = None
    # Schema 2 only: Locust's histogram (rounded ms -> count). Schema 3 keeps exact HDR histograms instead.
    latency_histogram_ms: dict[str, int] = Field(default_factory=dict)
    # Schema 3. latency_ms_* above are the latency users saw: the corrected latency in the open model (from
    # each request's intended start), the service time in the closed model (where the two are the same).
    load_model: LoadModel = "closed"
    service_time: LatencySummary | None = None  # request sent -> response read, whatever the model
    corrected_latency: LatencySummary | None = None  # open model only
    late_requests: int = 0  # open model: requests sent more than LATE_AFTER_MS after their intended start
    # CPU seconds per measured second of the generator process(es): 1.0 is one core saturated.
    generator_cpu_utilisation: float | None = None
    # HDR histograms of the measured period, merged over generator processes: name ("service",
    # "corrected") -> base64 of HdrHistogram's compressed encoding, values in microseconds.
    histograms: dict[str, str] = Field(default_factory=dict)
    warmup: PhaseSummary | None = None
    timeline: list[TimelineSample] = Field(default_factory=list)
    generators: list[GeneratorSummary] = Field(default_factory=list)


class ServerInfo(_Record):
    port: int
    pid: int
    loop: str
    http: str
    access_log: bool
    app_health: dict[str, Any]  # what the app itself reported at /health: the settings that actually ran


class SeedInfo(_Record):
    rows: int
    reused: bool
    seconds: float


# The flags a point may carry (set by bench.measure.point_flags; each explained there).
STALLED = "stalled"
GENERATOR_LIMITED = "generator-limited"
RATE_NOT_REACHED = "rate-not-reached"


class PointRecord(_Record):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    point_id: str
    index: int
    status: PointStatus
    error: str | None = None
    config: PointConfig
    metrics: PointMetrics | None = None
    server: ServerInfo | None = None
    seed: SeedInfo | None = None
    started_at: str
    finished_at: str
    raw_files: list[str] = Field(default_factory=list)
    # Conditions a reader must know before trusting the figures, e.g. "stalled" (no request completed).
    flags: list[str] = Field(default_factory=list)
    # The app's /metrics and the database's own counters, sampled every second during the measurement.
    telemetry: Telemetry | None = None
    fault: FaultRecord | None = None  # when config.fault: what was done to the database and what followed

    @property
    def stalled(self) -> bool:
        """No request completed in the measured period."""
        return STALLED in self.flags

    @property
    def generator_limited(self) -> bool:
        """The load generator, not the service, set the pace."""
        return GENERATOR_LIMITED in self.flags


class FaultRecord(_Record):
    """A database fault during the measured period and its effect (bench/plan/faults.py tells how it is read)."""

    kind: str  # "db-restart" or "db-pause"
    planned_at_s: float  # into the measured period, as asked
    down_s: float
    injected_at_s: float | None  # when it really happened, seconds into the measured period
    back_at_s: float | None  # when the database was back (accepting connections / resumed)
    error: str | None = None  # injecting or restoring failed: why
    errors_before: int = 0
    errors_during: int = 0
    errors_after: int = 0
    first_success_after_back_s: float | None = None
    last_error_after_back_s: float | None = None
    recovered: bool | None = None  # None: the measurement ended too soon after "back" to tell
    # Completed requests per slice of the measured period (for the recovery chart).
    slice_s: float = 0.1
    ok_per_slice: list[int] = Field(default_factory=list)
    failed_per_slice: list[int] = Field(default_factory=list)


class DatabaseInfo(_Record):
    kind: str
    label: str
    url: str | None  # password masked
    embedded: bool
    surrogate: bool = False  # a stand-in (e.g. a MongoDB-wire-compatible server): labelled everywhere
    source: str = ""
    version: str
    settings: dict[str, str]


class GeneratorFigures(_Record):
    """One load generator's figures in a calibration."""

    requests_per_s: float
    latency_ms_p50: float
    latency_ms_p99: float
    latency_ms_p999: float
    cpu_s: float | None
    cpu_us_per_request: float | None


class Calibration(_Record):
    """`bench calibrate`: our Locust generator against wrk on the same server, load and connections. Its ratio
    says how much of a measured ceiling is the generator's own; runs on the same machine carry the latest."""

    measured_at: str
    machine: str
    variant: str
    backend_label: str
    users: int  # connections, for both generators
    rate: float | None
    duration_s: float
    pinned: bool
    locust: GeneratorFigures
    wrk: GeneratorFigures | None = None  # None where wrk is not installed
    locust_to_wrk: float | None = None  # Locust's throughput / wrk's


class RunRecord(_Record):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    status: RunStatus
    created_at: str
    finished_at: str | None = None
    argv: list[str]
    sweep: dict[str, Any]
    environment: dict[str, Any]
    databases: dict[str, DatabaseInfo] = Field(default_factory=dict)  # by backend name
    points_planned: int
    calibration: Calibration | None = None  # the latest `bench calibrate` on this machine, if any
    overhead: OverheadRecord | None = None  # the latest `bench overhead` on this machine: what our apps cost
    points_ok: int = 0
    points_failed: int = 0
    error: str | None = None
