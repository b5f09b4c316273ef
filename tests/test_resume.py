"""`bench run --resume`: a sweep interrupted at each moment of its life leaves no process behind and an
incomplete, readable run, which the resume completes with every planned point exactly once; and the runs that
cannot be resumed are refused in one line. In-memory variant only, tiny durations."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from bench.databases.backend import Database, SeedResult
from bench.measure import run as orchestrate
from bench.measure.run import RunOptions, execute_run
from bench.plan.points import Point, SweepSpec
from bench.records.run_folder import lock_holder, open_run, pid_alive, run_lock
from bench.records.schema import PointRecord, RunRecord, RunStatus
from tests.test_e2e import bench_argv, clean_env, descendants

POINT_U2 = "001-memory-nopool-t40-u2-r1"
POINT_U3 = "002-memory-nopool-t40-u3-r1"
FAST = ["--warmup", "0.5", "--duration", "1"]


# ---------------------------------------------------------------- running bench and watching its run folder


def _restore_sigint() -> None:
    # A shell that starts pytest in the background makes it ignore SIGINT, and children inherit that: give the
    # harness the default disposition a terminal's Ctrl-C would meet.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_bench(results: Path, marker: str, *args: str) -> subprocess.Popen[str]:
    """`bench run` in the background; every process it starts inherits `marker` in its environment."""
    return subprocess.Popen(
        bench_argv("run", "--variant", "memory", "--rows", "100", "--results-dir", str(results), "--run-id", "r",
                   "--no-report", *args),
        cwd=results.parent, env=clean_env(BENCH_TEST_MARKER=marker), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=_restore_sigint,  # noqa: PLW1509 - one syscall, no locks
    )  # fmt: skip


def bench(results: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        bench_argv("run", "--results-dir", str(results), *args),
        cwd=results.parent, env=clean_env(), capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def wait_for(path: Path, process: subprocess.Popen[str], timeout_s: float = 60) -> None:
    """Watch the run folder for the file that marks a moment of the sweep; fail early if bench ended first."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process.poll() is not None:
            _, stderr = process.communicate()
            pytest.fail(f"bench ended (exit {process.returncode}) before the awaited moment: {stderr[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail("the awaited moment did not come")
        time.sleep(0.05)


def processes_with_marker(marker: str) -> list[int]:
    """Live processes carrying the marker: the harness and whatever it started, even reparented ones."""
    found = []
    needle = f"BENCH_TEST_MARKER={marker}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes() and pid_alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def interrupt(process: subprocess.Popen[str], sig: signal.Signals, marker: str) -> tuple[set[int], str]:
    """Send `sig` to bench, wait for it to end; returns the children it had then and its stderr."""
    children = descendants(process.pid)
    process.send_signal(sig)
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "run r is marked incomplete" in stderr
    # Children stop before bench exits; allow the kernel a moment to reap them before looking.
    deadline = time.monotonic() + 10
    while processes_with_marker(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with_marker(marker) == []
    return children, stderr


def run_json(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
    return data


def point_ids(run_dir: Path) -> list[str]:
    return sorted(path.stem for path in (run_dir / "points").glob("*.json"))


def assert_incomplete_and_readable(run_dir: Path) -> RunRecord:
    folder = open_run(run_dir.parent, run_dir.name)
    run = folder.load_run()
    assert run.status == "incomplete" and run.error == "interrupted"
    points = folder.load_points()
    assert (run.points_ok, run.points_failed) == (sum(p.status == "ok" for p in points), 0)
    assert not folder.lock_file.exists()
    return run


def resume_to_completion(run_dir: Path, planned: list[str]) -> dict[str, Any]:
    completed = bench(run_dir.parent, "--resume", run_dir.name, "--no-report")
    assert completed.returncode == 0, completed.stderr[-3000:] + completed.stdout[-3000:]
    run = run_json(run_dir)
    assert run["status"] == "complete" and run["error"] is None
    assert point_ids(run_dir) == planned  # every planned point, once, under its original id
    points = [json.loads((run_dir / "points" / f"{pid}.json").read_text()) for pid in planned]
    assert [p["index"] for p in points] == list(range(1, len(planned) + 1))
    assert all(p["status"] == "ok" and p["metrics"]["requests"] > 0 for p in points)
    assert (run["points_planned"], run["points_ok"], run["points_failed"]) == (len(planned), len(planned), 0)
    assert not (run_dir / ".lock").exists()
    return run


def locust_phases(raw_dir: Path) -> set[str]:
    """The phases Locust's summary (written as it quits, SIGTERM included) says it went through."""
    summary = json.loads((raw_dir / "locust_summary.json").read_text())
    return set(summary["phases"])


# ---------------------------------------------------------------- interrupted at each moment, then resumed


@pytest.fixture
def marker() -> str:
    return uuid.uuid4().hex


def test_interrupted_while_the_first_app_starts(tmp_path: Path, marker: str) -> None:
    results = tmp_path / "results"
    run_dir = results / "r"
    process = start_bench(results, marker, "--users", "2,3", *FAST)
    wait_for(run_dir / "raw" / POINT_U2 / "uvicorn.log", process)
    children, _ = interrupt(process, signal.SIGINT, marker)
    assert children  # uvicorn was starting
    assert not (run_dir / "raw" / POINT_U2 / "locust.log").exists()  # no load had started yet
    assert point_ids(run_dir) == []
    assert_incomplete_and_readable(run_dir)
    resume_to_completion(run_dir, [POINT_U2, POINT_U3])


def test_interrupted_during_warm_up(tmp_path: Path, marker: str) -> None:
    results = tmp_path / "results"
    run_dir = results / "r"
    raw = run_dir / "raw" / POINT_U2
    process = start_bench(results, marker, "--users", "2", "--warmup", "6", "--duration", "0.5")
    wait_for(raw / "locust.log", process)
    time.sleep(2.5)  # Locust starts in about a second; its warm-up lasts 6 s (checked below, from its summary)
    children, _ = interrupt(process, signal.SIGTERM, marker)
    assert len(children) >= 2  # uvicorn and Locust
    assert locust_phases(raw) == {"warmup"}
    assert point_ids(run_dir) == []
    assert_incomplete_and_readable(run_dir)
    (raw / "from-the-interrupted-attempt").write_text("")
    run = resume_to_completion(run_dir, [POINT_U2])
    assert not (raw / "from-the-interrupted-attempt").exists()  # the point's raw files are the new attempt's
    assert locust_phases(raw) == {"warmup", "measure"}
    assert run["environment"]["resumes"][0]["points"] == [POINT_U2]


def test_interrupted_during_measurement(tmp_path: Path, marker: str) -> None:
    results = tmp_path / "results"
    run_dir = results / "r"
    raw = run_dir / "raw" / POINT_U2
    process = start_bench(results, marker, "--users", "2", "--warmup", "0.5", "--duration", "6")
    wait_for(raw / "locust.log", process)
    time.sleep(3.5)  # Locust starts in about a second, warms up 0.5 s, then measures 6 s (checked below)
    children, _ = interrupt(process, signal.SIGINT, marker)
    assert len(children) >= 2
    assert locust_phases(raw) == {"warmup", "measure"}
    assert point_ids(run_dir) == []  # a point cut short is not recorded as if it had run its course
    assert_incomplete_and_readable(run_dir)
    resume_to_completion(run_dir, [POINT_U2])


def test_interrupted_between_points_then_resumed_refused_and_retried(tmp_path: Path, marker: str) -> None:
    results = tmp_path / "results"
    run_dir = results / "r"
    process = start_bench(results, marker, "--users", "2,3", *FAST)
    wait_for(run_dir / "points" / f"{POINT_U2}.json", process)
    interrupt(process, signal.SIGTERM, marker)
    run = assert_incomplete_and_readable(run_dir)
    assert point_ids(run_dir) == [POINT_U2] and run.points_ok == 1
    first = (run_dir / "points" / f"{POINT_U2}.json").read_bytes()
    resume_to_completion(run_dir, [POINT_U2, POINT_U3])
    assert (run_dir / "points" / f"{POINT_U2}.json").read_bytes() == first  # only the missing point was measured

    refused = bench(results, "--resume", "r")
    assert_one_line_error(refused, "run r is complete (2 ok, 0 failed): nothing to resume")

    # A failed point is measured again only when asked to.
    failed_file = run_dir / "points" / f"{POINT_U3}.json"
    failed = json.loads(failed_file.read_text()) | {"status": "failed", "error": "made to fail", "metrics": None}
    failed_file.write_text(json.dumps(failed))
    refused = bench(results, "--resume", "r", "--no-report")
    assert_one_line_error(refused, "--retry-failed measures its failed points again")
    retried = bench(results, "--resume", "r", "--retry-failed", "--no-report")
    assert retried.returncode == 0, retried.stderr
    assert point_ids(run_dir) == [POINT_U2, POINT_U3]
    assert json.loads(failed_file.read_text())["status"] == "ok"
    assert (run_dir / "points" / f"{POINT_U2}.json").read_bytes() == first
    assert run_json(run_dir)["points_ok"] == 2


class _InterruptedWhileProvisioning:
    """A backend whose start-up is interrupted (Ctrl-C while a database would be starting)."""

    name = "memory"
    url_option = ""
    url_env = ""

    def provision(
        self, *, url: str | None, connections_needed: int, dataset_rows: int, work_dir: Path, local: bool = True
    ) -> AbstractContextManager[Database]:
        @contextmanager
        def interrupted() -> Iterator[Database]:
            raise KeyboardInterrupt
            yield  # pragma: no cover - a generator that never yields

        return interrupted()

    def seed(self, database: Database, rows: int) -> SeedResult | None:  # pragma: no cover - never reached
        return None


class _Quiet:
    def sweep_started(self, run_id: str, total: int) -> None: ...
    def point_started(self, point: Point) -> None: ...
    def point_finished(self, point: Point, record: PointRecord) -> None: ...


def test_interrupted_before_the_first_point_while_databases_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "results"
    spec = SweepSpec(variants=["memory"], users=[2], warmup_s=0.5, duration_s=1, dataset_rows=100)
    options = RunOptions(spec=spec, database_urls={}, results_dir=results, run_id="r", argv=["bench", "run"])
    with monkeypatch.context() as patched:
        patched.setattr(orchestrate, "get_backend", lambda name: _InterruptedWhileProvisioning())
        with pytest.raises(KeyboardInterrupt):
            execute_run(options, _Quiet())
    run_dir = results / "r"
    run = assert_incomplete_and_readable(run_dir)
    assert run.databases == {} and point_ids(run_dir) == []
    # As if the harness had then been killed outright: a lock whose PID is gone does not block the resume.
    (run_dir / ".lock").write_text(f"{dead_pid()}\n")
    resumed = resume_to_completion(run_dir, [POINT_U2])
    assert resumed["databases"]["memory"]["label"] == "in-memory (no database)"  # filled in by the resume


# ---------------------------------------------------------------- runs that cannot be resumed


def assert_one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 2, result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]


def _recorded_run(results: Path, status: RunStatus = "incomplete") -> Path:
    spec = SweepSpec(variants=["memory"], users=[2], warmup_s=0.5, duration_s=1, dataset_rows=100)
    run = RunRecord(
        run_id="r", status=status, created_at="2026-01-01T00:00:00+00:00", argv=["bench", "run"],
        sweep=spec.model_dump(mode="json"), environment={}, points_planned=1,
    )  # fmt: skip
    (results / "r").mkdir(parents=True)
    (results / "r" / "run.json").write_text(run.model_dump_json())
    return results / "r"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--users", "3"], "drop --users"),
        (["-v", "memory", "-p", "2"], "drop --variant, --pool-size"),
        (["--duration", "2"], "drop --duration"),
        (["--quick"], "drop --quick"),
        (["--run-id", "other"], "drop --run-id"),
    ],
)
def test_options_that_define_points_conflict_with_resume(tmp_path: Path, args: list[str], expected: str) -> None:
    results = tmp_path / "results"
    run_dir = _recorded_run(results)
    before = (run_dir / "run.json").read_bytes()
    assert_one_line_error(bench(results, "--resume", "r", *args), expected)
    assert (run_dir / "run.json").read_bytes() == before


def test_resume_of_a_missing_run_is_refused(tmp_path: Path) -> None:
    assert_one_line_error(bench(tmp_path / "results", "--resume", "nope"), "no run named 'nope'")


def test_resume_of_a_corrupt_run_is_refused(tmp_path: Path) -> None:
    results = tmp_path / "results"
    run_dir = _recorded_run(results)
    (run_dir / "run.json").write_text("{not json")
    assert_one_line_error(bench(results, "--resume", "r"), "cannot read")


def test_resume_of_a_run_with_a_foreign_point_is_refused(tmp_path: Path) -> None:
    results = tmp_path / "results"
    run_dir = _recorded_run(results)
    (run_dir / "points").mkdir()
    (run_dir / "points" / "x.json").write_text("[]")
    assert_one_line_error(bench(results, "--resume", "r"), "not a bench results file")


def test_resume_of_a_run_being_measured_is_refused(tmp_path: Path) -> None:
    results = tmp_path / "results"
    run_dir = _recorded_run(results, status="running")
    (run_dir / ".lock").write_text(f"{os.getpid()}\n")  # this test process stands in for a live bench
    assert_one_line_error(bench(results, "--resume", "r"), f"is being measured by bench (PID {os.getpid()})")
    assert (run_dir / ".lock").exists() and run_json(run_dir)["status"] == "running"


def test_retry_failed_needs_resume(tmp_path: Path) -> None:
    assert_one_line_error(bench(tmp_path / "results", "--retry-failed"), "--retry-failed applies to --resume")


# ---------------------------------------------------------------- the lock itself


def dead_pid() -> int:
    finished = subprocess.Popen(["true"])
    finished.wait()
    return finished.pid


def test_lock_is_held_while_measuring_and_stale_locks_are_taken_over(tmp_path: Path) -> None:
    folder = open_run(tmp_path, str(_recorded_run(tmp_path)))
    assert not pid_alive(dead_pid()) and pid_alive(os.getpid())
    folder.lock_file.write_text(f"{dead_pid()}\n")
    assert lock_holder(folder) is None
    with run_lock(folder):
        assert folder.lock_file.read_text().strip() == str(os.getpid())
    assert not folder.lock_file.exists()
