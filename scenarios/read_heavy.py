"""Read-heavy: 90% GET /items/{item_id} over the seeded ids, 10% GET /items pages; no think time."""

from __future__ import annotations

import random

from locust import constant, task

from scenarios.base import DATASET_ROWS, ItemUser


class ReadHeavyUser(ItemUser):
    wait_time = constant(0)

    @task(9)
    def get_item(self) -> None:
        self.client.get(f"/items/{self.random_item_id()}", name="/items/{item_id}")

    @task(1)
    def list_items(self) -> None:
        offset = random.randint(0, max(0, min(DATASET_ROWS - 20, 1000)))
        self.client.get(f"/items?limit=20&offset={offset}", name="/items")
