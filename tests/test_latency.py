"""bench/records/latency.py with known inputs: HDR buckets, encode/merge/summarise, the timetable and the correction."""

from __future__ import annotations

import itertools

import pytest

from bench.records.latency import (
    HIGHEST_US,
    LATE_AFTER_MS,
    LatencyCounts,
    Timetable,
    bucket_floor,
    clamp_us,
    corrected_latency_us,
    decode,
    encode,
    histogram_of,
    is_late,
    lateness_ms,
    merge,
    nearest_rank_ms,
    new_histogram,
    percentiles_ms,
    spread_order,
    summarise,
    van_der_corput,
    wait_before,
)

# ---------------------------------------------------------------- histograms


@pytest.mark.parametrize("value", [1, 999, 2047, 2048, 2049, 4097, 123_456, 1_000_000, 59_999_999])
def test_bucket_floor_is_hdr_lowest_equivalent_value(value: int) -> None:
    assert bucket_floor(value) == new_histogram().get_lowest_equivalent_value(value)


def test_values_below_2048_us_are_exact_and_larger_ones_keep_3_significant_digits() -> None:
    assert bucket_floor(2047) == 2047
    assert bucket_floor(4097) == 4096  # a 2 µs bucket at 4 ms
    assert abs(bucket_floor(1_234_567) - 1_234_567) / 1_234_567 < 0.001


def test_latency_counts_make_the_same_histogram_as_recording_each_value() -> None:
    values = [1, 5, 5, 2047, 2049, 4097, 4098, 999_999, 1_000_001, 30_000_000]
    counts = LatencyCounts()
    for value in values:
        counts.record(value)
    assert counts.total == len(values)
    assert decode(counts.encode()).get_total_count() == len(values)
    assert summarise(counts.encode()) == summarise(encode(histogram_of(values)))


def test_clamp_keeps_values_in_the_histogram_range() -> None:
    assert clamp_us(0.2) == 1
    assert clamp_us(1500.7) == 1500
    assert clamp_us(10 * HIGHEST_US) == HIGHEST_US


def test_summarise_known_values() -> None:
    encoded = encode(histogram_of(ms * 1000 for ms in range(1, 101)))  # 1, 2, ... 100 ms
    summary = summarise(encoded)
    assert summary.count == 100
    assert summary.p50_ms == pytest.approx(50, rel=1e-3)
    assert summary.p90_ms == pytest.approx(90, rel=1e-3)
    assert summary.p99_ms == pytest.approx(99, rel=1e-3)
    assert summary.max_ms == pytest.approx(100, rel=1e-3)
    assert summary.mean_ms == pytest.approx(50.5, rel=1e-3)


def test_one_slow_request_in_a_thousand_is_the_p999_not_the_p99() -> None:
    summary = summarise(encode(histogram_of([1000] * 999 + [500_000])))
    assert summary.p99_ms == pytest.approx(1.0, rel=1e-3)
    assert summary.p999_ms == pytest.approx(1.0, rel=1e-3)
    assert summary.max_ms == pytest.approx(500, rel=1e-3)


def test_empty_histogram_summarises_to_zeros() -> None:
    summary = summarise(encode(new_histogram()))
    assert summary.count == 0 and summary.p99_ms == 0.0 and summary.max_ms == 0.0
    assert percentiles_ms(new_histogram(), [50.0]) == {50.0: 0.0}


def test_decode_reverses_encode() -> None:
    histogram = histogram_of([1000, 2000, 3000])
    again = decode(encode(histogram))
    assert again.get_total_count() == 3
    assert percentiles_ms(again, [50.0, 100.0]) == percentiles_ms(histogram, [50.0, 100.0])


def test_merge_loses_nothing() -> None:
    first = [1000 + i for i in range(500)]
    second = [250_000 + 7 * i for i in range(300)]
    merged = merge([encode(histogram_of(first)), encode(histogram_of(second))])
    assert summarise(merged) == summarise(encode(histogram_of(first + second)))
    assert summarise(merged).count == 800
    assert summarise(merge([])).count == 0


def test_nearest_rank_percentiles_of_a_small_sample() -> None:
    values = [1000, 2000, 3000, 4000]
    assert nearest_rank_ms(values, 0.50) == 2.0
    assert nearest_rank_ms(values, 0.99) == 4.0
    assert nearest_rank_ms(values, 0.0) == 1.0
    assert nearest_rank_ms([], 0.5) is None


# ---------------------------------------------------------------- the open model's timetable


def test_users_together_start_exactly_at_the_rate() -> None:
    users, rate = 4, 100.0
    starts = sorted(
        Timetable(1000.0, user, users, rate).intended_start(slot) for user in range(users) for slot in range(25)
    )
    assert len(starts) == 100
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert gaps == pytest.approx([0.01] * 99)  # every 10 ms, nobody firing together
    assert starts[0] == 1000.0


def test_one_user_starts_every_users_over_rate_seconds() -> None:
    timetable = Timetable(started_at=50.0, user_index=1, users=4, rate=100.0)
    assert timetable.interval_s == pytest.approx(0.04)
    assert timetable.intended_start(3) - timetable.intended_start(2) == pytest.approx(0.04)


def test_fewer_users_than_planned_are_still_spread_over_the_interval() -> None:
    offsets = sorted(Timetable(0.0, user, 8, 8.0).offset_s for user in range(2))
    assert offsets == pytest.approx([0.0, 0.5])  # half an interval apart, not bunched at its start
    assert sorted(spread_order(10)) == list(range(10))


def test_users_beyond_the_planned_number_fall_between_the_others() -> None:
    base = Timetable(0.0, 0, 4, 100.0)
    extra = Timetable(0.0, 4, 4, 100.0)  # the first user of a second layer (a spike)
    assert extra.interval_s == base.interval_s
    assert extra.offset_s - base.offset_s == pytest.approx(0.005)  # half way to the next start
    assert [van_der_corput(n) for n in range(4)] == [0.0, 0.5, 0.25, 0.75]


def test_a_user_joining_late_takes_its_next_slot_not_a_backlog() -> None:
    timetable = Timetable(100.0, 0, 4, 100.0)  # slots at 100.00, 100.04, 100.08, ...
    assert timetable.first_slot_at_or_after(100.0) == 0
    assert timetable.first_slot_at_or_after(100.05) == 2
    assert timetable.first_slot_at_or_after(100.08) == 2
    assert timetable.first_slot_at_or_after(90.0) == 0


def test_timetable_rejects_impossible_settings() -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        Timetable(0.0, 0, 4, 0.0)


def test_wait_before_never_waits_when_behind() -> None:
    assert wait_before(10.5, 10.0) == pytest.approx(0.5)
    assert wait_before(10.0, 10.5) == 0.0


# ---------------------------------------------------------------- the correction and lateness


def test_corrected_latency_counts_from_the_intended_start() -> None:
    assert corrected_latency_us(10.0, 10.5, 2000) == (502_000, True)  # sent 500 ms late, served in 2 ms


def test_on_time_and_early_requests_are_their_service_time() -> None:
    assert corrected_latency_us(10.0, 10.0, 2000) == (2000, False)
    assert corrected_latency_us(10.0, 9.999, 2000) == (2000, False)  # a timer firing early earns nothing
    assert corrected_latency_us(None, 10.5, 2000) == (2000, False)  # a task's later request: service time


def test_lateness_threshold() -> None:
    assert LATE_AFTER_MS == 2.0
    assert lateness_ms(10.0, 10.0019) == pytest.approx(1.9)
    assert not is_late(10.0, 10.0019)
    assert is_late(10.0, 10.0021)
    assert corrected_latency_us(10.0, 10.0019, 100)[1] is False
    assert corrected_latency_us(10.0, 10.0021, 100)[1] is True


def test_a_one_second_stall_at_100_per_second_shows_as_a_backlog_only_when_corrected() -> None:
    """One connection, 100 requests/s for 3 s, 1 ms each, except the request due at 0.5 s, which the server
    holds for 1 s. A closed-loop client sees one slow request; the users who were due meanwhile waited."""
    timetable = Timetable(started_at=0.0, user_index=0, users=1, rate=100.0)
    service, corrected = new_histogram(), new_histogram()
    free_at, late = 0.0, 0
    for slot in range(300):
        intended = timetable.intended_start(slot)
        sent = max(intended, free_at)  # one request in flight per connection: wait for the previous one
        service_ms = 1000.0 if slot == 50 else 1.0
        free_at = sent + service_ms / 1000
        latency_us, was_late = corrected_latency_us(intended, sent, clamp_us(service_ms * 1000))
        service.record_value(clamp_us(service_ms * 1000))
        corrected.record_value(latency_us)
        late += was_late

    def count_between(histogram: object, low_ms: float, high_ms: float) -> int:
        return sum(
            item.count_at_value_iterated_to
            for item in histogram.get_recorded_iterator()  # type: ignore[attr-defined]
            if low_ms * 1000 <= item.value_iterated_to <= high_ms * 1000
        )

    assert count_between(service, 10, 2000) == 1  # the stall, once
    assert percentiles_ms(service, [99.0])[99.0] == pytest.approx(1.0, rel=1e-2)
    # The backlog: the stalled request (~1000 ms) and the ~110 due during and after it, from ~990 ms down to ~0.
    assert percentiles_ms(corrected, [100.0])[100.0] == pytest.approx(1000, rel=1e-2)
    assert count_between(corrected, 500, 1001) == pytest.approx(56, abs=3)
    assert count_between(corrected, 100, 500) == pytest.approx(44, abs=3)
    assert count_between(corrected, 10, 100) == pytest.approx(10, abs=3)
    assert percentiles_ms(corrected, [50.0])[50.0] < 2  # most of the run was on time
    assert late == pytest.approx(110, abs=3)
