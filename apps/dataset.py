"""The seeded dataset: deterministic rows with ids 1..N, identical for every backend and every run."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import NamedTuple

DEFAULT_ROWS = 10_000
_SEED = 20_240_601
_WORDS = [
    "amber",
    "basalt",
    "cedar",
    "delta",
    "ember",
    "fjord",
    "granite",
    "harbor",
    "indigo",
    "juniper",
    "kelp",
    "lumen",
    "meadow",
    "nickel",
    "onyx",
    "pine",
    "quartz",
    "river",
    "slate",
    "tundra",
    "umber",
    "velvet",
    "willow",
    "xenon",
    "yarrow",
    "zephyr",
]


class SeedItem(NamedTuple):
    id: int
    name: str
    description: str
    price: float
    quantity: int


def seed_items(rows: int) -> Iterator[SeedItem]:
    """Yield `rows` items; the same `rows` always yields the same items."""
    rng = random.Random(_SEED)
    for item_id in range(1, rows + 1):
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 12)))
        yield SeedItem(
            id=item_id,
            name=f"item-{item_id:06d}",
            description=words,
            price=round(rng.uniform(0.5, 500.0), 2),
            quantity=rng.randint(0, 1000),
        )
