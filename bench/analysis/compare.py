"""Compare two runs: per configuration in both, the change of each metric from run A to run B with a 95%
interval, a significance test across repeats and a verdict; a Markdown table, a chart and a CI gate.

What "the same configuration" means: every field of PointConfig except those that say where or when a point
ran rather than what was measured (ENVIRONMENT_FIELDS): the repeat number, the database's version label and the
CPU numbers it was pinned to (whether it was pinned at all still counts). Everything else, including the
duration, warm-up and scenario options, must be equal, because each of them changes the figures. Environment
differences (machine, database versions, library versions, commit) do not stop a match; they are listed.

The statistics, and why: repeats are few (2-10) and skewed, so each side is summarised by its median and the
change is the ratio of medians B/A. The significance test is the two-sided Mann-Whitney U test across the
repeats (bench.records.stats.mann_whitney_u, alpha 0.05): distribution-free, it asks whether B's repeats tend to lie
above or below A's. The 95% interval of the ratio is the matching distribution-free one on the log scale
(Hodges-Lehmann/Moses): the k-th smallest and largest of all pairwise log(b_j / a_i), with k taken from the
U distribution, so the interval excludes 1 (no change) when, and in practice only when, the test is
significant at 5%. It needs positive values (no interval for an error rate of 0). With few repeats the test
cannot reach 5% whatever the data: its smallest possible p-value is 2 / C(n_a + n_b, n_a), 1.0 for one repeat
per side, 0.10 for 3 + 3, 0.029 for 4 + 4. Below that the verdict is "not enough repeats", never a "no
significant difference" that the test could not have contradicted.

Verdict per configuration (from requests_per_s and latency_ms_p99, the two figures a user tunes for):
"slower" if either is significantly worse (lower throughput or higher p99), even when the other improved,
since a regression hidden behind a gain is what a gate must catch; "faster" if at least one is significantly
better and neither is worse; otherwise "no significant difference", or "not enough repeats".

A stalled repeat (no request completed) recorded latencies of 0: that is no measurement, never a fast result, so
latencies are compared over the repeats that did not stall; with none left on a side, the metric is "not
measured" and the verdict rests on throughput.
"""

from __future__ import annotations

import json
import math
import statistics
import textwrap
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from bench.records.errors import BenchError
from bench.records.run_folder import RunFolder, report_writes, write_atomic
from bench.records.schema import PointConfig, PointRecord, RunRecord
from bench.records.stats import EXACT_MAX_N, REPEAT_METRICS, mann_whitney_u
from bench.report.figures import write_figure
from bench.system.environment import machine_label

ALPHA = 0.05
Z_975 = 1.959963984540054  # the normal 0.975 quantile, for the interval beyond EXACT_MAX_N values

# PointConfig fields that describe where a point ran, not what was measured (see the module docstring).
ENVIRONMENT_FIELDS = frozenset({"repeat_index", "backend_label", "server_cpus", "generator_cpus"})
# Fields implied by the variant's name: never worth a separate mention in a configuration's label.
_IMPLIED_BY_VARIANT = frozenset({"variant", "backend", "mode", "driver", "pooled"})
_SHOWN_IN_LABEL = frozenset({"pool_size", "max_overflow", "users", "rate"})

LOWER_IS_BETTER = {"requests_per_s": False, "latency_ms_p50": True, "latency_ms_p99": True, "error_rate": True}
METRIC_NAMES = {
    "requests_per_s": "requests/s",
    "latency_ms_p50": "p50 ms",
    "latency_ms_p99": "p99 ms",
    "error_rate": "error rate",
}
HEADLINE_METRICS = ("requests_per_s", "latency_ms_p99")

Outcome = Literal["better", "worse", "no significant difference", "not enough repeats", "not measured"]
Verdict = Literal["faster", "slower", "no significant difference", "not enough repeats"]
NOT_ENOUGH: Literal["not enough repeats"] = "not enough repeats"
NO_DIFFERENCE: Literal["no significant difference"] = "no significant difference"
# A stalled repeat completed no request: its latency fields are 0, which is no measurement, never a fast result.
NOT_MEASURED: Literal["not measured"] = "not measured"

Interval = tuple[float, float]


@dataclass(frozen=True)
class MetricComparison:
    """One metric of one configuration in both runs."""

    metric: str
    values_a: tuple[float, ...]  # one per ok repeat (for latencies, per repeat that was not stalled)
    values_b: tuple[float, ...]
    median_a: float  # NaN when "not measured": every repeat of a side stalled
    median_b: float
    ratio: float | None  # median B / median A; None when A's median is 0 and B's is not (no finite ratio)
    ratio_ci: Interval | None  # 95% interval of the ratio; None without enough repeats or with values <= 0
    p_value: float | None  # two-sided Mann-Whitney; None when the test cannot reach ALPHA with these repeats
    outcome: Outcome

    @property
    def change_pct(self) -> float | None:
        return None if self.ratio is None else (self.ratio - 1) * 100

    @property
    def change_ci_pct(self) -> Interval | None:
        return None if self.ratio_ci is None else ((self.ratio_ci[0] - 1) * 100, (self.ratio_ci[1] - 1) * 100)


@dataclass(frozen=True)
class ConfigComparison:
    """A configuration measured in both runs (with at least one ok repeat in each)."""

    label: str
    config: PointConfig  # as recorded in run A (its first repeat)
    point_ids_a: tuple[str, ...]
    point_ids_b: tuple[str, ...]
    metrics: dict[str, MetricComparison]
    verdict: Verdict
    flags_a: str  # e.g. "generator-limited 2/5": a condition to read before trusting the figures
    flags_b: str


@dataclass(frozen=True)
class Unmatched:
    """A configuration that cannot be compared: measured in one run only, or with every repeat failed."""

    label: str
    reason: Literal["only in A", "only in B", "every repeat failed in A", "every repeat failed in B"]


@dataclass(frozen=True)
class Comparison:
    folder_a: RunFolder
    folder_b: RunFolder
    run_a: RunRecord
    run_b: RunRecord
    rows: list[ConfigComparison]
    unmatched: list[Unmatched]
    differences: list[str]  # what differs between the runs: settings first, then the environment

    @property
    def out_dir(self) -> Path:
        """Where the comparison is written: the B run's report/compare-<A>/."""
        return self.folder_b.report_dir / f"compare-{self.run_a.run_id}"


# --- matching -----------------------------------------------------------------------------------------------


# Settings a user may tell compare to look past (`--ignore`), e.g. to judge a smaller pool against the current one.
IGNORABLE_FIELDS = frozenset(
    {"pool_size", "max_overflow", "thread_tokens", "users", "rate", "pool_pre_ping", "telemetry", "workers"}
    | {"duration_s", "warmup_s", "spawn_rate", "dataset_rows"}
    | {"generator_processes", "fault"}  # e.g. one Locust process against two, a run with a fault against one without
)
IGNORED = "*"  # the value an ignored field takes in a key, so configurations differing only there match


def configuration_key(config: PointConfig, ignore: Collection[str] = ()) -> dict[str, Any]:
    """The fields that define "the same configuration" across runs (see the module docstring); `ignore`d fields
    match whatever their value."""
    key: dict[str, Any] = config.model_dump(mode="json", exclude=set(ENVIRONMENT_FIELDS))
    key["pinned"] = config.server_cpus is not None  # pinning itself is a setting; the CPU numbers are not
    for field in ignore:
        key[field] = IGNORED
    return key


def _key_text(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True)  # dicts equal as values must give the same text


def _by_configuration(points: Sequence[PointRecord], ignore: Collection[str]) -> dict[str, list[PointRecord]]:
    groups: dict[str, list[PointRecord]] = {}
    for point in points:
        groups.setdefault(_key_text(configuration_key(point.config, ignore)), []).append(point)
    return groups


def _ok(points: list[PointRecord]) -> list[PointRecord]:
    return [p for p in points if p.status == "ok" and p.metrics is not None]


def compare_runs(a: RunFolder, b: RunFolder, ignore: Collection[str] = ()) -> Comparison:
    """Match the configurations of two runs and compare each metric; BenchError when nothing can be compared.
    Fields in `ignore` (from IGNORABLE_FIELDS) do not have to be equal, e.g. a run with a smaller pool."""
    unknown = sorted(set(ignore) - IGNORABLE_FIELDS)
    if unknown:
        raise BenchError(f"cannot ignore {', '.join(unknown)} (ignorable: {', '.join(sorted(IGNORABLE_FIELDS))})")
    if a.path.resolve() == b.path.resolve():
        # Every change would be zero: a typo for the run meant, not a comparison anyone wants written.
        raise BenchError(f"RUN_A and RUN_B are the same run ({a.run_id}); give two different runs")
    run_a, run_b = a.load_run(), b.load_run()
    groups_a, groups_b = _by_configuration(a.load_points(), ignore), _by_configuration(b.load_points(), ignore)
    labeller = _Labeller([json.loads(k) for k in {*groups_a, *groups_b}])
    rows: list[ConfigComparison] = []
    unmatched: list[Unmatched] = []
    for key in [*groups_a, *(k for k in groups_b if k not in groups_a)]:
        label = labeller.label(json.loads(key))
        ok_a, ok_b = _ok(groups_a.get(key, [])), _ok(groups_b.get(key, []))
        if key not in groups_b:
            unmatched.append(Unmatched(label, "only in A"))
        elif key not in groups_a:
            unmatched.append(Unmatched(label, "only in B"))
        elif not ok_a:
            unmatched.append(Unmatched(label, "every repeat failed in A"))
        elif not ok_b:
            unmatched.append(Unmatched(label, "every repeat failed in B"))
        else:
            rows.append(_compare_configuration(label, ok_a, ok_b))
    differences = [*_setting_differences(run_a, run_b), *_environment_differences(run_a, run_b)]
    if not rows:
        settings = "; ".join(_setting_differences(run_a, run_b)) or "different variants, pool settings or loads"
        raise BenchError(
            f"runs {run_a.run_id} and {run_b.run_id} have no configuration in common ({settings}); "
            "compare runs of the same scenario, load model and settings"
        )
    return Comparison(a, b, run_a, run_b, rows, unmatched, differences)


class _Labeller:
    """Short names for configurations: variant, pool and load, plus any other field that varies between them."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        fields = {field for key in keys for field in key}
        self.varying = sorted(
            field
            for field in fields - _IMPLIED_BY_VARIANT - _SHOWN_IN_LABEL
            if len({json.dumps(key.get(field), sort_keys=True) for key in keys}) > 1
        )

    def label(self, key: dict[str, Any]) -> str:
        if key["pool_size"] == IGNORED or key["max_overflow"] == IGNORED:
            pool = "any pool"
        else:
            pool = "no pool" if key["pool_size"] is None else f"pool {key['pool_size']}+{key['max_overflow']}"
        if key.get("rate") in (None, IGNORED):
            load = f"{key['users']} users"
        else:
            load = f"{key['rate']:g}/s on {key['users']} conns"
        extras = [f"{field}={_compact(key.get(field))}" for field in self.varying]
        return ", ".join([f"{key['variant']} {pool}", load, *extras])


def _compact(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":")) if isinstance(value, dict | list) else str(value)


def _setting_differences(run_a: RunRecord, run_b: RunRecord) -> list[str]:
    keys = [*run_a.sweep, *(k for k in run_b.sweep if k not in run_a.sweep)]
    return [
        f"{key}: {_compact(run_a.sweep.get(key))} in A, {_compact(run_b.sweep.get(key))} in B"
        for key in keys
        if run_a.sweep.get(key) != run_b.sweep.get(key)
    ]


def _environment_differences(run_a: RunRecord, run_b: RunRecord) -> list[str]:
    found: list[str] = []
    machine_a, machine_b = machine_label(run_a.environment), machine_label(run_b.environment)
    if machine_a != machine_b:
        found.append(f"machine: {machine_a} in A, {machine_b} in B")
    for backend in sorted({*run_a.databases, *run_b.databases}):
        label_a, label_b = (_database_label(run, backend) for run in (run_a, run_b))
        if label_a != label_b:
            found.append(f"{backend}: {label_a} in A, {label_b} in B")
    for field in ("git_commit", "python"):
        value_a, value_b = run_a.environment.get(field), run_b.environment.get(field)
        if value_a != value_b:
            found.append(f"{field}: {value_a} in A, {value_b} in B")
    libraries_a = run_a.environment.get("libraries") or {}
    libraries_b = run_b.environment.get("libraries") or {}
    changed = [
        f"{name} {libraries_a.get(name)} -> {libraries_b.get(name)}"
        for name in sorted({*libraries_a, *libraries_b})
        if libraries_a.get(name) != libraries_b.get(name)
    ]
    if changed:
        found.append("libraries: " + ", ".join(changed))
    return found


def _database_label(run: RunRecord, backend: str) -> str:
    database = run.databases.get(backend)
    if database is None:
        return "not used"
    return database.label + (" (SURROGATE)" if database.surrogate else "")


# --- statistics ---------------------------------------------------------------------------------------------


def _compare_configuration(label: str, ok_a: list[PointRecord], ok_b: list[PointRecord]) -> ConfigComparison:
    metrics = {
        metric: compare_metric(metric, _values(ok_a, metric), _values(ok_b, metric)) for metric in REPEAT_METRICS
    }
    return ConfigComparison(
        label=label,
        config=ok_a[0].config,
        point_ids_a=tuple(p.point_id for p in ok_a),
        point_ids_b=tuple(p.point_id for p in ok_b),
        metrics=metrics,
        verdict=headline_verdict(metrics),
        flags_a=_flag_summary(ok_a),
        flags_b=_flag_summary(ok_b),
    )


def _values(points: list[PointRecord], metric: str) -> list[float]:
    if metric.startswith("latency_"):
        points = [p for p in points if not p.stalled]
    return [float(getattr(p.metrics, metric)) for p in points]


def _flag_summary(points: list[PointRecord]) -> str:
    names = sorted({flag for point in points for flag in point.flags})
    return ", ".join(f"{name} {sum(name in p.flags for p in points)}/{len(points)}" for name in names)


def compare_metric(metric: str, values_a: Sequence[float], values_b: Sequence[float]) -> MetricComparison:
    """Ratio of medians B/A, its 95% interval, the Mann-Whitney p-value and the outcome for one metric."""
    if not values_a or not values_b:
        median_a, median_b = (statistics.median(v) if v else math.nan for v in (values_a, values_b))
        return MetricComparison(
            metric, tuple(values_a), tuple(values_b), median_a, median_b, None, None, None, NOT_MEASURED
        )
    median_a, median_b = statistics.median(values_a), statistics.median(values_b)
    if median_a != 0:
        ratio: float | None = median_b / median_a
    else:
        ratio = 1.0 if median_b == 0 else None
    enough = smallest_p_value(len(values_a), len(values_b)) <= ALPHA
    p_value = mann_whitney_u(values_a, values_b)[1] if enough else None
    ratio_ci = ratio_interval(values_a, values_b) if enough else None
    outcome: Outcome
    if p_value is None:
        outcome = NOT_ENOUGH
    elif p_value >= ALPHA:
        outcome = NO_DIFFERENCE
    else:
        b_higher = median_b > median_a if median_b != median_a else _pairwise_median(values_a, values_b) > 0
        outcome = "worse" if b_higher == LOWER_IS_BETTER[metric] else "better"
    return MetricComparison(
        metric, tuple(values_a), tuple(values_b), median_a, median_b, ratio, ratio_ci, p_value, outcome
    )


def _pairwise_median(values_a: Sequence[float], values_b: Sequence[float]) -> float:
    """Hodges-Lehmann shift: which way B lies when the medians happen to be equal."""
    return statistics.median(b - a for a in values_a for b in values_b)


def smallest_p_value(n_a: int, n_b: int) -> float:
    """The smallest two-sided p-value the Mann-Whitney test can give with n_a and n_b repeats (B entirely
    above or below A, no ties): if it exceeds ALPHA, no data could show a significant difference."""
    return min(1.0, 2 / math.comb(n_a + n_b, n_a))


def ratio_interval(values_a: Sequence[float], values_b: Sequence[float]) -> Interval | None:
    """95% interval of the ratio B/A on the log scale (Hodges-Lehmann/Moses, from the U distribution);
    None when a value is not positive (no logarithm) or the repeats are too few for 95%."""
    if min(*values_a, *values_b) <= 0:
        return None
    k = _interval_rank(len(values_a), len(values_b))
    if k is None:
        return None
    log_ratios = sorted(math.log(b) - math.log(a) for a in values_a for b in values_b)
    return (math.exp(log_ratios[k - 1]), math.exp(log_ratios[-k]))


def _interval_rank(n_a: int, n_b: int) -> int | None:
    """The largest k for which [d(k), d(n_a n_b + 1 - k)] of the sorted pairwise differences covers the
    shift with >= 95%: coverage = 1 - 2 P(U <= k - 1). None when even k = 1 falls short."""
    if n_a + n_b > EXACT_MAX_N:  # the normal approximation, as bench.records.stats does beyond the same size
        mean = n_a * n_b / 2
        spread = math.sqrt(n_a * n_b * (n_a + n_b + 1) / 12)
        k = math.floor(mean - Z_975 * spread)
        return k if k >= 1 else None
    counts = _u_counts(n_a, n_b)
    total = math.comb(n_a + n_b, n_a)
    best = None
    below = 0  # ways to get U <= k - 1
    for k in range(1, n_a * n_b // 2 + 2):
        below += counts[k - 1]
        if 1 - 2 * below / total < 1 - ALPHA:
            break
        best = k
    return best


@cache
def _u_counts(n_a: int, n_b: int) -> tuple[int, ...]:
    """How many of the C(n_a + n_b, n_a) orderings of two untied samples give U = 0, 1, ..., n_a n_b."""
    if n_a == 0 or n_b == 0:
        return (1,)
    # The largest value is in B (every A value below it counts one less) or in A (it beats all n_b values).
    from_b = _u_counts(n_a, n_b - 1)
    from_a = _u_counts(n_a - 1, n_b)
    counts = [0] * (n_a * n_b + 1)
    for u, ways in enumerate(from_b):
        counts[u] += ways
    for u, ways in enumerate(from_a):
        counts[u + n_b] += ways
    return tuple(counts)


def headline_verdict(metrics: dict[str, MetricComparison]) -> Verdict:
    """From throughput and p99 (see the module docstring): any significant regression makes it "slower". A p99
    "not measured" (every repeat of a side stalled) leaves the verdict to throughput."""
    outcomes = [metrics[m].outcome for m in HEADLINE_METRICS]
    if "worse" in outcomes:
        return "slower"
    if NOT_ENOUGH in outcomes:
        return NOT_ENOUGH
    if "better" in outcomes:
        return "faster"
    return NO_DIFFERENCE


# --- the CI gate --------------------------------------------------------------------------------------------


def gate(c: Comparison, fail_if_slower_pct: float) -> list[str]:
    """Configurations whose throughput is significantly lower, or p99 significantly higher, by more than
    `fail_if_slower_pct` percent (the change of medians), and those whose every repeat failed in B while A had
    figures. Empty: the gate passes. Configurations with too few repeats cannot fail it; the caller says so."""
    if not math.isfinite(fail_if_slower_pct) or fail_if_slower_pct < 0:
        raise BenchError(f"invalid --fail-if-slower: {fail_if_slower_pct:g} is not a percentage >= 0")
    failures: list[str] = []
    for row in c.rows:
        reasons = []
        throughput, p99 = row.metrics["requests_per_s"], row.metrics["latency_ms_p99"]
        if throughput.outcome == "worse" and -(throughput.change_pct or 0) > fail_if_slower_pct:
            reasons.append(f"requests/s {change_text(throughput)} (p={throughput.p_value:.3f})")
        if p99.outcome == "worse" and (p99.change_pct is None or p99.change_pct > fail_if_slower_pct):
            reasons.append(f"p99 {change_text(p99)} (p={p99.p_value:.3f})")
        if reasons:
            failures.append(f"{row.label}: {', '.join(reasons)}")
    failures += [f"{u.label}: {u.reason}" for u in c.unmatched if u.reason == "every repeat failed in B"]
    return failures


def all_without_enough_repeats(c: Comparison) -> bool:
    """True when no configuration had repeats enough for a verdict (the gate then cannot fail: say so)."""
    return all(row.verdict == NOT_ENOUGH for row in c.rows)


# --- Markdown -----------------------------------------------------------------------------------------------


def change_text(m: MetricComparison) -> str:
    """The change of medians as a signed percentage, or why there is none."""
    if m.outcome == NOT_MEASURED:
        return "stalled"
    if m.change_pct is None:
        return "from 0"
    return f"{m.change_pct:+.1f}%"


def _ci_text(m: MetricComparison) -> str:
    interval = m.change_ci_pct
    if interval is None:
        return NOT_ENOUGH if m.outcome == NOT_ENOUGH else "–"
    return f"{interval[0]:+.1f}% … {interval[1]:+.1f}%"


def _median_text(metric: str, value: float, n: int) -> str:
    if math.isnan(value):
        return "– (stalled)"
    figure = f"{value:.2%}" if metric == "error_rate" else f"{value:,.1f}"
    return f"{figure} (n={n})"


def _p_text(m: MetricComparison) -> str:
    return "–" if m.p_value is None else f"{m.p_value:.3f}"


def _run_line(run: RunRecord) -> str:
    return f"`{run.run_id}` ({run.status}, started {run.created_at}, {run.points_ok} ok / {run.points_failed} failed)"


def comparison_markdown(c: Comparison) -> str:
    scenario, load_model = c.run_b.sweep.get("scenario", "?"), c.run_b.sweep.get("load_model", "closed")
    lines = [
        f"# Compare {c.run_a.run_id} (A) with {c.run_b.run_id} (B)",
        "",
        f"- A: {_run_line(c.run_a)}",
        f"- B: {_run_line(c.run_b)}",
        f"- scenario `{scenario}`, {load_model} load model; machine: {machine_label(c.run_b.environment)}",
        "",
        "Change is the ratio of medians over repeats, B/A - 1. The 95% interval of that ratio is distribution-free "
        "(Hodges-Lehmann on the log scale); p is the two-sided Mann-Whitney U test across repeats (significant "
        f"below {ALPHA}). Verdict: slower if requests/s is significantly lower or p99 significantly higher, "
        'faster if either is significantly better and neither worse. "Not enough repeats": with so few repeats '
        "no result could be significant (4 repeats in each run are enough).",
    ]
    if c.differences:
        lines += ["", "## What differs between the runs", ""]
        lines += [f"- {difference}" for difference in c.differences]
    lines += [
        "",
        "## Verdicts",
        "",
        "| config | repeats A/B | requests/s change | p99 change | verdict |",
        "|---|---:|---:|---:|---|",
    ]
    for row in c.rows:
        throughput, p99 = row.metrics["requests_per_s"], row.metrics["latency_ms_p99"]
        lines.append(
            f"| {row.label} | {len(row.point_ids_a)}/{len(row.point_ids_b)} | {change_text(throughput)} "
            f"| {change_text(p99)} | **{row.verdict}** |"
        )
    lines += [
        "",
        "## Every metric",
        "",
        "| config | metric | A median | B median | change | 95% CI of change | p | outcome |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    for row in c.rows:
        for metric, m in row.metrics.items():
            lines.append(
                f"| {row.label} | {METRIC_NAMES[metric]} | {_median_text(metric, m.median_a, len(m.values_a))} "
                f"| {_median_text(metric, m.median_b, len(m.values_b))} | {change_text(m)} | {_ci_text(m)} "
                f"| {_p_text(m)} | {m.outcome} |"
            )
    flagged = [row for row in c.rows if row.flags_a or row.flags_b]
    if flagged:
        lines += ["", "## Flags (read before trusting these figures)", ""]
        lines += [f"- {row.label}: A {row.flags_a or 'none'}; B {row.flags_b or 'none'}" for row in flagged]
    if c.unmatched:
        lines += ["", "## Not compared", ""]
        lines += [f"- {u.label}: {u.reason}" for u in c.unmatched]
    return "\n".join(lines) + "\n"


# --- chart --------------------------------------------------------------------------------------------------

_OUTCOME_COLOURS: dict[str, str] = {
    "better": "tab:green",
    "worse": "tab:red",
    NO_DIFFERENCE: "tab:gray",
    NOT_ENOUGH: "silver",
}  # "not measured" has no point to colour: it is written in the panel instead


def _comparison_title(c: Comparison) -> str:
    sweep = c.run_b.sweep
    machines = {machine_label(c.run_a.environment), machine_label(c.run_b.environment)}
    machine = " vs ".join(sorted(machines))
    context = textwrap.fill(f"{sweep.get('load_model', 'closed')} load model | {machine}", width=120)
    return (
        f"{c.run_b.run_id} (B) vs {c.run_a.run_id} (A): {sweep.get('scenario', '?')}, change of medians B/A\n{context}"
    )


def draw_comparison(c: Comparison, out_dir: Path) -> list[Path]:
    """One panel per metric: each configuration's change % with its 95% interval, coloured by outcome;
    written as PNG and SVG. Returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = [f"{row.label} [{row.verdict}]" for row in c.rows]
    figure, axes = plt.subplots(
        1, len(REPEAT_METRICS), figsize=(18, 1.8 + 0.42 * len(c.rows)), sharey=True, squeeze=False
    )
    for axis, metric in zip(axes[0], REPEAT_METRICS, strict=True):
        for position, row in enumerate(c.rows):
            m = row.metrics[metric]
            if m.change_pct is None:
                axis.annotate(change_text(m), xy=(0, position), ha="center", va="center", fontsize=8)
                continue
            interval = m.change_ci_pct
            # The interval is of the ratio, the point the ratio of medians: they can disagree slightly, never
            # draw a negative bar for that.
            errors = (
                [[max(0.0, m.change_pct - interval[0])], [max(0.0, interval[1] - m.change_pct)]] if interval else None
            )
            axis.errorbar(
                [m.change_pct], [position], xerr=errors, fmt="o", color=_OUTCOME_COLOURS[m.outcome], capsize=4,
                markerfacecolor="white" if m.outcome == NOT_ENOUGH else _OUTCOME_COLOURS[m.outcome],
            )  # fmt: skip
        axis.axvline(0, color="black", linewidth=0.8)
        better = "lower" if LOWER_IS_BETTER[metric] else "higher"
        axis.set_title(f"{METRIC_NAMES[metric]} ({better} is better)", fontsize=10)
        axis.set_xlabel("change B vs A, %")
        axis.grid(True, axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(c.rows)), labels, fontsize=8)
    axes[0][0].set_ylim(-0.6, len(c.rows) - 0.4)
    axes[0][0].invert_yaxis()
    handles = [
        Line2D([], [], marker="o", linestyle="", color=colour, label=outcome)
        for outcome, colour in _OUTCOME_COLOURS.items()
    ]
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=8)
    figure.suptitle(_comparison_title(c), fontsize=10)
    figure.tight_layout(rect=(0, 0.6 / figure.get_figheight(), 1, 1))
    written = []
    for suffix in ("png", "svg"):
        path = out_dir / f"comparison.{suffix}"
        write_figure(figure, path)
        written.append(path)
    plt.close(figure)
    return written


def write_comparison(c: Comparison) -> list[Path]:
    """The chart (PNG, SVG) and comparison.md into the B run's report/compare-<A>/; returns the files."""
    out_dir = c.out_dir
    with report_writes(out_dir):
        charts = draw_comparison(c, out_dir)
        summary = out_dir / "comparison.md"
        chart_links = "\n".join(f"![{chart.name}]({chart.name})" for chart in charts if chart.suffix == ".png")
        write_atomic(summary, comparison_markdown(c) + f"\n## Chart\n\n{chart_links}\n")
    return [*charts, summary]
