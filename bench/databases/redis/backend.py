"""Redis for a run: a given server (checked for room for the pools), a local one, or a throwaway child process.

Without a URL the harness uses a Redis answering PING on 127.0.0.1:6379, in logical database 15
(LOCAL_DATABASE), so that the keys it writes stay out of the database 0 a developer's own tools use (a server
that wants a password, or has fewer databases, does not answer there); else it starts a throwaway
`redis-server` (bench/databases/redis/server.py). Wherever it is, the harness only ever writes `bench:*` keys.

Seeding is idempotent: `bench:dataset` holds the row count and a fingerprint of the dataset, computed from
`apps.dataset` in the same form a Lua script computes it from what the server holds. The dataset is reused
when the stored and recomputed fingerprints both match the generator's; anything else reseeds from scratch.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis

from apps.dataset import SeedItem, seed_items
from apps.masking import scrub
from apps.redis_items import ITEM_KEY_PREFIX, NEXT_ID_KEY, ORDER_KEY, URL_SCHEMES, item_hash, item_key
from bench.databases.backend import Database, SeedResult
from bench.databases.redis.server import throwaway_redis
from bench.records.errors import BenchError

DEFAULT_PORT = 6379
LOCAL_DATABASE = 15
CONNECT_TIMEOUT_S = 3
# Seeding sends batches of thousands of commands and the fingerprint script reads thousands of hashes.
COMMAND_TIMEOUT_S = 60
RECORDED_SETTINGS = ("maxclients", "appendonly", "save", "maxmemory")
# Connections beyond the pools: seeding, probes, this check, a redis-cli someone opens.
CONNECTION_HEADROOM = 16
DATASET_KEY = "bench:dataset"
_SEED_BATCH = 1000
# Items per fingerprint script call: each call blocks the server only briefly, whatever the dataset size.
_FINGERPRINT_CHUNK = 5000
# Per item: its id, each field as "<bytes>:<text>" or "-" when missing (null), and the number of fields (so
# an extra field is noticed too); all joined with "|", one sha1 per chunk. It reads keys outside KEYS, which
# a Redis Cluster would refuse; the harness only seeds single servers.
_FINGERPRINT_LUA = """
local ids = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2])
local parts = {}
for _, id in ipairs(ids) do
  local key = ARGV[3] .. id
  parts[#parts + 1] = id
  for _, value in ipairs(redis.call('HMGET', key, 'name', 'description', 'price', 'quantity')) do
    if value then
      parts[#parts + 1] = #value .. ':' .. value
    else
      parts[#parts + 1] = '-'
    end
  end
  parts[#parts + 1] = redis.call('HLEN', key)
end
return redis.sha1hex(table.concat(parts, '|'))
"""
_FIELDS = ("name", "description", "price", "quantity")

T = TypeVar("T")


@contextmanager
def provision_redis(
    *, url: str | None, connections_needed: int, log_path: Path | None = None, local_port: int | None = DEFAULT_PORT
) -> Iterator[Database]:
    """Yield a Redis that accepts `connections_needed` more connections: `url`, else a server answering on
    127.0.0.1:`local_port` (None: never look), else a throwaway one; see the module docstring."""
    if url is not None:
        yield _checked(url, connections_needed, source="given URL", embedded=False)
        return
    if local_port is not None:
        local = f"redis://127.0.0.1:{local_port}/{LOCAL_DATABASE}"
        if _answers_ping(local):
            yield _checked(local, connections_needed, source="local server on the default port", embedded=False)
            return
    with throwaway_redis(maxclients=max(connections_needed, 0) + CONNECTION_HEADROOM, log_path=log_path) as server:
        checked = _checked(server.url, connections_needed, source=f"throwaway {server.binary}", embedded=True)
        yield replace(checked, control=server.control)


def _checked(url: str, needed: int, *, source: str, embedded: bool) -> Database:
    with _client(url) as client:
        try:
            client.ping()
            check_capacity(client, url, needed)
            version, settings = _describe(client)
        except redis.RedisError as error:
            raise BenchError(
                f"cannot use Redis at {scrub(url, url)}: {scrub(_first_line(error), url)}; "
                "check the URL and that the server is running"
            ) from error
    return Database(
        backend="redis",
        url=url,
        label=f"Redis {version}",
        version=version,
        embedded=embedded,
        source=source,
        settings=settings,
    )


def _client(url: str, *, timeout_s: float = CONNECT_TIMEOUT_S) -> redis.Redis:
    scheme = urlsplit(url).scheme
    if scheme not in URL_SCHEMES:
        raise BenchError(f"the Redis URL {scrub(url, url)} must be a redis:// URL (or rediss://), not {scheme}://")
    try:
        return redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,
            socket_timeout=max(timeout_s, COMMAND_TIMEOUT_S),
            decode_responses=True,
        )
    except ValueError as error:
        raise BenchError(
            f"invalid Redis URL {scrub(url, url)}: {scrub(_first_line(error), url)}; "
            "expected redis://[user:password@]host:port/db"
        ) from error


def _answers_ping(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:  # nothing there, not Redis, a password is required, or no database 15
        return False
    finally:
        client.close()


def check_capacity(client: redis.Redis, url: str, needed: int) -> None:
    """BenchError unless the server can take `needed` more clients now (maxclients minus those connected)."""
    clients = client.info("clients")
    maxclients = _config(client).get("maxclients") or clients.get("maxclients")
    if maxclients is None:
        return  # neither CONFIG nor INFO tells the limit (a managed service): nothing to check against
    in_use = int(clients["connected_clients"]) - 1  # not this check's own connection
    allowed = int(maxclients) - in_use
    if allowed < needed:
        raise BenchError(
            f"the run needs {needed} connections but Redis at {scrub(url, url)} allows {allowed} "
            f"(maxclients {maxclients} - {in_use} connected); raise maxclients (CONFIG SET maxclients "
            f"{needed + in_use + CONNECTION_HEADROOM}) or lower pool_size/max_overflow"
        )


def _describe(client: redis.Redis) -> tuple[str, dict[str, str]]:
    info = client.info()
    config = _config(client)
    # Where CONFIG is disabled, INFO still tells some of the settings.
    known = {
        "maxclients": info.get("maxclients"),
        "maxmemory": info.get("maxmemory"),
        "appendonly": {0: "no", 1: "yes"}.get(info.get("aof_enabled", -1)),
    } | config
    settings = {name: str(known[name]) if known.get(name) is not None else "unknown" for name in RECORDED_SETTINGS}
    settings["persistence"] = _persistence(settings["save"], settings["appendonly"])
    return str(info.get("redis_version", "unknown")), settings


def _persistence(save: str, appendonly: str) -> str:
    kinds = [kind for kind, on in (("rdb", save not in ("", "unknown")), ("aof", appendonly == "yes")) if on]
    if not kinds:
        return "unknown" if save == "unknown" else "off"
    return "+".join(kinds)


def _config(client: redis.Redis) -> dict[str, Any]:
    """RECORDED_SETTINGS from CONFIG GET; {} where CONFIG is renamed away or not permitted (managed services)."""
    try:
        return {str(name): value for setting in RECORDED_SETTINGS for name, value in client.config_get(setting).items()}
    except redis.ResponseError:
        return {}


def _first_line(error: BaseException) -> str:
    for line in str(error).splitlines():
        if line.strip():
            return f"{type(error).__name__}: {line.strip()}"
    return type(error).__name__


# --- seeding ---------------------------------------------------------------------------------------------


def seed_redis(url: str, rows: int) -> SeedResult:
    """Make the `bench:*` keys hold exactly `apps.dataset.seed_items(rows)`, with ids continuing at rows + 1."""
    started = time.perf_counter()
    expected = expected_fingerprint(rows)
    with _client(url) as client:
        try:
            stored = client.hgetall(DATASET_KEY)
            reused = (
                stored.get("rows") == str(rows)
                and stored.get("fingerprint") == expected
                and server_fingerprint(client) == expected
            )
            if not reused:
                _reseed(client, url, rows, expected)
        except redis.RedisError as error:
            raise BenchError(
                f"cannot seed Redis at {scrub(url, url)}: {scrub(_first_line(error), url)}; "
                "check that the server is running and accepts writes"
            ) from error
    return SeedResult(rows=rows, reused=reused, seconds=time.perf_counter() - started)


def _reseed(client: redis.Redis, url: str, rows: int, fingerprint: str) -> None:
    client.delete(DATASET_KEY)  # first, so that an interrupted reseed is never taken for a finished one
    for keys in _batches(client.scan_iter(match="bench:*", count=_SEED_BATCH), _SEED_BATCH):
        client.delete(*keys)
    with client.pipeline(transaction=False) as pipe:
        for batch in _batches(seed_items(rows), _SEED_BATCH):
            for item in batch:
                pipe.hset(item_key(item.id), mapping=item_hash(item._asdict()))
            pipe.zadd(ORDER_KEY, {str(item.id): item.id for item in batch})
            pipe.execute()
    client.set(NEXT_ID_KEY, rows)  # the apps INCR it: the first item they create gets id rows + 1
    if server_fingerprint(client) != fingerprint:
        raise BenchError(
            f"Redis at {scrub(url, url)} does not hold the dataset just written (evicted by maxmemory?); "
            "raise maxmemory or use a server of its own"
        )
    client.hset(DATASET_KEY, mapping={"rows": rows, "fingerprint": fingerprint})


def server_fingerprint(client: redis.Redis) -> str:
    """The fingerprint of what the server holds, computed by the server chunk by chunk."""
    count = client.zcard(ORDER_KEY)
    chunk_digest = client.register_script(_FINGERPRINT_LUA)
    digests = [
        str(chunk_digest(keys=[ORDER_KEY], args=[start, start + _FINGERPRINT_CHUNK - 1, ITEM_KEY_PREFIX]))
        for start in range(0, count, _FINGERPRINT_CHUNK)
    ]
    next_id = client.get(NEXT_ID_KEY)
    return _combined(count, None if next_id is None else str(next_id), digests)


def expected_fingerprint(rows: int) -> str:
    """The fingerprint of `seed_items(rows)` seeded, computed here exactly as _FINGERPRINT_LUA does."""
    digests = [
        hashlib.sha1(
            "|".join(part for item in chunk for part in _item_parts(item)).encode(), usedforsecurity=False
        ).hexdigest()
        for chunk in _batches(seed_items(rows), _FINGERPRINT_CHUNK)
    ]
    return _combined(rows, str(rows), digests)


def _item_parts(item: SeedItem) -> list[str]:
    stored = item_hash(item._asdict())
    fields = [str(stored[name]) if name in stored else None for name in _FIELDS]
    encoded = [f"{len(value.encode())}:{value}" if value is not None else "-" for value in fields]
    return [str(item.id), *encoded, str(len(stored))]


def _combined(count: int, next_id: str | None, digests: list[str]) -> str:
    return hashlib.sha1(f"{count}|{next_id}|{','.join(digests)}".encode(), usedforsecurity=False).hexdigest()


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class RedisBackend:
    """Redis for the harness: a given URL, else a local server (db 15), else a throwaway one."""

    name = "redis"
    url_option = "--redis-url"
    url_env = "REDIS_URL"

    @contextmanager
    def provision(
        self, *, url: str | None, connections_needed: int, dataset_rows: int, work_dir: Path, local: bool = True
    ) -> Iterator[Database]:
        with provision_redis(
            url=url,
            connections_needed=connections_needed,
            log_path=work_dir / "redis.log",
            local_port=DEFAULT_PORT if local else None,
        ) as db:
            yield db

    def seed(self, database: Database, rows: int) -> SeedResult:
        assert database.url is not None
        return seed_redis(database.url, rows)
