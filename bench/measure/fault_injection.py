"""Injecting a database fault on schedule during a point, from a thread beside the load generator.

The injector starts with the load generator and waits until Locust says its test started (a file Locust writes,
bench.measure.load.test_started_at), then warm-up + `at` more; the record gives when the fault really came, against the
measured period. Whatever happens (the point fails, Ctrl-C), leaving the context restores the database: a
frozen server is thawed and a stopped one started again, so the next point and the clean-up find it running.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType

from apps.masking import mask_url
from bench.databases.backend import ServerControl
from bench.plan.faults import FaultSpec, FaultTimes
from bench.records.errors import BenchError

_POLL_S = 0.05


class FaultInjector:
    def __init__(
        self, spec: FaultSpec, control: ServerControl, test_started: Callable[[], float | None], delay_s: float
    ) -> None:
        self._spec = spec
        self._control = control
        self._test_started = test_started
        self._delay_s = delay_s  # after the test started
        self._cancel = threading.Event()
        self._lock = threading.Lock()  # the thread and the exit path never act on the server at once
        self._injected = False
        self._restored = False
        self._times: dict[str, float] = {}
        self._error: str | None = None
        self._thread = threading.Thread(target=self._run, name="fault-injector", daemon=True)

    def __enter__(self) -> FaultInjector:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._cancel.set()
        self._thread.join(timeout=120)
        self._restore()  # a no-op unless the thread stopped before restoring

    def times(self) -> FaultTimes:
        return FaultTimes(
            injected_at=self._times.get("injected_at"),
            restored_at=self._times.get("restored_at"),
            back_at=self._times.get("back_at"),
            error=self._error,
        )

    def _run(self) -> None:
        while (started := self._test_started()) is None:
            if self._cancel.wait(_POLL_S):
                return
        if self._cancel.wait(max(started + self._delay_s - time.time(), 0.0)):
            return
        with self._lock:
            if self._cancel.is_set():
                return
            injected_at = self._times["injected_at"] = time.time()
            self._injected = True
            if not self._act(self._control.stop if self._spec.kind == "db-restart" else self._control.pause):
                return
        # `down` counts from the injection: a server that takes a while to stop is already down meanwhile.
        self._cancel.wait(max(injected_at + self._spec.down_s - time.time(), 0.0))
        self._restore()

    def _restore(self) -> None:
        with self._lock:
            if not self._injected or self._restored:
                return
            self._restored = True
            self._times["restored_at"] = time.time()
            if self._act(self._control.start if self._spec.kind == "db-restart" else self._control.resume):
                self._times["back_at"] = time.time()

    def _act(self, action: Callable[[], None]) -> bool:
        try:
            action()
        except (BenchError, OSError) as error:
            message = error.message if isinstance(error, BenchError) else str(error)
            self._error = mask_url(f"{self._spec.kind}: {message}")
            return False
        return True
