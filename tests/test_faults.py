"""Database faults mid-measurement: the --fault text, the reading of the outcome slices around one, and real
runs that stop (db-restart) or freeze (db-pause) the PostgreSQL bench started, then report the recovery."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from bench.measure.load_summary import Outcomes
from bench.plan.faults import FaultSpec, FaultTimes, check_fits, fault_effect, parse_fault
from tests.test_e2e import bench_argv, clean_env
from tests.test_resume import processes_with_marker

# ---------------------------------------------------------------- the --fault text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("db-restart:at=20s,down=5s", FaultSpec("db-restart", 20.0, 5.0)),
        ("db-pause:down=500ms,at=3", FaultSpec("db-pause", 3.0, 0.5)),
        (" db-restart:at=0s, down=1.5s ", FaultSpec("db-restart", 0.0, 1.5)),
    ],
)
def test_fault_texts_parse(text: str, expected: FaultSpec) -> None:
    assert parse_fault(text) == expected
    assert parse_fault(expected.text()) == expected  # the recorded text reads back the same


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("db-crash:at=1s,down=1s", "unknown fault 'db-crash'"),
        ("db-restart", "missing at and down"),
        ("db-restart:at=1s", "missing down"),
        ("db-restart:at=1s,down=0s", "down must be above 0"),
        ("db-restart:at=soon,down=1s", "'soon' is not a duration"),
        ("db-restart:at=1s,down=-2s", "'-2s' is not a duration"),
        ("db-restart:at=1s,down=1s,for=2s", "expected at=SECONDS,down=SECONDS"),
        ("db-restart:at=1s,at=2s,down=1s", "at given twice"),
    ],
)
def test_bad_fault_texts_are_refused_in_one_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        parse_fault(text)
    assert "\n" not in str(raised.value)


def test_a_fault_must_end_in_time_to_watch_the_recovery() -> None:
    check_fits(FaultSpec("db-restart", 3.0, 3.0), duration_s=8.0)
    with pytest.raises(ValueError, match="does not fit in --duration 7"):
        check_fits(FaultSpec("db-restart", 3.0, 3.0), duration_s=7.0)


# ---------------------------------------------------------------- reading the outcome slices (known inputs)


def slices(ok: list[int], failed: list[int]) -> Outcomes:
    """Outcome slices of 1 s from epoch 100 (the recorder's are 100 ms; the arithmetic is the same)."""
    return Outcomes(started_at=100.0, bucket_s=1.0, ok=ok, failed=failed)


def test_a_restart_with_errors_after_the_database_is_back() -> None:
    # measured 100..110; down at 103, back at 105; errors until 106, first success in the slice from 105.
    outcomes = slices(ok=[9, 9, 9, 0, 0, 4, 9, 9, 9, 9], failed=[0, 0, 0, 7, 6, 3, 0, 0, 0, 0])
    effect = fault_effect(outcomes, FaultTimes(injected_at=103.0, back_at=105.0), 100.0, 110.0)
    assert (effect.errors_before, effect.errors_during, effect.errors_after) == (0, 13, 3)
    assert effect.first_success_after_back_s == 0.0
    assert effect.last_error_after_back_s == 1.0
    assert effect.recovered is True


def test_a_pool_that_keeps_failing_has_not_recovered() -> None:
    outcomes = slices(ok=[9, 9, 0, 0, 0, 1, 0, 1, 0, 1], failed=[0, 0, 5, 5, 5, 5, 5, 5, 5, 5])
    effect = fault_effect(outcomes, FaultTimes(injected_at=102.0, back_at=104.0), 100.0, 110.0)
    assert effect.errors_after == 30 and effect.last_error_after_back_s == 6.0
    assert effect.first_success_after_back_s == 1.0
    assert effect.recovered is False


def test_a_database_that_never_came_back() -> None:
    outcomes = slices(ok=[9, 9, 0, 0, 0], failed=[0, 0, 5, 5, 5])
    effect = fault_effect(outcomes, FaultTimes(injected_at=102.0, error="db-restart: no free port"), 100.0, 105.0)
    assert effect.errors_during == 15 and effect.errors_after == 0
    assert effect.first_success_after_back_s is None and effect.recovered is False


def test_too_short_a_tail_cannot_tell_recovery() -> None:
    outcomes = slices(ok=[9, 9, 0, 9, 9], failed=[0, 0, 5, 0, 0])
    effect = fault_effect(outcomes, FaultTimes(injected_at=102.0, back_at=103.5), 100.0, 105.0)
    assert effect.recovered is None


def test_slices_outside_the_measured_period_are_ignored() -> None:
    # slices 0-1 are warm-up (measured from 102), the last one after the stop
    outcomes = slices(ok=[0, 0, 9, 9, 9, 9, 9, 9, 0], failed=[4, 4, 0, 0, 0, 0, 0, 0, 8])
    effect = fault_effect(outcomes, FaultTimes(injected_at=104.0, back_at=105.0), 102.0, 108.0)
    assert (effect.errors_before, effect.errors_during, effect.errors_after) == (0, 0, 0)


class _StatusError(Exception):
    """Shaped like scenarios/lean_client.py's HTTPStatusError (which imports gevent: not in pytest's process)."""

    def __init__(self, status_code: int, error_kind: str | None) -> None:
        super().__init__(f"{status_code} Server Error")
        self.status_code = status_code
        self.error_kind = error_kind


def test_failure_kinds_name_what_failed_inside_the_app() -> None:
    from scenarios.recording import failure_kind  # noqa: PLC0415 - imports neither locust nor gevent

    assert failure_kind(_StatusError(500, "OperationalError")) == "HTTP 500 OperationalError"
    assert failure_kind(_StatusError(503, None)) == "HTTP 503"
    assert failure_kind(ConnectionRefusedError(111, "refused")) == "ConnectionRefusedError"


# ---------------------------------------------------------------- real runs on the PostgreSQL bench starts


def run_with_fault(tmp_path: Path, fault: str, *extra: str) -> tuple[subprocess.CompletedProcess[str], str]:
    marker = uuid.uuid4().hex
    result = subprocess.run(
        bench_argv(
            "run", "--variant", "pg_sqla_async,pg_asyncpg", "--pool-size", "4", "--max-overflow", "0",
            "--users", "6", "--warmup", "0.5", "--duration", "6", "--rows", "200", "--fault", fault,
            "--results-dir", str(tmp_path / "results"), "--run-id", "fault", *extra,
        ),
        cwd=tmp_path, env=clean_env(BENCH_TEST_MARKER=marker), capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    return result, marker


def points_of(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted((run_dir / "points").glob("*.json"))]


@pytest.mark.e2e
def test_db_restart_is_recorded_and_reported_with_pre_ping_on_and_off(tmp_path: Path) -> None:
    result, marker = run_with_fault(tmp_path, "db-restart:at=1.5s,down=1.5s", "--pre-ping", "off,on")
    assert result.returncode == 0, result.stderr
    assert processes_with_marker(marker) == []  # the restarted postmaster is stopped too
    run_dir = tmp_path / "results" / "fault"
    points = points_of(run_dir)
    assert sorted((p["config"]["variant"], p["config"]["pool_pre_ping"]) for p in points) == [
        ("pg_asyncpg", False), ("pg_asyncpg", True), ("pg_sqla_async", False), ("pg_sqla_async", True),
    ]  # fmt: skip
    for point in points:
        assert point["status"] == "ok" and point["config"]["fault"] == "db-restart:at=1.5s,down=1.5s"
        fault = point["fault"]
        assert fault["error"] is None
        assert fault["injected_at_s"] == pytest.approx(1.5, abs=0.3)  # timed from Locust's own start
        assert fault["back_at_s"] >= fault["injected_at_s"] + 1.5
        assert fault["errors_during"] > 0  # requests failed while the server was down...
        assert fault["first_success_after_back_s"] is not None  # ...and succeeded again once it was back
        assert sum(fault["failed_per_slice"]) == point["metrics"]["failures"]
        assert sum(point["metrics"]["failures_by_kind"].values()) == point["metrics"]["failures"]
        # the app names what failed inside it (the driver's exception class), not only "HTTP 500"
        assert all(re.fullmatch(r"HTTP 500 \w+", kind) for kind in point["metrics"]["failures_by_kind"])
        # the database probe kept trying through the outage, so its counts show the connections coming back
        assert not any("not sampled further" in error for error in point["telemetry"]["errors"])
    summary = (run_dir / "report" / "summary.md").read_text()
    assert "## Database fault and recovery" in summary
    assert summary.count("| db-restart for 1.5 s |") == 4
    assert (run_dir / "report" / "fault_recovery.png").stat().st_size > 0
    assert "Database fault and recovery" in (run_dir / "report" / "index.html").read_text()
    shown = subprocess.run(
        bench_argv("show", "fault", "--results-dir", str(tmp_path / "results")),
        cwd=tmp_path, env=clean_env(COLUMNS="250"), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert shown.returncode == 0 and "database fault and recovery" in shown.stdout, shown.stderr
    assert shown.stdout.count("db-restart for 1.5 s") == 4


@pytest.mark.e2e
def test_db_pause_freezes_and_thaws_the_server(tmp_path: Path) -> None:
    result, marker = run_with_fault(tmp_path, "db-pause:at=1s,down=1.5s", "--no-report")
    assert result.returncode == 0, result.stderr
    assert processes_with_marker(marker) == []
    for point in points_of(tmp_path / "results" / "fault"):
        fault = point["fault"]
        assert fault["kind"] == "db-pause" and fault["error"] is None
        assert fault["back_at_s"] - fault["injected_at_s"] == pytest.approx(1.5, abs=0.3)
        # Frozen, not gone: requests wait instead of failing, so the slowest took about as long as the pause.
        assert point["metrics"]["latency_ms_max"] >= 1000
        assert fault["recovered"] is True


def test_a_fault_on_a_database_given_by_url_is_refused(tmp_path: Path, postgres_url: str) -> None:
    result = subprocess.run(
        bench_argv("run", "--variant", "pg_sqla_async", "--fault", "db-restart:at=1s,down=1s", "--duration", "5",
                   "--database-url", postgres_url, "--results-dir", str(tmp_path / "results")),
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "needs a database bench started itself" in lines[0], result.stderr
    assert not any((tmp_path / "results").glob("*/run.json"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fault", "db-restart:at=4s,down=4s", "--duration", "9"], "does not fit in --duration 9"),
        (["--fault", "db-boom:at=1s,down=1s"], "unknown fault 'db-boom'"),
        (["--processes", "0"], "--processes"),
        (["--pre-ping", "maybe"], "--pre-ping"),
        (["--workers", "0"], "--workers"),
    ],
)
def test_bad_fault_and_scale_options_are_refused_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = subprocess.run(
        bench_argv("run", "--variant", "pg_sqla_async", "--results-dir", str(tmp_path / "results"), *args),
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server binary")
def test_fresh_servers_let_a_fault_restart_redis_with_its_data(tmp_path: Path) -> None:
    """--fresh-servers: a throwaway Redis even where one answers on 6379, so bench may restart it; the dataset
    survives the restart (no 404s after it), though the throwaway server keeps no persistence otherwise."""
    marker = uuid.uuid4().hex
    result = subprocess.run(
        bench_argv(
            "run", "--variant", "redis_async", "--pool-size", "4", "--max-overflow", "0", "--users", "6",
            "--warmup", "0.5", "--duration", "5", "--rows", "200", "--fault", "db-restart:at=1s,down=1s",
            "--fresh-servers", "--results-dir", str(tmp_path / "results"), "--run-id", "redis", "--no-report",
        ),
        cwd=tmp_path, env=clean_env(BENCH_TEST_MARKER=marker), capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert processes_with_marker(marker) == []
    run_dir = tmp_path / "results" / "redis"
    assert json.loads((run_dir / "run.json").read_text())["databases"]["redis"]["source"].startswith("throwaway")
    (point,) = points_of(run_dir)
    fault = point["fault"]
    assert fault["error"] is None and fault["errors_during"] > 0 and fault["recovered"] is True
    assert fault["back_at_s"] - fault["injected_at_s"] == pytest.approx(1.0, abs=0.5)
    assert not any(kind.startswith("HTTP 404") for kind in point["metrics"]["failures_by_kind"])
