"""Probes: sample the app's /metrics and the database's own counters while a point's load runs."""

from __future__ import annotations

from bench.probes.sampler import TelemetrySampler

__all__ = ["TelemetrySampler"]
