"""The bad-input catalogue: every case runs the real CLI and must end in one `error: ` line on stderr, exit code 2,
no traceback, and nothing half-written."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.plan.points import SweepSpec
from bench.records.schema import SCHEMA_VERSION, PointConfig, PointMetrics, PointRecord, RunRecord

# Added to `run` cases: should validation ever let a case through, it measures the in-memory variant for a
# second instead of starting databases, and the test fails fast.
CHEAP = ["--variant", "memory", "--users", "1", "--warmup", "0", "--duration", "1", "--rows", "10", "--no-report"]


def bench(
    *args: str, cwd: Path, env: dict[str, str] | None = None, preexec_fn: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    drop = ("DATABASE_URL", "MYSQL_URL", "MONGO_URL", "REDIS_URL", "BENCH_RESULTS_DIR")
    full_env = {k: v for k, v in os.environ.items() if k not in drop} | {"COLUMNS": "200"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120, check=False, preexec_fn=preexec_fn,
    )  # fmt: skip


def assert_user_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 2, result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]


def assert_nothing_written(results: Path) -> None:
    """No run folder, run.json or temporary file: the results folder is absent or as empty as before."""
    assert not results.exists() or sorted(results.rglob("*")) == []


def files(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its content (None for a folder), to prove a command changed nothing."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


# ---------------------------------------------------------------------------------------------------- bench run


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--pool-size", "0"], "invalid --pool-size", id="pool-size-zero"),
        pytest.param(["--pool-size", "two"], "invalid --pool-size", id="pool-size-word"),
        pytest.param(["--pool-size", "2.5"], "invalid --pool-size", id="pool-size-fraction"),
        pytest.param(["--pool-size", "5,x"], "invalid --pool-size", id="pool-size-bad-item"),
        pytest.param(["--pool-size", "5,,10"], "invalid --pool-size: an empty value", id="pool-size-empty-item"),
        pytest.param(["--max-overflow", "-1"], "invalid --max-overflow", id="max-overflow-negative"),
        pytest.param(["--max-overflow", "x"], "invalid --max-overflow", id="max-overflow-word"),
        pytest.param(["--users", "0"], "invalid --users", id="users-zero"),
        pytest.param(["--users", "1.5"], "invalid --users", id="users-fraction"),
        pytest.param(["--users", "2,"], "invalid --users: an empty value", id="users-trailing-comma"),
        pytest.param(["--duration", "0"], "invalid --duration", id="duration-zero"),
        pytest.param(["--duration", "-3"], "invalid --duration", id="duration-negative"),
        pytest.param(["--duration", "1e9"], "invalid --duration", id="duration-too-long"),
        pytest.param(["--duration", "nan"], "invalid --duration: Input should be a finite number", id="duration-nan"),
        pytest.param(["--duration", "inf"], "invalid --duration: Input should be a finite number", id="duration-inf"),
        pytest.param(["--warmup", "soon"], "invalid --warmup", id="warmup-word"),
        pytest.param(["--warmup", "-1"], "invalid --warmup", id="warmup-negative"),
        pytest.param(["--warmup", "99999"], "invalid --warmup", id="warmup-too-long"),
        pytest.param(["--spawn-rate", "0"], "invalid --spawn-rate", id="spawn-rate-zero"),
        pytest.param(["--spawn-rate", "fast"], "invalid --spawn-rate", id="spawn-rate-word"),
        pytest.param(["--rate", "10"], "--rate applies to the open load model only", id="rate-with-closed-model"),
        pytest.param(["--load-model", "open"], "the open load model needs --rate", id="open-model-without-rate"),
        pytest.param(["--load-model", "bogus"], "invalid --load-model", id="load-model-bogus"),
        pytest.param(["--load-model", "open", "--rate", "0"], "invalid --rate", id="rate-zero"),
        pytest.param(["--load-model", "open", "--rate", "x"], "invalid --rate", id="rate-word"),
        pytest.param(["--load-model", "open", "--rate", "1e9"], "invalid --rate", id="rate-too-high"),
        pytest.param(["--arrivals", "poisson"], "--arrivals applies to the open load model only",
                     id="arrivals-with-closed-model"),
        pytest.param(["--arrival-seed", "3"], "--arrival-seed applies to the open load model only",
                     id="arrival-seed-with-closed-model"),
        pytest.param(["--load-model", "open", "--rate", "10", "--arrivals", "zipf"], "invalid --arrivals",
                     id="arrivals-unknown"),
        pytest.param(["--load-model", "open", "--rate", "10", "--arrivals", "uniform", "--arrival-seed", "3"],
                     "--arrival-seed applies to --arrivals poisson only", id="arrival-seed-with-uniform"),
        pytest.param(["--load-model", "open", "--rate", "10", "--arrival-seed", "x"], "invalid --arrival-seed",
                     id="arrival-seed-word"),
        pytest.param(["-O", "nope=1"], "unknown option 'nope' for scenario read_heavy", id="scenario-option-unknown"),
        pytest.param(["--scenario", "io_wait", "-O", "wait_ms=x"], "wait_ms", id="scenario-option-bad-value"),
        pytest.param(["-O", "wait_ms"], "'wait_ms': write KEY=VALUE", id="scenario-option-no-equals"),
        pytest.param(["--variant", "pg_nonexistent"], "unknown variant pg_nonexistent", id="variant-unknown"),
        pytest.param(["--variant", ""], "invalid --variant: an empty name", id="variant-empty"),
        pytest.param(["--scenario", "nope"], "unknown scenario nope", id="scenario-unknown"),
        pytest.param(["--repeat", "0"], "invalid --repeat", id="repeat-zero"),
        pytest.param(["--repeat", "twice"], "invalid --repeat", id="repeat-word"),
        pytest.param(["--thread-tokens", "0"], "invalid --thread-tokens", id="thread-tokens-zero"),
        pytest.param(["--thread-tokens", "many"], "invalid --thread-tokens", id="thread-tokens-word"),
        pytest.param(["--rows", "0"], "invalid --rows", id="rows-zero"),
        pytest.param(["--rows", "100000000"], "invalid --rows", id="rows-too-many"),
        pytest.param(["--pool-timeout", "0"], "invalid --pool-timeout", id="pool-timeout-zero"),
        pytest.param(["--pre-ping", "maybe"], "invalid --pre-ping", id="pre-ping-bogus"),
        pytest.param(["--workers", "0"], "invalid --workers", id="workers-zero"),
        pytest.param(["--processes", "65"], "invalid --processes", id="processes-too-many"),
        pytest.param(["--fault", "bogus"], "invalid --fault", id="fault-unknown"),
        pytest.param(["--fault", "db-restart:at=5s,down=3s"], "does not fit in --duration", id="fault-too-long"),
        pytest.param(["--target-url", "notaurl"], "invalid --target-url", id="target-url-malformed"),
        pytest.param(["--run-id", "../escape"], "invalid --run-id", id="run-id-escape"),
        pytest.param(["--run-id", ""], "invalid --run-id ''", id="run-id-empty"),
        pytest.param(["--no-such-option"], "No such option", id="unknown-option"),
        pytest.param(["--telemetry=yes"], "does not take a value", id="flag-given-a-value"),
    ],
)  # fmt: skip
def test_invalid_run_options(tmp_path: Path, args: list[str], expected: str) -> None:
    results = tmp_path / "results"
    assert_user_error(bench("run", "--results-dir", str(results), *CHEAP, *args, cwd=tmp_path), expected)
    assert_nothing_written(results)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["bogus"], "No such command 'bogus'", id="unknown-command"),
        pytest.param(["report"], "Missing argument 'RUN'", id="report-without-run"),
        pytest.param(["compare", "only-one"], "Missing argument 'RUN_B'", id="compare-with-one-run"),
        pytest.param(["tune", "--variant", "pg_sqla_async"], "Missing option '--slo'", id="tune-without-slo"),
    ],
)
def test_incomplete_command_lines(tmp_path: Path, args: list[str], expected: str) -> None:
    assert_user_error(bench(*args, cwd=tmp_path), expected)


# ------------------------------------------------------------------------------------------------ --config FILE


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("pool_sizes = [", "not valid TOML", id="not-toml"),
        pytest.param(b"\xff\xfe", "cannot read config file", id="not-utf8"),
        pytest.param("colour = 'blue'\n", "unknown setting 'colour'", id="unknown-key"),
        pytest.param("sweep = 3\n", "[sweep] must be a table", id="sweep-not-a-table"),
        pytest.param("pool_sizes = [2]\n[sweep]\nusers = [5]\n", "'pool_sizes' outside [sweep]", id="outside-sweep"),
        pytest.param("pool_sizes = 'five'\n", "invalid pool_sizes in", id="string-for-list"),
        pytest.param("pool_sizes = []\n", "invalid pool_sizes in", id="empty-list"),
        pytest.param("pool_sizes = [0]\n", "invalid pool_sizes in", id="out-of-range-item"),
        pytest.param("users = [1, 'x']\n", "invalid users in", id="bad-item"),
        pytest.param("duration_s = 'x'\n", "invalid duration_s in", id="word-for-number"),
        pytest.param("repeat = true\n", "invalid repeat in", id="boolean-for-number"),
        pytest.param("warmup_s = 5000\n", "invalid warmup_s in", id="out-of-range"),
        pytest.param("duration_s = nan\n", "invalid duration_s in", id="nan"),
        pytest.param("workers = 0\n", "invalid workers in", id="workers-zero"),
        pytest.param("pool_pre_ping = 'maybe'\n", "invalid pool_pre_ping in", id="not-a-boolean"),
        pytest.param("scenario_options = 5\n", "invalid scenario_options in", id="options-not-a-table"),
        pytest.param("scenario_options = {nope = 1}\n", "unknown option 'nope'", id="unknown-scenario-option"),
        pytest.param("load_model = 'open'\n", "the open load model needs --rate", id="open-model-without-rates"),
    ],
)  # fmt: skip
def test_invalid_config_file(tmp_path: Path, content: str | bytes, expected: str) -> None:
    config = tmp_path / "sweep.toml"
    config.write_bytes(content if isinstance(content, bytes) else content.encode())
    results = tmp_path / "results"
    result = bench("run", "--config", str(config), "-v", "memory", "--results-dir", str(results), cwd=tmp_path)
    assert_user_error(result, expected)
    assert_nothing_written(results)


def test_cli_option_conflicting_with_config_file(tmp_path: Path) -> None:
    config = tmp_path / "sweep.toml"
    config.write_text("load_model = 'open'\nrates = [100]\n")
    results = tmp_path / "results"
    result = bench(
        "run", "--config", str(config), "--load-model", "closed", "--results-dir", str(results), *CHEAP, cwd=tmp_path
    )  # fmt: skip
    assert_user_error(result, "--rate applies to the open load model only")
    assert_nothing_written(results)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(lambda path: None, "does not exist", id="missing"),
        pytest.param(lambda path: path.mkdir(), "cannot read config file", id="a-folder"),
    ],
)
def test_unreadable_config_file(tmp_path: Path, make: Callable[[Path], None], expected: str) -> None:
    config = tmp_path / "sweep.toml"
    make(config)
    assert_user_error(bench("run", "--config", str(config), *CHEAP, cwd=tmp_path), expected)


# ------------------------------------------------------------------------------------------------ database URLs


@pytest.mark.parametrize(
    ("variant", "option", "url", "expected"),
    [
        # Nothing listens on port 1: each driver fails fast, and the message names the masked URL.
        pytest.param("pg_sqla_async", "--database-url", "postgresql://bench:s3cret@127.0.0.1:1/bench",
                     "cannot connect to PostgreSQL at postgresql://bench:***@127.0.0.1:1/bench",
                     id="postgresql-unreachable"),
        pytest.param("mysql_sqla_sync", "--mysql-url", "mysql://bench:s3cret@127.0.0.1:1/bench",
                     "cannot connect to MySQL at mysql://bench:***@127.0.0.1:1/bench", id="mysql-unreachable"),
        pytest.param("mongo_pymongo", "--mongo-url", "mongodb://bench:s3cret@127.0.0.1:1/bench",
                     "cannot connect to MongoDB at mongodb://bench:***@127.0.0.1:1/bench", id="mongodb-unreachable"),
        pytest.param("redis_sync", "--redis-url", "redis://:s3cret@127.0.0.1:1/0",
                     "cannot use Redis at redis://:***@127.0.0.1:1/0", id="redis-unreachable"),
        pytest.param("pg_sqla_sync", "--database-url", "not a url", "not a url", id="postgresql-malformed"),
        pytest.param("mysql_sqla_sync", "--mysql-url", "nonsense", "invalid MySQL URL nonsense", id="mysql-malformed"),
        pytest.param("mongo_pymongo", "--mongo-url", "mongodb://", "invalid MongoDB URL", id="mongodb-malformed"),
        pytest.param("redis_sync", "--redis-url", "redis://:x", "invalid Redis URL", id="redis-malformed"),
        pytest.param("pg_sqla_sync", "--database-url", "mysql://bench:s3cret@127.0.0.1:1/bench",
                     "must start with postgresql://", id="postgresql-given-mysql-url"),
        pytest.param("mysql_sqla_sync", "--mysql-url", "postgresql://bench@127.0.0.1:1/bench",
                     "must start with mysql://", id="mysql-given-postgresql-url"),
        pytest.param("mongo_pymongo", "--mongo-url", "redis://127.0.0.1:1/0", "must start with mongodb://",
                     id="mongodb-given-redis-url"),
        pytest.param("redis_sync", "--redis-url", "mongodb://127.0.0.1:1/bench", "must be a redis:// URL",
                     id="redis-given-mongodb-url"),
    ],
)  # fmt: skip
def test_bad_database_url(tmp_path: Path, variant: str, option: str, url: str, expected: str) -> None:
    results = tmp_path / "results"
    result = bench("run", *CHEAP, "--variant", variant, option, url, "--results-dir", str(results), cwd=tmp_path)
    assert_user_error(result, expected)
    assert "s3cret" not in result.stderr + result.stdout
    assert_nothing_written(results)


@pytest.fixture
def foreign_port() -> Iterator[int]:
    """A port held by something that is not the expected server: it sends an HTTP banner and hangs up."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed at teardown
                return
            with conn:
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nnot a database\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone would not
    server.close()
    thread.join(timeout=5)


@pytest.mark.parametrize(
    ("variant", "option", "url"),
    [
        pytest.param("pg_sqla_async", "--database-url", "postgresql://bench:s3cret@127.0.0.1:{port}/bench",
                     id="postgresql"),
        pytest.param("mysql_sqla_sync", "--mysql-url", "mysql://bench:s3cret@127.0.0.1:{port}/bench", id="mysql"),
        pytest.param("redis_sync", "--redis-url", "redis://:s3cret@127.0.0.1:{port}/0", id="redis"),
        pytest.param("memory", "--target-url", "http://127.0.0.1:{port}", id="target-url"),
    ],
)  # fmt: skip
def test_port_held_by_another_service(tmp_path: Path, foreign_port: int, variant: str, option: str, url: str) -> None:
    results = tmp_path / "results"
    given = url.format(port=foreign_port)
    result = bench("run", *CHEAP, "--variant", variant, option, given, "--results-dir", str(results), cwd=tmp_path)
    assert_user_error(result, f"127.0.0.1:{foreign_port}")
    assert "s3cret" not in result.stderr + result.stdout
    assert_nothing_written(results)


def test_port_held_by_a_silent_service_is_not_waited_on_for_ever(tmp_path: Path) -> None:
    """MySQL's server speaks first; a service that waits for the client (as HTTP servers do) must time out."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nobody ever answers
        port = silent.getsockname()[1]
        results = tmp_path / "results"
        url = f"mysql://bench:s3cret@127.0.0.1:{port}/bench"
        result = bench("run", *CHEAP, "-v", "mysql_sqla_sync", "--mysql-url", url, "--results-dir", str(results),
                       cwd=tmp_path)  # fmt: skip
    assert_user_error(result, f"cannot connect to MySQL at mysql://bench:***@127.0.0.1:{port}/bench")
    assert_nothing_written(results)


# ------------------------------------------------------------------------------------------- the results folder


def test_results_folder_under_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = bench("run", *CHEAP, "--results-dir", str(blocker / "results"), cwd=tmp_path)
    assert_user_error(result, "cannot write results folder")
    assert blocker.read_text() == ""


def test_results_folder_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("keep me")
    assert_user_error(bench("run", *CHEAP, "--results-dir", str(blocker), cwd=tmp_path), "is a file, not a folder")
    assert blocker.read_text() == "keep me"


def test_results_folder_in_a_virtual_file_system(tmp_path: Path) -> None:
    """Even root cannot make a folder in /proc: the unwritable case that holds on any CI machine."""
    result = bench("run", *CHEAP, "--results-dir", "/proc/bench-results", cwd=tmp_path)
    assert_user_error(result, "cannot write results folder /proc/bench-results")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; see the /proc case")
def test_read_only_results_folder(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir(mode=0o555)
    try:
        assert_user_error(bench("run", *CHEAP, "--results-dir", str(results), cwd=tmp_path), "cannot write")
        assert_nothing_written(results)
    finally:
        results.chmod(0o755)


@pytest.mark.parametrize(
    ("limit_bytes", "expected"),
    [
        pytest.param(0, "cannot write results folder", id="no-file-fits"),  # the write probe fails
        pytest.param(1024, "run.json: File too large", id="run-record-does-not-fit"),
    ],
)
def test_full_disk(tmp_path: Path, limit_bytes: int, expected: str) -> None:
    """RLIMIT_FSIZE stands in for a full disk (no tmpfs without root): writes past it fail with EFBIG."""
    results = tmp_path / "results"
    results.mkdir()

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    result = bench("run", *CHEAP, "--results-dir", str(results), cwd=tmp_path, preexec_fn=limit_file_size)
    assert_user_error(result, expected)
    assert_nothing_written(results)


# ---------------------------------------------------------------------- runs given to report, show, compare, ...


def _write_run(results: Path, name: str, users: int = 20) -> Path:
    """A small valid run: its record and one measured point."""
    folder = results / name
    (folder / "points").mkdir(parents=True)
    spec = SweepSpec(variants=["memory"], users=[2], warmup_s=0.5, duration_s=1, dataset_rows=100)
    run = RunRecord(
        run_id=name, status="complete", created_at="2026-01-01T00:00:00+00:00", argv=["bench", "run"],
        sweep=spec.model_dump(mode="json"), environment={}, points_planned=1, points_ok=1,
    )  # fmt: skip
    config = PointConfig(
        variant="pg_sqla_async", backend="postgresql", backend_label="PostgreSQL 16", mode="async",
        driver="asyncpg", pooled=True, scenario="read_heavy", pool_size=5, max_overflow=10, users=users,
        spawn_rate=50, warmup_s=3, duration_s=10, repeat_index=1, pool_timeout_s=30, pool_pre_ping=False,
        thread_tokens=40, workers=1, dataset_rows=10_000,
    )  # fmt: skip
    metrics = PointMetrics(
        requests=1000, failures=0, error_rate=0.0, requests_per_s=100, measured_s=10, latency_ms_mean=5,
        latency_ms_p50=5, latency_ms_p90=8, latency_ms_p95=9, latency_ms_p99=10, latency_ms_p999=12,
        latency_ms_max=20,
    )  # fmt: skip
    point = PointRecord(
        run_id=name, point_id="001-pg_sqla_async", index=1, status="ok", config=config, metrics=metrics,
        started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:00:15+00:00",
    )  # fmt: skip
    (folder / "run.json").write_text(run.model_dump_json())
    (folder / "points" / "001-pg_sqla_async.json").write_text(point.model_dump_json())
    return folder


def _newer_schema(folder: Path) -> None:
    data = json.loads((folder / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps(data | {"schema_version": SCHEMA_VERSION + 1}))


# How each kind of broken run is made from a valid one, and what the one line says.
BROKEN: dict[str, tuple[Callable[[Path], object], str]] = {
    "missing": (lambda folder: None, "no run named 'target'"),
    "corrupt-json": (lambda folder: (folder / "run.json").write_text("{"), "cannot read"),
    "not-utf8": (lambda folder: (folder / "run.json").write_bytes(b"\xff\xfe\x00"), "cannot read"),
    "json-array": (lambda folder: (folder / "run.json").write_text("[]"), "not a bench results file"),
    "package-json": (
        lambda folder: (folder / "run.json").write_text('{"name": "app", "version": "1.0.0"}'),
        "not a bench results file (no schema_version)",
    ),
    "newer-schema": (_newer_schema, "was written by a newer bench"),
    "wrong-shape": (
        lambda folder: (folder / "run.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION, "run_id": 5})),
        "not a valid bench results file",
    ),
    "corrupt-point": (
        lambda folder: (folder / "points" / "001-pg_sqla_async.json").write_text("{nope"),
        "001-pg_sqla_async.json",
    ),
    "foreign-point": (
        lambda folder: (folder / "points" / "002-other.json").write_text("[]"),
        "002-other.json is not a bench results file",
    ),
}
# The broken run is `target`; `base` is a valid run beside it.
READERS: dict[str, list[str]] = {
    "report": ["report", "target"],
    "show": ["show", "target"],
    "findings": ["findings", "target"],
    "compare": ["compare", "base", "target"],
    "tune": ["tune", "--variant", "pg_sqla_async", "--slo", "p99<1s", "--from-run", "target"],
}
# The loader is shared, so `show` meets every kind of broken run and the others the main ones.
READ_CASES = [
    *(("show", kind) for kind in BROKEN),
    *((command, kind) for command in READERS if command != "show" for kind in ("missing", "corrupt-json",
                                                                                "newer-schema", "corrupt-point")),
]  # fmt: skip


@pytest.mark.parametrize(("command", "kind"), [pytest.param(c, k, id=f"{c}-{k}") for c, k in READ_CASES])
def test_unreadable_run(tmp_path: Path, command: str, kind: str) -> None:
    results = tmp_path / "results"
    _write_run(results, "base")
    break_run, expected = BROKEN[kind]
    if kind != "missing":
        break_run(_write_run(results, "target"))
    before = files(results)
    assert_user_error(bench(*READERS[command], "--results-dir", str(results), cwd=tmp_path), expected)
    assert files(results) == before  # no report/ folder, no comparison, no recommendation


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["base", "base"], "are the same run", id="same-run-twice"),
        pytest.param(["base", "other"], "have no configuration in common", id="no-common-configuration"),
        pytest.param(["base", "other", "--ignore", "colour"], "cannot ignore colour", id="ignore-unknown-field"),
        pytest.param(["base", "other", "--fail-if-slower", "x"], "invalid --fail-if-slower: 'x'", id="gate-word"),
        pytest.param(["base", "other", "--fail-if-slower", "-5"], "invalid --fail-if-slower", id="gate-negative"),
        pytest.param(["base", "other", "--fail-if-slower", "nan"], "not a finite number", id="gate-nan"),
    ],
)
def test_invalid_compare(tmp_path: Path, args: list[str], expected: str) -> None:
    results = tmp_path / "results"
    _write_run(results, "base")
    _write_run(results, "other", users=99)
    before = files(results)
    assert_user_error(bench("compare", *args, "--results-dir", str(results), cwd=tmp_path), expected)
    assert files(results) == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--slo", "p99<"], "invalid --slo 'p99<'", id="slo-without-limit"),
        pytest.param(["--slo", "p42<1ms"], "percentile p42 is not recorded", id="slo-unknown-percentile"),
        pytest.param(["--slo", "p99<-5ms"], "invalid --slo 'p99<-5ms'", id="slo-negative"),
        pytest.param(["--slo", "rps>x"], "invalid --slo 'rps>x'", id="slo-not-latency"),
        pytest.param(["--slo", "p99<0ms"], "the limit must be above zero", id="slo-zero"),
        pytest.param(["--slo", "p99<1h"], "invalid --slo 'p99<1h'", id="slo-unknown-unit"),
        pytest.param(["--slo", "p99<1ms,p99<2ms"], "p99 is bounded twice", id="slo-bounded-twice"),
        pytest.param(["--slo", "p99<1s", "--max-error-rate", "2"], "invalid --max-error-rate", id="error-rate-over-1"),
        pytest.param(["--slo", "p99<1s", "--max-error-rate", "x"], "invalid --max-error-rate", id="error-rate-word"),
        pytest.param(["--slo", "p99<1s", "--users", "7"], "with 7 users", id="from-run-without-that-load"),
        pytest.param(["--slo", "p99<1s", "--from-run", "other"], "several loads", id="from-runs-of-two-loads"),
        pytest.param(["--slo", "p99<1s", "--variant", "pg_sqla_sync"], "no points of variant pg_sqla_sync",
                     id="from-run-without-the-variant"),
        pytest.param(["--slo", "p99<1s", "--pool-size", "2,4"], "drop --pool-size", id="from-run-with-a-grid"),
        pytest.param(["--slo", "p99<1s", "--adaptive", "--duration", "5"], "drop --adaptive, --duration",
                     id="from-run-with-sweep-options"),
    ],
)  # fmt: skip
def test_invalid_tune_from_runs(tmp_path: Path, args: list[str], expected: str) -> None:
    results = tmp_path / "results"
    _write_run(results, "base")
    _write_run(results, "other", users=99)
    before = files(results)
    command = ["tune", "--variant", "pg_sqla_async", "--from-run", "base", *args, "--results-dir", str(results)]
    assert_user_error(bench(*command, cwd=tmp_path), expected)
    assert files(results) == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--variant", "nope"], "unknown variant nope", id="variant-unknown"),
        pytest.param(["--variant", "memory"], "variant memory has no connection pool", id="variant-without-pool"),
        pytest.param(["--max-rounds", "0", "--adaptive"], "invalid --max-rounds", id="max-rounds-zero"),
        pytest.param(["--users", "1,2"], "invalid --users", id="several-loads"),
        pytest.param(["--pool-size", "0"], "invalid --pool-size", id="pool-size-zero"),
        pytest.param(["--run-id", "../up"], "invalid --run-id", id="run-id-escape"),
    ],
)
def test_invalid_tune_sweep(tmp_path: Path, args: list[str], expected: str) -> None:
    results = tmp_path / "results"
    command = ["tune", "--variant", "pg_sqla_async", "--slo", "p99<1s", *args, "--results-dir", str(results)]
    assert_user_error(bench(*command, "--duration", "1", "--warmup", "0", "--rows", "10", cwd=tmp_path), expected)
    assert_nothing_written(results)


def _report_is_a_file(results: Path) -> None:
    (results / "target" / "report").write_text("in the way")


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))  # run records can be read; no chart fits


@pytest.mark.parametrize(
    ("command", "block", "preexec_fn", "expected"),
    [
        pytest.param(["report", "target"], _report_is_a_file, None, "cannot write the report into", id="report"),
        pytest.param(["compare", "base", "target"], _report_is_a_file, None, "cannot write the report into",
                     id="compare"),
        pytest.param(["tune", "-v", "pg_sqla_async", "--slo", "p99<1s", "--from-run", "target"], _report_is_a_file,
                     None, "cannot write the report into", id="tune"),
        pytest.param(["findings", "target"], _report_is_a_file, None, "cannot write", id="findings"),
        pytest.param(["report", "target"], None, _limit_file_size, "File too large", id="report-disk-full"),
        pytest.param(["compare", "base", "target"], None, _limit_file_size, "File too large", id="compare-disk-full"),
    ],
)  # fmt: skip
def test_report_that_cannot_be_written(
    tmp_path: Path,
    command: list[str],
    block: Callable[[Path], None] | None,
    preexec_fn: Callable[[], None] | None,
    expected: str,
) -> None:
    results = tmp_path / "results"
    _write_run(results, "base")
    _write_run(results, "target")
    if block is not None:
        block(results)
    records = {name: data for name, data in files(results).items() if name.endswith(".json")}
    result = bench(*command, "--results-dir", str(results), cwd=tmp_path, preexec_fn=preexec_fn)
    assert_user_error(result, expected)
    assert {name: data for name, data in files(results).items() if name.endswith(".json")} == records
    assert not [path for path in results.rglob("*") if path.name.endswith(".tmp")]


def test_findings_output_under_a_file(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _write_run(results, "target")
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = bench("findings", "target", "--out", str(blocker / "findings.md"), "--results-dir", str(results),
                   cwd=tmp_path)  # fmt: skip
    assert_user_error(result, "choose another output file")


# ------------------------------------------------------------------------------------------------ bench calibrate


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--users", "0"], "invalid --users", id="users-zero"),
        pytest.param(["--users", "x"], "invalid --users: 'x' is not an integer", id="users-word"),
        pytest.param(["--rate", "0"], "invalid --rate", id="rate-zero"),
        pytest.param(["--duration", "0"], "invalid --duration", id="duration-zero"),
        pytest.param(["--duration", "nan"], "invalid --duration: 'nan' is not a finite number", id="duration-nan"),
        pytest.param(["--warmup", "inf"], "invalid --warmup: 'inf' is not a finite number", id="warmup-inf"),
        pytest.param(["--rows", "0"], "invalid --rows", id="rows-zero"),
        pytest.param(["--variant", "nope"], "unknown variant nope", id="variant-unknown"),
        pytest.param(["--variant", "pg_sqla_async", "--database-url", "postgresql://bench:s3cret@127.0.0.1:1/bench"],
                     "cannot connect to PostgreSQL at postgresql://bench:***@127.0.0.1:1/bench",
                     id="database-unreachable"),
    ],
)  # fmt: skip
def test_invalid_calibrate_options(tmp_path: Path, args: list[str], expected: str) -> None:
    results = tmp_path / "results"
    command = ["calibrate", "--users", "1", "--warmup", "0", "--duration", "1", "--rows", "10", *args]
    assert_user_error(bench(*command, "--results-dir", str(results), cwd=tmp_path), expected)
    assert_nothing_written(results)


# ------------------------------------------------------------------------------------------------ bench selftest


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--service-ms", "0"], "invalid --service-ms", id="service-ms-zero"),
        pytest.param(["--service-ms", "5000"], "invalid --service-ms", id="service-ms-too-long"),
        pytest.param(["--service-ms", "x"], "invalid --service-ms: 'x' is not a number", id="service-ms-word"),
        pytest.param(["--duration", "1"], "invalid --duration", id="duration-too-short"),
        pytest.param(["--warmup", "0"], "invalid --warmup", id="warmup-zero"),
        pytest.param(["--arrival-seed", "-1"], "invalid --arrival-seed", id="arrival-seed-negative"),
    ],
)  # fmt: skip
def test_invalid_selftest_options(tmp_path: Path, args: list[str], expected: str) -> None:
    results = tmp_path / "results"
    assert_user_error(bench("selftest", *args, "--results-dir", str(results), cwd=tmp_path), expected)
    assert_nothing_written(results)


def test_list_and_variants_work_without_runs(tmp_path: Path) -> None:
    listed = bench("list", "--results-dir", str(tmp_path), cwd=tmp_path)
    assert listed.returncode == 0 and "no runs" in listed.stdout
    variants = bench("variants", cwd=tmp_path)
    assert variants.returncode == 0
    for name in ("memory", "pg_sqla_sync", "pg_sqla_async", "pg_sqla_blocking"):
        assert name in variants.stdout
