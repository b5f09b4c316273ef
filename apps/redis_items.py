"""What the Redis variants share that does no I/O of its own: URL, pool options, key names, (de)serialisation.

An item is a hash `bench:item:{id}` with the fields name, description, price and quantity, stored as text:
price as `repr(float)` (which reads back as exactly the same float), quantity as `str(int)`. A null
description is a missing field, so it stays distinct from "". `bench:items` is a sorted set of the ids
(score = id) that gives listing its order, and `bench:item:next_id` is the counter INCR hands ids out from.
Every write is atomic: create and delete are MULTI/EXEC transactions, update is UPDATE_ITEM_LUA. The harness
seeds the same keys (bench/databases/redis/backend.py).

GET /items/{item_id}/slow sends `XREAD BLOCK wait_ms STREAMS bench:wait:never $` and then the HGETALL in one
pipeline, so both run on one pooled connection: Redis parks that connection on a stream nothing ever writes
to until the block times out, then answers the read. XREAD rather than BLPOP because its timeout is whole
milliseconds: BLPOP's is fractional seconds, and before Redis 7.0.8 a timeout under 1 ms could round to 0,
which blocks forever (redis/redis#11687). Either way Redis only checks blocked clients' timeouts on its
`hz` tick (measured on Redis 7.0.15 with the default hz 10: a 5 ms and a 50 ms block both took 100 ms, a
120 ms block 201 ms), so a wait is rounded up to the next 1000/hz ms; `hz 100` gives 10 ms steps. BLOCK 0
means "forever", so wait_ms=0 sends no XREAD at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict
from urllib.parse import urlsplit

from redis.typing import EncodableT, FieldT

from apps.contract import BIGINT_MAX, ItemUpdate
from apps.pooling import PRE_PING_IDLE_S, max_connections
from apps.settings import AppSettings, StartupError

# An item as the routes return it (FastAPI validates it against ItemResponse).
ItemDict = dict[str, Any]
ITEM_KEY_PREFIX = "bench:item:"
NEXT_ID_KEY = "bench:item:next_id"
ORDER_KEY = "bench:items"
URL_SCHEMES = ("redis", "rediss")
WAIT_STREAM = "bench:wait:never"  # nothing writes to it, so XREAD BLOCK always waits its full timeout
DB_WAIT = "XREAD BLOCK on the server (a stream nothing writes to), rounded up to Redis's hz tick"
# Without a limit an unreachable host makes start-up hang instead of failing.
CONNECT_TIMEOUT_S = 10

# Update only an item that exists: Redis has no conditional HSET, and a plain MULTI/EXEC would recreate a
# deleted item as a hash holding just the changed fields. A script runs atomically, in one round trip,
# without the retry loop that WATCH needs.
# ARGV: n, then n field/value pairs to set, then the fields to remove (set to null).
UPDATE_ITEM_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local n = tonumber(ARGV[1])
if n > 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2, 2 * n + 1))
end
if #ARGV > 2 * n + 1 then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 2 * n + 2))
end
return redis.call('HGETALL', KEYS[1])
"""


class PoolOptions(TypedDict):
    """Keyword arguments of `BlockingConnectionPool.from_url`, sync and asyncio alike."""

    max_connections: int
    timeout: float  # how long a request waits for a free connection before failing
    socket_connect_timeout: float
    health_check_interval: float
    decode_responses: bool


def redis_url(settings: AppSettings) -> str:
    """The Redis URL the user gave; StartupError if it is missing or names another database."""
    url = settings.database_url
    if url is None:
        raise StartupError("BENCH_DATABASE_URL is not set; give it a redis:// URL")
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        raise StartupError("BENCH_DATABASE_URL is not a URL; give a redis:// URL") from None
    if scheme not in URL_SCHEMES:
        given = f"not {scheme}://" if scheme else "given one without a scheme"
        raise StartupError(f"BENCH_DATABASE_URL must be a redis:// URL (or rediss://), {given}")
    return url


def pool_options(settings: AppSettings) -> PoolOptions:
    """apps/pooling.py: at most pool_size + max_overflow connections; requests beyond wait pool_timeout_s."""
    return PoolOptions(
        max_connections=max_connections(settings),
        timeout=settings.pool_timeout_s,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        health_check_interval=PRE_PING_IDLE_S if settings.pool_pre_ping else 0,
        decode_responses=True,
    )


def item_key(item_id: int) -> str:
    return f"{ITEM_KEY_PREFIX}{item_id}"


def index_range(limit: int, offset: int) -> tuple[int, int]:
    """ZRANGE's inclusive start and stop indexes for a page; Redis refuses indexes beyond a signed 64-bit int."""
    return offset, min(offset + limit - 1, BIGINT_MAX)


def item_ids(members: Iterable[object]) -> list[int]:
    """ZRANGE's members as ids (the isinstance narrows its declared type, which includes WITHSCORES pairs)."""
    return [int(member) for member in members if isinstance(member, str | bytes)]


def item_hash(values: Mapping[str, object]) -> dict[FieldT, EncodableT]:
    """An item's fields as stored (its id is in the key, not in the hash); a null field is left out."""
    return {field: stored_text(value) for field, value in values.items() if value is not None and field != "id"}


def stored_text(value: object) -> str:
    # repr, not str, for floats: it is the shortest text that reads back as exactly the same float.
    return repr(value) if isinstance(value, float) else str(value)


def update_args(changes: ItemUpdate) -> list[str]:
    """UPDATE_ITEM_LUA's ARGV: the given fields to set, then the given fields set to null."""
    given = changes.values_given()
    to_set = [(field, stored_text(value)) for field, value in given.items() if value is not None]
    to_remove = [field for field, value in given.items() if value is None]
    return [str(len(to_set)), *(text for pair in to_set for text in pair), *to_remove]


def item_from_hash(item_id: int, stored: Mapping[Any, Any]) -> ItemDict | None:
    """The item an HGETALL returned, or None when the hash does not exist (HGETALL gives {} then). A dict, not an
    ItemResponse: FastAPI validates what a route returns against its response model anyway, and a model built
    here would be dumped and validated again."""
    if not stored:
        return None
    fields = {_text(name): _text(value) for name, value in stored.items()}
    return {
        "id": item_id,
        "name": fields["name"],
        "description": fields.get("description"),
        "price": float(fields["price"]),
        "quantity": int(fields["quantity"]),
    }


def item_from_pairs(item_id: int, flat: Sequence[Any] | None) -> ItemDict | None:
    """The same for a script's HGETALL, which comes back as [field, value, field, value, ...] (or nil)."""
    if not flat:
        return None
    return item_from_hash(item_id, dict(zip(flat[::2], flat[1::2], strict=True)))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
