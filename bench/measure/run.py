"""Orchestration: provision the databases, then measure each planned point in turn and record it."""

from __future__ import annotations

import re
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from apps.masking import mask_url
from bench.databases.backend import Backend, Database
from bench.databases.registry import get_backend
from bench.measure.calibrate import latest_calibration
from bench.measure.fault_injection import FaultInjector
from bench.measure.load import LoadError, LoadSettings, RemoteLoad, run_load, test_started_at
from bench.measure.overhead import latest_overhead
from bench.measure.remote_workers import PointBoard
from bench.measure.server import ServerStartError, run_server
from bench.plan.faults import fault_record
from bench.plan.points import Point, SweepSpec, build_plan
from bench.plan.target import Target, describe_target, remote_server, sweep_on_target, unobserved_database
from bench.probes.sampler import TelemetrySampler
from bench.records.errors import BenchError
from bench.records.latency import DEFAULT_ARRIVAL_SEED
from bench.records.run_folder import RunFolder, create_run_folder, open_run, remove_run_folder, run_lock
from bench.records.schema import (
    GENERATOR_LIMITED,
    RATE_NOT_REACHED,
    STALLED,
    Calibration,
    DatabaseInfo,
    FaultRecord,
    PointConfig,
    PointMetrics,
    PointRecord,
    RunRecord,
    SeedInfo,
    ServerInfo,
)
from bench.records.stats import group_repeats
from bench.records.telemetry import Telemetry
from bench.records.urls import check_credentials
from bench.system.cpus import CpuPlan, plan_cpus
from bench.system.environment import collect_environment, machine_label
from bench.system.processes import sigterm_as_interrupt

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


class SweepObserver(Protocol):
    """Whoever shows progress (the CLI's progress bar, or nothing in tests)."""

    def sweep_started(self, run_id: str, total: int) -> None: ...
    def point_started(self, point: Point) -> None: ...
    def point_finished(self, point: Point, record: PointRecord) -> None: ...


@dataclass(frozen=True)
class RunOptions:
    spec: SweepSpec
    database_urls: dict[str, str | None]  # by backend name; None or absent: bench finds or starts one
    results_dir: Path
    run_id: str | None
    argv: list[str]
    fresh_servers: bool = False  # start throwaway servers even where one answers on the default local port


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id(suffix: str | None = None) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{suffix}" if suffix else stamp


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise BenchError(f"invalid --run-id {run_id!r}: use letters, digits, '.', '_' or '-' (max 80)")
    return run_id


def _database_info(database: Database) -> DatabaseInfo:
    return DatabaseInfo(
        kind=database.backend,
        label=database.label,
        url=mask_url(database.url) if database.url else None,
        embedded=database.embedded,
        surrogate=database.surrogate,
        source=database.source,
        version=database.version,
        settings=database.settings,
    )


def _point_config(point: Point, spec: SweepSpec, database: Database, cpus: CpuPlan) -> PointConfig:
    variant = point.variant
    return PointConfig(
        variant=variant.name,
        backend=variant.backend,
        backend_label=database.label,
        mode=variant.mode,
        driver=variant.driver,
        pooled=variant.pooled,
        scenario=spec.scenario,
        pool_size=point.pool_size,
        max_overflow=point.max_overflow,
        users=point.users,
        spawn_rate=spec.spawn_rate or float(point.users),
        warmup_s=spec.warmup_s,
        duration_s=spec.duration_s,
        repeat_index=point.repeat_index,
        pool_timeout_s=spec.pool_timeout_s,
        pool_pre_ping=point.pool_pre_ping,
        thread_tokens=point.thread_tokens,
        workers=point.workers,
        dataset_rows=spec.dataset_rows,
        load_model=spec.load_model,
        rate=point.rate,
        arrivals=spec.arrivals,
        arrival_seed=spec.arrival_seed,
        scenario_options=spec.scenario_options,
        server_cpus=cpus.server,
        generator_cpus=cpus.generator,
        telemetry=spec.telemetry,
        generator_processes=spec.processes,
        fault=spec.fault if database.control is not None else None,
        target_url=spec.target_url,
    )


def _app_settings(config: PointConfig, database_url: str | None) -> dict[str, str]:
    settings = {
        "BENCH_THREAD_TOKENS": str(config.thread_tokens),
        "BENCH_DATASET_ROWS": str(config.dataset_rows),
        "BENCH_TELEMETRY": "true" if config.telemetry else "false",
    }
    if database_url is not None:
        settings["BENCH_DATABASE_URL"] = database_url
    if config.pool_size is not None and config.max_overflow is not None:
        settings |= {
            "BENCH_POOL_SIZE": str(config.pool_size),
            "BENCH_MAX_OVERFLOW": str(config.max_overflow),
            "BENCH_POOL_TIMEOUT_S": f"{config.pool_timeout_s:g}",
            "BENCH_POOL_PRE_PING": "true" if config.pool_pre_ping else "false",
        }
    return settings


def _check_app_config(config: PointConfig, health: dict[str, object]) -> None:
    """The app reports the settings it actually runs with; a mismatch would make the point meaningless."""
    reported = health.get("config")
    if not isinstance(reported, dict):
        raise ServerStartError("the app's /health did not report its configuration")
    expected: dict[str, object] = {"thread_tokens": config.thread_tokens, "telemetry": config.telemetry}
    if config.pooled:
        expected |= {"pool_size": config.pool_size, "max_overflow": config.max_overflow}
    wrong = {key: (value, reported.get(key)) for key, value in expected.items() if reported.get(key) != value}
    if wrong:
        details = ", ".join(f"{key}={got} (expected {want})" for key, (want, got) in wrong.items())
        raise ServerStartError(f"the app runs with other settings than requested: {details}")


@dataclass(frozen=True)
class PointContext:
    """What every point of a run shares."""

    spec: SweepSpec
    folder: RunFolder
    run_id: str
    cpus: CpuPlan
    calibration: Calibration | None = None
    target: Target | None = None  # a service bench did not start (--target-url)
    remote: RemoteLoad | None = None  # Locust workers on other hosts join every point


def measure_point(point: Point, context: PointContext, database: Database, backend: Backend) -> PointRecord:
    """Seed, start the app, load it while sampling telemetry, stop it. A failure is recorded with its reason,
    not raised."""
    spec, folder, run_id = context.spec, context.folder, context.run_id
    started_at = now_iso()
    config = _point_config(point, spec, database, context.cpus)
    raw_dir = folder.raw_dir(point.point_id)
    seed: SeedInfo | None = None
    server_info: ServerInfo | None = None
    telemetry: Telemetry | None = None
    fault: FaultRecord | None = None
    try:
        # A target's database is seeded only when bench was given its URL; else its dataset is the user's to set.
        result = backend.seed(database, spec.dataset_rows) if database.url is not None or not context.target else None
        if result is not None:
            seed = SeedInfo(rows=result.rows, reused=result.reused, seconds=round(result.seconds, 3))
        with (
            run_server(
                point.variant.name,
                settings=_app_settings(config, database.url),
                log_path=raw_dir / "uvicorn.log",
                workers=point.workers,
                cpus=context.cpus.server,
            )
            if context.target is None
            else nullcontext(remote_server(context.target))
        ) as server:
            _check_app_config(config, server.health)
            server_info = ServerInfo(
                port=server.port,
                pid=server.pid,
                loop=server.loop,
                http=server.http,
                access_log=False,
                app_health=server.health,
            )
            load = LoadSettings(
                scenario=spec.scenario,
                users=point.users,
                spawn_rate=config.spawn_rate,
                warmup_s=spec.warmup_s,
                duration_s=spec.duration_s,
                dataset_rows=spec.dataset_rows,
                load_model=spec.load_model,
                rate=point.rate,
                arrivals=spec.arrivals or "poisson",  # None only in the closed model, which ignores it
                arrival_seed=spec.arrival_seed if spec.arrival_seed is not None else DEFAULT_ARRIVAL_SEED,
                scenario_options=spec.scenario_options,
                cpus=context.cpus.generator,
                processes=spec.processes,
                remote=context.remote,
            )
            control = database.control  # None: no fault on this database (the in-memory baseline, say)
            fault_spec = spec.fault_spec() if control is not None else None
            sampler = TelemetrySampler(
                app_url=server.base_url, database=database, database_expected_down=fault_spec is not None
            )
            injector: FaultInjector | None = None
            with ExitStack() as during_load:
                during_load.enter_context(sampler)
                if fault_spec is not None and control is not None:
                    started = partial(test_started_at, raw_dir)
                    delay_s = spec.warmup_s + fault_spec.at_s
                    injector = during_load.enter_context(FaultInjector(fault_spec, control, started, delay_s))
                loaded = run_load(server.base_url, load, raw_dir)
            metrics = loaded.metrics
            telemetry = sampler.summary(loaded.started_at, loaded.measure_started_at, loaded.measure_stopped_at)
            if injector is not None and fault_spec is not None:
                fault = fault_record(fault_spec, injector.times(), loaded)
    except (ServerStartError, LoadError, BenchError) as exc:
        message = exc.message if isinstance(exc, BenchError) else str(exc)
        return PointRecord(
            run_id=run_id,
            point_id=point.point_id,
            index=point.index,
            status="failed",
            error=mask_url(message),
            config=config,
            server=server_info,
            seed=seed,
            started_at=started_at,
            finished_at=now_iso(),
            raw_files=_raw_files(folder, raw_dir),
        )
    return PointRecord(
        run_id=run_id,
        point_id=point.point_id,
        index=point.index,
        status="ok",
        flags=point_flags(config, metrics, context.calibration),
        config=config,
        metrics=metrics,
        telemetry=telemetry,
        fault=fault,
        server=server_info,
        seed=seed,
        started_at=started_at,
        finished_at=now_iso(),
        raw_files=_raw_files(folder, raw_dir),
    )


# One Locust process runs on one core: past this share of a core it, not the service, sets the pace.
GENERATOR_BUSY_SHARE = 0.9
# The open model promised `rate`; below this share of it the figures describe a lighter load than asked.
RATE_REACHED_SHARE = 0.9


def point_flags(config: PointConfig, metrics: PointMetrics, calibration: Calibration | None = None) -> list[str]:
    """Conditions a reader must know before trusting a point.

    stalled: no request completed. A real result (e.g. a sync variant whose thread pool and connection pool
    wait on each other), but not to be mistaken for a slow run.
    generator-limited: the load generator's CPU was saturated, or the point reached the generator's calibrated
    ceiling (`bench calibrate`, same scenario and model), so throughput is the generator's, not the service's.
    rate-not-reached: the open model fell short of its rate (too few connections for the latency, or the
    generator could not keep up); the point measured a lighter load than its label says.
    """
    flags: list[str] = []
    if metrics.requests == 0:
        flags.append(STALLED)
    busy = metrics.generator_cpu_utilisation
    processes = max(1, len(metrics.generators))
    at_ceiling = (
        calibration is not None
        and config.scenario == "read_heavy"
        and config.load_model == "closed"
        and metrics.requests_per_s >= GENERATOR_BUSY_SHARE * calibration.locust.requests_per_s
    )
    if at_ceiling or (busy is not None and busy >= GENERATOR_BUSY_SHARE * processes):
        flags.append(GENERATOR_LIMITED)
    if config.rate is not None and metrics.requests_per_s < RATE_REACHED_SHARE * config.rate:
        flags.append(RATE_NOT_REACHED)
    return flags


def _raw_files(folder: RunFolder, raw_dir: Path) -> list[str]:
    if not raw_dir.is_dir():
        return []
    return sorted(str(path.relative_to(folder.path)) for path in raw_dir.iterdir() if path.is_file())


def _check_faultable(fault: str, databases: dict[str, Database]) -> None:
    """BenchError unless bench can stop and freeze every database of the run (the in-memory baseline has none:
    its points run without the fault, as the control group)."""
    for database in databases.values():
        if database.backend != "memory" and database.control is None:
            how = f"is not ({database.source})" if not database.embedded else "cannot be stopped by bench yet"
            raise BenchError(
                f"--fault {fault} needs a database bench started itself, and {database.label} {how}; "
                f"leave out {database.backend}'s URL so bench starts a throwaway server, or inject the fault by "
                "hand (README: Database faults)"
            )


def _backends_of(points: list[Point]) -> dict[str, Backend]:
    """The backends the plan needs, in plan order; fails (one line) before anything starts if one is missing."""
    names = dict.fromkeys(p.variant.backend for p in points)
    return {name: get_backend(name) for name in names}


@dataclass
class _Job:
    """What one `bench run` (fresh or resumed) measures into a run folder."""

    folder: RunFolder
    run: RunRecord  # as it stands before this invocation measures anything
    spec: SweepSpec
    todo: list[Point]  # in plan order
    recorded: dict[str, PointRecord]  # points already in the folder that stay, by point_id
    backends: dict[str, Backend]
    cpus: CpuPlan
    database_urls: dict[str, str | None]
    resume_argv: list[str] | None = None  # a resumed run: the command line that resumed it
    target: Target | None = None
    fresh_servers: bool = False


def _with_counts(run: RunRecord, records: dict[str, PointRecord]) -> RunRecord:
    ok = sum(1 for record in records.values() if record.status == "ok")
    return run.model_copy(update={"points_ok": ok, "points_failed": len(records) - ok})


def _measure(job: _Job, observer: SweepObserver) -> RunFolder:
    """Provision the backends the job needs, measure its points and keep run.json truthful throughout: complete
    at the end, incomplete on Ctrl-C/SIGTERM, failed on an error after something was measured."""
    folder, spec = job.folder, job.spec
    run = job.run
    records = dict(job.recorded)
    measured = 0
    try:
        for name, backend in job.backends.items():  # before any driver sees a URL it would split wrongly
            check_credentials(job.database_urls.get(name), backend.url_option)
        with ExitStack() as stack:
            stack.enter_context(sigterm_as_interrupt())
            databases: dict[str, Database] = {}
            for name, backend in job.backends.items():
                if job.target is not None and job.database_urls.get(name) is None:
                    databases[name] = unobserved_database(job.target)
                    continue
                databases[name] = stack.enter_context(
                    backend.provision(
                        url=job.database_urls.get(name),
                        connections_needed=spec.max_connections_needed(),
                        dataset_rows=spec.dataset_rows,
                        work_dir=folder.path,
                        local=not job.fresh_servers,
                    )
                )
            if spec.fault is not None:
                _check_faultable(spec.fault, databases)
            infos = {n: _database_info(d) for n, d in databases.items()}
            if job.resume_argv is not None:
                # The points measured before keep the databases recorded then; this session's are kept in the
                # environment's resume entry, and fill in backends the interrupted run never got to provision.
                run = _with_resume_entry(run, job.resume_argv, infos, job.todo)
                infos |= run.databases
            run = _with_counts(run.model_copy(update={"status": "running", "databases": infos}), records)
            folder.write_run(run)
            observer.sweep_started(folder.run_id, len(job.todo))
            remote = None
            if spec.remote_workers:
                board = PointBoard(spec.master_bind, spec.master_port)
                stack.callback(board.close)
                remote = RemoteLoad(spec.remote_workers, spec.master_bind, spec.master_port, board)
            context = PointContext(spec, folder, folder.run_id, job.cpus, run.calibration, job.target, remote)
            for point in job.todo:
                observer.point_started(point)
                folder.discard_point(point.point_id)
                records.pop(point.point_id, None)
                backend_name = point.variant.backend
                record = measure_point(point, context, databases[backend_name], job.backends[backend_name])
                folder.write_point(record)
                records[point.point_id] = record
                if spec.repeat > 1:
                    folder.write_aggregates(group_repeats(sorted(records.values(), key=lambda r: r.index)))
                measured += 1
                run = _with_counts(run, records)
                folder.write_run(run)
                observer.point_finished(point, record)
        run = run.model_copy(update={"status": "complete", "finished_at": now_iso(), "error": None})
        folder.write_run(run)
        return folder
    except BenchError as exc:
        if measured == 0:
            if job.resume_argv is not None:
                folder.write_run(job.run)  # nothing measured: the run stays as it was, to be resumed again
            else:
                remove_run_folder(folder)
            raise
        folder.write_run(run.model_copy(update={"status": "failed", "finished_at": now_iso(), "error": exc.message}))
        raise
    except KeyboardInterrupt:
        folder.write_run(
            _with_counts(run, records).model_copy(
                update={"status": "incomplete", "finished_at": now_iso(), "error": "interrupted"}
            )
        )
        raise
    except Exception as exc:
        # A defect, not a user error: keep the record truthful, then let the traceback through.
        folder.write_run(run.model_copy(update={"status": "failed", "finished_at": now_iso(), "error": repr(exc)}))
        raise


def execute_run(options: RunOptions, observer: SweepObserver) -> RunFolder:
    """Run the whole sweep. Returns the run folder; raises BenchError for problems found before measuring
    (then no run folder is left) and KeyboardInterrupt after marking the run incomplete."""
    spec = options.spec
    target = describe_target(spec.target_url) if spec.target_url is not None else None
    if target is not None:
        spec = sweep_on_target(spec, target)
    plan = build_plan(spec)
    backends = _backends_of(plan)
    run_id = check_run_id(options.run_id) if options.run_id is not None else new_run_id()
    cpus = plan_cpus(spec.pin_cpus)
    environment = collect_environment()
    calibration = latest_calibration(options.results_dir, machine_label(environment))
    overhead = latest_overhead(options.results_dir, machine_label(environment))
    folder = create_run_folder(options.results_dir, run_id)
    run = RunRecord(
        run_id=run_id,
        status="running",
        created_at=now_iso(),
        argv=[mask_url(arg) for arg in options.argv],
        sweep=spec.model_dump(mode="json"),
        environment=environment,
        points_planned=len(plan),
        calibration=calibration,
        overhead=overhead,
    )
    job = _Job(
        folder, run, spec, plan, {}, backends, cpus, options.database_urls,
        target=target, fresh_servers=options.fresh_servers,
    )  # fmt: skip
    with run_lock(folder):
        return _measure(job, observer)


@dataclass(frozen=True)
class ResumeOptions:
    run: str  # a run id in results_dir, or a path to a run folder
    database_urls: dict[str, str | None]  # not in the record unmasked: given again, or found/started as usual
    results_dir: Path
    retry_failed: bool  # measure failed points again too, not only the missing ones
    argv: list[str]
    fresh_servers: bool = False


def resume_run(options: ResumeOptions, observer: SweepObserver) -> RunFolder:
    """Measure the planned points of an interrupted run that have no record (and, with retry_failed, those that
    failed), with their original ids and indexes, into the same folder. BenchError (one line) when the run
    cannot be resumed: missing, corrupt, complete, or being measured by a live bench."""
    folder = open_run(options.results_dir, options.run)
    run = folder.load_run()
    spec, plan = _recorded_plan(folder, run)
    with run_lock(folder):
        recorded = _recorded_points(folder, plan)
        todo = [
            point
            for point in plan
            if point.point_id not in recorded or (options.retry_failed and recorded[point.point_id].status == "failed")
        ]
        if not todo:
            return _finish_measured_run(folder, run, recorded, options.retry_failed)
        job = _Job(
            folder=folder,
            run=run,
            spec=spec,
            todo=todo,
            recorded=recorded,
            backends=_backends_of(todo),
            cpus=plan_cpus(spec.pin_cpus),
            database_urls=options.database_urls,
            resume_argv=options.argv,
            target=_same_target(spec),
            fresh_servers=options.fresh_servers,
        )
        return _measure(job, observer)


def _same_target(spec: SweepSpec) -> Target | None:
    """A resumed run on a target measures it again only if it still runs what the run recorded."""
    if spec.target_url is None:
        return None
    target = describe_target(spec.target_url)
    if sweep_on_target(spec, target) != spec:
        raise BenchError(
            f"cannot resume: {spec.target_url} now runs {target.variant} with other settings than the run recorded"
        )
    return target


def _recorded_plan(folder: RunFolder, run: RunRecord) -> tuple[SweepSpec, list[Point]]:
    """The run's plan rebuilt from its recorded sweep: the same points, ids and indexes as when it started."""
    try:
        spec = SweepSpec.model_validate(run.sweep)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "sweep"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise BenchError(
            f"cannot resume run {folder.run_id}: its recorded sweep is not valid ({where}: {message})"
        ) from None
    plan = build_plan(spec)
    if len(plan) != run.points_planned:
        raise BenchError(
            f"cannot resume run {folder.run_id}: its sweep now plans {len(plan)} points, "
            f"not the {run.points_planned} it recorded (the variants or scenarios changed since)"
        )
    return spec, plan


def _recorded_points(folder: RunFolder, plan: list[Point]) -> dict[str, PointRecord]:
    """The point records in the folder, each checked to belong to the plan at its recorded index."""
    planned = {point.point_id: point for point in plan}
    recorded: dict[str, PointRecord] = {}
    for record in folder.load_points():
        point = planned.get(record.point_id)
        if point is None or point.index != record.index or record.point_id in recorded:
            raise BenchError(
                f"cannot resume run {folder.run_id}: point {record.point_id} is not a point of its recorded sweep"
            )
        recorded[record.point_id] = record
    return recorded


def _finish_measured_run(
    folder: RunFolder, run: RunRecord, recorded: dict[str, PointRecord], retry_failed: bool
) -> RunFolder:
    """Every planned point has its record: refuse a complete run; mark one interrupted just after its last
    point (before run.json said so) complete, as the uninterrupted run would have."""
    if run.status == "complete":
        counted = _with_counts(run, recorded)
        hint = "; --retry-failed measures its failed points again" if counted.points_failed and not retry_failed else ""
        raise BenchError(
            f"run {folder.run_id} is complete ({counted.points_ok} ok, {counted.points_failed} failed): "
            f"nothing to resume{hint}"
        )
    finished = _with_counts(run, recorded).model_copy(
        update={"status": "complete", "finished_at": now_iso(), "error": None}
    )
    folder.write_run(finished)
    return folder


def _with_resume_entry(
    run: RunRecord, argv: list[str], databases: dict[str, DatabaseInfo], todo: list[Point]
) -> RunRecord:
    """The record keeps the argv that planned the run; each resume is noted in its environment (a free-form
    mapping, so the schema stays as it is): when, with which command line, which points, on which databases."""
    entry = {
        "resumed_at": now_iso(),
        "argv": [mask_url(arg) for arg in argv],
        "points": [point.point_id for point in todo],
        "databases": {name: info.model_dump(mode="json") for name, info in databases.items()},
    }
    resumes = [*run.environment.get("resumes", []), entry]
    return run.model_copy(update={"environment": run.environment | {"resumes": resumes}})
