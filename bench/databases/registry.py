"""Which module serves which backend. Imported lazily, so a missing driver only matters when it is used."""

from __future__ import annotations

import importlib
from typing import cast

from bench.databases.backend import Backend
from bench.records.errors import BenchError

# backend name (the `backend` of variants in apps/) -> "module:class"; adding a backend is one file + one line.
_BACKENDS = {
    "memory": "bench.databases.memory:MemoryBackend",
    "postgresql": "bench.databases.postgres.backend:PostgresBackend",
    "mysql": "bench.databases.mysql.backend:MysqlBackend",
    "mongodb": "bench.databases.mongo.backend:MongoBackend",
    "redis": "bench.databases.redis.backend:RedisBackend",
}


def backend_names() -> list[str]:
    return list(_BACKENDS)


def get_backend(name: str) -> Backend:
    target = _BACKENDS.get(name)
    if target is None:
        raise BenchError(f"no provisioning for backend {name!r} yet (known: {', '.join(_BACKENDS)})")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BenchError(
            f"backend {name} needs a driver that is not installed ({exc.name}); "
            f"install the project's extra: pip install -e '.[{name}]'"
        ) from None
    return cast(Backend, getattr(module, class_name)())
