"""Record types for telemetry sampled during a point: the app's /metrics and the database's own counters.

Part of the results schema (bench/records/schema.py imports these; bump SCHEMA_VERSION there on any change).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AppTelemetry(_Record):
    """What the app said about itself over the measured period (counters as differences over the period)."""

    samples: int
    pool_kind: str | None = None  # driver family: "sqlalchemy", "asyncpg", "psycopg_pool", "pymongo", "redis"
    pool_limit: int | None = None  # the most connections the process may open (pool_size + max_overflow)
    checked_out_mean: float | None = None
    checked_out_max: int | None = None
    overflow_in_use_max: int | None = None
    waiting_max: int | None = None  # requests waiting for a connection at once
    acquisitions: int | None = None
    pool_wait_ms_mean: float | None = None
    pool_wait_ms_p50: float | None = None
    pool_wait_ms_p99: float | None = None
    pool_wait_ms_max: float | None = None
    pool_timeouts: int | None = None
    loop_lag_ms_p50: float | None = None
    loop_lag_ms_p99: float | None = None
    loop_lag_ms_max: float | None = None
    threads_limit: int | None = None
    threads_busy_mean: float | None = None
    threads_busy_max: int | None = None
    threads_waiting_max: int | None = None


class DatabaseTelemetry(_Record):
    """The database's own connection counters (the probe's own connection is excluded where it can be)."""

    samples: int
    source: str  # e.g. "pg_stat_activity", "SHOW GLOBAL STATUS Threads_connected", "INFO clients"
    connections_mean: float | None = None
    connections_max: int | None = None
    # The most sessions seen at once in each state. PostgreSQL: "active", "idle", "idle in transaction", ...
    # and "wait:<wait_event_type>" for active ones ("wait:Client", "wait:Lock", "wait:Timeout" for pg_sleep);
    # MySQL: the bench database's sessions by command ("sleep", "query") and "state:<State>" for queries;
    # Redis: "blocked". Connections are per database for PostgreSQL, server-wide elsewhere.
    by_state_max: dict[str, int] = Field(default_factory=dict)
    note: str | None = None  # why there are no counts, e.g. a surrogate that does not report connections


class TelemetrySample(_Record):
    """One sample (t_s counts from the start of the warm-up, like TimelineSample.t_s); the timeline runs from
    the start of the warm-up to the end of the measurement."""

    t_s: float
    checked_out: int | None = None
    overflow_in_use: int | None = None
    waiting: int | None = None
    threads_busy: int | None = None
    loop_lag_ms_max: float | None = None  # the worst lag since the previous sample
    pool_wait_ms_p99: float | None = None  # over the waits since the previous sample
    db_connections: int | None = None
    db_by_state: dict[str, int] = Field(default_factory=dict)


class Telemetry(_Record):
    """What bench/probes/ sampled during one point: the measured period summarised, and every sample."""

    interval_s: float
    app: AppTelemetry | None = None
    database: DatabaseTelemetry | None = None
    timeline: list[TelemetrySample] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)  # a probe that failed (the point itself still counts)
