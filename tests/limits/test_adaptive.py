"""fetcher.limits.adaptive: the control law of --adaptive, as a pure value with its times passed in."""

from __future__ import annotations

import dataclasses

import pytest

from fetcher.limits.adaptive import BACKOFF, MIN_EXCESS_S, PROBE, START, AdaptiveLimit

FAST = 0.1  # seconds to the headers, unloaded


def answered(
    law: AdaptiveLimit, times: int, latency: float = FAST, *, at: float = 10.0, full: bool = True
) -> AdaptiveLimit:
    for _ in range(times):
        law = law.answered(latency, started_at=at, now=at, full=full)
    return law


def settled(limit: float, cap: int = 16) -> AdaptiveLimit:
    """A law past its slow start at *limit*, that knows the host's no-load time."""
    return dataclasses.replace(AdaptiveLimit.starting(cap), limit=limit, no_load_s=FAST, slow_start=False)


def test_a_host_starts_at_two_or_at_its_cap_if_lower() -> None:
    assert AdaptiveLimit.starting(16).allowed == START == 2
    assert AdaptiveLimit.starting(1).allowed == 1


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        AdaptiveLimit.starting(0)


def test_slow_start_adds_one_for_each_answer_while_the_limit_is_used() -> None:
    assert answered(AdaptiveLimit.starting(16), 3).allowed == 5


def test_an_unused_limit_does_not_grow() -> None:
    assert answered(AdaptiveLimit.starting(16), 10, full=False).allowed == 2


def test_the_limit_never_passes_the_cap() -> None:
    assert answered(AdaptiveLimit.starting(4), 50).allowed == 4


def test_after_slow_start_the_limit_grows_by_one_a_round_trip() -> None:
    law = answered(settled(4.0), 4)  # four answers: one round trip at 4
    assert law.allowed == 4 and law.limit == pytest.approx(4.0 + 1 / 4 + 1 / 4.25 + 1 / 4.49 + 1 / 4.71, abs=0.01)
    assert answered(settled(4.0), 5).allowed == 5


def test_answers_much_slower_than_unloaded_cut_the_limit_in_proportion() -> None:
    law = answered(settled(8.0), 1, latency=FAST * 2.0)  # threshold 1.5 x 0.1 = 0.15 s, answer 0.2 s
    assert law.limit == pytest.approx(8.0 * 0.15 / 0.2)
    assert not law.slow_start


def test_a_latency_cut_is_at_most_half() -> None:
    assert answered(settled(8.0), 1, latency=FAST * 20).limit == 4.0


def test_a_few_milliseconds_of_jitter_on_a_fast_server_is_no_queue() -> None:
    fast = dataclasses.replace(settled(8.0), no_load_s=0.001)
    law = answered(fast, 5, latency=0.001 + MIN_EXCESS_S * 0.9)
    assert law.limit > 8.0 and law.cut_at == float("-inf")


def test_one_slow_answer_among_fast_ones_is_smoothed_over() -> None:
    law = answered(answered(settled(8.0), 5), 1, latency=FAST * 1.6)
    assert law.allowed >= 8


def test_an_overload_cuts_the_limit_by_a_quarter_and_ends_slow_start() -> None:
    law = answered(AdaptiveLimit.starting(16), 6).overloaded(started_at=10.0, now=11.0)
    assert law.limit == pytest.approx(8.0 * BACKOFF)
    assert law.allowed == 6 and not law.slow_start and law.cut_at == 11.0


def test_the_limit_never_goes_below_one() -> None:
    law = AdaptiveLimit.starting(16)
    for step in range(10):
        law = law.overloaded(started_at=float(step), now=float(step))
    assert law.allowed == 1 and law.lowest == 1


def test_answers_to_requests_sent_before_a_cut_do_not_cut_again() -> None:
    law = settled(8.0).overloaded(started_at=10.0, now=11.0)
    assert law.overloaded(started_at=10.5, now=11.1) == law
    assert law.answered(FAST * 20, started_at=10.5, now=11.1, full=True).limit == law.limit


def test_an_overload_of_a_request_sent_after_the_cut_cuts_again() -> None:
    law = settled(8.0).overloaded(started_at=10.0, now=11.0).overloaded(started_at=11.5, now=12.0)
    assert law.allowed < 6


def test_growth_is_slower_near_the_limit_of_the_last_overload() -> None:
    broke = settled(8.0).overloaded(started_at=10.0, now=11.0)  # 8 overloaded: now 6
    near = dataclasses.replace(broke, limit=7.5)
    far = dataclasses.replace(broke, limit=5.0)
    assert answered(near, 1, at=12.0).limit == pytest.approx(7.5 + 1 / (PROBE * 7.5))
    assert answered(far, 1, at=12.0).limit == pytest.approx(5.0 + 1 / 5.0)


def test_an_overload_again_at_the_same_level_steps_back_one() -> None:
    broke = settled(8.0).overloaded(started_at=10.0, now=11.0)
    again = dataclasses.replace(broke, limit=8.2).overloaded(started_at=12.0, now=13.0)
    assert again.allowed == 7


def test_the_no_load_time_is_the_fastest_answer() -> None:
    law = answered(AdaptiveLimit.starting(16), 1, latency=0.3)
    assert answered(law, 1, latency=0.2).no_load_s == 0.2


def test_answers_at_a_limit_of_one_pull_the_no_load_time_up_slowly() -> None:
    one = dataclasses.replace(settled(1.0), no_load_s=0.1)
    law = answered(one, 1, latency=0.6, full=False)
    assert 0.1 < law.no_load_s < 0.6  # type: ignore[operator]


def test_lowest_remembers_the_lowest_limit() -> None:
    law = settled(8.0, cap=16)
    for step in range(4):
        law = law.overloaded(started_at=float(step), now=float(step))
    low = law.allowed
    law = answered(law, 200, at=100.0)
    assert law.lowest == low and law.allowed > low
