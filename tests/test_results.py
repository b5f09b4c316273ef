"""The results folder: atomic writes, round trips, and clear errors for files that are not ours."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.records.errors import BenchError
from bench.records.run_folder import create_run_folder, list_runs, open_run, write_atomic
from bench.records.schema import SCHEMA_VERSION, RunRecord


def _run(run_id: str = "r1", created_at: str = "2026-01-01T00:00:00+00:00") -> RunRecord:
    return RunRecord(
        run_id=run_id, status="complete", created_at=created_at, argv=["bench", "run"],
        sweep={"variants": ["memory"]}, environment={"cpu_count": 2}, points_planned=1,
    )  # fmt: skip


def test_atomic_write_replaces_whole_file_and_leaves_no_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.json"
    write_atomic(target, "first")
    write_atomic(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["file.json"]


def test_run_round_trip_and_listing(tmp_path: Path) -> None:
    folder = create_run_folder(tmp_path, "r1")
    folder.write_run(_run())
    assert open_run(tmp_path, "r1").load_run() == _run()
    second = create_run_folder(tmp_path, "r0")
    second.write_run(_run("r0", created_at="2026-02-01T00:00:00+00:00"))
    assert [r.run_id for r in list_runs(tmp_path)] == ["r1", "r0"]  # by start time, not by name


def test_existing_run_folder_is_refused(tmp_path: Path) -> None:
    create_run_folder(tmp_path, "same")
    with pytest.raises(BenchError, match="already exists"):
        create_run_folder(tmp_path, "same")


def test_unwritable_results_folder_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(BenchError, match="cannot write results folder"):
        create_run_folder(blocker / "results", "r1")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "cannot read"),
        ("[1, 2]", "expected a JSON object"),
        ('{"hello": "world"}', "no schema_version"),
        (json.dumps({"schema_version": SCHEMA_VERSION + 1}), "newer bench"),
        (json.dumps({"schema_version": SCHEMA_VERSION, "run_id": 3}), "not a valid bench results file"),
    ],
)
def test_corrupt_or_foreign_files_are_reported_not_crashed_on(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.json").write_text(content)
    with pytest.raises(BenchError, match=expected):
        open_run(tmp_path, "bad").load_run()
    assert list_runs(tmp_path) == []  # listing skips what it cannot read


def test_unknown_run_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="no run named 'missing'"):
        open_run(tmp_path, "missing")


def test_version_1_runs_are_upgraded_on_load(tmp_path: Path) -> None:
    v1 = _run().model_dump(mode="json")
    v1.pop("databases")
    v1 |= {
        "schema_version": 1,
        "database": {
            "kind": "postgresql", "label": "PostgreSQL 15", "url": "postgresql://postgres@127.0.0.1:5/bench",
            "embedded": True, "version": "15", "settings": {"fsync": "on"}, "bindir": "/usr/lib/postgresql/15/bin",
        },
    }  # fmt: skip
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "run.json").write_text(json.dumps(v1))
    run = open_run(tmp_path, "old").load_run()
    assert run.schema_version == SCHEMA_VERSION
    database = run.databases["postgresql"]
    assert (database.label, database.embedded, database.surrogate) == ("PostgreSQL 15", True, False)
    assert database.source == "binaries in /usr/lib/postgresql/15/bin"


def test_open_model_records_before_schema_5_read_as_uniform_arrivals(tmp_path: Path) -> None:
    """They followed the evenly spread timetable; the new default (Poisson) must not describe them."""
    v4 = _run().model_dump(mode="json") | {"schema_version": 4}
    v4["sweep"] = {"variants": ["memory"], "load_model": "open", "rates": [100.0]}
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "run.json").write_text(json.dumps(v4))
    run = open_run(tmp_path, "old").load_run()
    assert run.schema_version == SCHEMA_VERSION and run.sweep["arrivals"] == "uniform"
    v4["sweep"] = {"variants": ["memory"]}  # closed model: no timetable, nothing to say
    (tmp_path / "old" / "run.json").write_text(json.dumps(v4))
    assert "arrivals" not in open_run(tmp_path, "old").load_run().sweep

    folder = open_run(tmp_path, "old")
    config = {
        "variant": "memory", "backend": "memory", "backend_label": "in memory", "mode": "async", "driver": "dict",
        "pooled": False, "scenario": "read_heavy", "pool_size": None, "max_overflow": None, "users": 10,
        "spawn_rate": 10, "warmup_s": 1, "duration_s": 5, "repeat_index": 1, "pool_timeout_s": 30,
        "pool_pre_ping": False, "thread_tokens": 40, "workers": 1, "dataset_rows": 100,
    }  # fmt: skip
    for load_model, expected in (("open", "uniform"), ("closed", None)):
        point = {
            "schema_version": 4, "run_id": "old", "point_id": f"001-{load_model}", "index": 1, "status": "failed",
            "config": config | {"load_model": load_model, "rate": 100.0 if load_model == "open" else None},
            "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:00:10+00:00",
        }  # fmt: skip
        (tmp_path / "old" / "points").mkdir(exist_ok=True)
        (tmp_path / "old" / "points" / "001.json").write_text(json.dumps(point))
        [loaded] = folder.load_points()
        assert (loaded.config.arrivals, loaded.config.arrival_seed) == (expected, None)
