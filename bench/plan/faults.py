"""Database faults injected mid-measurement: the `--fault` text, and what the requests around one showed.

`db-restart:at=20s,down=5s` stops the database 20 s into the measured period and starts it again 5 s later
(same port, same data); `db-pause:at=20s,down=5s` freezes it instead (SIGSTOP, then SIGCONT): connections stay
open but nothing answers, as when a host stalls or a VM is paused. Both need a database the harness started (a
throwaway PostgreSQL, MariaDB or Redis: bench.databases.throwaway.control); a server given by URL, or found already
running, is not bench's to stop or freeze (see the README for doing it by hand).

What a point records (bench.fault_records.FaultRecord, from the load generator's 100 ms outcome slices):
errors during the outage and after the database was back, the time from "back" to the first request that
succeeded, the time to the last error after it, and whether the service recovered by itself (requests succeed
and none fail over the last RECOVERED_WINDOW_S of the measurement).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bench.measure.load_summary import LoadResult, Outcomes
from bench.records.schema import FaultRecord

FaultKind = Literal["db-restart", "db-pause"]
FAULT_KINDS: tuple[FaultKind, ...] = ("db-restart", "db-pause")
# A recovered service shows no error over this long at the end of the measurement.
RECOVERED_WINDOW_S = 2.0

_SECONDS = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)?$")


@dataclass(frozen=True)
class FaultSpec:
    kind: FaultKind
    at_s: float  # into the measured period (after the warm-up)
    down_s: float  # how long the database stays stopped or frozen

    def text(self) -> str:
        return f"{self.kind}:at={self.at_s:g}s,down={self.down_s:g}s"


def parse_fault(text: str) -> FaultSpec:
    """`KIND:at=T,down=D` (T, D in seconds: `20`, `20s` or `500ms`); ValueError with a one-line message."""
    kind, _, params = text.strip().partition(":")
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault {kind!r} in {text!r} (known: {', '.join(FAULT_KINDS)})")
    values: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in params.split(","))):
        key, equals, value = part.partition("=")
        if not equals or key not in ("at", "down"):
            raise ValueError(f"fault {text!r}: expected at=SECONDS,down=SECONDS, got {part!r}")
        if key in values:
            raise ValueError(f"fault {text!r}: {key} given twice")
        values[key] = _seconds(value, text)
    missing = [key for key in ("at", "down") if key not in values]
    if missing:
        raise ValueError(f"fault {text!r}: missing {' and '.join(missing)} (e.g. {kind}:at=20s,down=5s)")
    if values["down"] <= 0:
        raise ValueError(f"fault {text!r}: down must be above 0 s")
    return FaultSpec(kind=kind, at_s=values["at"], down_s=values["down"])


def _seconds(value: str, text: str) -> float:
    match = _SECONDS.match(value.strip())
    if match is None:
        raise ValueError(f"fault {text!r}: {value!r} is not a duration (e.g. 20s or 500ms)")
    number = float(match.group(1))
    return number / 1000 if match.group(2) == "ms" else number


def check_fits(spec: FaultSpec, duration_s: float) -> None:
    """The outage must end inside the measured period, with time left to see the recovery."""
    if spec.at_s + spec.down_s + RECOVERED_WINDOW_S > duration_s:
        raise ValueError(
            f"fault {spec.text()} does not fit in --duration {duration_s:g}: at + down + "
            f"{RECOVERED_WINDOW_S:g} s to watch the recovery must not exceed it"
        )


@dataclass(frozen=True)
class FaultTimes:
    """Epoch seconds of what the injector did, as it happened (None when it did not get that far)."""

    injected_at: float | None = None  # the stop or SIGSTOP was sent
    restored_at: float | None = None  # the start or SIGCONT was sent
    back_at: float | None = None  # the database accepted connections again (restart) or was resumed (pause)
    error: str | None = None  # what went wrong injecting or restoring the fault


@dataclass(frozen=True)
class FaultEffect:
    errors_before: int  # failed requests in the measured period before the fault (normally 0)
    errors_during: int  # completed between injected_at and back_at
    errors_after: int  # completed after back_at
    first_success_after_back_s: float | None  # None: no request succeeded after the database was back
    last_error_after_back_s: float | None  # None: no error after the database was back
    recovered: bool | None  # None: the measurement ended too soon after "back" to tell


def fault_effect(outcomes: Outcomes, times: FaultTimes, measure_from: float, measure_to: float) -> FaultEffect:
    """Read the outcome slices around the fault. A slice is "before" when it ended before the injection,
    "after" when it started once the database was back, "during" otherwise (so the outage is never shortened)."""
    back = times.back_at if times.back_at is not None else measure_to
    injected = times.injected_at if times.injected_at is not None else back
    before = during = after = 0
    first_success: float | None = None
    last_error: float | None = None
    recent_ok = recent_failed = 0
    for index, (ok, failed) in enumerate(zip(outcomes.ok, outcomes.failed, strict=True)):
        start = outcomes.started_at + index * outcomes.bucket_s
        end = start + outcomes.bucket_s
        if end <= measure_from or start >= measure_to:
            continue
        if end <= injected:
            before += failed
        elif start < back:
            during += failed
        else:
            after += failed
            if ok and first_success is None:
                first_success = start - back
            if failed:
                last_error = end - back
        if start >= measure_to - RECOVERED_WINDOW_S:
            recent_ok += ok
            recent_failed += failed
    recovered: bool | None
    if times.back_at is None:
        recovered = False
    elif measure_to - times.back_at < RECOVERED_WINDOW_S:
        recovered = None
    else:
        recovered = recent_ok > 0 and recent_failed == 0
    return FaultEffect(
        errors_before=before,
        errors_during=during,
        errors_after=after,
        first_success_after_back_s=None if first_success is None else round(max(first_success, 0.0), 3),
        last_error_after_back_s=None if last_error is None else round(last_error, 3),
        recovered=recovered,
    )


def fault_record(spec: FaultSpec, times: FaultTimes, loaded: LoadResult) -> FaultRecord:
    """The point's record of the fault: times against the measured period, the effect, the slices to draw."""
    start, stop = loaded.measure_started_at, loaded.measure_stopped_at
    outcomes = loaded.outcomes

    def into_measure(at: float | None) -> float | None:
        return None if at is None else round(at - start, 3)

    record = FaultRecord(
        kind=spec.kind,
        planned_at_s=spec.at_s,
        down_s=spec.down_s,
        injected_at_s=into_measure(times.injected_at),
        back_at_s=into_measure(times.back_at),
        error=times.error,
    )
    if outcomes is None:
        return record
    effect = fault_effect(outcomes, times, start, stop)
    first = max(0, int((start - outcomes.started_at) / outcomes.bucket_s))
    last = max(first, int((stop - outcomes.started_at) / outcomes.bucket_s))
    return record.model_copy(
        update={
            "errors_before": effect.errors_before,
            "errors_during": effect.errors_during,
            "errors_after": effect.errors_after,
            "first_success_after_back_s": effect.first_success_after_back_s,
            "last_error_after_back_s": effect.last_error_after_back_s,
            "recovered": effect.recovered,
            "slice_s": outcomes.bucket_s,
            "ok_per_slice": outcomes.ok[first:last],
            "failed_per_slice": outcomes.failed[first:last],
        }
    )
