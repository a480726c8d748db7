"""fetcher.limits.rate: TokenBucket (GCRA on floats), against a fake clock."""

from __future__ import annotations

import heapq
import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fetcher.limits.rate import TokenBucket

JOIN_TIMEOUT = 10.0
EPSILON = 1e-6


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate": 0},
        {"rate": -1},
        {"rate": math.inf},
        {"rate": math.nan},
        {"rate": True},
        {"rate": 1, "burst": 0},
        {"rate": 1, "burst": -2},
        {"rate": 1, "burst": math.inf},
    ],
)
def test_a_rate_or_burst_that_is_not_finite_and_positive_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TokenBucket(kwargs["rate"], burst=kwargs.get("burst", 1.0))


@pytest.mark.parametrize("units", [-1, math.nan, math.inf])
def test_impossible_units_are_refused(units: float) -> None:
    bucket = TokenBucket(10)
    for take in (bucket.delay, bucket.try_take, bucket.reserve):
        with pytest.raises(ValueError):
            take(units)


@pytest.mark.parametrize("window", [0, -1, 11])
def test_recent_rate_refuses_a_window_outside_0_to_10_seconds(window: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(10).recent_rate(window)


def test_rate_and_burst_read_back_as_floats() -> None:
    bucket = TokenBucket(5, burst=3)
    assert (bucket.rate, bucket.burst) == (5.0, 3.0)


def test_burst_one_spaces_takes_one_over_rate_apart(clock: FakeClock) -> None:
    bucket = TokenBucket(10, clock=clock)
    assert bucket.try_take()
    assert not bucket.try_take()
    assert bucket.delay() == pytest.approx(0.1)
    clock.advance(0.1)
    assert bucket.try_take()


def test_the_burst_goes_at_once_then_the_rate_holds(clock: FakeClock) -> None:
    bucket = TokenBucket(2, burst=5, clock=clock)
    assert [bucket.try_take() for _ in range(6)] == [True] * 5 + [False]
    assert bucket.delay() == pytest.approx(0.5)
    clock.advance(0.5)
    assert bucket.try_take() and not bucket.try_take()


def test_a_fractional_rate_allows_one_take_every_two_seconds(clock: FakeClock) -> None:
    bucket = TokenBucket(0.5, clock=clock)
    assert bucket.try_take()
    clock.advance(1.999)
    assert not bucket.try_take()
    clock.advance(0.001)
    assert bucket.try_take()


def test_an_idle_bucket_fills_up_to_its_burst_and_no_further(clock: FakeClock) -> None:
    bucket = TokenBucket(1, burst=3, clock=clock)
    clock.advance(3600)
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]


def test_delay_takes_nothing(clock: FakeClock) -> None:
    bucket = TokenBucket(1, burst=2, clock=clock)
    for _ in range(5):
        assert bucket.delay() == 0.0
    assert bucket.try_take() and bucket.try_take()


def test_a_refused_try_take_takes_nothing(clock: FakeClock) -> None:
    bucket = TokenBucket(1, clock=clock)
    bucket.try_take()
    for _ in range(5):
        assert not bucket.try_take()
    assert bucket.delay() == pytest.approx(1.0)


def test_reserve_queues_later_callers_behind_earlier_ones(clock: FakeClock) -> None:
    bucket = TokenBucket(4, clock=clock)
    waits = [bucket.reserve() for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.25, 0.5, 0.75])


def test_a_reserve_in_debt_makes_try_take_wait_for_the_queue(clock: FakeClock) -> None:
    bucket = TokenBucket(1, clock=clock)
    bucket.reserve()
    assert bucket.reserve() == pytest.approx(1.0)
    clock.advance(1.0)
    assert not bucket.try_take()  # the second reserve holds this moment
    assert bucket.delay() == pytest.approx(1.0)


def test_a_take_larger_than_the_burst_waits_for_a_full_bucket_then_goes_whole(clock: FakeClock) -> None:
    bucket = TokenBucket(100, burst=10, clock=clock)
    bucket.try_take(5)
    assert not bucket.try_take(50)
    assert bucket.delay(50) == pytest.approx(0.05)  # until full again
    clock.advance(0.05)
    assert bucket.try_take(50)


def test_the_takes_after_an_oversized_one_pay_for_it(clock: FakeClock) -> None:
    bucket = TokenBucket(100, burst=10, clock=clock)
    assert bucket.reserve(50) == 0.0
    assert bucket.reserve(10) == pytest.approx(0.5)  # 50 units at 100/s


def test_recent_rate_is_what_was_taken_per_second() -> None:
    clock = FakeClock(1000.5)  # mid-second: the whole seconds counted are not the window
    bucket = TokenBucket(1000, burst=100, clock=clock)
    for _ in range(30):  # 100 units every 0.1 s: 1000/s for 3 s
        assert bucket.try_take(100)
        clock.advance(0.1)
    assert bucket.recent_rate(2.0) == pytest.approx(1000, rel=0.05)


def test_recent_rate_counts_a_reserve_from_when_it_may_be_used(clock: FakeClock) -> None:
    bucket = TokenBucket(1, burst=1, clock=clock)
    bucket.reserve(1)
    bucket.reserve(1)  # may be used in 1 s
    clock.advance(0.9)
    assert bucket.recent_rate(2.0) == pytest.approx(1 / 0.9)  # the second unit is not due yet
    clock.advance(1.0)
    assert bucket.recent_rate(2.0) == pytest.approx(2 / 1.9)


def test_recent_rate_forgets_what_is_older_than_the_window(clock: FakeClock) -> None:
    bucket = TokenBucket(1000, burst=1000, clock=clock)
    bucket.try_take(1000)
    clock.advance(5)
    assert bucket.recent_rate(2.0) == 0.0
    assert bucket.recent_rate(10.0) > 0.0


def test_recent_rate_of_a_new_bucket_is_zero(clock: FakeClock) -> None:
    assert TokenBucket(10, clock=clock).recent_rate() == 0.0


def test_eight_streams_of_16_kib_get_the_byte_rate_within_1_percent_and_fair_shares(clock: FakeClock) -> None:
    rate, piece, streams, seconds = 500_000, 16384, 8, 10.0
    bucket = TokenBucket(rate, burst=max(64 << 10, rate * 0.1), clock=clock)
    start = clock.now
    # Each stream reserves a piece, sleeps the wait, sends it (taking no time), and asks again.
    due = [(start, stream) for stream in range(streams)]
    sent_after_burst = [0] * streams
    while due[0][0] < start + seconds:
        clock.now, stream = heapq.heappop(due)
        used_at = clock.now + bucket.reserve(piece)
        if start + 1.0 <= used_at < start + seconds:  # the first second carries the burst
            sent_after_burst[stream] += piece
        heapq.heappush(due, (used_at, stream))
    achieved = sum(sent_after_burst) / (seconds - 1.0)
    assert achieved == pytest.approx(rate, rel=0.01)
    share = sum(sent_after_burst) / streams
    assert all(sent == pytest.approx(share, rel=0.05) for sent in sent_after_burst)


# Each take: (seconds since the previous call, units, reserve rather than try_take).
TAKES = st.lists(
    st.tuples(st.floats(0, 2, allow_nan=False), st.floats(0.1, 30, allow_nan=False), st.booleans()),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(
    takes=TAKES,
    rate=st.floats(0.5, 1000, allow_nan=False),
    burst=st.floats(1, 20, allow_nan=False),
)
def test_no_window_of_t_seconds_sees_more_than_burst_plus_rate_times_t(
    takes: list[tuple[float, float, bool]], rate: float, burst: float
) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate, burst=burst, clock=clock)
    used: list[tuple[float, float]] = []  # (when the caller may use them, units)
    for gap, units, reserve in takes:
        clock.advance(gap)
        if reserve:
            used.append((clock.now + bucket.reserve(units), units))
        elif bucket.try_take(units):
            used.append((clock.now, units))
    assert used == sorted(used, key=lambda take: take[0])  # first come, first served
    for first in range(len(used)):
        total = 0.0
        for last in range(first, len(used)):
            total += used[last][1]
            span = used[last][0] - used[first][0]
            # Only a take larger than the burst, ending the window, may exceed it.
            allowance = max(burst, used[last][1]) + rate * span
            assert total <= allowance * (1 + EPSILON) + EPSILON


def test_threads_sharing_a_bucket_lose_no_take() -> None:
    threads, takes, rate = 8, 500, 1000.0
    bucket = TokenBucket(rate, clock=lambda: 0.0)  # time stands still: every take queues
    waits: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [bucket.reserve() for _ in range(takes)]
        with lock:
            waits.extend(mine)

    workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(JOIN_TIMEOUT)
    assert not any(worker.is_alive() for worker in workers)
    # Every reserve got its own place in the queue, 1 / rate apart.
    assert sorted(waits) == pytest.approx([index / rate for index in range(threads * takes)])
