"""Selftest: GET /work on bench's known-answer server (bench/measure/selftest_target); not a workload of `bench run`."""

from __future__ import annotations

from locust import task

from scenarios.base import ItemUser


class SelftestUser(ItemUser):
    # The base user brings the load models (the open model's timetable and intended starts) and the recording:
    # exactly what the selftest checks. The item ids and payloads go unused.
    @task
    def work(self) -> None:
        self.client.get("/work", name="/work")
