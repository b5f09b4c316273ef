"""`bench overhead`: rounds interleave variant and yardstick, ratios come from the same round, output and record."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.measure.overhead import judged
from bench.records.overhead import AppFigures, OverheadRecord, OverheadRound, VariantOverhead, summarise
from tests.test_cli_errors import assert_nothing_written, assert_user_error, bench
from tests.test_e2e import descendants


def _round(number: int, variant_rps: float, yardstick_rps: float, variant_p99: float = 10.0) -> OverheadRound:
    return OverheadRound(
        round=number,
        first="variant" if number % 2 else "yardstick",
        variant=AppFigures(requests_per_s=variant_rps, latency_ms_p50=2.0, latency_ms_p99=variant_p99, errors=0),
        yardstick=AppFigures(requests_per_s=yardstick_rps, latency_ms_p50=1.0, latency_ms_p99=10.0, errors=0),
    )


def test_ratios_are_taken_within_a_round_then_summarised_by_median_and_range() -> None:
    # The machine slows down between rounds; within each round the variant serves 90%, 96%, 99% of its yardstick.
    rounds = [_round(1, 900, 1000), _round(2, 480, 500), _round(3, 1980, 2000)]
    summary = summarise("pg_asyncpg", "postgresql", "PostgreSQL 15", False, rounds)
    assert summary.requests_ratio.median == pytest.approx(0.96)
    assert (summary.requests_ratio.low, summary.requests_ratio.high) == pytest.approx((0.90, 0.99))
    assert summary.p50_ratio.median == pytest.approx(2.0)
    assert summary.within_budget


@pytest.mark.parametrize(
    ("rounds", "within"),
    [
        ([_round(1, 940, 1000)] * 3, False),  # 0.94x requests/s
        ([_round(1, 1000, 1000, variant_p99=11.5)] * 3, False),  # p99 1.15x
        ([_round(1, 950, 1000, variant_p99=11.0)] * 3, True),  # both exactly at the budget
    ],
)
def test_the_budget_is_095_of_the_requests_and_110_of_the_p99(rounds: list[OverheadRound], within: bool) -> None:
    assert summarise("v", "b", "d", False, rounds).within_budget is within


def _summary(ratios: list[float], p99_ratios: list[float] | None = None) -> VariantOverhead:
    p99s = p99_ratios or [1.0] * len(ratios)
    rounds = [
        _round(n, ratio * 1000, 1000, p99 * 10)
        for n, (ratio, p99) in enumerate(zip(ratios, p99s, strict=True), start=1)
    ]
    return summarise("pg_asyncpg", "postgresql", "PostgreSQL 15", False, rounds)


# Identical apps on a noisy machine: the A/A control's rounds spread by more than the 5% budget.
NOISY_CONTROL = [0.88, 0.93, 0.99, 1.04, 1.10]


@pytest.mark.parametrize(
    ("ratios", "p99_ratios", "verdict"),
    [
        ([0.97, 0.99, 1.00, 1.01, 1.03], None, "ok"),
        # Every round below every control round: five against five cannot happen by chance (p = 0.008).
        ([0.70, 0.72, 0.75, 0.80, 0.85], None, "over"),
        # Below the budget, but the control's identical apps spread as widely: noise cannot be ruled out.
        ([0.85, 0.90, 0.93, 0.98, 1.05], None, "unresolved"),
        # The p99 misses the budget and is far above the control's (whose p99 ratios are all 1.0 here).
        ([1.00] * 5, [1.30, 1.40, 1.35, 1.50, 1.45], "over"),
    ],
)
def test_outside_the_budget_is_over_only_when_unlike_the_aa_control(
    ratios: list[float], p99_ratios: list[float] | None, verdict: str
) -> None:
    control = _summary(NOISY_CONTROL, [0.9, 0.95, 1.0, 1.05, 1.1])
    result = judged(_summary(ratios, p99_ratios), control)
    assert result.verdict == verdict
    assert result.over_budget is (verdict == "over")
    if verdict != "ok":
        assert result.control_p is not None and (result.control_p < 0.05) is (verdict == "over")


def test_a_variant_better_than_a_slow_control_is_not_over() -> None:
    # The control ran slow (0.85x: one of the identical apps drew the busier core): a variant at 0.90x is below
    # the budget but on the good side of the control, so nothing says our code is what costs.
    result = judged(_summary([0.88, 0.89, 0.90, 0.91, 0.92]), _summary([0.83, 0.84, 0.85, 0.86, 0.87]))
    assert (result.verdict, result.control_p) == ("unresolved", 1.0)


def test_without_a_control_the_budget_alone_decides() -> None:
    assert judged(_summary([0.90] * 3), None).verdict == "over"
    assert judged(_summary([0.99] * 3), None).verdict == "ok"
    # Records made before the control existed carry no verdict: the budget decides for them too.
    assert _summary([0.90] * 3).over_budget and not _summary([0.99] * 3).over_budget


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--variant", "nope"], "unknown variant nope"),
        (["--rounds", "0"], "--rounds"),
        (["--generator", "ab"], "--generator must be wrk or locust"),
        (["--duration", "x"], "--duration"),
    ],
)
def test_bad_options_are_one_line_errors_and_write_nothing(args: list[str], expected: str, tmp_path: Path) -> None:
    results = tmp_path / "results"
    assert_user_error(bench("overhead", *args, "--results-dir", str(results), cwd=tmp_path), expected)
    assert_nothing_written(results)


GENERATORS = [
    pytest.param("wrk", marks=pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")),
    "locust",
]


@pytest.mark.parametrize("generator", GENERATORS)
def test_a_real_measurement_prints_the_table_and_records_every_round(generator: str, tmp_path: Path) -> None:
    results = tmp_path / "results"
    args = ["overhead", "-v", "memory", "--rounds", "2", "--warmup", "0", "--duration", "1", "--rows", "50"]
    result = bench(*args, "--generator", generator, "--results-dir", str(results), cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "memory" in result.stdout and "req/s" in result.stdout
    assert result.stderr.count("memory round") == 2  # progress, one line a round
    assert result.stderr.count("A/A control round") == 2  # the control, in the same rounds
    assert "A/A control: memory's yardstick" in result.stdout and "noise floor" in result.stdout

    record = OverheadRecord.model_validate(json.loads((results / "overhead" / "latest.json").read_text()))
    assert record.generator == generator
    assert [v.variant for v in record.variants] == ["memory"]
    rounds = record.variants[0].rounds
    assert [r.first for r in rounds] == ["variant", "yardstick"]  # interleaved: the order alternates
    for measured in rounds:
        assert measured.variant.requests_per_s > 0 and measured.yardstick.requests_per_s > 0
        assert measured.variant.errors == 0 and measured.yardstick.errors == 0
    ratios = sorted(r.requests_ratio for r in rounds)
    assert record.variants[0].requests_ratio.low == pytest.approx(ratios[0])
    assert record.variants[0].requests_ratio.high == pytest.approx(ratios[-1])
    assert record.control is not None and record.control.variant == "memory"
    assert [r.first for r in record.control.rounds] == ["variant", "yardstick"]
    assert all(r.variant.requests_per_s > 0 and r.yardstick.requests_per_s > 0 for r in record.control.rounds)
    assert record.variants[0].verdict in ("ok", "over", "unresolved")
    # The timestamped copy beside latest.json holds the same record.
    assert len(list((results / "overhead").glob("*.json"))) == 2


def _record(*entries: tuple[str, float], control: VariantOverhead | None = None) -> OverheadRecord:
    variants = [
        summarise(name, "postgresql", "PostgreSQL 15", False, [_round(n, ratio * 1000, 1000) for n in (1, 2, 3)])
        for name, ratio in entries
    ]
    return OverheadRecord(
        measured_at="2026-01-01T00:00:00+00:00", machine="2 CPUs, Test CPU", generator="wrk", connections=32,
        warmup_s=3, duration_s=10, pool_size=16, max_overflow=0, dataset_rows=10_000, telemetry=True,
        variants=[judged(v, control) for v in variants] if control is not None else variants, control=control,
    )  # fmt: skip


def test_the_report_shows_the_overhead_and_the_findings_name_a_variant_over_budget(tmp_path: Path) -> None:
    from bench.analysis.findings import findings_markdown  # noqa: PLC0415
    from bench.report.html import render_html  # noqa: PLC0415
    from tests.test_findings import make_run, write_standard_run  # noqa: PLC0415

    record = _record(("pg_sqla_async", 0.80), ("pg_sqla_sync", 0.99))
    folder = write_standard_run(tmp_path, overhead=record)
    findings = findings_markdown(folder)
    assert "`pg_sqla_async` served 0.80x its yardstick's requests/s" in findings
    assert "`pg_sqla_sync` served" not in findings  # within budget: nothing to qualify

    page = render_html(make_run(overhead=record), [], [])
    assert "What the harness&#x27;s own code costs" in page or "What the harness's own code costs" in page
    assert "0.80 (.80-.80)" in page and "OVER" in page and "<td>ok</td>" in page

    # Beside a control whose identical apps spread from 0.75x to 1.2x, 0.80x is not told apart from noise.
    noisy = _record(("pg_sqla_async", 0.80), control=_summary([0.75, 1.0, 1.2]))
    findings = findings_markdown(write_standard_run(tmp_path / "noisy", overhead=noisy))
    assert "the A/A control (a yardstick beside itself) differed as much" in findings
    page = render_html(make_run(overhead=noisy), [], [])
    assert "A/A control" in page and "noise floor" in page and "noise? p " in page and "<td>OVER" not in page

    unmeasured = findings_markdown(write_standard_run(tmp_path / "other"))
    assert "was not measured on this machine (`bench overhead`)" in unmeasured


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_stops_every_server_and_records_nothing(signal_number: int, tmp_path: Path) -> None:
    results = tmp_path / "results"
    args = ["overhead", "-v", "memory", "--rounds", "1", "--warmup", "0", "--duration", "30", "--rows", "50"]
    env = {k: v for k, v in os.environ.items() if k != "BENCH_RESULTS_DIR"}
    # SIGINT set back to its default: a shell that starts us in the background leaves it ignored.
    process = subprocess.Popen(
        [sys.executable, "-m", "bench", *args, "--generator", "locust", "--results-dir", str(results)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509 - before any thread
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not any("uvicorn" in _cmdline(pid) for pid in descendants(process.pid)):
        assert time.monotonic() < deadline and process.poll() is None, "the app never started"
        time.sleep(0.1)
    time.sleep(2)  # the load is under way
    process.send_signal(signal_number)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert descendants(process.pid) == set()
    assert not (results / "overhead" / "latest.json").exists()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
