"""Shared fixtures: a real PostgreSQL for the whole session (the one the harness itself provisions)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from bench.databases.postgres import provision_postgres


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL: BENCH_TEST_DATABASE_URL if set, else a throwaway server started by the harness."""
    given = os.environ.get("BENCH_TEST_DATABASE_URL")
    with provision_postgres(url=given, max_connections_needed=60, dataset_rows=1000) as server:
        yield server.url
