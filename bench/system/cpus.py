"""CPU pinning: which CPUs the server and the load generator may use when the user asks for separation."""

from __future__ import annotations

import os
from dataclasses import dataclass

from bench.records.errors import BenchError


@dataclass(frozen=True)
class CpuPlan:
    """None: wherever the scheduler likes (the default: no pinning)."""

    server: list[int] | None = None
    generator: list[int] | None = None


def plan_cpus(pin: bool) -> CpuPlan:
    """Split the CPUs this process may use: the first half for the server, the rest for the generator.
    The databases stay unpinned: they are the shared resource under test, not a side to protect."""
    if not pin:
        return CpuPlan()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise BenchError(f"--pin-cpus needs at least 2 CPUs; this process may use {len(cpus)}")
    half = (len(cpus) + 1) // 2
    return CpuPlan(server=cpus[:half], generator=cpus[half:])
