"""Write-heavy: POST /items, PUT /items/{item_id} and DELETE of items this user created; no think time."""

from __future__ import annotations

import random

from locust import task
from locust.env import Environment

from scenarios.base import ItemUser, scenario_options

OPTIONS = {"create_weight": 4, "update_weight": 4, "delete_weight": 2}
LIMITS = {"create_weight": (0, 1000), "update_weight": (0, 1000), "delete_weight": (0, 1000)}
options = scenario_options(OPTIONS)


class WriteHeavyUser(ItemUser):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        # Deletes take only what this user created, so the seeded ids every run relies on never run out.
        self.created: list[int] = []

    def create(self) -> None:
        response = self.client.post("/items", json=self.new_item_payload(), name="/items")
        if response.status_code == 201:
            self.created.append(int(response.json()["id"]))

    @task(options["create_weight"])
    def create_item(self) -> None:
        self.create()

    @task(options["update_weight"])
    def update_item(self) -> None:
        changes = {"price": round(random.uniform(1, 100), 2), "quantity": random.randint(0, 50)}
        self.client.put(f"/items/{self.random_item_id()}", json=changes, name="/items/{item_id}")

    @task(options["delete_weight"])
    def delete_item(self) -> None:
        if not self.created:  # nothing of ours left: create instead, so every task is one request
            self.create()
            return
        item_id = self.created.pop(random.randrange(len(self.created)))
        self.client.delete(f"/items/{item_id}", name="/items/{item_id}")
