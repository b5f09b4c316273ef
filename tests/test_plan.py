"""Planning: the grid expands to the right points, in an order that does not favour a variant."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from apps.catalog import all_variants
from bench.plan.points import SweepSpec, build_plan


def test_grid_runs_pooled_variants_per_setting_and_memory_once_per_load() -> None:
    spec = SweepSpec(
        variants=["memory", "pg_sqla_sync", "pg_sqla_async"],
        pool_sizes=[2, 5, 10],
        max_overflows=[0, 10],
        users=[20, 40],
    )
    plan = build_plan(spec)
    pooled = [p for p in plan if p.variant.pooled]
    unpooled = [p for p in plan if not p.variant.pooled]
    assert len(pooled) == 2 * 3 * 2 * 2
    assert len(unpooled) == 2  # once per users value, not once per pool setting
    assert all(p.pool_size is None and p.max_overflow is None for p in unpooled)
    assert {(p.pool_size, p.max_overflow) for p in pooled} == {(s, o) for s in (2, 5, 10) for o in (0, 10)}
    assert [p.index for p in plan] == list(range(1, len(plan) + 1))
    assert len({p.point_id for p in plan}) == len(plan)


def test_variants_are_interleaved_inside_each_setting_and_repeats_come_last() -> None:
    spec = SweepSpec(variants=["pg_sqla_sync", "pg_sqla_async"], pool_sizes=[2, 5], max_overflows=[0], repeat=2)
    order = [(p.repeat_index, p.pool_size, p.variant.name) for p in build_plan(spec)]
    assert order == [
        (1, 2, "pg_sqla_sync"), (1, 2, "pg_sqla_async"),
        (1, 5, "pg_sqla_sync"), (1, 5, "pg_sqla_async"),
        (2, 2, "pg_sqla_sync"), (2, 2, "pg_sqla_async"),
        (2, 5, "pg_sqla_sync"), (2, 5, "pg_sqla_async"),
    ]  # fmt: skip


def test_values_are_sorted_and_deduplicated() -> None:
    spec = SweepSpec(variants=["pg_sqla_sync", "pg_sqla_sync"], pool_sizes=[10, 2, 10], max_overflows=[5, 0])
    assert spec.variants == ["pg_sqla_sync"]
    assert spec.pool_sizes == [2, 10]
    assert spec.max_overflows == [0, 5]


def test_max_connections_needed_covers_largest_pool_and_overflow_per_worker() -> None:
    spec = SweepSpec(pool_sizes=[2, 20], max_overflows=[0, 15], workers=3)
    assert spec.max_connections_needed() == 3 * (20 + 15)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pool_sizes", [0]),
        ("max_overflows", [-1]),
        ("users", [0]),
        ("duration_s", 0),
        ("warmup_s", -1),
        ("variants", ["no_such_variant"]),
        ("variants", []),
        ("scenario", "no_such_scenario"),
        ("repeat", 0),
    ],
)
def test_invalid_specs_are_rejected(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        SweepSpec.model_validate({field: value})


def test_all_expands_to_every_variant_once() -> None:
    assert SweepSpec(variants=["all", "memory"]).variants == list(all_variants())


def test_thread_pool_sizes_multiply_only_the_sync_variants() -> None:
    spec = SweepSpec(
        variants=["memory", "pg_sqla_sync", "pg_sqla_async", "pg_sqla_blocking"], pool_sizes=[2], max_overflows=[0],
        thread_tokens=[80, 40],
    )  # fmt: skip
    runs = sorted((p.variant.name, p.thread_tokens) for p in build_plan(spec))
    assert runs == [
        ("memory", 40), ("pg_sqla_async", 40), ("pg_sqla_blocking", 40), ("pg_sqla_sync", 40), ("pg_sqla_sync", 80)
    ]  # fmt: skip


def test_a_single_thread_pool_size_may_be_given_as_a_number() -> None:
    assert SweepSpec.model_validate({"thread_tokens": 64}).thread_tokens == [64]


def test_open_model_sweeps_rates_and_labels_points_with_them() -> None:
    spec = SweepSpec(
        variants=["memory", "pg_sqla_async"], pool_sizes=[5], max_overflows=[0], load_model="open", rates=[400, 100]
    )
    plan = build_plan(spec)
    assert spec.rates == [100, 400]
    assert [(p.variant.name, p.rate) for p in plan] == [
        ("memory", 100), ("pg_sqla_async", 100), ("memory", 400), ("pg_sqla_async", 400)
    ]  # fmt: skip
    assert all(f"rate{p.rate:g}" in p.point_id for p in plan)
    assert "rate=400/s" in plan[-1].label()


def test_closed_model_points_have_no_rate() -> None:
    assert all(p.rate is None for p in build_plan(SweepSpec(variants=["memory"])))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"load_model": "open"}, "needs --rate"),
        ({"rates": [100]}, "open load model only"),
        ({"load_model": "open", "rates": [0]}, "greater than 0"),
        ({"load_model": "sideways"}, "closed"),
    ],
)
def test_load_model_and_rates_must_agree(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SweepSpec.model_validate(values)


def test_repeats_come_as_whole_passes_so_variants_alternate() -> None:
    spec = SweepSpec(variants=["pg_sqla_sync", "pg_sqla_async"], pool_sizes=[5], max_overflows=[0], repeat=3)
    assert [p.variant.name for p in build_plan(spec)] == ["pg_sqla_sync", "pg_sqla_async"] * 3


def test_workers_and_pre_ping_are_sweep_dimensions_with_their_own_point_ids() -> None:
    spec = SweepSpec(
        variants=["memory", "pg_sqla_async"], pool_sizes=[5], max_overflows=[0], users=[10],
        workers=[2, 1], pool_pre_ping=["on", "off"],
    )  # fmt: skip
    assert spec.workers == [1, 2] and spec.pool_pre_ping == [False, True]
    points = build_plan(spec)
    async_points = [(p.workers, p.pool_pre_ping) for p in points if p.variant.name == "pg_sqla_async"]
    assert async_points == [(1, False), (1, True), (2, False), (2, True)]
    # no pool, nothing to check: the baseline runs once per worker count, never "with pre_ping"
    assert [(p.workers, p.pool_pre_ping) for p in points if p.variant.name == "memory"] == [(1, False), (2, False)]
    ids = [p.point_id for p in points]
    assert len(set(ids)) == len(ids)
    assert "002-pg_sqla_async-ps5-mo0-t40-u10-r1" in ids  # the defaults add nothing to an id (older runs resume)
    assert any(i.endswith("-ps5-mo0-pp-t40-u10-w2-r1") for i in ids)
    assert spec.max_connections_needed() == 2 * 5


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"workers": [0]}, "greater than or equal to 1"),
        ({"pool_pre_ping": ["maybe"]}, "valid boolean"),
        ({"processes": 0}, "greater than or equal to 1"),
        ({"fault": "db-restart:at=9s,down=1s", "duration_s": 10}, "does not fit"),
        ({"fault": "db-restart:at=1s"}, "missing down"),
        ({"target_url": "ftp://host"}, "not an http"),
        ({"remote_workers": -1}, "greater than or equal to 0"),
    ],
)
def test_scale_and_fault_settings_are_validated(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SweepSpec.model_validate(values)


def test_a_fault_is_recorded_in_its_canonical_form() -> None:
    assert SweepSpec(fault="db-pause:down=500ms,at=2", duration_s=10).fault == "db-pause:at=2s,down=0.5s"
