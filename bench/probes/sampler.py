"""Sample the app's /metrics and the database's counters every second in a background thread during a point.

The harness is plain synchronous Python, so a thread (not asyncio) does the sampling. The sampler must never
fail or slow the point: every read has a short timeout, every failure is counted and reported once as one
line in Telemetry.errors, and leaving the `with` block stops the thread at once (an Event, not a sleep).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import TracebackType

from apps.masking import mask_url
from bench.databases.backend import Database
from bench.probes.app import AppProbeError, MetricsDocument, fetch_metrics, metrics_url
from bench.probes.database import (
    DatabaseProbe,
    DatabaseProbeError,
    DatabaseReading,
    ProbeUnsupportedError,
    database_probe,
    scrub,
)
from bench.probes.summary import Tick, summarise_ticks
from bench.records.telemetry import Telemetry

DEFAULT_INTERVAL_S = 1.0
# A database that fails this many samples in a row is left alone for the rest of the point: a probe that keeps
# reconnecting would add connections of its own to the counts it reports. The app is never given up on (except
# without /metrics at all): an app too busy to answer within the timeout is exactly what the timeline must show.
DATABASE_FAILURES_BEFORE_GIVING_UP = 3
# The longest one round can take (database connect 2 s + query 0.5 s, app 0.5 s), with room to spare.
JOIN_TIMEOUT_S = 12.0  # longer than one app fetch (FETCH_TIMEOUT_S), which a blocked event loop may use up


@dataclass
class SourceHealth:
    """How one source fared: the first failure is kept, later ones only counted."""

    label: str  # e.g. "app /metrics at http://127.0.0.1:8000/metrics" (password masked)
    attempts: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    first_error: str | None = None
    stopped: str | None = None  # why sampling this source stopped early

    def succeeded(self) -> None:
        self.attempts += 1
        self.consecutive_failures = 0

    def failed(self, message: str) -> None:
        self.attempts += 1
        self.failures += 1
        self.consecutive_failures += 1
        if self.first_error is None:
            self.first_error = message

    def error_line(self) -> str | None:
        if self.first_error is None:
            return None
        line = f"{self.label}: {self.failures} of {self.attempts} samples failed (first: {self.first_error})"
        return f"{line}; {self.stopped}" if self.stopped else line


class TelemetrySampler:
    """`with TelemetrySampler(app_url, database): <run the load>`, then `summary(...)` for the point's record."""

    def __init__(
        self,
        app_url: str | None,
        database: Database | None,
        interval_s: float = DEFAULT_INTERVAL_S,
        *,
        database_expected_down: bool = False,
    ):
        """`database_expected_down`: a fault takes the database away during the point; keep trying (reconnecting
        each second) so the samples show its connections coming back, rather than giving up after a few."""
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.interval_s = interval_s
        self._metrics_url = metrics_url(app_url) if app_url else None
        self._probe: DatabaseProbe | None = database_probe(database)
        self._database_url = database.url if database is not None and database.url else ""
        self._app = SourceHealth(f"app /metrics at {mask_url(self._metrics_url or '')}")
        self._database = SourceHealth(f"database probe ({self._probe.source})" if self._probe else "database probe")
        self._database_note: str | None = None
        self._app_active = self._metrics_url is not None
        self._database_active = self._probe is not None
        self._give_up_on_database = not database_expected_down
        self._ticks: list[Tick] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._problems: list[str] = []  # the sampler's own (not a source's)

    def __enter__(self) -> TelemetrySampler:
        self._stop.clear()
        # A daemon thread: should joining ever time out, it must not keep the harness alive at exit.
        self._thread = threading.Thread(target=self._run, name="telemetry-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop sampling and wait for the thread (bounded); safe to call more than once."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(JOIN_TIMEOUT_S)
            if thread.is_alive():
                self._problems.append(f"sampler: still in a probe call {JOIN_TIMEOUT_S:g} s after the load ended")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def ticks(self) -> list[Tick]:
        with self._lock:
            return list(self._ticks)

    def summary(self, started_at: float, measure_from: float, measure_to: float) -> Telemetry:
        """The point's Telemetry (times in epoch seconds: load start, measurement start and stop). Never
        raises: a failure to summarise is itself reported in Telemetry.errors."""
        errors = [line for line in (self._app.error_line(), self._database.error_line()) if line]
        errors += self._problems
        try:
            return summarise_ticks(
                self.ticks(),
                interval_s=self.interval_s,
                started_at=started_at,
                measure_from=measure_from,
                measure_to=measure_to,
                database_source=self._probe.source if self._probe is not None else None,
                database_note=self._database_note,
                errors=errors,
            )
        except Exception as error:  # the point's load figures stand without telemetry
            message = mask_url(" ".join(f"{type(error).__name__}: {error}".split()))
            return Telemetry(interval_s=self.interval_s, errors=[*errors, f"telemetry summary failed: {message}"])

    def _run(self) -> None:
        try:
            next_at = time.monotonic()
            while not self._stop.is_set():
                self._sample()
                next_at += self.interval_s
                now = time.monotonic()
                if next_at < now:  # a slow round: skip the missed rounds rather than sample in a burst
                    next_at = now + self.interval_s - (now - next_at) % self.interval_s
                if self._stop.wait(next_at - now):
                    break
        except Exception as error:  # a defect here must not take the point down: report it
            self._problems.append(mask_url(" ".join(f"sampler stopped: {type(error).__name__}: {error}".split())))
        finally:
            if self._probe is not None:
                self._close_probe(self._probe)

    def _sample(self) -> None:
        tick = Tick(at=time.time(), app=self._sample_app(), database=self._sample_database())
        with self._lock:
            self._ticks.append(tick)

    def _sample_app(self) -> MetricsDocument | None:
        if not self._app_active or self._metrics_url is None:
            return None
        try:
            document = fetch_metrics(self._metrics_url)
        except AppProbeError as error:
            self._app.failed(error.message)
            if error.permanent:
                self._app_active = False
                self._app.stopped = "not sampled further"
            return None
        self._app.succeeded()
        return document

    def _sample_database(self) -> DatabaseReading | None:
        probe = self._probe
        if not self._database_active or probe is None:
            return None
        try:
            reading = probe.read()
        except ProbeUnsupportedError as unsupported:
            self._database_note = unsupported.note
            self._database_active = False
            return None
        except Exception as error:  # DatabaseProbeError, or a driver that is not installed
            message = error.message if isinstance(error, DatabaseProbeError) else f"{type(error).__name__}: {error}"
            self._database.failed(scrub(message, self._database_url))
            if self._give_up_on_database and self._database.consecutive_failures >= DATABASE_FAILURES_BEFORE_GIVING_UP:
                self._database_active = False
                self._database.stopped = f"not sampled further after {DATABASE_FAILURES_BEFORE_GIVING_UP} in a row"
                self._close_probe(probe)
            return None
        self._database.succeeded()
        return reading

    def _close_probe(self, probe: DatabaseProbe) -> None:
        try:
            probe.close()
        except Exception as error:  # closing a broken connection may fail: nothing left to do about it
            self._problems.append(
                f"database probe: closing its connection failed: {scrub(str(error), self._database_url)}"
            )
