"""Redis for the tests: a throwaway server the harness starts (or BENCH_TEST_REDIS_URL), never the Redis a
developer may run on the default port."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
import redis

from apps.redis_items import NEXT_ID_KEY, ORDER_KEY, item_key
from bench.databases.redis.backend import provision_redis, seed_redis

SEEDED_ROWS = 100


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """BENCH_TEST_REDIS_URL if set (its `bench:*` keys are rewritten), else a throwaway redis-server."""
    given = os.environ.get("BENCH_TEST_REDIS_URL")
    if given is None and shutil.which("redis-server") is None:
        pytest.skip("no redis-server on PATH: install Redis (apt-get install redis-server) or set BENCH_TEST_REDIS_URL")
    with provision_redis(url=given, connections_needed=60, local_port=None) as database:
        assert database.url is not None
        seed_redis(database.url, SEEDED_ROWS)
        yield database.url


@pytest.fixture
def redis_backend(redis_url: str) -> Iterator[dict[str, str]]:
    """The app environment for a Redis variant; afterwards the items the test created are removed and the id
    counter rewound, so the seeded dataset stays exactly in place."""
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        next_id_before = int(client.get(NEXT_ID_KEY) or 0)
        yield {"BENCH_DATABASE_URL": redis_url}
        next_id_after = int(client.get(NEXT_ID_KEY) or 0)
        with client.pipeline(transaction=True) as pipe:
            for item_id in range(next_id_before + 1, next_id_after + 1):
                pipe.delete(item_key(item_id))
            pipe.zremrangebyscore(ORDER_KEY, f"({next_id_before}", "+inf")
            pipe.set(NEXT_ID_KEY, next_id_before)
            pipe.execute()
