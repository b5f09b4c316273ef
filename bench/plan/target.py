"""A service that runs elsewhere (`--target-url`): bench starts no app there and cannot change its pool, so the
sweep takes the variant and pool settings the service reports at /health, and measures only loads.

The service must be one of ours (apps/, started by hand, e.g. on another host: see the README's "Separate
hosts"); its /health says which variant and settings run. bench does not see its database unless that
database's URL is given too (then bench seeds and probes it as usual); otherwise the dataset must already be
in place and the record says the database was not observed.
"""

from __future__ import annotations

import json
import urllib.error
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from apps.catalog import all_variants
from apps.masking import mask_url
from bench.databases.backend import Database
from bench.measure.server import RunningServer, fetch_json
from bench.records.errors import BenchError

if TYPE_CHECKING:
    from bench.plan.points import SweepSpec  # bench.plan.points imports this module

HEALTH_TIMEOUT_S = 10.0
# What a sweep on a target cannot set: they are the service's own, as started.
SERVICE_SETTINGS = ("pool_sizes", "max_overflows", "thread_tokens", "workers", "pool_pre_ping", "pool_timeout_s")


def check_target_url(url: str) -> str:
    """The base URL, without a trailing slash; ValueError (one line) when it is not http(s)://host[:port]."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{mask_url(url)!r} is not an http:// or https:// URL of a service")
    try:
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        raise ValueError(f"{mask_url(url)!r} has an invalid port") from None
    return url.strip().rstrip("/")


@dataclass(frozen=True)
class Target:
    url: str
    health: dict[str, Any]  # what the service reported at /health
    variant: str
    backend: str
    pool_size: int | None
    max_overflow: int | None
    thread_tokens: int
    pool_pre_ping: bool
    telemetry: bool


def describe_target(url: str) -> Target:
    """Ask the service what it is; BenchError (one line) when it does not answer as one of ours."""
    try:
        health = fetch_json(f"{url}/health", timeout_s=HEALTH_TIMEOUT_S)
    except urllib.error.HTTPError as error:
        raise BenchError(
            f"--target-url {mask_url(url)} answered HTTP {error.code} at /health; is it a bench app?"
        ) from None
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise BenchError(f"--target-url {mask_url(url)} does not answer at /health: {reason}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        raise BenchError(f"--target-url {mask_url(url)}: /health did not return JSON; is it a bench app?") from None
    try:
        from apps.contract import HealthResponse  # noqa: PLC0415 - the apps' model, only needed here

        reported = HealthResponse.model_validate(health)
    except ValidationError:
        raise BenchError(f"--target-url {mask_url(url)}: /health is not a bench item service's") from None
    if reported.variant not in all_variants():
        raise BenchError(f"--target-url {mask_url(url)} runs variant {reported.variant!r}, unknown to this bench")
    config = reported.config
    pooled = reported.pooled
    return Target(
        url=url,
        health=health,
        variant=reported.variant,
        backend=reported.backend,
        pool_size=config.pool_size if pooled else None,
        max_overflow=config.max_overflow if pooled else None,
        thread_tokens=config.thread_tokens,
        pool_pre_ping=config.pool_pre_ping if pooled else False,
        telemetry=config.telemetry,
    )


def unobserved_database(target: Target) -> Database:
    """The target's database as the record shows it when bench was given no URL for it."""
    url = target.health.get("config", {}).get("database_url")
    where = f" at {url}" if url else ""
    return Database(
        backend=target.backend,
        url=None,
        label=f"{target.backend} behind the target (not observed)",
        version="not observed",
        embedded=False,
        source=f"the target's own{where}, not observed by bench",
    )


def sweep_on_target(spec: SweepSpec, target: Target) -> SweepSpec:
    """The sweep as it can run on the target: its variant and settings (BenchError if --variant says otherwise)."""
    if "variants" in spec.model_fields_set and spec.variants != [target.variant]:
        raise BenchError(
            f"--target-url {target.url} runs {target.variant}, not {', '.join(spec.variants)}; "
            "drop --variant or point at the service you meant"
        )
    return spec.model_copy(
        update={
            "variants": [target.variant],
            "pool_sizes": [target.pool_size or 1],  # an unpooled variant plans one point whatever is here
            "max_overflows": [target.max_overflow or 0],
            "thread_tokens": [target.thread_tokens],
            "workers": [1],  # unknown from outside: /health answers for one process
            "pool_pre_ping": [target.pool_pre_ping],
            "telemetry": target.telemetry,
        }
    )


def remote_server(target: Target) -> RunningServer:
    """The target as the orchestration sees a server it started (no PID, loop or parser known from here)."""
    parts = urlsplit(target.url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return RunningServer(target.url, port, 0, "unknown (remote)", "unknown (remote)", target.health)
