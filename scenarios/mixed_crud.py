"""Mixed CRUD: one task is an item's whole life: create, read, list a page, update, delete."""

from __future__ import annotations

import random

from locust import task

from scenarios.base import DATASET_ROWS, ItemUser, scenario_options

OPTIONS = {"list_limit": 20}
LIMITS = {"list_limit": (1, 100)}
options = scenario_options(OPTIONS)


class MixedCrudUser(ItemUser):
    @task
    def item_lifecycle(self) -> None:
        # In the open model the task is the scheduled unit: the create carries any lateness, the rest of the
        # lifecycle is measured from when each request is sent.
        created = self.client.post("/items", json=self.new_item_payload(), name="/items")
        if created.status_code != 201:
            return  # a failed create is recorded; there is no item to go on with
        path = f"/items/{int(created.json()['id'])}"
        self.client.get(path, name="/items/{item_id}")
        limit = options["list_limit"]
        offset = random.randint(0, max(0, min(DATASET_ROWS - limit, 1000)))
        self.client.get(f"/items?limit={limit}&offset={offset}", name="/items")
        self.client.put(path, json={"price": round(random.uniform(1, 100), 2)}, name="/items/{item_id}")
        self.client.delete(path, name="/items/{item_id}")
