"""Machine-level measurements kept beside the runs (results/calibration, overhead, selftest): write, read latest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from bench.records.errors import BenchError
from bench.records.run_folder import write_json

LATEST_FILE = "latest.json"


M = TypeVar("M", bound=BaseModel)


def store_measurement(folder: Path, record: BaseModel, *, suffix: str = "", latest: bool = True) -> None:
    """Write `record` as <timestamp><suffix>.json in `folder` and, when `latest`, as latest.json; one-line
    BenchError when the folder cannot be written."""
    measured_at: str = getattr(record, "measured_at")  # noqa: B009 - every measurement record has it
    stamp = measured_at.replace(":", "").replace("-", "").replace("+0000", "Z")
    data = record.model_dump(mode="json")
    try:
        write_json(folder / f"{stamp}{suffix}.json", data)
        if latest:
            write_json(folder / LATEST_FILE, data)
    except OSError as exc:
        raise BenchError(f"cannot write {folder}: {exc.strerror or exc}") from None


def latest_measurement(folder: Path, model: type[M], machine: str) -> M | None:
    """The latest record in `folder` made on `machine`, or None (none made, another machine, unreadable)."""
    try:
        record = model.model_validate(json.loads((folder / LATEST_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError):
        return None
    return record if getattr(record, "machine", None) == machine else None
