"""Ramp: users reading items in equal steps up to the run's users, to find where throughput stops growing."""

from __future__ import annotations

from locust import task

from scenarios.base import DURATION_S, USERS, WARMUP_S, ItemUser, scenario_options
from scenarios.shapes import UNTIL_THE_END, Stage, StagedShape

# steps: how many steps up to the run's users (step k of n runs users * k / n); user_steps, if given, lists the
# users of each step instead. step_s: seconds per step (0: the measured duration split evenly); the last step
# lasts until the run ends, and steps that do not fit in the duration are not reached. The warm-up runs step 1.
OPTIONS = {"steps": 5, "step_s": 0.0, "user_steps": []}
LIMITS = {"steps": (1, 1000), "step_s": (0.0, 86_400.0), "user_steps": (1, 100_000)}
options = scenario_options(OPTIONS)


class RampUser(ItemUser):
    @task
    def get_item(self) -> None:
        self.client.get(f"/items/{self.random_item_id()}", name="/items/{item_id}")


def users_per_step() -> list[int]:
    if options["user_steps"]:
        return list(options["user_steps"])
    steps = options["steps"]
    return [max(round(USERS * step / steps), 1) for step in range(1, steps + 1)]


class RampShape(StagedShape):
    def stages(self) -> list[Stage]:
        users = users_per_step()
        step_s = options["step_s"] or DURATION_S / len(users)
        ends = [WARMUP_S + step_s * step for step in range(1, len(users))] + [UNTIL_THE_END]
        return [
            Stage(f"step {step}", count, until) for step, (count, until) in enumerate(zip(users, ends, strict=True), 1)
        ]
