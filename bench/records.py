"""Versioned record types for what a run writes: one RunRecord per run, one PointRecord per sweep point."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Version history (bump on any change of meaning or shape; results.load_* upgrades older files):
#   1: first version (walking skeleton): closed-model Locust load, Locust percentiles.
#   2: several backends per run: RunRecord.database -> RunRecord.databases (by backend); DatabaseInfo gains
#      `surrogate` and `source`; PointRecord.flags.
SCHEMA_VERSION = 2

RunStatus = Literal["running", "complete", "incomplete", "failed"]
PointStatus = Literal["ok", "failed"]


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


class EndpointMetrics(_Record):
    requests: int
    failures: int
    requests_per_s: float
    latency_ms_p50: float
    latency_ms_p99: float


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
    # Locust's histogram (rounded ms -> count), kept so later readers can recompute percentiles.
    latency_histogram_ms: dict[str, int] = Field(default_factory=dict)


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


class DatabaseInfo(_Record):
    kind: str
    label: str
    url: str | None  # password masked
    embedded: bool
    surrogate: bool = False  # a stand-in (e.g. a MongoDB-wire-compatible server): labelled everywhere
    source: str = ""
    version: str
    settings: dict[str, str]


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
    points_ok: int = 0
    points_failed: int = 0
    error: str | None = None
