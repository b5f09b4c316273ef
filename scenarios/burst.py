"""Burst: steady users reading items, then a spike of many more (beyond the pool), then steady again."""

from __future__ import annotations

from locust import task

from scenarios.base import DURATION_S, USERS, WARMUP_S, ItemUser, scenario_options
from scenarios.shapes import UNTIL_THE_END, Stage, StagedShape

# The spike is spike_users if given, else users x spike_multiplier; pick it above pool_size + max_overflow to
# see requests queue for a connection. The fractions are of the measured duration: steady before the spike,
# the spike, and (the rest) steady after it. The warm-up runs steady.
OPTIONS = {"spike_multiplier": 4.0, "spike_users": 0, "before_fraction": 0.4, "spike_fraction": 0.2}
LIMITS = {
    "spike_multiplier": (1.0, 1000.0),
    "spike_users": (0, 100_000),
    "before_fraction": (0.0, 1.0),
    "spike_fraction": (0.0, 1.0),
}
options = scenario_options(OPTIONS)


class BurstUser(ItemUser):
    @task
    def get_item(self) -> None:
        self.client.get(f"/items/{self.random_item_id()}", name="/items/{item_id}")


def spike_users() -> int:
    return int(options["spike_users"] or max(round(USERS * options["spike_multiplier"]), USERS))


class BurstShape(StagedShape):
    def stages(self) -> list[Stage]:
        spike_starts = WARMUP_S + DURATION_S * options["before_fraction"]
        spike_ends = spike_starts + DURATION_S * options["spike_fraction"]
        return [
            Stage("steady", USERS, spike_starts),
            Stage("spike", spike_users(), spike_ends),
            Stage("steady", USERS, UNTIL_THE_END),
        ]
