"""The results folder: atomic writes of run and point records, and loading them back (with upgrades)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bench.databases.throwaway.workdirs import pid_alive
from bench.records.errors import BenchError
from bench.records.schema import SCHEMA_VERSION, PointRecord, RunRecord

RecordT = TypeVar("RecordT", RunRecord, PointRecord)

RUN_FILE = "run.json"
AGGREGATES_FILE = "aggregates.json"  # statistics over repeats (bench/records/stats.py), rewritten after every point
POINTS_DIR = "points"
RAW_DIR = "raw"
REPORT_DIR = "report"
# Held by the harness measuring into the folder (its PID inside), so a second `bench run --resume` of the same
# run is refused; a lock whose PID is no longer alive (the harness was killed) is stale and taken over.
LOCK_FILE = ".lock"


def write_atomic(path: Path, text: str) -> None:
    """Write `text` so that readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp makes it private; results and reports are meant to be shared
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


@dataclass(frozen=True)
class RunFolder:
    """One run's folder: results/<run_id>/ with run.json, points/, raw/, report/."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def run_file(self) -> Path:
        return self.path / RUN_FILE

    @property
    def report_dir(self) -> Path:
        return self.path / REPORT_DIR

    def raw_dir(self, point_id: str) -> Path:
        return self.path / RAW_DIR / point_id

    def point_file(self, point_id: str) -> Path:
        return self.path / POINTS_DIR / f"{point_id}.json"

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_FILE

    def discard_point(self, point_id: str) -> None:
        """Forget a point's record and raw files before it is measured again, so neither a half-finished
        measurement's files nor an older attempt's record is mixed into the new one."""
        self.point_file(point_id).unlink(missing_ok=True)
        shutil.rmtree(self.raw_dir(point_id), ignore_errors=True)

    def write_run(self, record: RunRecord) -> None:
        self._write(self.run_file, record.model_dump(mode="json"))

    def write_point(self, record: PointRecord) -> None:
        self._write(self.point_file(record.point_id), record.model_dump(mode="json"))

    def write_aggregates(self, groups: Sequence[BaseModel]) -> None:
        data = {"schema_version": SCHEMA_VERSION, "groups": [group.model_dump(mode="json") for group in groups]}
        self._write(self.path / AGGREGATES_FILE, data)

    def _write(self, path: Path, data: Any) -> None:
        # A BenchError, so the harness takes its user-error path: a run that measured nothing is removed whole.
        try:
            write_json(path, data)
        except OSError as exc:
            raise BenchError(
                f"cannot write {path}: {exc.strerror or exc}; free some space or pass another --results-dir"
            ) from None

    def load_run(self) -> RunRecord:
        return _load_record(self.run_file, RunRecord)

    def load_points(self) -> list[PointRecord]:
        points = [_load_record(p, PointRecord) for p in sorted((self.path / POINTS_DIR).glob("*.json"))]
        return sorted(points, key=lambda p: p.index)


def create_run_folder(results_dir: Path, run_id: str) -> RunFolder:
    """Create results/<run_id>/, failing with one clear line (and leaving nothing) when it cannot be written."""
    if results_dir.exists() and not results_dir.is_dir():
        raise BenchError(f"results folder {results_dir} is a file, not a folder; pass another --results-dir")
    path = results_dir / run_id
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        path.mkdir()
    except FileExistsError:
        raise BenchError(f"run folder {path} already exists; choose another --run-id") from None
    except OSError as exc:
        raise _unwritable(results_dir, exc) from None
    try:
        probe = path / ".write-probe"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except OSError as exc:  # e.g. a full disk: the folder could be made, a file in it not
        shutil.rmtree(path, ignore_errors=True)
        raise _unwritable(results_dir, exc) from None
    return RunFolder(path)


def _unwritable(results_dir: Path, exc: OSError) -> BenchError:
    return BenchError(
        f"cannot write results folder {results_dir}: {exc.strerror or exc}; pass a writable --results-dir"
    )


@contextmanager
def report_writes(out_dir: Path) -> Iterator[None]:
    """Writing a report: a folder that cannot take it (read-only, full, a file in its place) is one clear line."""
    try:
        yield
    except OSError as exc:
        raise BenchError(
            f"cannot write the report into {out_dir}: {exc.strerror or exc}; free some space or make it writable"
        ) from None


def remove_run_folder(folder: RunFolder) -> None:
    """Remove a run that never got to measure anything, so no half-written run is left behind."""
    shutil.rmtree(folder.path, ignore_errors=True)


def lock_holder(folder: RunFolder) -> int | None:
    """The PID of a live harness measuring into `folder`, or None (no lock, an unreadable one, or a stale one)."""
    try:
        pid = int(folder.lock_file.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    return pid if pid != os.getpid() and pid_alive(pid) else None


@contextmanager
def run_lock(folder: RunFolder) -> Iterator[None]:
    """Hold the run folder for this process while it measures into it; a live holder means one clear error."""
    holder = lock_holder(folder)
    if holder is not None:
        raise BenchError(
            f"run {folder.run_id} is being measured by bench (PID {holder}); wait for it or stop it first "
            f"(if no bench is running, delete {folder.lock_file})"
        )
    try:
        # A stale lock is replaced; O_EXCL makes two harnesses starting at the same moment not both win.
        folder.lock_file.unlink(missing_ok=True)
        fd = os.open(folder.lock_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise BenchError(f"run {folder.run_id} is being resumed by another bench at this moment") from None
    except OSError as exc:
        raise BenchError(f"cannot write run folder {folder.path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()}\n")
    try:
        yield
    finally:
        folder.lock_file.unlink(missing_ok=True)


def open_run(results_dir: Path, run: str) -> RunFolder:
    """Find a run by id (or by path); one clear line if it does not exist or is not a run."""
    candidate = Path(run)
    path = candidate if candidate.is_dir() and (candidate / RUN_FILE).exists() else results_dir / run
    if not (path / RUN_FILE).is_file():
        raise BenchError(f"no run named {run!r} in {results_dir}; `bench list` shows the runs there")
    return RunFolder(path)


def list_runs(results_dir: Path) -> list[RunRecord]:
    """Every readable run in the results folder, oldest first; unreadable folders are skipped."""
    if not results_dir.is_dir():
        return []
    runs: list[RunRecord] = []
    for run_file in sorted(results_dir.glob(f"*/{RUN_FILE}")):
        try:
            runs.append(_load_record(run_file, RunRecord))
        except BenchError:
            continue
    return sorted(runs, key=lambda r: r.created_at)


def _upgrade(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Bring an older record up to SCHEMA_VERSION, one version step at a time."""
    version = data.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise BenchError(f"{path} is not a bench results file (no schema_version)")
    if version > SCHEMA_VERSION:
        raise BenchError(
            f"{path} was written by a newer bench (schema {version} > {SCHEMA_VERSION}); upgrade bench to read it"
        )
    if version == 1:
        data = _upgrade_1_to_2(data)
    if data["schema_version"] == 2:
        data = dict(data, schema_version=3)  # every field schema 3 added has a default
    if data["schema_version"] == 3:
        data = dict(data, schema_version=4)  # so has every field schema 4 added
    if data["schema_version"] == 4:
        data = _upgrade_4_to_5(data)
    if data["schema_version"] == 5:
        data = dict(data, schema_version=6)  # every field schema 6 added has a default
    return data


def _upgrade_4_to_5(data: dict[str, Any]) -> dict[str, Any]:
    """Open-model runs before schema 5 followed the evenly spread timetable: say so, rather than let the new
    default (Poisson) describe them. A run's sweep is upgraded too, so `--resume` keeps measuring what it did."""
    upgraded = dict(data, schema_version=5)
    for key in ("config", "sweep"):  # a point record's config, a run record's sweep
        settings = upgraded.get(key)
        if isinstance(settings, dict) and settings.get("load_model") == "open" and "arrivals" not in settings:
            upgraded[key] = settings | {"arrivals": "uniform"}
    return upgraded


def _upgrade_1_to_2(data: dict[str, Any]) -> dict[str, Any]:
    upgraded = dict(data, schema_version=2)
    if "database" in upgraded:  # a run record: one PostgreSQL became a mapping of databases
        database = upgraded.pop("database")
        upgraded["databases"] = {}
        if isinstance(database, dict):
            bindir = database.pop("bindir", None)
            database.setdefault("source", f"binaries in {bindir}" if bindir else "given URL")
            upgraded["databases"][database.get("kind", "postgresql")] = database
    return upgraded


def _load_record(path: Path, model: type[RecordT]) -> RecordT:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise BenchError(f"{path} is not a bench results file (expected a JSON object)")
    try:
        return model.model_validate(_upgrade(data, path))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BenchError(f"{path} is not a valid bench results file ({where}: {first['msg']})") from None
