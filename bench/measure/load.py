"""Load: the scenario catalogue, and a Locust scenario run headless in its own process(es) (summaries: load_summary)."""

from __future__ import annotations

import ast
import hashlib
import json
import math
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from bench.measure.load_summary import LoadError, LoadResult, LocustSummary, result_from_summaries, result_from_summary
from bench.measure.remote_workers import PointBoard
from bench.records.latency import DEFAULT_ARRIVAL_SEED
from bench.records.schema import Arrivals, LoadModel, ScenarioOptionValue
from bench.system.environment import PROJECT_ROOT
from bench.system.processes import child_environment, free_port, log_tail, python_executable, start_child, stop_child

__all__ = ["LoadError", "LoadResult", "LoadSettings", "result_from_summary", "run_load"]

SCENARIOS_DIR = PROJECT_ROOT / "scenarios"
_NOT_SCENARIOS = {"__init__", "base", "lean_client", "recording", "shapes"}
# Scenarios the harness runs itself but `bench run` does not offer: they need a server of their own.
_INTERNAL_SCENARIOS = {"selftest_work"}  # bench selftest, against bench/measure/selftest_target.py
SUMMARY_FILE = "locust_summary.json"
STARTED_FILE = "locust_started"  # the epoch second the test started, written by the process that ends it
LOG_FILE = "locust.log"
RUN_TIME_SLACK_S = 5


# ---------------------------------------------------------------- the scenario catalogue and its options


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    description: str
    options: Mapping[str, ScenarioOptionValue]  # the module's OPTIONS literal: every option and its default
    limits: Mapping[str, tuple[float, float]]  # the module's LIMITS literal: inclusive bounds, where it sets them


def _module_literal(tree: ast.Module, name: str) -> object:
    """The value of a top-level `name = <literal>` (or `name: T = <literal>`), or None when there is none."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return ast.literal_eval(node.value) if node.value is not None else None
    return None


def _option_defaults(path: Path, literal: object) -> dict[str, ScenarioOptionValue]:
    if literal is None:
        return {}
    if not isinstance(literal, dict):
        raise ValueError(f"{path.name}: OPTIONS must be a dict literal")
    defaults: dict[str, ScenarioOptionValue] = {}
    for key, value in literal.items():
        ints = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        if not isinstance(key, str) or isinstance(value, bool) or not (isinstance(value, int | float | str) or ints):
            raise ValueError(f"{path.name}: option {key!r} must default to an int, float, str or list of ints")
        defaults[key] = value
    return defaults


def _option_limits(path: Path, literal: object) -> dict[str, tuple[float, float]]:
    if literal is None:
        return {}
    if not isinstance(literal, dict) or not all(
        isinstance(v, tuple) and len(v) == 2 and all(isinstance(b, int | float) for b in v) for v in literal.values()
    ):
        raise ValueError(f"{path.name}: LIMITS must map option names to (lowest, highest)")
    return {str(key): (float(low), float(high)) for key, (low, high) in literal.items()}


def _read_scenario(path: Path) -> Scenario:
    """A workload described from its source alone (never imported here: that would import locust)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree) or path.stem
    options = _option_defaults(path, _module_literal(tree, "OPTIONS"))
    limits = _option_limits(path, _module_literal(tree, "LIMITS"))
    return Scenario(path.stem, path, docstring.strip().splitlines()[0], options, limits)


@cache
def _scenario_catalog() -> dict[str, Scenario]:
    """Every workload file in scenarios/, labelled by its docstring's first line."""
    return {
        path.stem: _read_scenario(path)
        for path in sorted(SCENARIOS_DIR.glob("*.py"))
        if path.stem not in _NOT_SCENARIOS
    }


def available_scenarios() -> list[str]:
    """The workloads `bench run` offers (internal ones, which only the harness runs, left out)."""
    return [name for name in _scenario_catalog() if name not in _INTERNAL_SCENARIOS]


def get_scenario(name: str) -> Scenario:
    return _scenario_catalog()[name]


def scenario_option_defaults(name: str) -> dict[str, ScenarioOptionValue]:
    """Every option of scenario `name` with its default (a copy: callers may change it)."""
    return {key: list(value) if isinstance(value, list) else value for key, value in _known(name).options.items()}


def resolve_scenario_options(name: str, given: Mapping[str, str]) -> dict[str, ScenarioOptionValue]:
    """All of the scenario's options: its defaults, overridden by `given` (text, as from `--scenario-option
    key=value`; a list of ints is comma-separated), each converted to its default's type and checked
    against the scenario's LIMITS. Raises ValueError with a one-line message on an unknown key or bad value."""
    scenario = _known(name)
    resolved = scenario_option_defaults(name)
    for key, text in given.items():
        if key not in scenario.options:
            allowed = ", ".join(scenario.options) if scenario.options else "none"
            raise ValueError(f"unknown option {key!r} for scenario {name} (its options: {allowed})")
        resolved[key] = _parse_option(key, text, scenario.options[key], scenario.limits.get(key))
    return resolved


def _known(name: str) -> Scenario:
    catalog = _scenario_catalog()
    if name not in catalog:
        raise ValueError(f"unknown scenario {name} (known: {', '.join(available_scenarios())})")
    return catalog[name]


def _parse_option(
    key: str, text: str, default: ScenarioOptionValue, limits: tuple[float, float] | None
) -> ScenarioOptionValue:
    value: ScenarioOptionValue
    try:
        if isinstance(default, list):
            value = [int(part) for part in text.split(",") if part.strip()]
        elif isinstance(default, int):
            value = int(text)
        elif isinstance(default, float):
            value = float(text)
            if not math.isfinite(value):
                raise ValueError(text)
        else:
            value = text
    except ValueError:
        wanted = {list: "comma-separated integers", int: "an integer", float: "a number"}[type(default)]
        raise ValueError(f"scenario option {key}={text!r}: expected {wanted} (default {_shown(default)})") from None
    if limits is not None:
        low, high = limits
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, int | float) and not low <= v <= high for v in values):
            raise ValueError(f"scenario option {key}={text!r}: must be between {low:g} and {high:g}")
    return value


def _shown(value: ScenarioOptionValue) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, list) else str(value)


# ---------------------------------------------------------------- running Locust


@dataclass(frozen=True)
class LoadSettings:
    scenario: str
    users: int  # closed model: users; open model: connections (each user has one request in flight)
    spawn_rate: float
    warmup_s: float
    duration_s: float
    dataset_rows: int
    load_model: LoadModel = "closed"
    rate: float | None = None  # open model: tasks started per second by all users together (required there)
    arrivals: Arrivals = "poisson"  # open model: how the intended starts are spread (bench.records.latency)
    arrival_seed: int = DEFAULT_ARRIVAL_SEED  # open model, Poisson arrivals: the schedule's seed
    scenario_options: dict[str, ScenarioOptionValue] = field(default_factory=dict)
    cpus: list[int] | None = None  # pin the Locust process(es) to these CPUs
    processes: int = 1  # Locust processes that send (more than one: distributed mode, a master coordinating)
    remote: RemoteLoad | None = None  # Locust workers on other hosts (`bench worker`), beside the local ones


@dataclass(frozen=True)
class RemoteLoad:
    workers: int  # how many `bench worker`s the master waits for, besides the local processes
    bind: str  # the master's address, which the remote workers reach (0.0.0.0: every interface)
    port: int  # the master's port; the board that tells workers what to run listens on port + 1
    board: PointBoard


def run_load(target_url: str, settings: LoadSettings, raw_dir: Path) -> LoadResult:
    """Run Locust against `target_url` for warm-up + duration; raw files land in `raw_dir`. With several
    processes, Locust's distributed mode: a master on a 127.0.0.1 port that only coordinates (it spawns the
    users across the workers and ends the test) and `processes` workers that send, each writing its summary."""
    if settings.load_model == "open" and not (settings.rate and settings.rate > 0):
        raise LoadError("the open load model needs a rate (requests per second) above 0")
    raw_dir.mkdir(parents=True, exist_ok=True)
    raw_dir = raw_dir.resolve()  # Locust runs in the project folder: every path it is given must be absolute
    (raw_dir / STARTED_FILE).unlink(missing_ok=True)
    run_time_s = math.ceil(settings.warmup_s + settings.duration_s)
    # No --csv: Locust's own statistics are switched off in scenarios/base.py (ours replace them), so its CSV
    # files would be empty; --only-summary stops its console printer, which would print them every 2 s.
    test_argv = [
        "--headless", "--only-summary",
        "--host", target_url,
        "--users", str(settings.users),
        "--spawn-rate", f"{settings.spawn_rate:g}",
        "--run-time", f"{run_time_s + RUN_TIME_SLACK_S}s",  # a backstop: scenarios/base.py ends the test itself
        "--stop-timeout", "2",
        "--exit-code-on-error", "0",  # failed requests are data, recorded per kind, not a crash
    ]  # fmt: skip
    remote = settings.remote
    if settings.processes == 1 and remote is None:
        summaries = _run_children(
            [_Child("local-1", raw_dir / LOG_FILE, test_argv, raw_dir / SUMMARY_FILE)], settings, raw_dir, run_time_s
        )
        return result_from_summaries(summaries)
    bind, port = (remote.bind, remote.port) if remote is not None else ("127.0.0.1", free_port())
    workers = settings.processes + (remote.workers if remote is not None else 0)
    master = [
        *test_argv, "--master", "--master-bind-host", bind, "--master-bind-port", str(port),
        "--expect-workers", str(workers), "--expect-workers-max-wait", str(WORKERS_WAIT_S),
    ]  # fmt: skip
    worker = ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    children = [_Child("master", raw_dir / "locust-master.log", master)] + [
        _Child(f"local-{n}", raw_dir / f"locust-local-{n}.log", worker) for n in range(1, settings.processes + 1)
    ]
    for stale in raw_dir.glob("locust_summary-*.json"):
        stale.unlink()
    if remote is not None:
        remote.board.publish(_published_point(settings, raw_dir.name, port))
    try:
        _run_children(children, settings, raw_dir, run_time_s + WORKERS_WAIT_S)
    finally:
        if remote is not None:
            remote.board.publish(None)
    paths = sorted(raw_dir.glob("locust_summary-*.json"))
    if len(paths) < workers:
        raise LoadError(
            f"only {len(paths)} of {workers} Locust workers sent their figures: "
            f"{log_tail(raw_dir / 'locust-master.log') or 'the master logged nothing'}"
        )
    return result_from_summaries([json.loads(path.read_text(encoding="utf-8")) for path in paths])


# Seconds the master waits for its workers to connect before it gives up (local ones start in about a second;
# remote `bench worker`s poll for the next point every half second).
WORKERS_WAIT_S = 30


@dataclass(frozen=True)
class _Child:
    name: str  # "local-1"..., or "master", which sends nothing itself
    log_path: Path
    argv: list[str]  # Locust options after the locustfile
    summary_path: Path | None = None  # a single process writes its own summary; workers send theirs to the master


def _run_children(
    children: list[_Child], settings: LoadSettings, raw_dir: Path, run_time_s: float
) -> list[LocustSummary]:
    started: list[tuple[_Child, subprocess.Popen[bytes]]] = []
    timeout_s = run_time_s + 60
    try:
        for child in children:
            argv = [
                python_executable(), "-m", "locust", "-f", str(get_scenario(settings.scenario).path),
                *child.argv, "--loglevel", "WARNING",
            ]  # fmt: skip
            env = scenario_env(settings) | {
                "BENCH_PROCESS_NAME": child.name,
                "BENCH_SUMMARY_PATH": str(child.summary_path or ""),
                "BENCH_SUMMARY_DIR": str(raw_dir) if child.name == "master" else "",
                "BENCH_STARTED_PATH": str(raw_dir / STARTED_FILE),
                "PYTHONPATH": str(SCENARIOS_DIR.parent),
            }
            process = start_child(
                argv, env=child_environment(env), log_path=child.log_path, cwd=SCENARIOS_DIR.parent, cpus=settings.cpus
            )
            started.append((child, process))
        deadline = time.monotonic() + timeout_s
        for child, process in started:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                raise LoadError(f"Locust ({child.name}) did not stop within {timeout_s:.0f} s") from None
    finally:
        for _, process in reversed(started):
            stop_child(process)
    for child, process in started:
        if process.returncode != 0 or (child.summary_path is not None and not child.summary_path.exists()):
            reason = log_tail(child.log_path) or "no output"
            raise LoadError(f"Locust ({child.name}) failed (exit {process.returncode}): {reason}")
    return [json.loads(c.summary_path.read_text(encoding="utf-8")) for c, _ in started if c.summary_path is not None]


def scenario_env(settings: LoadSettings) -> dict[str, str]:
    """What scenarios/base.py reads at import (see its docstring), the same for every process of a point."""
    return {
        "BENCH_DATASET_ROWS": str(settings.dataset_rows),
        "BENCH_WARMUP_S": f"{settings.warmup_s:g}",
        "BENCH_DURATION_S": f"{settings.duration_s:g}",
        "BENCH_USERS": str(settings.users),
        "BENCH_SPAWN_RATE": f"{settings.spawn_rate:g}",
        "BENCH_LOAD_MODEL": settings.load_model,
        "BENCH_RATE": f"{settings.rate:g}" if settings.load_model == "open" and settings.rate else "",
        "BENCH_ARRIVALS": settings.arrivals,
        "BENCH_ARRIVAL_SEED": str(settings.arrival_seed),
        "BENCH_SCENARIO_OPTIONS": json.dumps(settings.scenario_options),
    }


def _published_point(settings: LoadSettings, point: str, master_port: int) -> dict[str, object]:
    """What a remote `bench worker` needs to join this point's master (bench.measure.remote_workers)."""
    scenario = get_scenario(settings.scenario)
    return {
        "point": point,
        "scenario": scenario.name,
        "scenario_sha256": hashlib.sha256(scenario.path.read_bytes()).hexdigest(),
        "master_port": master_port,
        "env": scenario_env(settings),
    }


def test_started_at(raw_dir: Path) -> float | None:
    """When the running test in `raw_dir` started (epoch seconds), once Locust has said so; None before."""
    try:
        return float((raw_dir.resolve() / STARTED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
