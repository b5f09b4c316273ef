"""The in-memory baseline's "backend": nothing to start or seed (the app fills its dict at start-up)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.databases.backend import Database, SeedResult


class MemoryBackend:
    name = "memory"
    url_option = ""
    url_env = ""

    @contextmanager
    def provision(
        self, *, url: str | None, connections_needed: int, dataset_rows: int, work_dir: Path, local: bool = True
    ) -> Iterator[Database]:
        yield Database(
            backend=self.name, url=None, label="in-memory (no database)", version="", embedded=False,
            source="the app's own dict",
        )  # fmt: skip

    def seed(self, database: Database, rows: int) -> SeedResult | None:
        return None  # the app builds the same dataset itself from BENCH_DATASET_ROWS
