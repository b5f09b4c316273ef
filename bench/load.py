"""Load: a Locust scenario run headless in its own process, its summary (HDR histograms) turned into our metrics."""

from __future__ import annotations

import ast
import json
import math
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TypedDict

from bench.latency import merge, summarise
from bench.processes import child_environment, log_tail, python_executable, start_child, stop_child
from bench.records import (
    EndpointMetrics,
    GeneratorSummary,
    LoadModel,
    PhaseSummary,
    PointMetrics,
    ScenarioOptionValue,
    TimelineSample,
)

SCENARIOS_DIR = Path(__file__).resolve().parent.parent / "scenarios"
_NOT_SCENARIOS = {"__init__", "base", "lean_client", "recording", "shapes"}
SUMMARY_FILE = "locust_summary.json"
LOG_FILE = "locust.log"
RUN_TIME_SLACK_S = 5


class LoadError(Exception):
    """The load generator failed; the message says why (from its log)."""


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
    return list(_scenario_catalog())


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
        raise ValueError(f"unknown scenario {name} (known: {', '.join(catalog)})")
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


# ---------------------------------------------------------------- the summary scenarios/recording.py writes


class EndpointSummary(TypedDict):
    requests: int
    failures: int
    histogram: str  # the latency users saw (corrected in the open model), encoded


class PhaseDump(TypedDict):
    requests: int
    failures: int
    late_requests: int
    started_at: float
    stopped_at: float | None
    histograms: dict[str, str]  # kind ("service", "corrected") -> encoded histogram
    by_name: dict[str, EndpointSummary]
    failures_by_kind: dict[str, int]


class TimelineDump(TypedDict):
    t_s: float
    phase: str
    users: int
    requests: int
    failures: int
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    stage: str | None


class LocustSummary(TypedDict):
    process: str
    load_model: LoadModel
    rate: float | None
    users: int
    late_after_ms: float
    started_at: float | None
    measure_started_at: float | None
    measure_stopped_at: float | None
    generator_cpu_s: float | None
    phases: dict[str, PhaseDump]  # "warmup", "measure"
    timeline: list[TimelineDump]


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
    scenario_options: dict[str, ScenarioOptionValue] = field(default_factory=dict)
    cpus: list[int] | None = None  # pin the Locust process to these CPUs


@dataclass(frozen=True)
class LoadResult:
    metrics: PointMetrics
    # Epoch seconds, so the harness can line up its telemetry samples with the load generator's periods.
    started_at: float
    measure_started_at: float
    measure_stopped_at: float


def run_load(target_url: str, settings: LoadSettings, raw_dir: Path) -> LoadResult:
    """Run Locust against `target_url` for warm-up + duration; raw files land in `raw_dir`."""
    if settings.load_model == "open" and not (settings.rate and settings.rate > 0):
        raise LoadError("the open load model needs a rate (requests per second) above 0")
    raw_dir.mkdir(parents=True, exist_ok=True)
    raw_dir = raw_dir.resolve()  # Locust runs in the project folder: every path it is given must be absolute
    summary_path = raw_dir / SUMMARY_FILE
    log_path = raw_dir / LOG_FILE
    run_time_s = math.ceil(settings.warmup_s + settings.duration_s)
    # No --csv: Locust's own statistics are switched off in scenarios/base.py (ours replace them), so its CSV
    # files would be empty; --only-summary stops its console printer, which would print them every 2 s.
    argv = [
        python_executable(), "-m", "locust",
        "-f", str(get_scenario(settings.scenario).path),
        "--headless", "--only-summary",
        "--host", target_url,
        "--users", str(settings.users),
        "--spawn-rate", f"{settings.spawn_rate:g}",
        "--run-time", f"{run_time_s + RUN_TIME_SLACK_S}s",  # a backstop: scenarios/base.py ends the test itself
        "--stop-timeout", "2",
        "--exit-code-on-error", "0",  # failed requests are data, recorded per kind, not a crash
        "--loglevel", "WARNING",
    ]  # fmt: skip
    env = child_environment(
        {
            "BENCH_DATASET_ROWS": str(settings.dataset_rows),
            "BENCH_WARMUP_S": f"{settings.warmup_s:g}",
            "BENCH_DURATION_S": f"{settings.duration_s:g}",
            "BENCH_USERS": str(settings.users),
            "BENCH_SPAWN_RATE": f"{settings.spawn_rate:g}",
            "BENCH_LOAD_MODEL": settings.load_model,
            "BENCH_RATE": f"{settings.rate:g}" if settings.load_model == "open" and settings.rate else "",
            "BENCH_SCENARIO_OPTIONS": json.dumps(settings.scenario_options),
            "BENCH_SUMMARY_PATH": str(summary_path),
            "BENCH_PROCESS_NAME": "local-1",
            "PYTHONPATH": str(SCENARIOS_DIR.parent),
        }
    )
    process = start_child(argv, env=env, log_path=log_path, cwd=SCENARIOS_DIR.parent, cpus=settings.cpus)
    try:
        process.wait(timeout=run_time_s + 60)
    except subprocess.TimeoutExpired:
        raise LoadError(f"Locust did not stop within {run_time_s + 60} s") from None
    finally:
        stop_child(process)
    if process.returncode != 0 or not summary_path.exists():
        raise LoadError(f"Locust failed (exit {process.returncode}): {log_tail(log_path) or 'no output'}")
    summary: LocustSummary = json.loads(summary_path.read_text(encoding="utf-8"))
    return result_from_summary(summary)


# ---------------------------------------------------------------- converting the summary, once, at the boundary


def result_from_summary(summary: LocustSummary) -> LoadResult:
    measure = summary["phases"].get("measure")
    started = summary["measure_started_at"]
    stopped = summary["measure_stopped_at"]
    if measure is None or started is None or stopped is None or stopped <= started or summary["started_at"] is None:
        raise LoadError("the run ended before the warm-up did; lengthen the duration")
    return LoadResult(
        metrics=metrics_from_summary(summary),
        started_at=summary["started_at"],
        measure_started_at=started,
        measure_stopped_at=stopped,
    )


def metrics_from_summary(summary: LocustSummary) -> PointMetrics:
    """The measured period's figures; latency_ms_* are the corrected latency in the open model, the service
    time in the closed one, all from the HDR histograms (exact to 3 significant digits)."""
    measure = summary["phases"]["measure"]
    measured_s = _seconds(measure)
    generator = _generator(summary["process"], measure, summary["generator_cpu_s"])
    generators = [generator]  # one Locust process today; several would merge below without loss
    histograms = {
        kind: merge([g.histograms[kind] for g in generators])
        for kind in ("service", "corrected")
        if all(kind in g.histograms for g in generators)
    }
    open_model = summary["load_model"] == "open"
    service = summarise(histograms["service"])
    corrected = summarise(histograms["corrected"]) if open_model else None
    seen = corrected or service
    requests = sum(g.requests for g in generators)
    failures = sum(g.failures for g in generators)
    cpu_s = summary["generator_cpu_s"]
    warmup = summary["phases"].get("warmup")
    return PointMetrics(
        requests=requests,
        failures=failures,
        error_rate=failures / requests if requests else 0.0,
        requests_per_s=requests / measured_s,
        measured_s=measured_s,
        latency_ms_mean=seen.mean_ms,
        latency_ms_p50=seen.p50_ms,
        latency_ms_p90=seen.p90_ms,
        latency_ms_p95=seen.p95_ms,
        latency_ms_p99=seen.p99_ms,
        latency_ms_p999=seen.p999_ms,
        latency_ms_max=seen.max_ms,
        failures_by_kind=measure["failures_by_kind"],
        by_name={name: _endpoint(entry, measured_s) for name, entry in measure["by_name"].items()},
        generator_cpu_s=cpu_s,
        generator_cpu_us_per_request=(cpu_s * 1e6 / requests) if cpu_s is not None and requests else None,
        load_model=summary["load_model"],
        service_time=service,
        corrected_latency=corrected,
        late_requests=measure["late_requests"],
        generator_cpu_utilisation=cpu_s / measured_s if cpu_s is not None else None,
        histograms=histograms,
        warmup=_warmup(warmup) if warmup is not None else None,
        timeline=[TimelineSample.model_validate(sample) for sample in summary["timeline"]],
        generators=generators,
    )


def _seconds(phase: PhaseDump) -> float:
    return (phase["stopped_at"] or phase["started_at"]) - phase["started_at"]


def _generator(process: str, measure: PhaseDump, cpu_s: float | None) -> GeneratorSummary:
    return GeneratorSummary(
        process=process,
        requests=measure["requests"],
        failures=measure["failures"],
        cpu_s=cpu_s,
        histograms=measure["histograms"],
    )


def _warmup(phase: PhaseDump) -> PhaseSummary:
    return PhaseSummary(
        requests=phase["requests"],
        failures=phase["failures"],
        seconds=_seconds(phase),
        service_time=summarise(phase["histograms"]["service"]),
        histograms=phase["histograms"],
    )


def _endpoint(entry: EndpointSummary, measured_s: float) -> EndpointMetrics:
    latency = summarise(entry["histogram"])
    return EndpointMetrics(
        requests=entry["requests"],
        failures=entry["failures"],
        requests_per_s=entry["requests"] / measured_s,
        latency_ms_p50=latency.p50_ms,
        latency_ms_p99=latency.p99_ms,
    )
