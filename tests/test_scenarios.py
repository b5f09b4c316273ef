"""The scenario catalogue: options read without importing locust, validated, and every workload run for real."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.measure.load import (
    LoadResult,
    LoadSettings,
    available_scenarios,
    get_scenario,
    resolve_scenario_options,
    run_load,
    scenario_option_defaults,
)
from bench.measure.server import run_server
from scenarios.recording import Recorder, failure_kind

ROWS = 300
CATALOGUE = {"read_heavy", "write_heavy", "mixed_crud", "io_wait", "burst", "ramp"}


# ---------------------------------------------------------------- catalogue and options (no processes)


def test_catalogue_lists_every_workload_with_a_one_line_description() -> None:
    assert set(available_scenarios()) == CATALOGUE
    for name in CATALOGUE:
        description = get_scenario(name).description
        assert description and "\n" not in description and not description.startswith(name)


def test_option_defaults_come_from_the_scenario_files() -> None:
    assert scenario_option_defaults("io_wait") == {"wait_ms": 50}
    assert scenario_option_defaults("read_heavy")["get_weight"] == 9
    assert scenario_option_defaults("ramp")["user_steps"] == []
    defaults = scenario_option_defaults("ramp")
    defaults["user_steps"].append(3)  # a copy: the catalogue is not changed through it
    assert scenario_option_defaults("ramp")["user_steps"] == []


def test_resolve_converts_given_text_by_the_default_type_and_keeps_the_rest() -> None:
    assert resolve_scenario_options("io_wait", {"wait_ms": "75"}) == {"wait_ms": 75}
    burst = resolve_scenario_options("burst", {"spike_multiplier": "6", "spike_fraction": "0.25"})
    assert burst["spike_multiplier"] == 6.0 and isinstance(burst["spike_multiplier"], float)
    assert burst["spike_fraction"] == 0.25 and burst["before_fraction"] == 0.4
    assert resolve_scenario_options("ramp", {"user_steps": "2, 4,8"})["user_steps"] == [2, 4, 8]
    assert resolve_scenario_options("ramp", {"user_steps": ""})["user_steps"] == []
    assert resolve_scenario_options("mixed_crud", {}) == {"list_limit": 20}


@pytest.mark.parametrize(
    ("name", "given", "message"),
    [
        ("io_wait", {"wait": "5"}, r"unknown option 'wait' for scenario io_wait \(its options: wait_ms\)"),
        ("io_wait", {"wait_ms": "fast"}, r"wait_ms='fast': expected an integer \(default 50\)"),
        ("io_wait", {"wait_ms": "2.5"}, r"wait_ms='2.5': expected an integer"),
        ("io_wait", {"wait_ms": "-1"}, r"wait_ms='-1': must be between 0 and 60000"),
        ("burst", {"spike_fraction": "nan"}, r"spike_fraction='nan': expected a number"),
        ("burst", {"spike_fraction": "1.5"}, r"spike_fraction='1.5': must be between 0 and 1"),
        ("ramp", {"user_steps": "2,x"}, r"user_steps='2,x': expected comma-separated integers"),
        ("ramp", {"user_steps": "0,4"}, r"user_steps='0,4': must be between 1 and"),
        ("nosuch", {}, r"unknown scenario nosuch \(known: .*read_heavy"),
    ],
)
def test_resolve_rejects_bad_options_in_one_line(name: str, given: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        resolve_scenario_options(name, given)
    assert "\n" not in str(caught.value)


def test_recorder_keeps_phases_and_seconds_apart() -> None:
    recorder = Recorder(open_model=True, started_at=100.0, warmup_s=1.0, process="local-1")
    recorder.record("GET", "/items/{item_id}", 100.1, 2.0, 100.0, None)  # sent 100 ms late
    recorder.close_second(users=2, stage=None, now=101.0)
    recorder.start_measuring(101.0, cpu_s=5.0)
    recorder.record("GET", "/items/{item_id}", 101.2, 3.0, 101.2, None)
    recorder.record("PUT", "/items/{item_id}", 101.3, 4.0, None, "HTTPError('404 Client Error')")
    recorder.stop(now=101.8, cpu_s=5.5, users=2, stage="steady")
    summary = recorder.summary(load_model="open", rate=10.0, users=2)
    warmup, measure = summary["phases"]["warmup"], summary["phases"]["measure"]
    assert (warmup["requests"], warmup["late_requests"]) == (1, 1)
    assert (measure["requests"], measure["failures"], measure["late_requests"]) == (2, 1, 0)
    assert measure["failures_by_kind"] == {"HTTP 404": 1}
    assert set(measure["by_name"]) == {"GET /items/{item_id}", "PUT /items/{item_id}"}
    assert summary["generator_cpu_s"] == pytest.approx(0.5)
    assert [(s["t_s"], s["phase"], s["requests"], s["stage"]) for s in summary["timeline"]] == [
        (0.0, "warmup", 1, None),
        (1.0, "measure", 2, "steady"),
    ]
    assert summary["timeline"][0]["latency_ms_p50"] == pytest.approx(102.0, rel=1e-3)  # corrected: 100 ms late + 2 ms
    recorder.record("GET", "/items", 102.0, 1.0, None, None)  # after the stop: in no period
    assert recorder.summary(load_model="open", rate=10.0, users=2)["phases"]["measure"]["requests"] == 2


def test_failure_kinds_group_by_status_or_exception() -> None:
    assert failure_kind("HTTPError('404 Client Error: Not Found for url: /items/9')") == "HTTP 404"
    assert failure_kind("BadStatusCode('http://x/items', code=500)") == "HTTP 500"
    assert failure_kind("ConnectionRefusedError(111, 'Connection refused')") == "ConnectionRefusedError"


# ---------------------------------------------------------------- every workload, ~3 s each, for real


@pytest.fixture(scope="module")
def memory_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("memory") / "uvicorn.log"
    with run_server("memory", settings={"BENCH_DATASET_ROWS": str(ROWS)}, log_path=log) as server:
        yield server.base_url


def run(
    memory_url: str, raw_dir: Path, scenario: str, options: dict[str, str] | None = None, **given: object
) -> LoadResult:
    settings = {
        "scenario": scenario,
        "users": 3,
        "spawn_rate": 100.0,
        "warmup_s": 1.0,
        "duration_s": 2.0,
        "dataset_rows": ROWS,
        "scenario_options": resolve_scenario_options(scenario, options or {}),
    } | given
    return run_load(memory_url, LoadSettings(**settings), raw_dir)  # type: ignore[arg-type]


def test_read_heavy_weights_are_options(memory_url: str, tmp_path: Path) -> None:
    metrics = run(memory_url, tmp_path, "read_heavy", {"get_weight": "0", "list_weight": "1"}).metrics
    assert set(metrics.by_name) == {"GET /items"} and metrics.failures == 0


def test_write_heavy_deletes_only_what_it_created(memory_url: str, tmp_path: Path) -> None:
    metrics = run(memory_url, tmp_path, "write_heavy", {"delete_weight": "8"}).metrics
    assert metrics.failures == 0, metrics.failures_by_kind  # no 404: a delete never hits a missing item
    assert set(metrics.by_name) == {"POST /items", "PUT /items/{item_id}", "DELETE /items/{item_id}"}
    seeded = json.loads(urllib.request.urlopen(f"{memory_url}/items/{ROWS}", timeout=5).read())
    assert seeded["id"] == ROWS  # the seeded ids are all still there


def test_mixed_crud_runs_each_item_lifecycle(memory_url: str, tmp_path: Path) -> None:
    metrics = run(memory_url, tmp_path, "mixed_crud", load_model="open", rate=30.0).metrics
    assert metrics.failures == 0, metrics.failures_by_kind
    names = {"POST /items", "GET /items/{item_id}", "GET /items", "PUT /items/{item_id}", "DELETE /items/{item_id}"}
    assert set(metrics.by_name) == names
    creates = metrics.by_name["POST /items"].requests
    assert all(abs(metrics.by_name[name].requests - creates) <= 3 for name in names)  # one of each per task
    assert metrics.late_requests <= metrics.requests


def test_io_wait_holds_each_request_for_wait_ms(memory_url: str, tmp_path: Path) -> None:
    metrics = run(memory_url, tmp_path, "io_wait", {"wait_ms": "30"}).metrics
    assert set(metrics.by_name) == {"GET /items/{item_id}/slow"} and metrics.requests > 0
    try:
        urllib.request.urlopen(f"{memory_url}/items/1/slow?wait_ms=0", timeout=5)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            pytest.skip("the memory variant has no GET /items/{item_id}/slow yet: wait time not checked")
        raise
    assert metrics.failures == 0, metrics.failures_by_kind
    assert metrics.latency_ms_p50 >= 30


def test_burst_spikes_users_and_names_its_stages(memory_url: str, tmp_path: Path) -> None:
    options = {"spike_users": "9", "before_fraction": "0.25", "spike_fraction": "0.5"}
    metrics = run(memory_url, tmp_path, "burst", options, users=2, duration_s=4.0).metrics
    timeline = metrics.timeline
    assert timeline[0].stage == "steady" and timeline[0].users == 2
    assert any(sample.stage == "spike" and sample.users == 9 for sample in timeline)
    assert max(sample.users for sample in timeline) == 9
    assert metrics.failures == 0


def test_ramp_steps_users_up_in_the_open_model_too(memory_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    result = run(memory_url, tmp_path, "ramp", {"steps": "3"}, load_model="open", rate=60.0, duration_s=3.0)
    metrics = result.metrics
    assert time.monotonic() - started < 30
    stages = [sample.stage for sample in metrics.timeline]
    assert stages[0] == "step 1" and "step 3" in stages
    users = [sample.users for sample in metrics.timeline]
    assert users == sorted(users) and users[0] == 1 and users[-1] == 3
    # Each user keeps the run's per-user rate (60/3 per s), so the rate steps up with the users.
    # The busiest second of each step: the run's last sample may be a short stub second on a loaded machine.
    first = max(sample.requests for sample in metrics.timeline if sample.stage == "step 1")
    last = max(sample.requests for sample in metrics.timeline if sample.stage == "step 3")
    assert last > 1.5 * first
