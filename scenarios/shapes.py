"""Load shapes as a list of stages (name, users, until when), planned over the run's warm-up and duration.

Locust polls `tick()` about once a second; a stage's users are reached within about a second (the spawn
rate is the jump itself), so a spike is a spike and not a slope. The stage under way is `current_stage`,
which the timeline records for every second.

In the open model each user keeps its own timetable at the run's per-user rate (rate / users), so a stage
with k times the users starts k times the requests per second: the spike is a rate spike, the ramp a
staircase of rates. Both models therefore accept both shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from locust import LoadTestShape

from scenarios.base import SPAWN_RATE


@dataclass(frozen=True)
class Stage:
    name: str
    users: int
    until_s: float  # since the test start (the warm-up included)


UNTIL_THE_END = math.inf  # the last stage runs until scenarios/base.py ends the test after warm-up + duration


class StagedShape(LoadTestShape):
    abstract = True
    use_common_options = True  # the shape reads the run's users and durations; Locust need not warn about them

    def __init__(self) -> None:
        super().__init__()
        self.plan = self.stages()
        if not self.plan:
            raise ValueError(f"{type(self).__name__} planned no stages")
        # The first stage starts at the run's spawn rate; later ones jump to their users within a second.
        previous = [self.plan[0].users, *(stage.users for stage in self.plan[:-1])]
        self.spawn_rates = [max(SPAWN_RATE, float(abs(s.users - p))) for s, p in zip(self.plan, previous, strict=True)]
        self.current_stage: str | None = self.plan[0].name

    def stages(self) -> list[Stage]:
        raise NotImplementedError

    def tick(self) -> tuple[int, float] | None:
        elapsed = self.get_run_time()
        for stage, spawn_rate in zip(self.plan, self.spawn_rates, strict=True):
            if elapsed < stage.until_s:
                self.current_stage = stage.name
                return stage.users, spawn_rate
        return None  # only if a shape's last stage ends before the test does: Locust then stops
