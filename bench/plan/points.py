"""Planning: a validated sweep specification expanded into the ordered list of points to measure."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from apps.catalog import VariantInfo, all_variants
from apps.dataset import DEFAULT_ROWS
from bench.measure.remote_workers import DEFAULT_MASTER_PORT
from bench.plan.faults import FaultSpec, check_fits, parse_fault
from bench.plan.target import check_target_url
from bench.records.latency import DEFAULT_ARRIVAL_SEED
from bench.records.schema import Arrivals, LoadModel, ScenarioOptionValue

PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Rate = Annotated[float, Field(gt=0, le=1_000_000)]

DEFAULT_VARIANTS = ("memory", "pg_sqla_sync", "pg_sqla_async", "pg_sqla_blocking")


class SweepSpec(BaseModel):
    """What a run measures. The same keys are accepted from CLI options and from a `--config` TOML file."""

    # allow_inf_nan: `--duration nan` or `inf` would pass every bound check and break the sweep later.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    variants: list[str] = Field(default_factory=lambda: list(DEFAULT_VARIANTS), min_length=1)
    scenario: str = "read_heavy"
    pool_sizes: list[PositiveInt] = Field(default_factory=lambda: [2, 5, 10], min_length=1)
    max_overflows: list[NonNegativeInt] = Field(default_factory=lambda: [0, 10], min_length=1)
    users: list[PositiveInt] = Field(default_factory=lambda: [50], min_length=1)
    spawn_rate: float | None = Field(default=None, gt=0)  # users started per second; None = all in 1 s
    warmup_s: float = Field(default=3.0, ge=0, le=3600)
    duration_s: float = Field(default=10.0, gt=0, le=86_400)
    repeat: PositiveInt = 1
    dataset_rows: int = Field(default=DEFAULT_ROWS, ge=1, le=10_000_000)
    pool_timeout_s: float = Field(default=30.0, gt=0)
    # Each a sweep dimension: [False, True] compares checking connections on checkout with not checking.
    pool_pre_ping: list[bool] = Field(default_factory=lambda: [False], min_length=1)
    # anyio's default limiter (40 tokens) caps concurrent `def` routes whatever the pool allows: a sweep dimension.
    thread_tokens: list[PositiveInt] = Field(default_factory=lambda: [40], min_length=1)
    workers: list[PositiveInt] = Field(default_factory=lambda: [1], min_length=1)  # uvicorn worker processes
    processes: int = Field(default=1, ge=1, le=64)  # Locust processes sending the load (distributed mode)
    # A database fault injected in every point's measured period, e.g. "db-restart:at=20s,down=5s".
    fault: str | None = None
    # Locust workers on other hosts (`bench worker --master HOST:PORT`), and where the master listens for them.
    remote_workers: int = Field(default=0, ge=0, le=1000)
    master_bind: str = "127.0.0.1"  # remote workers need an address they can reach, e.g. 0.0.0.0
    master_port: int = Field(default=DEFAULT_MASTER_PORT, ge=1, le=65534)
    # A service bench does not start (bench.plan.target): the pool settings above are then the ones it reports.
    target_url: str | None = None
    # closed: `users` keep one request each in flight. open: requests start at `rates` per second whatever the
    # server does, carried by `users` connections; latency then counts from each request's intended start.
    load_model: LoadModel = "closed"
    rates: list[Rate] = Field(default_factory=list)
    # Open model only: the arrival process (Poisson by default, set after validation) and the Poisson schedule's
    # seed (default DEFAULT_ARRIVAL_SEED, so runs are reproducible); None in the closed model, which has neither.
    arrivals: Arrivals | None = None
    arrival_seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    # The scenario's parameters (e.g. io_wait's wait_ms), checked against the OPTIONS its file declares;
    # after validation every option is present, defaults included, so records say exactly what ran.
    scenario_options: dict[str, ScenarioOptionValue] = Field(default_factory=dict)
    telemetry: bool = True  # the app's /metrics instrumentation; off only to measure what it costs
    pin_cpus: bool = False  # server and load generator on separate CPUs (the databases stay unpinned)

    @field_validator("variants")
    @classmethod
    def _known_variants(cls, names: list[str]) -> list[str]:
        known = all_variants()
        if "" in names:
            raise ValueError("an empty name (in a list: two commas in a row, or one at the end?)")
        names = [expanded for name in names for expanded in (known if name == "all" else [name])]
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValueError(f"unknown variant {', '.join(unknown)} (known: {', '.join(known)})")
        return list(dict.fromkeys(names))  # keep order, drop repeats

    @field_validator("scenario")
    @classmethod
    def _known_scenario(cls, name: str) -> str:
        from bench.measure.load import available_scenarios  # noqa: PLC0415 - avoids a cycle at import time

        if name not in available_scenarios():
            raise ValueError(f"unknown scenario {name} (known: {', '.join(available_scenarios())})")
        return name

    @field_validator("thread_tokens", "workers", "pool_pre_ping", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, int | str) else value  # `thread_tokens = 40` in a config file

    @field_validator("pool_sizes", "max_overflows", "users", "thread_tokens", "rates", "workers", "pool_pre_ping")
    @classmethod
    def _sorted_unique(cls, values: list[int]) -> list[int]:
        return sorted(set(values))

    @field_validator("fault")
    @classmethod
    def _valid_fault(cls, text: str | None) -> str | None:
        return None if text is None else parse_fault(text).text()

    @field_validator("target_url")
    @classmethod
    def _valid_target(cls, url: str | None) -> str | None:
        return None if url is None else check_target_url(url)

    @model_validator(mode="after")
    def _load_model_and_options(self) -> Self:
        if self.load_model == "open" and not self.rates:
            raise ValueError("the open load model needs --rate (requests per second)")
        if self.load_model == "closed" and self.rates:
            raise ValueError("--rate applies to the open load model only (add --load-model open)")
        if self.load_model == "closed" and (self.arrivals is not None or self.arrival_seed is not None):
            option = "--arrivals" if self.arrivals is not None else "--arrival-seed"
            raise ValueError(f"{option} applies to the open load model only (add --load-model open and --rate)")
        if self.load_model == "open":
            arrivals = self.arrivals or "poisson"
            if arrivals == "uniform" and self.arrival_seed is not None:
                raise ValueError("--arrival-seed applies to --arrivals poisson only (the uniform timetable is fixed)")
            seed = None  # the uniform timetable has nothing random to seed
            if arrivals == "poisson":
                seed = self.arrival_seed if self.arrival_seed is not None else DEFAULT_ARRIVAL_SEED
            object.__setattr__(self, "arrivals", arrivals)  # frozen model: the defaults are set once, here
            object.__setattr__(self, "arrival_seed", seed)
        from bench.measure.load import resolve_scenario_options  # noqa: PLC0415 - avoids a cycle at import time

        given = {key: _option_text(value) for key, value in self.scenario_options.items()}
        resolved = resolve_scenario_options(self.scenario, given)
        object.__setattr__(self, "scenario_options", resolved)  # frozen model: set once, here, validated
        if self.fault is not None:
            check_fits(parse_fault(self.fault), self.duration_s)
        return self

    def fault_spec(self) -> FaultSpec | None:
        return None if self.fault is None else parse_fault(self.fault)

    def max_connections_needed(self) -> int:
        """Connections the sweep may open at once: each uvicorn worker has its own pool, so the most workers
        x the largest pool (plus its overflow)."""
        return max(self.workers) * (max(self.pool_sizes) + max(self.max_overflows))


def _option_text(value: object) -> str:
    """Options arrive as text from the CLI and typed from TOML; both are checked by the same parser."""
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class Point:
    """One measurement: a variant under one pool setting and one load, at one repeat."""

    index: int
    variant: VariantInfo
    pool_size: int | None
    max_overflow: int | None
    users: int
    repeat_index: int
    thread_tokens: int = 40
    rate: float | None = None  # open model only
    pool_pre_ping: bool = False
    workers: int = 1

    @property
    def point_id(self) -> str:
        pool = f"ps{self.pool_size}-mo{self.max_overflow}" if self.pool_size is not None else "nopool"
        pool += "-pp" if self.pool_pre_ping else ""  # the defaults add nothing: older runs' ids stay as they were
        load = f"u{self.users}" if self.rate is None else f"u{self.users}-rate{self.rate:g}"
        load += f"-w{self.workers}" if self.workers > 1 else ""
        return f"{self.index:03d}-{self.variant.name}-{pool}-t{self.thread_tokens}-{load}-r{self.repeat_index}"

    def label(self) -> str:
        pool = f"pool_size={self.pool_size} max_overflow={self.max_overflow}" if self.variant.pooled else "no pool"
        pool += " pre_ping" if self.pool_pre_ping else ""
        load = f"users={self.users}" if self.rate is None else f"rate={self.rate:g}/s connections={self.users}"
        load += f" workers={self.workers}" if self.workers > 1 else ""
        return f"{self.variant.name} {pool} threads={self.thread_tokens} {load} repeat={self.repeat_index}"


def build_plan(spec: SweepSpec) -> list[Point]:
    """Expand the grid. Variants are interleaved inside each setting (A B C, A B C, ...) and repeats come as
    whole passes over the grid (A B C ... A B C ...), so that drift of the machine over the run does not
    favour one variant or one setting. A variant without a pool runs once per load; a variant without `def`
    routes once per pool setting, since the thread pool does not serve its requests."""
    catalog = all_variants()
    variants = [catalog[name] for name in spec.variants]
    rates: list[float | None] = list(spec.rates) if spec.load_model == "open" else [None]
    points: list[Point] = []
    done: set[tuple[object, ...]] = set()
    grid = list(
        product(
            spec.workers, spec.users, rates, spec.thread_tokens, spec.pool_sizes, spec.max_overflows,
            spec.pool_pre_ping, variants,
        )
    )  # fmt: skip
    for repeat_index in range(1, spec.repeat + 1):
        done.clear()
        for workers, users, rate, thread_tokens, pool_size, max_overflow, wants_pre_ping, variant in grid:
            size, overflow = (pool_size, max_overflow) if variant.pooled else (None, None)
            pre_ping = wants_pre_ping and variant.pooled  # no pool, nothing to check
            tokens = thread_tokens if variant.mode == "sync" else spec.thread_tokens[0]
            key = (variant.name, size, overflow, users, tokens, rate, pre_ping, workers)
            if key in done:
                continue
            done.add(key)
            points.append(
                Point(
                    len(points) + 1, variant, size, overflow, users, repeat_index, tokens, rate,
                    pool_pre_ping=pre_ping, workers=workers,
                )
            )  # fmt: skip
    return points
