"""fetcher.report.timeline: each URL on the run's clock, and the counts (slots in use, URLs waiting) over time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import pytest

from fetcher._result import Status
from fetcher.report.timeline import (
    bucket_peaks,
    peak,
    slots_in_use,
    smoothed,
    span,
    step_series,
    time_at_least,
    waiting,
)

from .samples import NOW, result

T0 = NOW.replace(microsecond=123000).timestamp()  # records keep milliseconds (but the slot's times)


def record(wait: float, took: float, **changes: Any) -> dict[str, Any]:
    """A record without the slot's times, as fetcher 0.2.0 wrote them."""
    values: dict[str, Any] = {
        "finished_at": NOW + timedelta(seconds=wait + took),
        "wait_s": wait,
        "ttfb_s": took / 4,
        "download_s": took * 3 / 4,
    }
    values.update(changes)
    return result(1, **values).to_record()


def held(taken: float, released: float, **changes: Any) -> dict[str, Any]:
    """The record of a URL ready at NOW that held its slot from *taken* to *released* seconds after NOW."""
    values: dict[str, Any] = {
        "wait_s": taken,
        "finished_at": NOW + timedelta(seconds=released + 0.0004),  # stamped after the slot went back
        "slot_taken_at": NOW + timedelta(seconds=taken),
        "slot_released_at": NOW + timedelta(seconds=released),
    }
    values.update(changes)
    return result(1, **values).to_record()


def test_a_download_holds_its_slot_from_the_end_of_its_wait_to_its_finish() -> None:
    s = span(record(2, 4))
    assert (s.ready, s.waited, s.attempt, s.headers, s.finished) == pytest.approx((T0, T0 + 2, T0 + 2, T0 + 3, T0 + 6))


def test_a_retried_url_is_in_a_slot_for_its_timed_last_attempt() -> None:
    s = span(record(1, 9, attempts=3, ttfb_s=1.0, download_s=2.0))
    assert (s.waited, s.attempt, s.headers, s.finished) == pytest.approx((T0 + 1, T0 + 7, T0 + 8, T0 + 10))


@pytest.mark.parametrize("status", [Status.ACQUIRE_TIMEOUT, Status.SKIPPED, Status.INVALID, Status.DUPLICATE])
def test_a_url_that_asked_nothing_is_never_in_a_slot(status: Status) -> None:
    s = span(record(3, 0, status=status, attempts=0, ttfb_s=None, download_s=None))
    assert (s.in_slot, s.waited) == (False, cast(object, pytest.approx(T0 + 3)))


def test_a_finish_before_the_start_is_clamped_to_it() -> None:
    s = span(record(0, 1, finished_at=NOW - timedelta(seconds=5)))
    assert s.finished == s.ready == s.attempt


def test_back_to_back_intervals_do_not_overlap_and_empty_ones_do_not_count() -> None:
    assert step_series([(0, 1), (1, 2), (3, 3)]) == [(0, 1), (1, 1), (2, 0)]


def test_the_semaphore_value_counts_downloads_in_flight() -> None:
    spans = [span(record(0, 4)), span(record(1, 2)), span(record(5, 1))]
    series = slots_in_use(spans)
    assert [(round(t - T0, 3), v) for t, v in series] == [(0, 1), (1, 2), (3, 1), (4, 0), (5, 1), (6, 0)]
    assert (peak(series), time_at_least(series, 2)) == (2, cast(object, pytest.approx(2)))


def test_slots_in_use_are_the_moments_each_slot_was_taken_and_given_back() -> None:
    # Less than a millisecond apart, as short answers are: every change counts, none is rounding.
    spans = [span(held(0.0001, 0.0009)), span(held(0.0002, 0.0012)), span(held(0.0004, 0.0011))]
    series = slots_in_use(spans)
    start = NOW.timestamp()
    assert [(round((t - start) * 1e6), v) for t, v in series] == [
        (100, 1), (200, 2), (400, 3), (900, 2), (1100, 1), (1200, 0)
    ]  # fmt: skip
    assert (peak(series), time_at_least(series, 3)) == (3, cast(object, pytest.approx(0.0005, abs=1e-6)))


def test_a_slot_given_back_and_taken_again_in_the_same_microsecond_is_never_two() -> None:
    spans = [span(held(0.0, 0.0015)), span(held(0.0015, 0.003))]
    assert peak(slots_in_use(spans)) == 1


def test_a_slot_handed_to_a_url_that_waited_for_it_stays_in_use_through_the_hand_over() -> None:
    # --max 1: the second URL waited from NOW for the slot, which changed hands in half a millisecond.
    spans = [span(held(0.0, 0.002)), span(held(0.0025, 0.004, waited_on="slots"))]
    series = slots_in_use(spans)
    assert (peak(series), time_at_least(series, 1)) == (1, cast(object, pytest.approx(0.004, abs=1e-6)))


def test_a_slot_taken_by_a_url_that_did_not_wait_for_slots_was_free_until_then() -> None:
    spans = [span(held(0.0, 0.002)), span(held(0.0025, 0.004, waited_on="host"))]
    assert time_at_least(slots_in_use(spans), 1) == pytest.approx(0.0035, abs=1e-6)


def test_a_slot_is_handed_over_to_one_waiting_url_only() -> None:
    # --max 2: two holds end, three URLs waited; the third take comes after both hand-overs.
    spans = [span(held(0.0, 0.002)), span(held(0.0, 0.003)),
             span(held(0.0021, 0.005, waited_on="slots")), span(held(0.0031, 0.005, waited_on="slots")),
             span(held(0.006, 0.007, waited_on="slots"))]  # fmt: skip
    series = slots_in_use(spans)
    assert peak(series) == 2
    assert time_at_least(series, 2) == pytest.approx(0.005, abs=1e-6)


def test_a_url_tried_once_waits_until_it_took_its_slot_and_starts_there() -> None:
    # started_at is cut to the millisecond (.123 of .123456): ready + wait_s would end the wait too early.
    s = span(held(0.012345, 0.5, wait_s=0.012345))
    assert s.slot is not None
    assert s.waited == s.attempt == s.slot[0] == pytest.approx(NOW.timestamp() + 0.012345, abs=1e-6)


def test_urls_wait_from_ready_until_they_start() -> None:
    series = waiting([span(record(2, 1)), span(record(4, 1))])
    assert [(round(t - T0, 3), v) for t, v in series] == [(0, 2), (2, 1), (4, 0)]


def test_a_count_shorter_than_the_records_resolution_is_dropped() -> None:
    # One URL finishes a millisecond after the next one starts: the records' rounding, not a third slot.
    series = [(0.0, 1), (1.0, 2), (1.001, 1), (5.0, 0)]
    assert smoothed(series) == [(0.0, 1), (5.0, 0)]


def test_bucket_peaks_keep_a_short_burst() -> None:
    series = [(0.0, 1), (4.5, 3), (4.6, 1), (10.0, 0)]
    assert bucket_peaks(series, 0.0, 10.0, 5) == [1, 1, 3, 1, 1]
