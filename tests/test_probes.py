"""The app probe and the sampler against a tiny local HTTP server that serves scripted /metrics documents in
the contract's format: parsing, differences of cumulative histograms, percentiles, the timeline, and failures
that are recorded without raising."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from copy import deepcopy
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bench.probes.app import AppProbeError, fetch_metrics, metrics_url, parse_metrics
from bench.probes.database import DatabaseReading
from bench.probes.histogram import Histogram, difference
from bench.probes.sampler import TelemetrySampler
from bench.probes.summary import Tick, summarise_ticks

BOUNDS = [1.0, 2.0, 4.0, 8.0]  # four bounds, five buckets: (..1], (1, 2], (2, 4], (4, 8], (8, ..)
DEADLINE_S = 10.0


def histogram(counts: list[int], sum_ms: float, max_ms: float) -> dict[str, Any]:
    return {"bounds_ms": BOUNDS, "counts": counts, "count": sum(counts), "sum_ms": sum_ms, "max_ms": max_ms}


def document(
    *,
    checked_out: int,
    overflow: int,
    waiting: int,
    acquisitions: int,
    timeouts: int,
    wait_ms: dict[str, Any],
    lag_ms: dict[str, Any],
    busy: int,
    threads_waiting: int,
    uptime_s: float,
) -> dict[str, Any]:
    return {
        "variant": "pg_sqla_async",
        "telemetry": True,
        "uptime_s": uptime_s,
        "pool": {
            "kind": "sqlalchemy",
            "limit": 20,
            "size": 10,
            "open": 10,
            "checked_out": checked_out,
            "overflow_in_use": overflow,
            "waiting": waiting,
            "acquisitions": acquisitions,
            "timeouts": timeouts,
            "wait_ms": wait_ms,
        },
        "event_loop": {"interval_ms": 10.0, "lag_ms": lag_ms},
        "threads": {"limit": 40, "busy": busy, "waiting": threads_waiting},
    }


# Four snapshots one second apart. The measurement runs from the second to the fourth, so its figures are the
# fourth minus the second: pool waits [0, 50, 40, 10, 0] (100 waits, 300 ms in all), loop lags [100, 0, 0, 0, 1].
SCRIPT = [
    document(
        checked_out=0, overflow=0, waiting=0, acquisitions=0, timeouts=0,
        wait_ms=histogram([0, 0, 0, 0, 0], 0.0, 0.0), lag_ms=histogram([0, 0, 0, 0, 0], 0.0, 0.0),
        busy=1, threads_waiting=0, uptime_s=1.0,
    ),
    document(
        checked_out=4, overflow=0, waiting=1, acquisitions=10, timeouts=0,
        wait_ms=histogram([10, 0, 0, 0, 0], 5.0, 0.9), lag_ms=histogram([100, 0, 0, 0, 0], 20.0, 0.5),
        busy=2, threads_waiting=0, uptime_s=2.0,
    ),
    document(
        checked_out=8, overflow=2, waiting=5, acquisitions=60, timeouts=1,
        wait_ms=histogram([10, 50, 40, 0, 0], 205.0, 3.9), lag_ms=histogram([100, 0, 0, 0, 1], 32.0, 12.0),
        busy=3, threads_waiting=1, uptime_s=3.0,
    ),
    document(
        checked_out=6, overflow=1, waiting=0, acquisitions=110, timeouts=2,
        wait_ms=histogram([10, 50, 40, 10, 0], 305.0, 7.9), lag_ms=histogram([200, 0, 0, 0, 1], 52.0, 12.0),
        busy=4, threads_waiting=0, uptime_s=4.0,
    ),
]  # fmt: skip


def body(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


# --- the tiny /metrics server ------------------------------------------------------------------------------


@dataclass
class ScriptedMetrics:
    """Serves its responses in order, then the last one again and again; counts the requests it got."""

    responses: list[tuple[int, bytes]]
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_response(self) -> tuple[int, bytes]:
        with self.lock:
            self.requests += 1
            return self.responses[min(self.requests, len(self.responses)) - 1]


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(responses: list[tuple[int, bytes]]) -> tuple[str, ScriptedMetrics]:
        script = ScriptedMetrics(responses)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/metrics":
                    self.send_error(500, f"unexpected path {self.path}")
                    return
                status, payload = script.next_response()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}", script

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def sample_until(sampler: TelemetrySampler, ticks: int) -> None:
    """Inside the sampler's `with`: wait until it has taken `ticks` rounds (bounded)."""
    deadline = time.monotonic() + DEADLINE_S
    while len(sampler.ticks()) < ticks and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(sampler.ticks()) >= ticks, "the sampler took too few samples"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- histograms -------------------------------------------------------------------------------------------


def test_difference_and_percentiles_interpolate_within_a_bucket() -> None:
    earlier = Histogram.model_validate(histogram([10, 0, 0, 0, 0], 5.0, 0.9))
    later = Histogram.model_validate(histogram([10, 50, 40, 10, 0], 305.0, 7.9))
    window = difference(later, earlier)
    assert window is not None
    assert window.counts == (0, 50, 40, 10, 0)
    assert window.count == 100
    assert window.mean_ms == pytest.approx(3.0)
    assert window.max_ms == 7.9  # the maximum since start grew during the window: exact
    assert window.percentile(0.5) == pytest.approx(2.0)  # rank 50: the top of (1, 2]
    assert window.percentile(0.25) == pytest.approx(1.5)  # rank 25: halfway through (1, 2]
    assert window.percentile(0.95) == pytest.approx(6.0)  # rank 95: halfway through (4, 8]
    assert window.percentile(0.99) == pytest.approx(7.6)  # 4 + 4 * 9/10


def test_window_maximum_is_bounded_by_its_highest_bucket_when_the_maximum_since_start_did_not_grow() -> None:
    earlier = Histogram.model_validate(histogram([0, 0, 0, 0, 1], 12.0, 12.0))
    later = Histogram.model_validate(histogram([5, 3, 0, 0, 1], 19.0, 12.0))
    window = difference(later, earlier)
    assert window is not None
    assert window.max_ms == 2.0  # the 12 ms value came before the window; the new ones are all <= 2 ms
    assert window.percentile(1.0) == pytest.approx(2.0)


def test_percentile_never_exceeds_the_known_maximum_and_the_overflow_bucket_ends_there() -> None:
    window = difference(Histogram.model_validate(histogram([0, 0, 0, 10, 0], 50.0, 5.0)), None)
    assert window is not None
    assert window.percentile(0.99) == 5.0  # interpolation would say 7.96; nothing above 5 ms was seen
    overflow = difference(Histogram.model_validate(histogram([0, 0, 0, 0, 4], 60.0, 20.0)), None)
    assert overflow is not None
    assert overflow.percentile(0.5) == pytest.approx(14.0)  # (8, 20] interpolated


def test_difference_refuses_counts_that_went_down_or_other_bounds() -> None:
    later = Histogram.model_validate(histogram([1, 0, 0, 0, 0], 0.5, 0.5))
    earlier = Histogram.model_validate(histogram([5, 0, 0, 0, 0], 2.5, 0.9))  # the app restarted in between
    assert difference(later, earlier) is None
    other = Histogram(bounds_ms=[1.0, 3.0, 9.0, 27.0], counts=[0, 0, 0, 0, 0], count=0, sum_ms=0.0, max_ms=0.0)
    assert difference(later, other) is None


def test_an_empty_window_has_no_percentiles() -> None:
    same = Histogram.model_validate(histogram([3, 0, 0, 0, 0], 1.0, 0.5))
    window = difference(same, same)
    assert window is not None
    assert window.count == 0
    assert window.percentile(0.5) is None
    assert window.max_ms is None
    assert window.mean_ms is None


def test_histogram_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="needs \\+1"):
        Histogram(bounds_ms=[1.0, 2.0], counts=[0, 0], count=0, sum_ms=0.0, max_ms=0.0)


# --- parsing ----------------------------------------------------------------------------------------------


def test_parse_metrics_reads_the_contract_and_ignores_fields_it_does_not_know() -> None:
    doc = deepcopy(SCRIPT[2])
    doc["something_new"] = {"x": 1}
    parsed = parse_metrics(body(doc))
    assert parsed.pool is not None and parsed.pool.checked_out == 8
    assert parsed.event_loop is not None and parsed.event_loop.lag_ms.max_ms == 12.0
    assert parsed.threads.busy == 3


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"<html>oops</html>", "not JSON"),
        (b'{"variant": "x", "telemetry": true, "uptime_s": 1}', "not the /metrics contract: threads"),
        (body({**SCRIPT[0], "pool": {**SCRIPT[0]["pool"], "wait_ms": {"bounds_ms": [1.0], "counts": [1]}}}), "pool"),
    ],
)
def test_parse_metrics_names_the_problem_in_one_line(payload: bytes, expected: str) -> None:
    with pytest.raises(AppProbeError) as raised:
        parse_metrics(payload)
    assert expected in raised.value.message
    assert "\n" not in raised.value.message


def test_metrics_url_accepts_a_base_url_or_the_metrics_url() -> None:
    assert metrics_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/metrics"
    assert metrics_url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000/metrics"
    assert metrics_url("http://127.0.0.1:8000/metrics") == "http://127.0.0.1:8000/metrics"


def test_fetch_metrics_from_a_live_server(serve: Any) -> None:
    base, _ = serve([(200, body(SCRIPT[1]))])
    assert fetch_metrics(metrics_url(base)).pool is not None


# --- summaries from ticks at known times ------------------------------------------------------------------


def ticks_from_script(start: float = 1000.0) -> list[Tick]:
    return [Tick(at=start + i, app=parse_metrics(body(doc))) for i, doc in enumerate(SCRIPT)]


def test_summary_takes_the_measured_period_as_a_difference_of_snapshots() -> None:
    ticks = ticks_from_script()
    telemetry = summarise_ticks(
        ticks, interval_s=1.0, started_at=1000.0, measure_from=1001.0, measure_to=1003.0, database_source=None
    )
    app = telemetry.app
    assert app is not None
    assert app.samples == 3  # the snapshots at 1001, 1002 and 1003
    assert (app.pool_kind, app.pool_limit) == ("sqlalchemy", 20)
    assert app.acquisitions == 100  # 110 - 10
    assert app.pool_timeouts == 2
    assert app.pool_wait_ms_mean == pytest.approx(3.0)
    assert app.pool_wait_ms_p50 == pytest.approx(2.0)
    assert app.pool_wait_ms_p99 == pytest.approx(7.6)
    assert app.pool_wait_ms_max == pytest.approx(7.9)
    assert app.loop_lag_ms_p50 == pytest.approx(0.505)  # rank 50.5 of 101, in [0, 1]
    assert app.loop_lag_ms_max == pytest.approx(12.0)
    assert app.checked_out_mean == pytest.approx(6.0)
    assert app.checked_out_max == 8
    assert (app.overflow_in_use_max, app.waiting_max) == (2, 5)
    assert app.threads_busy_mean == pytest.approx(3.0)
    assert (app.threads_limit, app.threads_busy_max, app.threads_waiting_max) == (40, 4, 1)
    assert telemetry.database is None
    assert telemetry.errors == []


def test_summary_starts_from_the_snapshot_just_before_the_measurement() -> None:
    ticks = ticks_from_script()
    # The measurement starts between the second and third snapshots: the second is the baseline.
    telemetry = summarise_ticks(
        ticks, interval_s=1.0, started_at=1000.0, measure_from=1001.5, measure_to=1003.2, database_source=None
    )
    assert telemetry.app is not None
    assert telemetry.app.samples == 2
    assert telemetry.app.acquisitions == 100
    assert telemetry.app.checked_out_max == 8


def test_timeline_has_every_sample_with_per_interval_figures() -> None:
    ticks = ticks_from_script()
    telemetry = summarise_ticks(
        ticks, interval_s=1.0, started_at=999.5, measure_from=1001.0, measure_to=1003.0, database_source=None
    )
    timeline = telemetry.timeline
    assert [s.t_s for s in timeline] == [0.5, 1.5, 2.5, 3.5]  # warm-up included, relative to started_at
    assert [s.checked_out for s in timeline] == [0, 4, 8, 6]
    assert [s.threads_busy for s in timeline] == [1, 2, 3, 4]
    # Lag since the previous sample: none before the first; 0.5 (new maximum); 12 (new maximum); then only
    # values <= 1 ms were added, so the worst is bounded by that bucket.
    assert [s.loop_lag_ms_max for s in timeline] == [None, 0.5, 12.0, 1.0]
    # Waits since the previous sample: 10 in [0, 1] -> 0.99 capped at the new max 0.9; 50 + 40 -> p99 in
    # (2, 4] capped at the new max 3.9; 10 in (4, 8] -> 7.96 capped at the new max 7.9.
    assert timeline[1].pool_wait_ms_p99 == pytest.approx(0.9)
    assert timeline[2].pool_wait_ms_p99 == pytest.approx(3.9)
    assert timeline[3].pool_wait_ms_p99 == pytest.approx(7.9)


def test_timeline_leaves_out_samples_before_the_load_and_after_the_measurement() -> None:
    ticks = ticks_from_script()
    telemetry = summarise_ticks(
        ticks, interval_s=1.0, started_at=1001.0, measure_from=1001.0, measure_to=1002.0, database_source=None
    )
    assert [s.t_s for s in telemetry.timeline] == [0.0, 1.0]
    assert telemetry.timeline[0].loop_lag_ms_max == 0.5  # the previous snapshot still serves as the reference


def test_a_restart_between_snapshots_gives_no_differences() -> None:
    ticks = ticks_from_script()
    restarted = parse_metrics(body({**SCRIPT[1], "uptime_s": 0.5}))
    ticks = [*ticks[:3], Tick(at=1003.0, app=restarted)]
    telemetry = summarise_ticks(
        ticks, interval_s=1.0, started_at=1000.0, measure_from=1001.0, measure_to=1003.0, database_source=None
    )
    assert telemetry.app is not None
    assert telemetry.app.acquisitions is None
    assert telemetry.app.pool_wait_ms_p99 is None
    assert telemetry.app.checked_out_max == 8  # gauges still stand


def test_telemetry_off_keeps_only_the_threads() -> None:
    off = {"variant": "pg_sqla_sync", "telemetry": False, "uptime_s": 1.0, "pool": None, "event_loop": None}
    ticks = [
        Tick(at=1000.0 + i, app=parse_metrics(body({**off, "threads": {"limit": 40, "busy": b, "waiting": w}})))
        for i, (b, w) in enumerate([(5, 0), (7, 2), (9, 1)])
    ]
    app = summarise_ticks(
        ticks, interval_s=1.0, started_at=1000.0, measure_from=1000.0, measure_to=1002.0, database_source=None
    ).app
    assert app is not None
    assert app.model_dump(exclude_none=True) == {
        "samples": 3,
        "threads_limit": 40,
        "threads_busy_mean": 7.0,
        "threads_busy_max": 9,
        "threads_waiting_max": 2,
    }


def test_memory_variant_without_a_pool_still_reports_the_loop_lag() -> None:
    docs = [{**doc, "variant": "memory", "pool": None} for doc in SCRIPT]
    ticks = [Tick(at=1000.0 + i, app=parse_metrics(body(doc))) for i, doc in enumerate(docs)]
    app = summarise_ticks(
        ticks, interval_s=1.0, started_at=1000.0, measure_from=1001.0, measure_to=1003.0, database_source=None
    ).app
    assert app is not None
    assert app.pool_kind is None and app.acquisitions is None and app.checked_out_max is None
    assert app.loop_lag_ms_max == 12.0


def test_database_summary_over_the_measured_period() -> None:
    readings = [
        DatabaseReading(2, {"idle": 2}),
        DatabaseReading(10, {"active": 6, "idle": 4, "wait:Client": 5}),
        DatabaseReading(12, {"active": 9, "idle": 3, "wait:Lock": 2}),
        DatabaseReading(30, {"idle": 30}),  # after the measurement
    ]
    ticks = [Tick(at=1000.0 + i, database=r) for i, r in enumerate(readings)]
    telemetry = summarise_ticks(
        ticks,
        interval_s=1.0,
        started_at=1000.0,
        measure_from=1001.0,
        measure_to=1002.0,
        database_source="pg_stat_activity",
    )
    database = telemetry.database
    assert database is not None
    assert (database.samples, database.connections_mean, database.connections_max) == (2, 11.0, 12)
    assert database.by_state_max == {"active": 9, "idle": 4, "wait:Client": 5, "wait:Lock": 2}
    assert telemetry.app is None
    assert [s.db_connections for s in telemetry.timeline] == [2, 10, 12]
    assert telemetry.timeline[1].db_by_state == {"active": 6, "idle": 4, "wait:Client": 5}


def test_a_database_that_cannot_count_gives_a_note() -> None:
    telemetry = summarise_ticks(
        [Tick(at=1000.0)],
        interval_s=1.0,
        started_at=1000.0,
        measure_from=1000.0,
        measure_to=1001.0,
        database_source="serverStatus connections.current",
        database_note="no connection counts: serverStatus refused (no such command)",
    )
    assert telemetry.database is not None
    assert telemetry.database.samples == 0
    assert telemetry.database.note == "no connection counts: serverStatus refused (no such command)"


# --- the sampler against a live server -------------------------------------------------------------------


def test_sampler_reads_the_scripted_documents_and_summarises_them(serve: Any) -> None:
    base, script = serve([(200, body(doc)) for doc in SCRIPT])
    sampler = TelemetrySampler(app_url=base, database=None, interval_s=0.05)
    with sampler:
        sample_until(sampler, len(SCRIPT))
    ticks = sampler.ticks()
    assert len(ticks) == script.requests  # one GET per round, nothing else
    assert [t.at for t in ticks] == sorted(t.at for t in ticks)
    telemetry = sampler.summary(ticks[0].at, ticks[1].at, ticks[3].at)
    assert telemetry.interval_s == 0.05
    assert telemetry.errors == []
    assert telemetry.database is None
    app = telemetry.app
    assert app is not None
    assert (app.samples, app.acquisitions, app.pool_timeouts) == (3, 100, 2)
    assert app.pool_wait_ms_p99 == pytest.approx(7.6)
    assert [s.t_s for s in telemetry.timeline] == [round(t.at - ticks[0].at, 3) for t in ticks[:4]]
    assert telemetry.timeline[0].t_s == 0.0


def test_sampler_records_an_app_that_is_down_once_and_does_not_raise() -> None:
    sampler = TelemetrySampler(app_url=f"http://127.0.0.1:{free_port()}", database=None, interval_s=0.01)
    with sampler:
        sample_until(sampler, 3)
    telemetry = sampler.summary(0.0, 0.0, time.time())
    assert telemetry.app is None
    assert len(telemetry.errors) == 1
    rounds = len(sampler.ticks())
    assert telemetry.errors[0].startswith("app /metrics at http://127.0.0.1:")
    assert f"{rounds} of {rounds} samples failed (first: " in telemetry.errors[0]


def test_sampler_keeps_going_after_garbage_and_reports_it_once(serve: Any) -> None:
    base, _ = serve([(200, b"{garbage"), (200, b"{garbage"), (200, body(SCRIPT[0])), (200, body(SCRIPT[1]))])
    sampler = TelemetrySampler(app_url=base, database=None, interval_s=0.01)
    with sampler:
        sample_until(sampler, 4)
    telemetry = sampler.summary(0.0, 0.0, time.time())
    assert len(telemetry.errors) == 1
    assert "2 of " in telemetry.errors[0] and "not JSON" in telemetry.errors[0]
    assert telemetry.app is not None  # the later, valid documents were used
    assert telemetry.app.samples == len(sampler.ticks()) - 2


def test_sampler_stops_asking_an_app_without_metrics(serve: Any) -> None:
    base, script = serve([(404, b'{"detail": "Not Found"}')])
    sampler = TelemetrySampler(app_url=base, database=None, interval_s=0.01)
    with sampler:
        sample_until(sampler, 5)
    assert script.requests == 1
    telemetry = sampler.summary(0.0, 0.0, time.time())
    assert telemetry.errors == [
        f"app /metrics at {base}/metrics: 1 of 1 samples failed (first: HTTP 404 Not Found); not sampled further"
    ]


def test_leaving_the_context_stops_the_thread_without_waiting_for_the_next_round(serve: Any) -> None:
    base, script = serve([(200, body(SCRIPT[0]))])
    # A round every hour: only an Event (not a sleep) lets the thread end within the join's bounded wait.
    sampler = TelemetrySampler(app_url=base, database=None, interval_s=3600.0)
    with sampler:
        sample_until(sampler, 1)
        assert sampler.running
    assert not sampler.running
    assert script.requests == 1
    assert sampler.summary(0.0, 0.0, time.time()).errors == []


def test_summary_without_samples_is_empty_not_an_error() -> None:
    sampler = TelemetrySampler(app_url=None, database=None)
    telemetry = sampler.summary(0.0, 1.0, 2.0)
    assert telemetry.app is None and telemetry.database is None and telemetry.timeline == []
    assert telemetry.errors == []
