"""The open model's Poisson timetable: exponential gaps (Kolmogorov-Smirnov), the exact rate, the seed, the round
robin, joining late; and the arrival process chosen in a sweep, refused with the closed model, recorded in a point."""

from __future__ import annotations

import itertools
import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bench.plan.config import build_spec
from bench.plan.points import SweepSpec
from bench.records.errors import BenchError
from bench.records.latency import (
    DEFAULT_ARRIVAL_SEED,
    PoissonTimetable,
    Timetable,
    arrival_offsets,
    open_timetable,
    poisson_block,
)
from tests.test_e2e import bench_argv, clean_env

USERS, RATE, HORIZON_S = 100, 50.0, 60.0  # 3,000 arrivals in one block


def stream(users: int = USERS, rate: float = RATE, horizon_s: float = HORIZON_S, seed: int = 1) -> list[float]:
    """Every user's intended starts in the first block, merged: what a FIFO server would see arrive."""
    return arrival_offsets("poisson", users, rate, horizon_s=horizon_s, until_s=horizon_s, seed=seed)


def ks_distance_to_exponential(samples: list[float], rate: float) -> float:
    """The Kolmogorov-Smirnov statistic: the largest gap between the samples' CDF and Exponential(rate)'s."""
    ordered = sorted(samples)
    n = len(ordered)
    distance = 0.0
    for i, x in enumerate(ordered):
        cdf = 1 - math.exp(-rate * x)
        distance = max(distance, (i + 1) / n - cdf, cdf - i / n)
    return distance


def ks_critical(n: int, alpha: float = 0.01) -> float:
    """The asymptotic critical value sqrt(-ln(alpha / 2) / 2) / sqrt(n) (1.628 / sqrt(n) at 1%)."""
    return math.sqrt(-math.log(alpha / 2) / 2) / math.sqrt(n)


@pytest.mark.parametrize("seed", [1, 2, 3, 12345])
def test_gaps_of_the_merged_stream_are_exponential(seed: int) -> None:
    starts = stream(seed=seed)
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert ks_distance_to_exponential(gaps, RATE) < ks_critical(len(gaps))


def test_the_test_can_fail_an_evenly_spread_timetable_is_far_from_exponential() -> None:
    starts = arrival_offsets("uniform", USERS, RATE, horizon_s=HORIZON_S, until_s=HORIZON_S)
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert ks_distance_to_exponential(gaps, RATE) > 0.5  # every gap is 1/rate: D = 1 - e^-1


def test_counts_per_second_vary_as_poisson_counts_do() -> None:
    """Index of dispersion: a Poisson count's variance equals its mean; a fixed schedule's is about zero."""
    counts = [0] * int(HORIZON_S)
    for start in stream():
        counts[int(start)] += 1
    mean = sum(counts) / len(counts)
    variance = sum((c - mean) ** 2 for c in counts) / (len(counts) - 1)
    # chi-square with 59 degrees of freedom: 99% of dispersions lie within 0.59..1.50
    assert 0.55 < variance / mean < 1.55


def test_the_rate_is_exact_over_the_horizon() -> None:
    assert len(stream()) == round(RATE * HORIZON_S)
    assert all(0 <= start < HORIZON_S for start in stream())
    two_blocks = arrival_offsets("poisson", 7, 3.3, horizon_s=10.0, until_s=20.0)
    assert len(two_blocks) == 2 * 33  # each block holds round(rate * horizon) arrivals
    assert sum(start < 10.0 for start in two_blocks) == 33
    assert PoissonTimetable(0.0, 0, 1, 0.01, 10.0).per_block == 1  # a rate too low for a block: one a block


def test_the_schedule_depends_on_the_seed_only() -> None:
    assert stream(seed=7) == stream(seed=7)
    assert stream(seed=7) != stream(seed=8)
    first = PoissonTimetable(1000.0, 3, USERS, RATE, HORIZON_S, seed=7)
    again = PoissonTimetable(1000.0, 3, USERS, RATE, HORIZON_S, seed=7)
    assert [first.intended_start(s) for s in range(40)] == [again.intended_start(s) for s in range(40)]


def test_every_process_draws_the_same_blocks() -> None:
    """Locust's workers are separate interpreters, each with its own hash seed: the blocks must not depend on it."""
    code = "from bench.records.latency import poisson_block; print(repr(poisson_block(5, 0, 2, 10, 3.0)))"
    printed = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=clean_env(PYTHONHASHSEED=h)
        ).stdout.strip()
        for h in ("1", "2")
    }
    assert printed == {repr(poisson_block(5, 0, 2, 10, 3.0))}


def test_users_share_the_stream_round_robin_without_overlap() -> None:
    users, horizon_s = 5, 4.0
    block = poisson_block(DEFAULT_ARRIVAL_SEED, 0, 0, round(RATE * horizon_s), horizon_s)
    slots = range(len(block) // users)
    timetables = [PoissonTimetable(0.0, user, users, RATE, horizon_s) for user in range(users)]
    per_user = [[timetable.intended_start(slot) for slot in slots] for timetable in timetables]
    for user, starts in enumerate(per_user):
        assert starts == list(block[user::users])  # arrival j goes to user j mod users
        assert starts == sorted(starts)
    assert sorted(itertools.chain.from_iterable(per_user)) == list(block)  # disjoint, and nothing left out


def test_users_beyond_the_planned_number_form_another_stream_of_the_same_rate() -> None:
    first = PoissonTimetable(0.0, 1, 4, RATE, HORIZON_S)
    second_layer = PoissonTimetable(0.0, 5, 4, RATE, HORIZON_S)  # the same position in layer 1 (a spike)
    firsts = [first.intended_start(s) for s in range(100)]
    seconds = [second_layer.intended_start(s) for s in range(100)]
    assert not set(firsts) & set(seconds)
    assert seconds[-1] == pytest.approx(firsts[-1], rel=0.2)  # about as many per second


def test_a_user_joining_late_takes_its_next_slot_across_block_boundaries() -> None:
    rng = random.Random(0)
    for _ in range(300):
        users, horizon_s = rng.randint(1, 9), rng.choice([0.5, 1.0, 3.7])
        timetable = PoissonTimetable(100.0, rng.randint(0, 20), users, rng.uniform(1, 200), horizon_s)
        at = 100.0 + rng.uniform(-1, 4 * horizon_s)
        slot = timetable.first_slot_at_or_after(at)
        assert timetable.intended_start(slot) >= at
        assert slot == 0 or timetable.intended_start(slot - 1) < at
    timetable = PoissonTimetable(100.0, 2, 4, RATE, HORIZON_S)
    assert timetable.first_slot_at_or_after(timetable.intended_start(9)) == 9  # due right now: that one
    assert timetable.first_slot_at_or_after(50.0) == 0


def test_the_factory_and_its_checks() -> None:
    assert isinstance(open_timetable("uniform", 0.0, 0, 4, 10.0, horizon_s=5.0), Timetable)
    assert isinstance(open_timetable("poisson", 0.0, 0, 4, 10.0, horizon_s=5.0, seed=3), PoissonTimetable)
    with pytest.raises(ValueError, match="horizon_s > 0"):
        PoissonTimetable(0.0, 0, 4, 10.0, 0.0)


# ---------------------------------------------------------------- the sweep option and the record


def test_poisson_is_the_open_models_default_with_a_fixed_seed() -> None:
    spec = SweepSpec(variants=["memory"], load_model="open", rates=[100])
    assert (spec.arrivals, spec.arrival_seed) == ("poisson", DEFAULT_ARRIVAL_SEED)
    uniform = SweepSpec(variants=["memory"], load_model="open", rates=[100], arrivals="uniform")
    assert (uniform.arrivals, uniform.arrival_seed) == ("uniform", None)  # no seed: nothing random to seed
    closed = SweepSpec(variants=["memory"])
    assert (closed.arrivals, closed.arrival_seed) == (None, None)
    assert SweepSpec.model_validate(spec.model_dump(mode="json")) == spec  # a resumed run plans the same


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"arrivals": "poisson"}, "--arrivals applies to the open load model only"),
        ({"arrival_seed": "3"}, "--arrival-seed applies to the open load model only"),
        ({"load_model": "open", "rates": ["10"], "arrivals": "zipf"}, "invalid --arrivals"),
        ({"load_model": "open", "rates": ["10"], "arrivals": "uniform", "arrival_seed": "3"}, "poisson only"),
        ({"load_model": "open", "rates": ["10"], "arrival_seed": "-1"}, "invalid --arrival-seed"),
    ],
)
def test_arrival_options_are_checked(values: dict[str, object], message: str) -> None:
    with pytest.raises(BenchError, match=message):
        build_spec(cli={"variants": ["memory"]} | values)


def test_the_arrival_process_is_recorded_in_every_point(tmp_path: Path) -> None:
    """One real open-model point on the in-memory variant: the option reaches the record (and Locust ran with it)."""
    results = tmp_path / "results"
    completed = subprocess.run(
        bench_argv(
            "run", "--variant", "memory", "--rows", "100", "--users", "5", "--load-model", "open", "--rate", "50",
            "--arrival-seed", "42", "--warmup", "0.5", "--duration", "1", "--no-report",
            "--results-dir", str(results), "--run-id", "r",
        ),
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    run = json.loads((results / "r" / "run.json").read_text())
    assert (run["sweep"]["arrivals"], run["sweep"]["arrival_seed"]) == ("poisson", 42)
    [point_file] = (results / "r" / "points").glob("*.json")
    point = json.loads(point_file.read_text())
    assert point["status"] == "ok" and point["metrics"]["requests"] > 0
    assert (point["config"]["arrivals"], point["config"]["arrival_seed"]) == ("poisson", 42)
