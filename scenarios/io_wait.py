"""I/O wait: GET /items/{item_id}/slow, each request holding a pool connection while the database waits."""

from __future__ import annotations

from locust import task

from scenarios.base import ItemUser, scenario_options

OPTIONS = {"wait_ms": 50}
LIMITS = {"wait_ms": (0, 60_000)}
options = scenario_options(OPTIONS)


class IoWaitUser(ItemUser):
    @task
    def slow_item(self) -> None:
        wait_ms = options["wait_ms"]
        self.client.get(f"/items/{self.random_item_id()}/slow?wait_ms={wait_ms}", name="/items/{item_id}/slow")
