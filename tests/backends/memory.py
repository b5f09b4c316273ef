"""The in-memory baseline needs no server: only its dataset size (and a URL it merely echoes)."""

from __future__ import annotations

import pytest

MEMORY_ROWS = 30
# Never connected to: the memory variant only echoes it, which shows that /health masks passwords.
FAKE_URL = "postgresql://bench:hunter2@db.invalid:5432/bench"


@pytest.fixture
def memory_backend() -> dict[str, str]:
    return {"BENCH_DATASET_ROWS": str(MEMORY_ROWS), "BENCH_DATABASE_URL": FAKE_URL}
