"""/metrics pool hooks for PyMongo, Motor and AsyncMongoClient: a CMAP ConnectionPoolListener.

The driver publishes every checkout (started, checked out or failed with a reason and a duration) and every
connection created, closed and checked in, so the listener needs no private hook; it is passed as
`event_listeners` when the client is created. Listeners run on whatever thread or task the driver uses, so
every update goes through PoolTelemetry's lock. A client has one pool per server: with several servers the
counts are their sum.
"""

from __future__ import annotations

import threading

from fastapi import FastAPI
from pymongo import monitoring

from apps.telemetry import PoolGauges, PoolTelemetry, overflow_beyond, pool_telemetry


def pool_listeners(app: FastAPI) -> list[monitoring.ConnectionPoolListener]:
    """The client's `event_listeners`: none at all when BENCH_TELEMETRY is off."""
    # Failures are classified from the event's reason, never from an exception.
    telemetry = pool_telemetry(app, "pymongo", is_timeout=lambda error: False)
    return [] if telemetry is None else [PoolEvents(telemetry)]


class PoolEvents(monitoring.ConnectionPoolListener):
    def __init__(self, telemetry: PoolTelemetry) -> None:
        self.telemetry = telemetry
        self._lock = threading.Lock()
        self._open = 0
        self._checked_out = 0
        telemetry.gauges = self.gauges

    def gauges(self) -> PoolGauges:
        with self._lock:
            open_now, checked_out = self._open, self._checked_out
        return PoolGauges(
            open=open_now, checked_out=checked_out, overflow_in_use=overflow_beyond(self.telemetry.size, open_now)
        )

    def _count(self, *, opened: int = 0, checked_out: int = 0) -> None:
        with self._lock:
            self._open += opened
            self._checked_out += checked_out

    def connection_check_out_started(self, event: monitoring.ConnectionCheckOutStartedEvent) -> None:
        self.telemetry.started()

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None:
        self._count(checked_out=1)
        self.telemetry.finished(_ms(event.duration), acquired=True, timed_out=False)

    def connection_check_out_failed(self, event: monitoring.ConnectionCheckOutFailedEvent) -> None:
        timed_out = event.reason == monitoring.ConnectionCheckOutFailedReason.TIMEOUT
        self.telemetry.finished(_ms(event.duration), acquired=False, timed_out=timed_out)

    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None:
        self._count(checked_out=-1)

    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None:
        self._count(opened=1)

    def connection_closed(self, event: monitoring.ConnectionClosedEvent) -> None:
        self._count(opened=-1)

    # The pool-level events carry nothing /metrics reports.
    def pool_created(self, event: monitoring.PoolCreatedEvent) -> None:
        pass

    def pool_ready(self, event: monitoring.PoolReadyEvent) -> None:
        pass

    def pool_cleared(self, event: monitoring.PoolClearedEvent) -> None:
        pass

    def pool_closed(self, event: monitoring.PoolClosedEvent) -> None:
        pass

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None:
        pass


def _ms(duration_s: float | None) -> float:
    return 0.0 if duration_s is None else duration_s * 1000
