"""Bad input through the real CLI: one clear line on stderr, exit code 2, no traceback, no run folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def bench(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"COLUMNS": "200"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def assert_user_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 2, result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--pool-size", "0"], "invalid --pool-size"),
        (["--pool-size", "two"], "invalid --pool-size"),
        (["--max-overflow", "-1"], "invalid --max-overflow"),
        (["--users", "0"], "invalid --users"),
        (["--duration", "0"], "invalid --duration"),
        (["--duration", "-3"], "invalid --duration"),
        (["--warmup", "soon"], "invalid --warmup"),
        (["--variant", "pg_nonexistent"], "unknown variant pg_nonexistent"),
        (["--scenario", "nope"], "unknown scenario nope"),
        (["--repeat", "0"], "invalid --repeat"),
        (["--thread-tokens", "0"], "invalid --thread-tokens"),
        (["--run-id", "../escape"], "invalid --run-id"),
        (["--no-such-option"], "No such option"),
    ],
)
def test_invalid_run_options(tmp_path: Path, args: list[str], expected: str) -> None:
    result = bench("run", "--results-dir", str(tmp_path / "results"), *args, cwd=tmp_path)
    assert_user_error(result, expected)
    assert not any((tmp_path / "results").glob("*/run.json"))


@pytest.mark.parametrize(
    ("content", "expected"),
    [("pool_sizes = [", "not valid TOML"), ("colour = 'blue'\n", "unknown setting 'colour'")],
)
def test_invalid_config_file(tmp_path: Path, content: str, expected: str) -> None:
    config = tmp_path / "sweep.toml"
    config.write_text(content)
    assert_user_error(bench("run", "--config", str(config), cwd=tmp_path), expected)


def test_missing_config_file(tmp_path: Path) -> None:
    assert_user_error(bench("run", "--config", "absent.toml", cwd=tmp_path), "does not exist")


def test_unreachable_database_masks_password_and_leaves_no_run(tmp_path: Path) -> None:
    url = "postgresql://bench:s3cret@127.0.0.1:1/bench"
    result = bench(
        "run", "--variant", "pg_sqla_async", "--results-dir", str(tmp_path / "results"), cwd=tmp_path,
        env={"DATABASE_URL": url},
    )  # fmt: skip
    assert_user_error(result, "127.0.0.1:1")
    assert "s3cret" not in result.stderr + result.stdout
    assert list((tmp_path / "results").iterdir()) == []


def test_malformed_database_url(tmp_path: Path) -> None:
    result = bench(
        "run", "--variant", "pg_sqla_sync", "--database-url", "not a url", "--results-dir", str(tmp_path / "r"),
        cwd=tmp_path,
    )  # fmt: skip
    assert_user_error(result, "not a url")


def test_unwritable_results_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = bench("run", "--variant", "memory", "--results-dir", str(blocker / "results"), cwd=tmp_path)
    assert_user_error(result, "cannot write results folder")


@pytest.mark.parametrize("command", ["report"])
def test_unknown_run(tmp_path: Path, command: str) -> None:
    assert_user_error(bench(command, "missing-run", "--results-dir", str(tmp_path), cwd=tmp_path), "no run named")


def test_corrupt_run_file(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "run.json").write_text("{")
    assert_user_error(bench("report", "broken", "--results-dir", str(tmp_path), cwd=tmp_path), "cannot read")


def test_list_and_variants_work_without_runs(tmp_path: Path) -> None:
    listed = bench("list", "--results-dir", str(tmp_path), cwd=tmp_path)
    assert listed.returncode == 0 and "no runs" in listed.stdout
    variants = bench("variants", cwd=tmp_path)
    assert variants.returncode == 0
    for name in ("memory", "pg_sqla_sync", "pg_sqla_async", "pg_sqla_blocking"):
        assert name in variants.stdout
