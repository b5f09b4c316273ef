"""Read-heavy: 90% GET /items/{item_id} over the seeded ids, 10% GET /items pages; no think time."""

from __future__ import annotations

import random

from locust import task

from scenarios.base import DATASET_ROWS, ItemUser, scenario_options

OPTIONS = {"get_weight": 9, "list_weight": 1, "list_limit": 20}
LIMITS = {"get_weight": (0, 1000), "list_weight": (0, 1000), "list_limit": (1, 100)}
options = scenario_options(OPTIONS)


class ReadHeavyUser(ItemUser):
    @task(options["get_weight"])
    def get_item(self) -> None:
        self.client.get(f"/items/{self.random_item_id()}", name="/items/{item_id}")

    @task(options["list_weight"])
    def list_items(self) -> None:
        limit = options["list_limit"]
        offset = random.randint(0, max(0, min(DATASET_ROWS - limit, 1000)))
        self.client.get(f"/items?limit={limit}&offset={offset}", name="/items")
