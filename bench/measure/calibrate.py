"""`bench calibrate`: how much load our generator can make on this machine, measured against wrk.

Locust spends hundreds of microseconds of CPU per request and shares 2 cores with the server, so a measured
ceiling may be the generator's, not the service's. Calibration drives one variant (the in-memory one by default:
it has no database to wait for) first with our Locust generator, then with wrk at the same connection count and
duration, on the same server process. The result is kept in results/calibration/ and every later run on the
same machine copies the latest into its run record.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from apps.catalog import all_variants
from bench.databases.registry import get_backend
from bench.measure.load import LoadError, LoadSettings, run_load
from bench.measure.server import ServerStartError, run_server
from bench.measure.wrk import run_wrk, wrk_path
from bench.records.errors import BenchError
from bench.records.measurements import latest_measurement, store_measurement
from bench.records.schema import Calibration, GeneratorFigures
from bench.records.urls import check_credentials
from bench.system.cpus import plan_cpus
from bench.system.environment import collect_environment, machine_label

CALIBRATION_DIR = "calibration"


@dataclass(frozen=True)
class CalibrateOptions:
    results_dir: Path
    variant: str = "memory"
    users: int = 50
    rate: float | None = None  # None: closed model, as fast as each generator can
    warmup_s: float = 3.0
    duration_s: float = 10.0
    dataset_rows: int = 10_000
    pool_size: int = 10
    max_overflow: int = 10
    pin_cpus: bool = False
    database_url: str | None = None


def calibrate(options: CalibrateOptions) -> Calibration:
    """Measure, store under results/calibration/ and return the calibration. BenchError on bad input."""
    variants = all_variants()
    if options.variant not in variants:
        raise BenchError(f"unknown variant {options.variant} (known: {', '.join(variants)})")
    info = variants[options.variant]
    cpus = plan_cpus(options.pin_cpus)
    backend = get_backend(info.backend)
    check_credentials(options.database_url, "--database-url")
    environment = collect_environment()
    with ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-calibrate-")))
        database = stack.enter_context(
            backend.provision(
                url=options.database_url,
                connections_needed=options.pool_size + options.max_overflow,
                dataset_rows=options.dataset_rows,
                work_dir=work_dir,
            )
        )
        backend.seed(database, options.dataset_rows)
        settings = {
            "BENCH_DATASET_ROWS": str(options.dataset_rows),
            "BENCH_POOL_SIZE": str(options.pool_size),
            "BENCH_MAX_OVERFLOW": str(options.max_overflow),
        }
        if database.url is not None:
            settings["BENCH_DATABASE_URL"] = database.url
        try:
            server = stack.enter_context(
                run_server(options.variant, settings=settings, log_path=work_dir / "uvicorn.log", cpus=cpus.server)
            )
            load = LoadSettings(
                scenario="read_heavy",
                users=options.users,
                spawn_rate=float(options.users),
                warmup_s=options.warmup_s,
                duration_s=options.duration_s,
                dataset_rows=options.dataset_rows,
                load_model="open" if options.rate else "closed",
                rate=options.rate,
                cpus=cpus.generator,
            )
            metrics = run_load(server.base_url, load, work_dir / "locust").metrics
        except (ServerStartError, LoadError) as exc:
            raise BenchError(f"calibration failed: {exc}") from None
        locust = GeneratorFigures(
            requests_per_s=metrics.requests_per_s,
            latency_ms_p50=metrics.latency_ms_p50,
            latency_ms_p99=metrics.latency_ms_p99,
            latency_ms_p999=metrics.latency_ms_p999,
            cpu_s=metrics.generator_cpu_s,
            cpu_us_per_request=metrics.generator_cpu_us_per_request,
        )
        wrk: GeneratorFigures | None = None
        if wrk_path() is not None:
            result = run_wrk(
                server.base_url,
                connections=options.users,
                duration_s=options.duration_s,
                dataset_rows=options.dataset_rows,
                work_dir=work_dir / "wrk",
                rate=options.rate,
                cpus=cpus.generator,
            )
            wrk = GeneratorFigures(
                requests_per_s=result.requests_per_s,
                latency_ms_p50=result.latency_ms_p50,
                latency_ms_p99=result.latency_ms_p99,
                latency_ms_p999=result.latency_ms_p999,
                cpu_s=result.cpu_s,
                cpu_us_per_request=result.cpu_s * 1e6 / result.requests if result.requests else None,
            )
    calibration = Calibration(
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=machine_label(environment),
        variant=options.variant,
        backend_label=database.label,
        users=options.users,
        rate=options.rate,
        duration_s=options.duration_s,
        pinned=options.pin_cpus,
        locust=locust,
        wrk=wrk,
        locust_to_wrk=locust.requests_per_s / wrk.requests_per_s if wrk and wrk.requests_per_s else None,
    )
    _store(options.results_dir, calibration)
    return calibration


def _store(results_dir: Path, calibration: Calibration) -> None:
    # Only the in-memory closed-loop ceiling is "the generator's ceiling" that later runs carry.
    latest = calibration.variant == "memory" and calibration.rate is None
    store_measurement(results_dir / CALIBRATION_DIR, calibration, suffix=f"-{calibration.variant}", latest=latest)


def latest_calibration(results_dir: Path, machine: str) -> Calibration | None:
    """The latest ceiling measured on this machine, or None (none made, another machine, unreadable)."""
    return latest_measurement(results_dir / CALIBRATION_DIR, Calibration, machine)
