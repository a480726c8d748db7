"""fetcher._schedule: lanes per host, none blocking another, against a fake clock (no test sleeps)."""

from __future__ import annotations

import threading
import time

import pytest

from fetcher._schedule import Schedule, Taken
from fetcher.limits.hosts import Closed
from fetcher.limits.kinds import HOST_CAP, HOST_RATE, PAUSED
from tests.limits.test_rate import FakeClock

START = 1000.0


class Limits:
    """A stand-in for HostLimits.try_start: a lane is open unless a test closes it."""

    def __init__(self) -> None:
        self.closed: dict[str, Closed] = {}
        self.asked: list[str] = []

    def try_start(self, lane: str) -> str | Closed:
        self.asked.append(lane)
        return self.closed.get(lane, f"permit:{lane}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def schedule(clock: FakeClock) -> Schedule[str, str]:
    return Schedule(clock)


@pytest.fixture
def limits() -> Limits:
    return Limits()


def fill(schedule: Schedule[str, str], *jobs: str, expires: float | None = None) -> None:
    """Put each job ("a1") into the lane named by its first letter, in order."""
    for seq, job in enumerate(jobs):
        schedule.put(job, job[0], seq=seq, expires=expires)


def take_all(schedule: Schedule[str, str], limits: Limits) -> list[str]:
    taken: list[str] = []
    for _ in range(100):
        got = schedule.take(limits.try_start)
        if got is None:
            return taken
        taken.append(got.job)
    raise AssertionError("take never ran dry")


# -- order ------------------------------------------------------------------------------


def test_a_lane_gives_its_jobs_in_input_order(schedule: Schedule[str, str], limits: Limits) -> None:
    fill(schedule, "a1", "a2", "a3")
    assert take_all(schedule, limits) == ["a1", "a2", "a3"]


def test_lanes_take_turns_by_input_order(schedule: Schedule[str, str], limits: Limits) -> None:
    fill(schedule, "a1", "b1", "a2", "b2")
    assert take_all(schedule, limits) == ["a1", "b1", "a2", "b2"]


def test_a_take_returns_the_permit_try_start_gave(schedule: Schedule[str, str], limits: Limits) -> None:
    fill(schedule, "a1")
    assert schedule.take(limits.try_start) == Taken("a1", "permit:a", None)


def test_an_empty_schedule_gives_nothing_and_asks_nobody(schedule: Schedule[str, str], limits: Limits) -> None:
    assert schedule.take(limits.try_start) is None
    assert limits.asked == []


# -- closed lanes -----------------------------------------------------------------------------


def test_a_closed_lane_does_not_hold_up_another_lane(schedule: Schedule[str, str], limits: Limits) -> None:
    fill(schedule, "a1", "a2", "a3", "b1", "b2")
    limits.closed["a"] = Closed(HOST_CAP, None)
    assert take_all(schedule, limits) == ["b1", "b2"]


def test_a_closed_lane_is_not_asked_again_until_it_opens(schedule: Schedule[str, str], limits: Limits) -> None:
    fill(schedule, "a1", "a2")
    limits.closed["a"] = Closed(HOST_CAP, None)
    assert schedule.take(limits.try_start) is None
    del limits.closed["a"]
    assert schedule.take(limits.try_start) is None  # its limit may have opened, but nothing said so
    assert limits.asked == ["a"]


def test_a_lane_closed_until_release_opens_on_reopen(schedule: Schedule[str, str], limits: Limits) -> None:
    fill(schedule, "a1", "a2")
    limits.closed["a"] = Closed(HOST_CAP, None)
    assert schedule.take(limits.try_start) is None
    assert schedule.next_change() is None  # no time to wait for: only a release opens it
    del limits.closed["a"]
    schedule.reopen("a")
    assert take_all(schedule, limits) == ["a1", "a2"]


def test_reopening_an_open_or_unknown_lane_changes_nothing(schedule: Schedule[str, str], limits: Limits) -> None:
    fill(schedule, "a1")
    schedule.reopen("a")
    schedule.reopen("z")
    assert take_all(schedule, limits) == ["a1"]


def test_a_lane_closed_until_a_time_opens_at_that_time(
    schedule: Schedule[str, str], limits: Limits, clock: FakeClock
) -> None:
    fill(schedule, "a1")
    limits.closed["a"] = Closed(HOST_RATE, START + 0.5)
    assert schedule.take(limits.try_start) is None
    assert schedule.next_change() == START + 0.5
    del limits.closed["a"]
    clock.now = START + 0.49
    assert schedule.take(limits.try_start) is None
    clock.now = START + 0.5
    assert [t.job for t in [schedule.take(limits.try_start)] if t] == ["a1"]


# -- retries ------------------------------------------------------------------------------


def test_a_retry_waits_until_it_is_due(schedule: Schedule[str, str], limits: Limits, clock: FakeClock) -> None:
    schedule.put_later("a0", "a", due=START + 2)
    assert schedule.retrying == 1
    assert schedule.take(limits.try_start) is None
    assert schedule.next_change() == START + 2
    clock.now = START + 2
    assert take_all(schedule, limits) == ["a0"]
    assert schedule.retrying == 0


def test_a_due_retry_goes_before_new_jobs_of_its_lane(
    schedule: Schedule[str, str], limits: Limits, clock: FakeClock
) -> None:
    fill(schedule, "a1", "a2")
    schedule.put_later("a0", "a", due=START + 1)
    assert [t.job for t in [schedule.take(limits.try_start)] if t] == ["a1"]  # not due yet
    clock.now = START + 1
    assert take_all(schedule, limits) == ["a0", "a2"]


def test_a_due_retry_goes_before_new_jobs_of_other_lanes(
    schedule: Schedule[str, str], limits: Limits, clock: FakeClock
) -> None:
    fill(schedule, "a1")
    schedule.put_later("b0", "b", due=START)
    assert take_all(schedule, limits) == ["b0", "a1"]


def test_due_retries_go_in_due_order(schedule: Schedule[str, str], limits: Limits, clock: FakeClock) -> None:
    schedule.put_later("a-late", "a", due=START + 2)
    schedule.put_later("b-early", "b", due=START + 1)
    clock.now = START + 3
    assert take_all(schedule, limits) == ["b-early", "a-late"]


# -- expiry --------------------------------------------------------------------------------


def test_expired_hands_back_unstarted_jobs_in_input_order_with_the_limit_that_held_them(
    schedule: Schedule[str, str], limits: Limits, clock: FakeClock
) -> None:
    schedule.put("a1", "a", seq=0, expires=START + 1)
    schedule.put("b1", "b", seq=1, expires=START + 1)
    schedule.put("a2", "a", seq=2, expires=START + 1)
    limits.closed["a"] = Closed(HOST_CAP, None)
    limits.closed["b"] = Closed(PAUSED, START + 60)
    assert schedule.take(limits.try_start) is None
    assert schedule.expired() == []
    assert schedule.next_change() == START + 1
    clock.now = START + 1
    assert schedule.expired() == [("a1", HOST_CAP), ("b1", PAUSED), ("a2", HOST_CAP)]
    assert schedule.expired() == []


def test_a_job_in_an_open_lane_expires_without_a_limit(schedule: Schedule[str, str], clock: FakeClock) -> None:
    schedule.put("a1", "a", seq=0, expires=START + 1)
    clock.now = START + 5
    assert schedule.expired() == [("a1", None)]


def test_only_jobs_whose_time_ran_out_expire(schedule: Schedule[str, str], limits: Limits, clock: FakeClock) -> None:
    schedule.put("a1", "a", seq=0, expires=START + 1)
    schedule.put("a2", "a", seq=1, expires=START + 2)
    limits.closed["a"] = Closed(HOST_CAP, None)
    schedule.take(limits.try_start)
    clock.now = START + 1.5
    assert schedule.expired() == [("a1", HOST_CAP)]
    assert schedule.next_change() == START + 2


def test_a_taken_job_never_expires(schedule: Schedule[str, str], limits: Limits, clock: FakeClock) -> None:
    schedule.put("a1", "a", seq=0, expires=START + 1)
    schedule.put("b1", "b", seq=1, expires=START + 1)
    assert [t.job for t in [schedule.take(limits.try_start)] if t] == ["a1"]
    clock.now = START + 1
    assert schedule.expired() == [("b1", None)]


def test_a_job_without_an_expiry_waits_forever(schedule: Schedule[str, str], clock: FakeClock) -> None:
    schedule.put("a1", "a", seq=0, expires=None)
    clock.now = START + 1e9
    assert schedule.expired() == []
    assert schedule.next_change() is None


# -- draining and peeking ---------------------------------------------------------------------


def test_drain_new_takes_every_new_job_and_leaves_the_retries(
    schedule: Schedule[str, str], limits: Limits, clock: FakeClock
) -> None:
    fill(schedule, "a1", "b1", "a2")
    schedule.put_later("a0", "a", due=START + 1)
    assert schedule.drain_new() == ["a1", "b1", "a2"]
    assert schedule.peek_new(10) == []
    assert schedule.take(limits.try_start) is None
    clock.now = START + 1
    assert take_all(schedule, limits) == ["a0"]


def test_drain_retries_takes_every_retry_due_or_not(schedule: Schedule[str, str], clock: FakeClock) -> None:
    fill(schedule, "a1")
    schedule.put_later("b0", "b", due=START)
    schedule.put_later("c0", "c", due=START + 50)
    schedule.take(lambda lane: Closed(HOST_CAP, None))  # moves b0 into its lane, where it stays
    assert sorted(schedule.drain_retries()) == ["b0", "c0"]
    assert schedule.retrying == 0
    assert schedule.drain_new() == ["a1"]


def test_peek_new_skips_taken_jobs_and_leaves_the_rest_in_place(schedule: Schedule[str, str], limits: Limits) -> None:
    fill(schedule, "a1", "a2", "b1", "a3")
    schedule.take(limits.try_start)
    assert schedule.peek_new(2) == ["a2", "b1"]
    assert schedule.peek_new(10) == ["a2", "b1", "a3"]
    assert take_all(schedule, limits) == ["a2", "b1", "a3"]


# -- what held a job back --------------------------------------------------------------------


def test_a_job_that_never_waited_was_held_by_nothing(schedule: Schedule[str, str], limits: Limits) -> None:
    fill(schedule, "a1")
    taken = schedule.take(limits.try_start)
    assert taken is not None and taken.held_by is None


def test_jobs_that_waited_in_a_closed_lane_were_held_by_its_limit(
    schedule: Schedule[str, str], limits: Limits, clock: FakeClock
) -> None:
    fill(schedule, "a1", "a2")
    limits.closed["a"] = Closed(HOST_CAP, None)
    schedule.take(limits.try_start)
    del limits.closed["a"]
    clock.now = START + 1
    schedule.reopen("a")
    clock.now = START + 2
    schedule.put("a3", "a", seq=2, expires=None)  # came after the lane opened again: never waited
    held = [(t.job, t.held_by) for t in iter(lambda: schedule.take(limits.try_start), None)]
    assert held == [("a1", HOST_CAP), ("a2", HOST_CAP), ("a3", None)]


def test_the_last_limit_that_closed_a_lane_is_the_one_recorded(
    schedule: Schedule[str, str], limits: Limits, clock: FakeClock
) -> None:
    fill(schedule, "a1")
    limits.closed["a"] = Closed(HOST_CAP, None)
    schedule.take(limits.try_start)
    limits.closed["a"] = Closed(PAUSED, START + 1)
    schedule.reopen("a")
    schedule.take(limits.try_start)
    del limits.closed["a"]
    clock.now = START + 1
    taken = schedule.take(limits.try_start)
    assert taken is not None and (taken.job, taken.held_by) == ("a1", PAUSED)


# -- waiting -------------------------------------------------------------------------------------


def test_wait_ends_when_a_lane_reopens(schedule: Schedule[str, str]) -> None:
    fill(schedule, "a1")
    schedule.take(lambda lane: Closed(HOST_CAP, None))
    timer = threading.Timer(0.05, schedule.reopen, args=("a",))
    began = time.monotonic()
    timer.start()
    try:
        schedule.wait(5.0)
    finally:
        timer.join(5.0)
    assert time.monotonic() - began < 2.0


def test_a_due_retry_whose_time_runs_out_in_its_lane_is_handed_back(
    schedule: Schedule[str, str], limits: Limits, clock: FakeClock
) -> None:
    limits.closed["a"] = Closed(HOST_CAP, None)
    schedule.put_later("a-retry", "a", due=START + 1, expires=START + 2)
    clock.now = START + 1
    assert schedule.take(limits.try_start) is None  # due, but its lane is closed
    assert schedule.next_change() == START + 2
    clock.now = START + 2
    assert schedule.expired() == [("a-retry", HOST_CAP)]
    del limits.closed["a"]
    schedule.reopen("a")
    assert schedule.take(limits.try_start) is None


def test_ready_says_whether_a_job_could_start_and_takes_nothing(schedule: Schedule[str, str], limits: Limits) -> None:
    fill(schedule, "a1", "b1")
    closed = {"a": Closed(HOST_CAP, None)}
    assert schedule.ready(closed.get) is True  # b could
    assert schedule.ready(lambda lane: Closed(PAUSED, START + 5)) is False
    assert take_all(schedule, limits) == []  # the lanes ready() found closed stay closed until they open
    schedule.reopen("a")
    schedule.reopen("b")
    assert take_all(schedule, limits) == ["a1", "b1"]


def test_jobs_put_together_come_out_as_if_put_one_by_one(schedule: Schedule[str, str], limits: Limits) -> None:
    schedule.put_many([(job, job[0], seq, None) for seq, job in enumerate(("a1", "b1", "a2", "b2"))])
    assert take_all(schedule, limits) == ["a1", "b1", "a2", "b2"]
