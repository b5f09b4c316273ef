"""Tune: the smallest connection pool that meets a latency SLO at (nearly) the best throughput, from the records.

Four parts, in the order data flows through them:
1. evaluation (pure): `recommend(points, variant, slo, max_error_rate)` judges every measured pool setting
   against the SLO and the error limit, picks the best throughput among those that pass and recommends the
   smallest pool within NEAR_BEST_SHARE of it, explained with Little's law and warnings;
2. output: `recommendation_text` (terminal and tune.md), `recommendation_json` (tune.json, stable keys),
   `recommendation_html` (a section of the HTML report) and `draw_tune_chart` (PNG and SVG);
3. search: `plan_tune_sweep` (the grid) and `next_tune_settings` (adaptive: the pool settings worth measuring
   next, given what has been measured; pure);
4. driver: `run_tune` measures with bench.measure.run.execute_run and writes <run>/report/tune.*.

Round layout of an adaptive tune (one run folder per round): round 1 is the coarse grid in results/<id>/;
round k >= 2 measures only the settings `next_tune_settings` asks for, in results/<id>-r<k>/ (an ordinary run
folder, so `bench report` and `bench compare` read it too). The recommendation over every round is written
into the first folder, results/<id>/report/, and tune.json lists every run it used. A folder per round keeps
each run record truthful (its sweep is exactly what it measured) without a second writer appending to a
finished run.
"""

from __future__ import annotations

import dataclasses
import html
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from apps.catalog import all_variants
from bench.analysis.slo import PERCENTILE_FIELDS, Slo
from bench.measure.run import RunOptions, SweepObserver, check_run_id, execute_run, new_run_id
from bench.plan.config import build_spec, read_config_file
from bench.plan.points import SweepSpec
from bench.records.errors import BenchError
from bench.records.run_folder import RunFolder, report_writes, write_atomic, write_json
from bench.records.schema import PointConfig, PointRecord
from bench.records.stats import group_repeats
from bench.report.charts.palette import variant_colour
from bench.report.figures import write_figure

TUNE_SCHEMA_VERSION = 1  # of tune.json; bump on any change of its keys or their meaning
# "Nearly the best": repeats of one setting on a quiet machine differ by a few percent (bench/records/stats.py's
# UNSTABLE_CV is 10%), so settings within 5% of the best are not reliably worse, and the smaller pool wins.
NEAR_BEST_SHARE = 0.95
# Larger pools "stop helping" when the best of them is within this factor of the smallest of them.
PLATEAU_FACTOR = 1.05

# The grid. pool_size roughly doubles per step (1, 2, 5, 10, 20, 40), so six points bracket the knee within a
# factor of about two across the whole useful range: 1 shows the fully serialised floor, 40 matches anyio's
# default 40 thread tokens (a sync variant cannot use more connections than threads) and, with
# max_overflow 10, the default 50 users (a closed-model load never has more requests in flight than users).
# max_overflow 0 measures the pool alone; 10 is SQLAlchemy's default, and shows what burst connections (opened
# and closed per use beyond pool_size) cost or gain.
DEFAULT_POOL_SIZES = (1, 2, 5, 10, 20, 40)
DEFAULT_MAX_OVERFLOWS = (0, 10)
# Adaptive: a coarse grid a factor 4 apart, then bisection around the knee. max_overflow 0 only by default:
# under steady load an overflow connection is just a connection (plus churn), so the knee is a connection count.
ADAPTIVE_POOL_SIZES = (2, 8, 32)
ADAPTIVE_MAX_OVERFLOWS = (0,)
ADAPTIVE_MAX_POOL_SIZE = 128  # extending upward stops here (PostgreSQL's default max_connections is 100)
DEFAULT_MAX_ROUNDS = 4
# Bisection stops once the gap between the last failing and the first passing pool_size is within this share
# of the passing one (or 1): pool sizes closer than that are not told apart by a few-second measurement.
REFINE_RESOLUTION = 0.25
MAX_BASE_RUN_ID = 68  # run ids have at most 80 characters; later rounds add "-r<N>" and maybe "-mo<M>"

HoldSource = Literal["telemetry", "p50 latency"]


# --- evaluation ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingResult:
    """One pool setting of the tuned variant: medians over its repeats, judged against the SLO."""

    pool_size: int
    max_overflow: int
    thread_tokens: int
    repeats: int  # ok repeats in the medians
    failed_repeats: int
    requests_per_s: float
    latencies_ms: Mapping[str, float]  # by PointMetrics field (latency_ms_p50 ... latency_ms_max), medians
    error_rate: float
    meets_slo: bool
    within_error_limit: bool
    stalled: bool  # some repeat completed no request: never recommended, whatever its latency says
    flags: tuple[str, ...] = ()  # e.g. "generator-limited 2/3", "unstable (requests_per_s)"
    hold_time_ms: float | None = None  # Little's W: how long a request holds a connection
    hold_time_source: HoldSource | None = None
    checked_out_mean: float | None = None  # Little's L, from the app's /metrics
    threads_busy_max: float | None = None
    threads_limit: int | None = None
    pool_waiting_max: float | None = None  # requests waiting for a connection at once (most, median of repeats)

    @property
    def connections(self) -> int:
        """The most connections one process may open: the pool's real size."""
        return self.pool_size + self.max_overflow

    @property
    def feasible(self) -> bool:
        return self.meets_slo and self.within_error_limit and not self.stalled

    def label(self, threads: bool = False) -> str:
        text = f"pool_size={self.pool_size}, max_overflow={self.max_overflow}"
        return text + (f", {self.thread_tokens} threads" if threads else "")


@dataclass(frozen=True)
class LittleEstimate:
    """Little's law, L = λW: connections busy on average = throughput x time each request holds one."""

    hold_time_ms: float  # W, at the recommended setting
    source: HoldSource
    requests_per_s: float  # λ: the best throughput within the SLO, per process
    connections_needed: float  # L = λW
    pool_connections: int  # what the recommended setting allows

    @property
    def headroom(self) -> float:
        return self.pool_connections / self.connections_needed if self.connections_needed > 0 else math.inf

    def explain(self) -> str:
        if self.source == "telemetry":
            how = "mean connections checked out / requests per second, from the app's /metrics"
        else:  # no pool telemetry: latency also counts waiting for the connection and work outside the database
            how = "p50 latency, as no pool telemetry was recorded: an upper bound"
        text = (
            f"Little's law (L = λW): a request holds a connection for ≈ {self.hold_time_ms:,.2f} ms ({how}), so "
            f"{self.requests_per_s:,.0f} req/s keeps ≈ {self.connections_needed:,.1f} connections busy on average; "
            f"the recommended pool allows {self.pool_connections} ({self.headroom:,.1f}x that)."
        )
        if self.source != "telemetry":
            return text  # an upper bound of W says nothing sure about queueing or headroom
        if self.headroom < 1:
            text += " Fewer than needed: at this setting requests queue for a connection (the throughput given up)."
        elif self.headroom > 3:
            text += (
                " Far more than the average need: the margin absorbs bursts, or something other than the pool "
                "(threads, CPU, the database) sets the pace."
            )
        return text


@dataclass(frozen=True)
class Recommendation:
    variant: str
    mode: str
    backend_label: str
    scenario: str
    users: int
    rate: float | None
    workers: int
    slo: Slo
    max_error_rate: float
    settings: tuple[SettingResult, ...]  # fewest connections first
    best: SettingResult | None  # the highest throughput within the SLO and the error limit
    recommended: SettingResult | None  # the smallest pool within NEAR_BEST_SHARE of `best`
    closest: SettingResult | None  # when nothing meets the SLO: the setting that came nearest
    little: LittleEstimate | None
    warnings: tuple[str, ...]
    runs: tuple[str, ...]  # run ids the points came from
    near_best_share: float = NEAR_BEST_SHARE
    failed_settings: tuple[str, ...] = field(default_factory=tuple)  # settings with no ok repeat at all

    @property
    def target_requests_per_s(self) -> float | None:
        return self.best.requests_per_s * self.near_best_share if self.best else None

    @property
    def several_thread_tokens(self) -> bool:
        return len({s.thread_tokens for s in self.settings}) > 1

    def load_caption(self) -> str:
        return f"{self.users} users" if self.rate is None else f"{self.rate:g} req/s on {self.users} connections"


SettingKey = tuple[int, int, int]  # pool_size, max_overflow, thread_tokens


def _key(point: PointRecord) -> SettingKey:
    c = point.config
    return (c.pool_size or 0, c.max_overflow or 0, c.thread_tokens)


def _variant_points(points: Sequence[PointRecord], variant: str, users: int | None) -> list[PointRecord]:
    """The variant's points under one load; a BenchError (one line) when there are none or several loads."""
    mine = [p for p in points if p.config.variant == variant]
    if not mine:
        there = ", ".join(sorted({p.config.variant for p in points})) or "none"
        raise BenchError(f"no points of variant {variant} in these runs (variants there: {there})")
    if any(p.config.pool_size is None or p.config.max_overflow is None for p in mine):
        raise BenchError(f"variant {variant} has no connection pool to tune; choose a pooled variant")
    if users is not None:
        mine = [p for p in mine if p.config.users == users]
        if not mine:
            raise BenchError(f"no points of variant {variant} with {users} users in these runs")
    loads = sorted({(p.config.users, p.config.rate or 0.0) for p in mine})
    if len(loads) > 1:
        named = ", ".join(f"{u} users" + (f" at {r:g}/s" if r else "") for u, r in loads)
        raise BenchError(f"{variant} was measured under several loads ({named}); tune one at a time (--users)")
    return mine


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _hold_time_ms(members: Sequence[PointRecord]) -> tuple[float | None, HoldSource | None, float | None]:
    """W = L / λ per repeat (median over repeats), from the app's mean checked-out connections; the p50 latency
    when no repeat has pool telemetry. With several uvicorn workers /metrics answers for one process, so λ is
    the per-process share of the throughput."""
    holds, checked_out = [], []
    for point in members:
        app = point.telemetry.app if point.telemetry else None
        metrics = point.metrics
        if app is None or app.checked_out_mean is None or metrics is None or metrics.requests_per_s <= 0:
            continue
        per_process = metrics.requests_per_s / point.config.workers
        holds.append(app.checked_out_mean / per_process * 1000)
        checked_out.append(app.checked_out_mean)
    if holds:
        return _median(holds), "telemetry", _median(checked_out)
    p50s = [p.metrics.latency_ms_p50 for p in members if p.metrics is not None and p.metrics.requests > 0]
    return (_median(p50s), "p50 latency", None) if p50s else (None, None, None)


def _flags(members: Sequence[PointRecord], unstable: Sequence[str]) -> tuple[str, ...]:
    names = sorted({flag for member in members for flag in member.flags})
    flags = [f"{name} {sum(name in m.flags for m in members)}/{len(members)}" for name in names]
    if unstable:
        flags.append(f"unstable ({', '.join(unstable)})")
    return tuple(flags)


def _setting_result(
    members: Sequence[PointRecord], failed: int, unstable: Sequence[str], slo: Slo, max_error_rate: float
) -> SettingResult:
    metrics = [m.metrics for m in members if m.metrics is not None]
    latencies = {name: statistics.median(getattr(m, name) for m in metrics) for name in PERCENTILE_FIELDS.values()}
    error_rate = statistics.median(m.error_rate for m in metrics)
    apps = [m.telemetry.app for m in members if m.telemetry is not None and m.telemetry.app is not None]
    hold, source, checked_out = _hold_time_ms(members)
    busy = [float(a.threads_busy_max) for a in apps if a.threads_busy_max is not None]
    waiting = [float(a.waiting_max) for a in apps if a.waiting_max is not None]
    pool_size, max_overflow, thread_tokens = _key(members[0])
    return SettingResult(
        pool_size=pool_size,
        max_overflow=max_overflow,
        thread_tokens=thread_tokens,
        repeats=len(metrics),
        failed_repeats=failed,
        requests_per_s=statistics.median(m.requests_per_s for m in metrics),
        latencies_ms=latencies,
        error_rate=error_rate,
        meets_slo=slo.met_by(latencies),
        within_error_limit=error_rate <= max_error_rate,
        stalled=any(m.requests == 0 or p.stalled for p, m in zip(members, metrics, strict=True)),
        flags=_flags(members, unstable),
        hold_time_ms=hold,
        hold_time_source=source,
        checked_out_mean=checked_out,
        threads_busy_max=_median(busy),
        threads_limit=next((a.threads_limit for a in apps if a.threads_limit is not None), None),
        pool_waiting_max=_median(waiting),
    )


def evaluate_settings(
    points: Sequence[PointRecord], slo: Slo, max_error_rate: float
) -> tuple[list[SettingResult], dict[SettingKey, list[PointRecord]]]:
    """Every setting with at least one ok repeat (fewest connections first), and the failed points by setting."""
    ok: dict[SettingKey, list[PointRecord]] = defaultdict(list)
    failed: dict[SettingKey, list[PointRecord]] = defaultdict(list)
    for point in points:
        if point.status == "ok" and point.metrics is not None:
            ok[_key(point)].append(point)
        else:
            failed[_key(point)].append(point)
    unstable = {_key_of_config(g.config): g.unstable_metrics for g in group_repeats(points) if g.unstable}
    results = [
        _setting_result(members, len(failed.get(key, [])), unstable.get(key, []), slo, max_error_rate)
        for key, members in ok.items()
    ]
    results.sort(key=lambda s: (s.connections, s.pool_size, s.thread_tokens))
    return results, {key: members for key, members in failed.items() if key not in ok}


def _key_of_config(config: PointConfig) -> SettingKey:
    return (config.pool_size or 0, config.max_overflow or 0, config.thread_tokens)


def _distance(setting: SettingResult, slo: Slo, max_error_rate: float) -> float:
    """How far a setting is from passing: its worst SLO clause or its error rate, as a multiple of the limit."""
    latency = slo.worst_ratio(setting.latencies_ms)
    if max_error_rate > 0:
        return max(latency, setting.error_rate / max_error_rate)
    return max(latency, math.inf if setting.error_rate > 0 else 0.0)


def littles_law(hold_time_ms: float, source: HoldSource, requests_per_s: float, connections: int) -> LittleEstimate:
    """Connections a throughput needs on average, L = λW, next to what a pool allows."""
    return LittleEstimate(
        hold_time_ms=hold_time_ms,
        source=source,
        requests_per_s=requests_per_s,
        connections_needed=requests_per_s * hold_time_ms / 1000,
        pool_connections=connections,
    )


def recommend(
    points: Sequence[PointRecord],
    variant: str,
    slo: Slo,
    max_error_rate: float,
    *,
    users: int | None = None,
    near_best_share: float = NEAR_BEST_SHARE,
) -> Recommendation:
    """Judge every measured pool setting of `variant`; recommend the smallest pool (fewest connections, then
    smallest pool_size) reaching `near_best_share` of the best throughput among the settings that meet the SLO
    and the error limit. Pure: reads records only."""
    if not 0 <= max_error_rate <= 1:
        raise BenchError(f"invalid --max-error-rate {max_error_rate:g}: give a share between 0 and 1, e.g. 0.01")
    mine = _variant_points(points, variant, users)
    settings, failed = evaluate_settings(mine, slo, max_error_rate)
    feasible = [s for s in settings if s.feasible]
    best = max(feasible, key=lambda s: s.requests_per_s, default=None)
    recommended = closest = little = None
    if best is not None:
        near = [s for s in feasible if s.requests_per_s >= near_best_share * best.requests_per_s]
        recommended = min(near, key=lambda s: (s.connections, s.pool_size, s.thread_tokens, -s.requests_per_s))
        if recommended.hold_time_ms is not None and recommended.hold_time_source is not None:
            per_process = best.requests_per_s / mine[0].config.workers
            little = littles_law(
                recommended.hold_time_ms, recommended.hold_time_source, per_process, recommended.connections
            )
    else:
        measured = [s for s in settings if not s.stalled]
        closest = min(measured, key=lambda s: _distance(s, slo, max_error_rate), default=None)
    first = mine[0].config
    partial = Recommendation(
        variant=variant,
        mode=first.mode,
        backend_label=first.backend_label,
        scenario=first.scenario,
        users=first.users,
        rate=first.rate,
        workers=first.workers,
        slo=slo,
        max_error_rate=max_error_rate,
        settings=tuple(settings),
        best=best,
        recommended=recommended,
        closest=closest,
        little=little,
        warnings=(),
        runs=tuple(dict.fromkeys(p.run_id for p in mine)),
        near_best_share=near_best_share,
        failed_settings=tuple(_failed_text(members) for members in failed.values()),
    )
    return _with_warnings(partial)


def _failed_text(members: Sequence[PointRecord]) -> str:
    c = members[0].config
    return f"pool_size={c.pool_size}, max_overflow={c.max_overflow}: {members[0].error or 'failed'}"


# --- warnings -----------------------------------------------------------------------------------------------


def _with_warnings(r: Recommendation) -> Recommendation:
    warnings = [
        *_no_slo_warning(r),
        *_thread_cap_warnings(r),
        *_edge_warnings(r),
        *_flag_warnings(r),
        *(f"no repeat succeeded at {text}" for text in r.failed_settings),
    ]
    return dataclasses.replace(r, warnings=tuple(warnings))


def _limits(r: Recommendation) -> str:
    return f"{r.slo.describe()} with errors ≤ {r.max_error_rate:.2%}"


def _describe_miss(r: Recommendation, s: SettingResult) -> str:
    parts = [
        f"{c.percentile} {format_latency(s.latencies_ms[c.metric])}"
        + ("" if c.met_by(s.latencies_ms[c.metric]) else f" ({c.ratio(s.latencies_ms[c.metric]) - 1:.0%} over)")
        for c in r.slo.clauses
    ]
    parts.append(f"errors {s.error_rate:.2%}")
    return ", ".join(parts)


def _no_slo_warning(r: Recommendation) -> list[str]:
    if r.best is not None:
        return []
    if r.closest is None:
        return [f"no setting meets {_limits(r)}, and every measured setting stalled: recommending nothing"]
    return [
        f"no setting meets {_limits(r)}: recommending nothing; closest was "
        f"{r.closest.label(r.several_thread_tokens)} ({_describe_miss(r, r.closest)}, "
        f"{r.closest.requests_per_s:,.0f} req/s)"
    ]


def _thread_cap_warnings(r: Recommendation) -> list[str]:
    """A sync variant runs each request on one of `thread_tokens` threads: once the pool has that many
    connections, the thread pool, not the connection pool, limits concurrency, and larger pools stop helping.

    Busy threads alone do not prove it: with a small pool every thread may be busy *waiting for a connection*.
    So the evidence is all threads busy where the pool could serve each of them (connections >= tokens, or no
    request waited for a connection), or, without thread telemetry, a throughput plateau past that point."""
    if r.mode != "sync":
        return []
    warnings = []
    for tokens in sorted({s.thread_tokens for s in r.settings}):
        series = [s for s in r.settings if s.thread_tokens == tokens and not s.stalled]
        beyond = [s for s in series if s.connections >= tokens]
        saturated = [
            s
            for s in series
            if s.threads_busy_max is not None
            and s.threads_busy_max >= (s.threads_limit or tokens)
            and (s.connections >= tokens or s.pool_waiting_max == 0)
        ]
        plateau = _plateau(beyond)
        no_thread_telemetry = all(s.threads_busy_max is None for s in beyond)
        if not saturated and not (plateau and no_thread_telemetry):
            continue
        evidence = []
        if saturated:
            where = "; ".join(f"({s.label()})" for s in saturated[:3]) + (" ..." if len(saturated) > 3 else "")
            evidence.append(f"all {tokens} threads were busy with connections to spare at {where}")
        if plateau:
            low, high = min(s.requests_per_s for s in beyond), max(s.requests_per_s for s in beyond)
            evidence.append(
                f"pools of {beyond[0].connections} to {beyond[-1].connections} connections all reach "
                f"{low:,.0f}-{high:,.0f} req/s"
            )
        warnings.append(
            f"{r.variant} is a sync variant capped by its thread pool ({tokens} thread tokens), not by the "
            f"connection pool: {'; '.join(evidence)}. More than {tokens} connections cannot be used at once; "
            "raise --thread-tokens before growing the pool."
        )
    return warnings


def _plateau(beyond: Sequence[SettingResult]) -> bool:
    """Larger pools add (almost) nothing over the smallest of them (`beyond` is sorted by connections)."""
    if len(beyond) < 2:
        return False
    return max(s.requests_per_s for s in beyond[1:]) <= PLATEAU_FACTOR * beyond[0].requests_per_s


def _edge_warnings(r: Recommendation) -> list[str]:
    warnings = []
    top = r.best if r.best is not None else r.closest
    measured = [s for s in r.settings if not s.stalled and s.thread_tokens == (top.thread_tokens if top else 0)]
    if top is not None and measured and top.connections == max(s.connections for s in measured):
        which = "the best throughput within the SLO" if r.best is not None else "the closest setting"
        bigger = _bigger_pool_size(r, top, ADAPTIVE_MAX_POOL_SIZE)
        advice = (
            f"throughput may still rise: extend the grid, e.g. --pool-size {bigger}"
            if bigger is not None
            else f"the pool already allows as many connections as there are users ({r.users}): raise --users to "
            "see whether more connections help"
        )
        warnings.append(f"{which} is at the largest pool measured ({top.label()}); {advice}")
    rec = r.recommended
    if rec is not None and rec.connections > 1 and rec.connections == min(s.connections for s in r.settings):
        warnings.append(
            f"the smallest pool measured ({rec.label()}) already qualifies; smaller pools may too: extend the "
            f"grid down, e.g. --pool-size {max(1, rec.pool_size // 2)} --max-overflow 0"
        )
    return warnings


def _bigger_pool_size(r: Recommendation, top: SettingResult, max_pool_size: int) -> int | None:
    """The next pool_size up (double) for a setting at the top of the grid; None where more cannot help: in the
    closed model no more requests are in flight than there are users."""
    ceiling = max_pool_size if r.rate is not None else min(max_pool_size, r.users - top.max_overflow)
    bigger = min(top.pool_size * 2, ceiling)
    return bigger if bigger > top.pool_size else None


def _flag_warnings(r: Recommendation) -> list[str]:
    flagged = [s for s in r.settings if s.flags]
    if not flagged:
        return []
    warnings = []
    roles = [("recommendation", r.recommended)] + ([("best throughput", r.best)] if r.best is not r.recommended else [])
    for role, setting in roles:
        if setting is not None and setting.flags:
            warnings.append(
                f"the {role} rests on flagged points ({setting.label()}: {'; '.join(setting.flags)}); "
                "measure it again before relying on it"
            )
    listed = "; ".join(f"{s.label(r.several_thread_tokens)}: {', '.join(s.flags)}" for s in flagged)
    warnings.append(f"flagged settings: {listed}")
    return warnings


# --- output -------------------------------------------------------------------------------------------------


def format_latency(value_ms: float) -> str:
    return f"{value_ms:,.2f} ms" if value_ms < 10 else f"{value_ms:,.0f} ms"


def _headline(r: Recommendation) -> str:
    rec, best = r.recommended, r.best
    if rec is None or best is None:
        return "Recommendation: none (see the warnings)."
    share = rec.requests_per_s / best.requests_per_s if best.requests_per_s else 1.0
    latencies = ", ".join(f"{c.percentile} {format_latency(rec.latencies_ms[c.metric])}" for c in r.slo.clauses)
    text = (
        f"Recommendation: {rec.label(r.several_thread_tokens)} ({rec.connections} connections per process): "
        f"{rec.requests_per_s:,.0f} req/s, {latencies}, errors {rec.error_rate:.2%}, {share:.0%} of the best "
        "within the SLO"
    )
    if best is not rec:
        text += f" ({best.requests_per_s:,.0f} req/s at {best.label(r.several_thread_tokens)})"
    return text + "."


def _note(r: Recommendation, s: SettingResult) -> str:
    notes = []
    if s is r.recommended:
        notes.append("**recommended**")
    if s is r.best:
        notes.append("best")
    if s is r.closest:
        notes.append("closest")
    if s.stalled:
        notes.append("stalled")
    notes.extend(s.flags)
    return ", ".join(notes)


def _table_rows(r: Recommendation) -> tuple[list[str], list[list[str]]]:
    threads = ["threads"] if r.several_thread_tokens else []
    latencies = [f"{c.percentile} ms" for c in r.slo.clauses]
    header = ["pool_size", "max_overflow", *threads, "connections", "requests/s", *latencies, "errors", "hold ms",
              "meets", "note"]  # fmt: skip
    rows = []
    for s in r.settings:
        latencies = [("–" if s.stalled else f"{s.latencies_ms[c.metric]:,.1f}") for c in r.slo.clauses]
        hold = "–" if s.hold_time_ms is None else f"{s.hold_time_ms:,.2f}" + ("" if s.hold_time_source ==
                                                                              "telemetry" else "*")  # fmt: skip
        rows.append(
            [
                str(s.pool_size),
                str(s.max_overflow),
                *([str(s.thread_tokens)] if r.several_thread_tokens else []),
                str(s.connections),
                f"{s.requests_per_s:,.0f}",
                *latencies,
                f"{s.error_rate:.2%}",
                hold,
                "yes" if s.feasible else "no",
                _note(r, s),
            ]
        )
    return header, rows


def _title(r: Recommendation) -> str:
    return f"Tune {r.variant} ({r.mode}) on {r.backend_label}, {r.scenario}, {r.load_caption()}"


def recommendation_text(r: Recommendation) -> str:
    """Markdown: readable in a terminal as it is, and written as report/tune.md."""
    lines = [
        f"# {_title(r)}",
        "",
        f"SLO: {_limits(r)}; recommended: the fewest connections reaching {r.near_best_share:.0%} of the best "
        "throughput that meets it.",
        "",
        _headline(r),
    ]
    if r.little is not None:
        lines += ["", r.little.explain()]
    if r.warnings:
        lines += ["", "Warnings:", ""] + [f"- {warning}" for warning in r.warnings]
    header, rows = _table_rows(r)
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---:|" * (len(header) - 1) + "---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += [
        "",
        "Medians over repeats. hold ms: Little's W, the time a request holds a connection (mean checked out / "
        "requests per second; * marks the p50 latency used where no pool telemetry was recorded).",
        f"Runs: {', '.join(r.runs)}",
    ]
    return "\n".join(lines) + "\n"


def _setting_json(s: SettingResult | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {
        "pool_size": s.pool_size,
        "max_overflow": s.max_overflow,
        "thread_tokens": s.thread_tokens,
        "connections": s.connections,
        "repeats": s.repeats,
        "failed_repeats": s.failed_repeats,
        "requests_per_s": s.requests_per_s,
        "latency_ms": {percentile: s.latencies_ms[name] for percentile, name in PERCENTILE_FIELDS.items()},
        "error_rate": s.error_rate,
        "meets_slo": s.meets_slo,
        "within_error_limit": s.within_error_limit,
        "stalled": s.stalled,
        "feasible": s.feasible,
        "flags": list(s.flags),
        "hold_time_ms": s.hold_time_ms,
        "hold_time_source": s.hold_time_source,
        "checked_out_mean": s.checked_out_mean,
        "threads_busy_max": s.threads_busy_max,
        "threads_limit": s.threads_limit,
    }


def recommendation_json(r: Recommendation) -> dict[str, Any]:
    """tune.json: every key always present (null where unknown), in a fixed order."""
    little = r.little
    return {
        "tune_schema_version": TUNE_SCHEMA_VERSION,
        "variant": r.variant,
        "mode": r.mode,
        "backend_label": r.backend_label,
        "scenario": r.scenario,
        "users": r.users,
        "rate": r.rate,
        "workers": r.workers,
        "slo": {
            "text": r.slo.describe(),
            "clauses": [
                {"percentile": c.percentile, "operator": c.operator, "limit_ms": c.limit_ms} for c in r.slo.clauses
            ],
        },
        "max_error_rate": r.max_error_rate,
        "near_best_share": r.near_best_share,
        "recommended": _setting_json(r.recommended),
        "best": _setting_json(r.best),
        "closest": _setting_json(r.closest),
        "target_requests_per_s": r.target_requests_per_s,
        "littles_law": None
        if little is None
        else {
            "hold_time_ms": little.hold_time_ms,
            "source": little.source,
            "requests_per_s": little.requests_per_s,
            "connections_needed": little.connections_needed,
            "pool_connections": little.pool_connections,
            "headroom": little.headroom,
            "explanation": little.explain(),
        },
        "summary": _headline(r),
        "warnings": list(r.warnings),
        "runs": list(r.runs),
        "settings": [_setting_json(s) for s in r.settings],
    }


def recommendation_html(r: Recommendation) -> str:
    """A self-contained <section> for the HTML report (every value escaped)."""
    e = html.escape
    header, rows = _table_rows(r)
    parts = [
        f'<section class="tune" id="tune-{e(r.variant)}">',
        f"<h2>{e(_title(r))}</h2>",
        f"<p>SLO: {e(_limits(r))}.</p>",
        f'<p class="tune-recommendation"><strong>{e(_headline(r))}</strong></p>',
    ]
    if r.little is not None:
        parts.append(f"<p>{e(r.little.explain())}</p>")
    if r.warnings:
        parts.append('<ul class="tune-warnings">' + "".join(f"<li>{e(w)}</li>" for w in r.warnings) + "</ul>")
    parts.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr></thead><tbody>")
    for setting, row in zip(r.settings, rows, strict=True):
        css = "recommended" if setting is r.recommended else ("feasible" if setting.feasible else "infeasible")
        cells = "".join(f"<td>{e(value.replace('**', ''))}</td>" for value in row)
        parts.append(f'<tr class="{css}">{cells}</tr>')
    parts += ["</tbody></table>", f"<p>Runs: {e(', '.join(r.runs))}</p>", "</section>"]
    return "\n".join(parts) + "\n"


# --- chart --------------------------------------------------------------------------------------------------

_LINESTYLES = ["-", "--", ":", "-."]
_CLAUSE_MARKERS = ["o", "s", "^", "D", "v", "P"]


def _plot_series(
    axis: Axes,
    series: Sequence[SettingResult],
    value: Callable[[SettingResult], float],
    style: str,
    marker: str,
    label: str,
    colour: tuple[float, float, float],
) -> None:
    xs = [s.connections for s in series]
    ys = [math.nan if s.stalled else value(s) for s in series]
    # Hollow markers: misses the SLO or the error limit; the feasible ones are filled in over them.
    axis.plot(xs, ys, linestyle=style, color=colour, marker=marker, markerfacecolor="white", markersize=7,
              linewidth=1.8, label=label)  # fmt: skip
    feasible = [(x, y) for s, x, y in zip(series, xs, ys, strict=True) if s.feasible]
    if feasible:
        axis.plot(*zip(*feasible, strict=True), marker=marker, color=colour, markersize=7, linestyle="none")
    stalled = [s.connections for s in series if s.stalled]
    if stalled:  # at the bottom edge: a stall has no latency, and the latency axis is logarithmic
        axis.plot(stalled, [0] * len(stalled), "X", color="red", markersize=10, clip_on=False, linestyle="none",
                  transform=axis.get_xaxis_transform(), label="stalled: no request completed")  # fmt: skip


def _spaced(values: Sequence[int]) -> list[int]:
    """Tick values at least a fifth of a doubling apart on the log axis, so labels like 10, 11, 12 do not collide."""
    kept: list[int] = []
    for value in sorted(values):
        if not kept or math.log2(value) - math.log2(kept[-1]) >= 0.2:
            kept.append(value)
    return kept


def _latency_of(metric: str) -> Callable[[SettingResult], float]:
    return lambda setting: setting.latencies_ms[metric]


def draw_tune_chart(r: Recommendation, points: Sequence[PointRecord], out_dir: Path) -> list[Path]:
    """Throughput and the SLO's latency percentiles against connections (pool_size + max_overflow), one line
    per max_overflow, the SLO limits and the 95%-of-best target drawn in, every repeat as a faint dot, feasible
    settings filled and the recommendation ringed. Written as PNG and SVG; returns the paths."""
    if not r.settings:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    colour = variant_colour(r.variant)
    figure, (throughput_axis, latency_axis) = plt.subplots(2, 1, figsize=(10, 8.5), sharex=True)
    series_keys = sorted({(s.max_overflow, s.thread_tokens) for s in r.settings})
    for index, (overflow, tokens) in enumerate(series_keys):
        series = [s for s in r.settings if (s.max_overflow, s.thread_tokens) == (overflow, tokens)]
        style = _LINESTYLES[index % len(_LINESTYLES)]
        label = f"max_overflow={overflow}" + (f", {tokens} threads" if r.several_thread_tokens else "")
        _plot_series(throughput_axis, series, lambda s: s.requests_per_s, style, "o", label, colour)
        for number, clause in enumerate(r.slo.clauses):
            marker = _CLAUSE_MARKERS[number % len(_CLAUSE_MARKERS)]
            _plot_series(latency_axis, series, _latency_of(clause.metric), style, marker,
                         f"{clause.percentile}, {label}", colour)  # fmt: skip
    for point in points:  # the repeats behind each median, so the spread is visible
        c, m = point.config, point.metrics
        if c.variant != r.variant or c.users != r.users or m is None or m.requests == 0:
            continue
        x = (c.pool_size or 0) + (c.max_overflow or 0)
        throughput_axis.plot([x], [m.requests_per_s], ".", color=colour, alpha=0.3)
        for clause in r.slo.clauses:
            latency_axis.plot([x], [getattr(m, clause.metric)], ".", color=colour, alpha=0.3)
    if r.target_requests_per_s is not None:
        throughput_axis.axhline(r.target_requests_per_s, color="grey", linestyle=":",
                                label=f"{r.near_best_share:.0%} of the best within the SLO")  # fmt: skip
    for clause in r.slo.clauses:
        latency_axis.axhline(clause.limit_ms, color="red", linestyle="--", label=f"SLO {clause.describe()}")
        latency_axis.annotate(f"SLO {clause.describe()}", xy=(0.005, clause.limit_ms), va="bottom", fontsize=8,
                              color="red", xycoords=("axes fraction", "data"))  # fmt: skip
    if r.recommended is not None:
        rec = r.recommended
        ring = {"s": 320, "facecolors": "none", "edgecolors": "black", "linewidths": 2, "zorder": 5}
        throughput_axis.scatter([rec.connections], [rec.requests_per_s], label="recommended", **ring)
        for clause in r.slo.clauses:
            latency_axis.scatter([rec.connections], [rec.latencies_ms[clause.metric]], **ring)
        throughput_axis.annotate(f"recommended: {rec.label()}", xy=(rec.connections, rec.requests_per_s),
                                 xytext=(10, -22), textcoords="offset points", fontsize=9)  # fmt: skip
    connections = sorted({s.connections for s in r.settings})
    latency_axis.set_yscale("log")  # queueing makes latency span decades; the SLO line stays readable
    latency_axis.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 10, 20, 50, 100: labelled in ms
    latency_axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:g}"))
    latency_axis.yaxis.set_minor_formatter(NullFormatter())
    latency_axis.set_xscale("log", base=2)
    ticks = _spaced(connections)
    latency_axis.set_xticks(ticks, [str(c) for c in ticks])
    latency_axis.minorticks_off()
    throughput_axis.set_ylim(bottom=0)
    throughput_axis.set_ylabel("requests/s (higher is better)")
    latency_axis.set_ylabel("latency, ms (lower is better; log scale)")
    latency_axis.set_xlabel("connections per process: pool_size + max_overflow (log scale)")
    for axis in (throughput_axis, latency_axis):
        axis.grid(True, alpha=0.3)
        legend = dict(zip(*reversed(axis.get_legend_handles_labels()), strict=True))  # each label once
        legend["meets SLO and error limit"] = Line2D([], [], marker="o", color=colour, linestyle="none")
        legend["misses it"] = Line2D([], [], marker="o", color=colour, markerfacecolor="white", linestyle="none")
        axis.legend(list(legend.values()), list(legend), fontsize=8, loc="best")
    figure.suptitle(
        f"tune {r.variant}: requests/s and latency vs connections, SLO {_limits(r)}\n"
        f"{r.backend_label} | {r.scenario}, {r.load_caption()}",
        fontsize=10,
    )
    figure.tight_layout()
    written = []
    for suffix in (".png", ".svg"):
        path = out_dir / f"tune_{r.variant}{suffix}"
        written.append(write_figure(figure, path))
    plt.close(figure)
    return written


def write_tune_report(folder: RunFolder, r: Recommendation, points: Sequence[PointRecord]) -> list[Path]:
    """<run>/report/tune.json, tune.md and the chart; returns the files written."""
    out_dir = folder.report_dir
    with report_writes(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        charts = draw_tune_chart(r, points, out_dir)
        json_path, markdown_path = out_dir / "tune.json", out_dir / "tune.md"
        write_json(json_path, recommendation_json(r))
        pngs = [chart for chart in charts if chart.suffix == ".png"]
        text = recommendation_text(r) + "".join(f"\n![{chart.stem}]({chart.name})\n" for chart in pngs)
        write_atomic(markdown_path, text)
    return [json_path, markdown_path, *charts]


# --- search -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class PoolSetting:
    pool_size: int
    max_overflow: int


def check_tunable(variant: str) -> None:
    known = all_variants()
    if variant not in known:
        raise BenchError(f"unknown variant {variant} (known: {', '.join(known)})")
    if not known[variant].pooled:
        pooled = ", ".join(name for name, info in known.items() if info.pooled)
        raise BenchError(f"variant {variant} has no connection pool to tune (pooled variants: {pooled})")


def plan_tune_sweep(
    variant: str,
    pool_sizes: Sequence[int] | None = None,
    max_overflows: Sequence[int] | None = None,
    *,
    adaptive: bool = False,
    settings: Mapping[str, Any] | None = None,
    config_file: Path | None = None,
) -> SweepSpec:
    """The first (or only) sweep of a tune: one variant over a pool grid under one load.

    `settings` are the other SweepSpec keys as `bench run` passes them to build_spec (users, scenario,
    duration_s, repeat, ...; None means not given; text is validated there, with the option's name in the
    message). The grid comes from the arguments, else from `settings` or the config file, else the defaults
    (DEFAULT_* for a grid, ADAPTIVE_* for the coarse first round of an adaptive tune)."""
    check_tunable(variant)
    file_values = read_config_file(config_file) if config_file else {}
    given = {key: value for key, value in (settings or {}).items() if value is not None}
    cli: dict[str, Any] = {**given, "variants": [variant]}
    defaults = {
        "pool_sizes": ADAPTIVE_POOL_SIZES if adaptive else DEFAULT_POOL_SIZES,
        "max_overflows": ADAPTIVE_MAX_OVERFLOWS if adaptive else DEFAULT_MAX_OVERFLOWS,
    }
    for key, explicit in (("pool_sizes", pool_sizes), ("max_overflows", max_overflows)):
        if explicit:
            cli[key] = list(explicit)
        elif key not in given and key not in file_values:
            cli[key] = list(defaults[key])
    spec = build_spec(cli=cli, config_file=config_file)
    if len(spec.users) > 1 or len(spec.rates) > 1:
        raise BenchError("tune measures one load: give one --users value (and one --rate in the open model)")
    return spec


def next_tune_settings(
    points: Sequence[PointRecord],
    variant: str,
    slo: Slo,
    max_error_rate: float,
    *,
    max_pool_size: int = ADAPTIVE_MAX_POOL_SIZE,
    resolution: float = REFINE_RESOLUTION,
) -> list[PoolSetting]:
    """The pool settings worth measuring next, given the points so far (empty: the search is done).

    - Best throughput (or, when nothing meets the SLO, the closest setting) at the largest pool_size of its
      max_overflow: double that pool_size, as throughput may still rise (up to max_pool_size, and in the
      closed model no further than the users can keep busy).
    - Bisect between the largest pool_size that does not qualify and the recommended one (same max_overflow)
      until they are within `resolution` of each other.
    """
    r = recommend(points, variant, slo, max_error_rate)
    tried = {PoolSetting(p.config.pool_size or 0, p.config.max_overflow or 0) for p in points
             if p.config.variant == variant}  # fmt: skip
    proposals: list[PoolSetting] = []
    top = r.best if r.best is not None else r.closest
    if top is not None:
        sizes = [s.pool_size for s in r.settings if s.max_overflow == top.max_overflow]
        bigger = _bigger_pool_size(r, top, max_pool_size)
        if top.pool_size == max(sizes) and bigger is not None:
            proposals.append(PoolSetting(bigger, top.max_overflow))
    rec = r.recommended
    if rec is not None:
        below = [s.pool_size for s in r.settings if s.max_overflow == rec.max_overflow and s.pool_size < rec.pool_size]
        low = max(below, default=0)  # nothing measured below: pool_size 0 "fails" by definition
        if rec.pool_size - low > max(1.0, rec.pool_size * resolution):
            proposals.append(PoolSetting((low + rec.pool_size) // 2, rec.max_overflow))
    return sorted({p for p in proposals if p not in tried})


def round_specs(spec: SweepSpec, settings: Sequence[PoolSetting]) -> list[SweepSpec]:
    """The sweeps that measure exactly `settings`: one per max_overflow (a SweepSpec is a grid), merged where
    the pool sizes agree."""
    by_overflow: dict[int, list[int]] = defaultdict(list)
    for setting in settings:
        by_overflow[setting.max_overflow].append(setting.pool_size)
    grids: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for overflow, sizes in sorted(by_overflow.items()):
        grids[tuple(sorted(set(sizes)))].append(overflow)
    return [
        spec.model_copy(update={"pool_sizes": list(sizes), "max_overflows": overflows})
        for sizes, overflows in grids.items()
    ]


# --- driver -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TuneOptions:
    variant: str
    slo: Slo
    spec: SweepSpec  # the first round (plan_tune_sweep)
    database_urls: dict[str, str | None]
    results_dir: Path
    argv: list[str]
    max_error_rate: float = 0.01
    adaptive: bool = False
    max_rounds: int = DEFAULT_MAX_ROUNDS
    run_id: str | None = None


def run_tune(options: TuneOptions, observer: SweepObserver) -> tuple[RunFolder, Recommendation]:
    """Measure the grid (adaptive: then up to max_rounds - 1 refining rounds, a run folder each), recommend
    from every point measured, and write the recommendation into the first run's report/ folder."""
    if options.max_rounds < 1:
        raise BenchError(f"invalid --max-rounds {options.max_rounds}: must be at least 1")
    base = check_run_id(options.run_id) if options.run_id is not None else new_run_id(f"tune-{options.variant}")
    if options.adaptive and len(base) > MAX_BASE_RUN_ID:
        raise BenchError(f"--run-id {base!r} is too long for an adaptive tune (at most {MAX_BASE_RUN_ID} characters)")
    first = execute_run(_run_options(options, options.spec, base), observer)
    points = first.load_points()
    for round_number in range(2, options.max_rounds + 1 if options.adaptive else 2):
        settings = next_tune_settings(points, options.variant, options.slo, options.max_error_rate)
        if not settings:
            break
        specs = round_specs(options.spec, settings)
        for spec in specs:
            suffix = f"-r{round_number}" + (f"-mo{spec.max_overflows[0]}" if len(specs) > 1 else "")
            folder = execute_run(_run_options(options, spec, base + suffix), observer)
            points += folder.load_points()
    recommendation = recommend(points, options.variant, options.slo, options.max_error_rate)
    write_tune_report(first, recommendation, points)
    return first, recommendation


def _run_options(options: TuneOptions, spec: SweepSpec, run_id: str) -> RunOptions:
    return RunOptions(
        spec=spec, database_urls=options.database_urls, results_dir=options.results_dir, run_id=run_id,
        argv=options.argv,
    )  # fmt: skip


def tune_from_runs(
    folders: Sequence[RunFolder], variant: str, slo: Slo, max_error_rate: float, users: int | None = None
) -> tuple[Recommendation, list[PointRecord]]:
    """A recommendation from runs already measured (`bench tune --from-run`), measuring nothing."""
    for folder in folders:
        folder.load_run()  # a corrupt or foreign run.json is refused, not tuned from (and written into)
    points = [point for folder in folders for point in folder.load_points()]
    return recommend(points, variant, slo, max_error_rate, users=users), points
