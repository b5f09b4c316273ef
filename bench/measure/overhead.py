"""`bench overhead`: what the harness's own code costs, measured as each variant beside its yardstick.

A yardstick (apps/yardsticks/<variant>.py) is the ~30-line FastAPI app a user would write for the same access
pattern: one `GET /items/{item_id}` route, the same driver, pool settings, table and seeded rows, none of our
contract, telemetry or middleware. Both apps run in turn on the same database, under the same load, in
interleaved rounds (round 1: variant then yardstick, round 2: yardstick then variant, ...), so that a drift of
the machine's state hits both alike; a figure is the ratio of the two within a round, and the result is the
median and range of those ratios over the rounds. Rounds run across all variants in turn (round 1 of every
variant, then round 2, ...), so each variant's rounds are spread over the whole measurement.

The A/A control runs the first variant's yardstick beside itself in the same rounds. On a 2-core machine with
noisy neighbours identical apps differ by more than the 5% budget (measured: medians of 0.91-1.10 over 5-16
rounds), so a variant outside the budget is called over it only when a Mann-Whitney test separates its rounds
from the control's; otherwise it is "unresolved": this many rounds on this machine cannot tell.

The load is wrk (C, a fraction of Locust's CPU per request, so the generator is not what limits a 3,000 req/s
app on 2 cores) when installed, else our Locust generator, whose own ceiling then compresses every ratio
towards 1 (the record says which was used).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Literal

from apps.catalog import VariantInfo, all_variants
from bench.databases.backend import Database
from bench.databases.registry import get_backend
from bench.measure.load import LoadError, LoadSettings, run_load
from bench.measure.server import ServerStartError, run_server
from bench.measure.wrk import WrkResult, run_wrk, wrk_path
from bench.records.errors import BenchError
from bench.records.measurements import latest_measurement, store_measurement
from bench.records.overhead import (
    P99_RATIO_MAX,
    REQUESTS_RATIO_MIN,
    SIGNIFICANCE,
    AppFigures,
    Generator,
    OverheadRecord,
    OverheadRound,
    VariantOverhead,
    summarise,
)
from bench.records.stats import mann_whitney_u
from bench.records.urls import check_credentials
from bench.system.environment import PROJECT_ROOT, collect_environment, machine_label
from bench.system.processes import sigterm_as_interrupt

OVERHEAD_DIR = "overhead"
YARDSTICKS_DIR = PROJECT_ROOT / "apps" / "yardsticks"


@dataclass(frozen=True)
class OverheadOptions:
    results_dir: Path
    variants: list[str] | None = None  # None: every variant that has a yardstick
    rounds: int = 5  # fewer cannot separate a variant from the control at SIGNIFICANCE (5 + 5 can: p >= 0.008)
    connections: int = 32
    warmup_s: float = 3.0
    duration_s: float = 10.0
    pool_size: int = 16
    max_overflow: int = 0
    dataset_rows: int = 10_000
    telemetry: bool = True
    control: bool = True  # the A/A control: the first variant's yardstick beside itself
    generator: Generator | None = None  # None: wrk when installed, else Locust
    database_urls: Mapping[str, str | None] = field(default_factory=dict)


def yardstick_names() -> list[str]:
    return sorted(path.stem for path in YARDSTICKS_DIR.glob("*.py") if not path.name.startswith("_"))


def chosen_variants(requested: list[str] | None) -> list[VariantInfo]:
    """The variants to measure, in catalogue order; BenchError for an unknown one or one without a yardstick."""
    variants = all_variants()
    yardsticks = set(yardstick_names())
    if requested is None:
        return [info for name, info in variants.items() if name in yardsticks]
    for name in requested:
        if name not in variants:
            raise BenchError(f"unknown variant {name} (known: {', '.join(variants)})")
        if name not in yardsticks:
            have = ", ".join(sorted(yardsticks))
            raise BenchError(f"variant {name} has no yardstick in apps/yardsticks/ (have: {have})")
    return [variants[name] for name in dict.fromkeys(requested)]


def choose_generator(requested: Generator | None) -> Generator:
    if requested == "wrk" and wrk_path() is None:
        raise BenchError("--generator wrk: wrk is not installed (Debian: apt install wrk)")
    return requested or ("wrk" if wrk_path() is not None else "locust")


RoundDone = Callable[[str, OverheadRound], None]  # told of each round as it ends (the CLI prints progress)
CONTROL_LABEL = "A/A control"  # what progress and the table call the yardstick measured beside itself


def measure_overhead(options: OverheadOptions, on_round: RoundDone | None = None) -> OverheadRecord:
    """Measure every chosen variant beside its yardstick, store the record under results/overhead/, return it."""
    if options.rounds < 1:
        raise BenchError("--rounds must be at least 1")
    chosen = chosen_variants(options.variants)
    generator = choose_generator(options.generator)
    environment = collect_environment()
    # The control is a pair of apps like any other: (name, the variant whose yardstick it runs twice).
    pairs = [(info.name, info) for info in chosen]
    if options.control:
        pairs.insert(0, (CONTROL_LABEL, chosen[0]))
    rounds: dict[str, list[OverheadRound]] = {name: [] for name, _ in pairs}
    with ExitStack() as stack:
        stack.enter_context(sigterm_as_interrupt())  # SIGTERM stops every server as Ctrl-C does
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-overhead-")))
        databases = _provision(stack, chosen, options, work_dir)
        for number in range(1, options.rounds + 1):
            for name, info in pairs:
                control = name == CONTROL_LABEL
                measured_round = _measure_round(
                    info, databases[info.backend], number, options, generator, work_dir, control=control
                )
                rounds[name].append(measured_round)
                if on_round is not None:
                    on_round(name, measured_round)
    summaries = {
        name: summarise(info.name, info.backend, databases[info.backend].label, databases[info.backend].surrogate,
                        rounds[name])
        for name, info in pairs
    }  # fmt: skip
    control_summary = summaries.pop(CONTROL_LABEL, None)
    record = OverheadRecord(
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=machine_label(environment),
        generator=generator,
        connections=options.connections,
        warmup_s=options.warmup_s,
        duration_s=options.duration_s,
        pool_size=options.pool_size,
        max_overflow=options.max_overflow,
        dataset_rows=options.dataset_rows,
        telemetry=options.telemetry,
        variants=[judged(summary, control_summary) for summary in summaries.values()],
        control=control_summary,
    )
    store_measurement(options.results_dir / OVERHEAD_DIR, record)
    return record


def judged(variant: VariantOverhead, control: VariantOverhead | None) -> VariantOverhead:
    """The variant with its verdict: ok within the budget; outside it, over only when its rounds are unlike the
    control's (Mann-Whitney, two-sided, in the direction that misses the budget), else unresolved."""
    if variant.within_budget:
        return variant.model_copy(update={"verdict": "ok"})
    if control is None:
        return variant.model_copy(update={"verdict": "over"})
    p_values = []
    if variant.requests_ratio.median < REQUESTS_RATIO_MIN:
        p_values.append(
            _p_worse([r.requests_ratio for r in variant.rounds], [r.requests_ratio for r in control.rounds], lower=True)
        )
    if variant.p99_ratio.median > P99_RATIO_MAX:
        p_values.append(
            _p_worse([r.p99_ratio for r in variant.rounds], [r.p99_ratio for r in control.rounds], lower=False)
        )
    p_value = min(p_values)
    verdict = "over" if p_value < SIGNIFICANCE else "unresolved"
    return variant.model_copy(update={"verdict": verdict, "control_p": p_value})


def _p_worse(variant: list[float], control: list[float], *, lower: bool) -> float:
    """The two-sided p-value when the variant's ratios lie on the worse side of the control's; 1 otherwise."""
    worse = median(variant) < median(control) if lower else median(variant) > median(control)
    return mann_whitney_u(variant, control)[1] if worse else 1.0


def _provision(
    stack: ExitStack, chosen: list[VariantInfo], options: OverheadOptions, work_dir: Path
) -> dict[str, Database]:
    """One database per backend for the whole measurement, seeded once: both apps read the same rows."""
    databases: dict[str, Database] = {}
    for backend_name in dict.fromkeys(info.backend for info in chosen):
        backend = get_backend(backend_name)
        url = options.database_urls.get(backend_name)
        check_credentials(url, backend.url_option)
        database = stack.enter_context(
            backend.provision(
                url=url,
                connections_needed=options.pool_size + options.max_overflow,
                dataset_rows=options.dataset_rows,
                work_dir=work_dir,
            )
        )
        backend.seed(database, options.dataset_rows)
        databases[backend_name] = database
    return databases


def _app_settings(database: Database, options: OverheadOptions) -> dict[str, str]:
    settings = {
        "BENCH_POOL_SIZE": str(options.pool_size),
        "BENCH_MAX_OVERFLOW": str(options.max_overflow),
        "BENCH_DATASET_ROWS": str(options.dataset_rows),
        "BENCH_TELEMETRY": "true" if options.telemetry else "false",
    }
    if database.url is not None:
        settings["BENCH_DATABASE_URL"] = database.url
    return settings


def _measure_round(
    info: VariantInfo,
    database: Database,
    number: int,
    options: OverheadOptions,
    generator: Generator,
    work_dir: Path,
    *,
    control: bool = False,
) -> OverheadRound:
    """One variant/yardstick pair; for the control the yardstick takes the variant's place too."""
    # Odd rounds start with the variant, even ones with the yardstick: a drift hits both in turn.
    first: Literal["variant", "yardstick"] = "variant" if number % 2 == 1 else "yardstick"
    order = ("variant", "yardstick") if first == "variant" else ("yardstick", "variant")
    prefix = f"control-{info.name}" if control else info.name
    figures = {
        app: _measure_app(info, "yardstick" if control else app, database, options, generator,
                          work_dir / f"{prefix}-{number}-{app}")
        for app in order
    }  # fmt: skip
    return OverheadRound(round=number, first=first, variant=figures["variant"], yardstick=figures["yardstick"])


def _measure_app(
    info: VariantInfo, app: str, database: Database, options: OverheadOptions, generator: Generator, work_dir: Path
) -> AppFigures:
    yardstick = app == "yardstick"
    try:
        with run_server(
            info.name,
            settings=_app_settings(database, options),
            log_path=work_dir / "uvicorn.log",
            asgi_app=f"apps.yardsticks.{info.name}:app" if yardstick else None,
            ready_path="/openapi.json" if yardstick else "/health",
        ) as server:
            figures = _drive(server.base_url, options, generator, work_dir)
    except (ServerStartError, LoadError) as exc:
        raise BenchError(f"{info.name} ({app}): {exc}") from None
    if figures.requests_per_s <= 0:
        raise BenchError(f"{info.name} ({app}) served no request in {options.duration_s:g} s; see its log above")
    return figures


def _drive(base_url: str, options: OverheadOptions, generator: Generator, work_dir: Path) -> AppFigures:
    """Warm up, then measure, with only GET /items/{id} over the seeded ids (all a yardstick serves)."""
    if generator == "wrk":
        if options.warmup_s > 0:
            _wrk(base_url, options, options.warmup_s, work_dir / "warmup")
        result = _wrk(base_url, options, options.duration_s, work_dir / "measured")
        return AppFigures(
            requests_per_s=result.requests_per_s,
            latency_ms_p50=result.latency_ms_p50,
            latency_ms_p99=result.latency_ms_p99,
            errors=result.errors,
        )
    load = LoadSettings(
        scenario="read_heavy",
        users=options.connections,
        spawn_rate=float(options.connections),
        warmup_s=options.warmup_s,
        duration_s=options.duration_s,
        dataset_rows=options.dataset_rows,
        scenario_options={"get_weight": 1, "list_weight": 0},
    )
    metrics = run_load(base_url, load, work_dir / "locust").metrics
    return AppFigures(
        requests_per_s=metrics.requests_per_s,
        latency_ms_p50=metrics.latency_ms_p50,
        latency_ms_p99=metrics.latency_ms_p99,
        errors=metrics.failures,
    )


def _wrk(base_url: str, options: OverheadOptions, seconds: float, work_dir: Path) -> WrkResult:
    return run_wrk(
        base_url,
        connections=options.connections,
        duration_s=seconds,
        dataset_rows=options.dataset_rows,
        work_dir=work_dir,
        list_share=0.0,
    )


def latest_overhead(results_dir: Path, machine: str) -> OverheadRecord | None:
    """The latest `bench overhead` on this machine, or None (none made, another machine, unreadable)."""
    return latest_measurement(results_dir / OVERHEAD_DIR, OverheadRecord, machine)
