"""The app's own view of itself: fetch GET /metrics (the contract in apps/) and parse it into typed snapshots."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from pydantic import BaseModel, ConfigDict, ValidationError

from apps.masking import mask_url
from bench.probes.histogram import Histogram

FETCH_TIMEOUT_S = 10.0  # a blocked event loop serves /metrics only after the requests queued before it;
# waiting this long still gets the blocking variants' counters (their lag is the point), and a sample that takes
# longer is itself a finding: recorded and skipped
MAX_DOCUMENT_BYTES = 1 << 20  # a /metrics document is a few kB; never read an unbounded body

# No proxies: the app runs on 127.0.0.1 and an http_proxy variable in the user's shell must not reroute probes.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class _Contract(BaseModel):
    # Ignore fields the contract may gain later: an older harness must keep reading newer apps.
    model_config = ConfigDict(extra="ignore", frozen=True)


class PoolMetrics(_Contract):
    kind: str
    limit: int | None = None
    size: int | None = None
    open: int | None = None
    checked_out: int | None = None
    overflow_in_use: int | None = None
    waiting: int | None = None
    acquisitions: int
    timeouts: int
    wait_ms: Histogram


class EventLoopMetrics(_Contract):
    interval_ms: float
    lag_ms: Histogram


class ThreadMetrics(_Contract):
    limit: int
    busy: int
    waiting: int


class MetricsDocument(_Contract):
    variant: str
    telemetry: bool
    uptime_s: float
    pool: PoolMetrics | None = None
    event_loop: EventLoopMetrics | None = None
    threads: ThreadMetrics


class AppProbeError(Exception):
    """One sample could not be taken; `message` is one line, password-free."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent  # sampling again cannot help (the app has no /metrics)


def metrics_url(app_url: str) -> str:
    """The /metrics URL of an app given by its base URL (or by the /metrics URL itself)."""
    base = app_url.rstrip("/")
    return base if base.endswith("/metrics") else f"{base}/metrics"


def parse_metrics(body: bytes) -> MetricsDocument:
    """A /metrics body as a MetricsDocument; AppProbeError naming the first problem when it is not one."""
    try:
        return MetricsDocument.model_validate(json.loads(body))
    except json.JSONDecodeError as error:
        raise AppProbeError(f"not JSON ({error.msg} at character {error.pos})") from error
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        raise AppProbeError(f"not the /metrics contract: {where}: {first['msg']}") from error


def fetch_metrics(url: str, *, timeout_s: float = FETCH_TIMEOUT_S) -> MetricsDocument:
    """GET `url` (a /metrics URL) and parse it. AppProbeError (one line) on any failure."""
    try:
        with _OPENER.open(url, timeout=timeout_s) as response:
            body: bytes = response.read(MAX_DOCUMENT_BYTES + 1)
    except urllib.error.HTTPError as error:
        # 404: a variant without /metrics, which sampling every second will not change.
        raise AppProbeError(f"HTTP {error.code} {error.reason}", permanent=error.code == 404) from error
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise AppProbeError(mask_url(" ".join(str(reason).split()) or type(error).__name__)) from error
    if len(body) > MAX_DOCUMENT_BYTES:
        raise AppProbeError(f"document larger than {MAX_DOCUMENT_BYTES} bytes")
    return parse_metrics(body)
