"""fetcher.limits.hosts: caps, request rates and pauses per host, against a fake clock (no test sleeps)."""

from __future__ import annotations

import pytest

from fetcher.limits.hosts import Closed, HostLimits, HostPermit
from fetcher.limits.kinds import ADAPTIVE, HOST_CAP, HOST_RATE, PAUSED
from tests.limits.test_rate import FakeClock

START = 1000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def permit(answer: HostPermit | Closed) -> HostPermit:
    assert isinstance(answer, HostPermit), answer
    return answer


# -- the cap ------------------------------------------------------------------------------


def test_the_cap_holds_a_host_at_its_downloads_in_flight(clock: FakeClock) -> None:
    hosts = HostLimits(max_per_host=2, clock=clock)
    permit(hosts.try_start("a:80"))
    permit(hosts.try_start("a:80"))
    assert hosts.try_start("a:80") == Closed(HOST_CAP, None)
    assert hosts.in_flight("a:80") == 2


def test_a_release_frees_a_place_under_the_cap(clock: FakeClock) -> None:
    hosts = HostLimits(max_per_host=1, clock=clock)
    first = permit(hosts.try_start("a:80"))
    first.release()
    permit(hosts.try_start("a:80"))


def test_releasing_twice_frees_one_place_only(clock: FakeClock) -> None:
    hosts = HostLimits(max_per_host=2, clock=clock)
    first = permit(hosts.try_start("a:80"))
    permit(hosts.try_start("a:80"))
    first.release()
    first.release()
    assert hosts.in_flight("a:80") == 1
    permit(hosts.try_start("a:80"))
    assert hosts.try_start("a:80") == Closed(HOST_CAP, None)


def test_a_permit_is_released_when_its_with_block_ends(clock: FakeClock) -> None:
    hosts = HostLimits(max_per_host=1, clock=clock)
    with permit(hosts.try_start("a:80")):
        assert hosts.in_flight("a:80") == 1
    assert hosts.in_flight("a:80") == 0


def test_hosts_have_caps_of_their_own(clock: FakeClock) -> None:
    hosts = HostLimits(max_per_host=1, clock=clock)
    permit(hosts.try_start("a:80"))
    permit(hosts.try_start("b:80"))
    assert hosts.try_start("a:80") == Closed(HOST_CAP, None)


def test_without_limits_every_start_is_allowed(clock: FakeClock) -> None:
    hosts = HostLimits(clock=clock)
    for _ in range(100):
        permit(hosts.try_start("a:80"))


@pytest.mark.parametrize("value", [0, -1])
def test_a_cap_below_one_is_refused(value: int) -> None:
    with pytest.raises(ValueError, match="max_per_host"):
        HostLimits(max_per_host=value)


def test_listeners_hear_of_each_release(clock: FakeClock) -> None:
    hosts = HostLimits(max_per_host=2, clock=clock)
    heard: list[str] = []
    hosts.add_listener(heard.append)
    a, b = permit(hosts.try_start("a:80")), permit(hosts.try_start("b:80"))
    a.release()
    b.release()
    a.release()
    assert heard == ["a:80", "b:80"]


def test_a_removed_listener_hears_nothing_more(clock: FakeClock) -> None:
    hosts = HostLimits(max_per_host=2, clock=clock)
    heard: list[str] = []

    def listener(host: str) -> None:
        heard.append(host)

    hosts.add_listener(listener)
    hosts.remove_listener(listener)
    permit(hosts.try_start("a:80")).release()
    assert heard == []


def test_a_bound_method_given_again_removes_the_listener(clock: FakeClock) -> None:
    hosts = HostLimits(max_per_host=2, clock=clock)
    heard: list[str] = []
    hosts.add_listener(heard.append)
    hosts.remove_listener(heard.append)
    permit(hosts.try_start("a:80")).release()
    assert heard == []


# -- the rate per host -------------------------------------------------------------------------


def test_the_rate_spaces_a_hosts_starts_and_says_until_when(clock: FakeClock) -> None:
    hosts = HostLimits(rate_per_host=4, clock=clock)
    permit(hosts.try_start("a:80"))
    assert hosts.try_start("a:80") == Closed(HOST_RATE, START + 0.25)
    clock.now = START + 0.25
    permit(hosts.try_start("a:80"))


def test_hosts_have_rates_of_their_own(clock: FakeClock) -> None:
    hosts = HostLimits(rate_per_host=1, clock=clock)
    permit(hosts.try_start("a:80"))
    permit(hosts.try_start("b:80"))
    assert isinstance(hosts.try_start("a:80"), Closed)


def test_a_host_at_its_cap_spends_none_of_its_rate(clock: FakeClock) -> None:
    hosts = HostLimits(max_per_host=1, rate_per_host=1, clock=clock)
    first = permit(hosts.try_start("a:80"))
    clock.now = START + 1
    assert hosts.try_start("a:80") == Closed(HOST_CAP, None)
    first.release()
    permit(hosts.try_start("a:80"))


# -- pauses ----------------------------------------------------------------------------------


def test_a_pause_closes_its_host_until_it_ends(clock: FakeClock) -> None:
    hosts = HostLimits(clock=clock)
    hosts.pause("a:80", 2.0)
    assert hosts.try_start("a:80") == Closed(PAUSED, START + 2)
    permit(hosts.try_start("b:80"))
    clock.now = START + 2
    permit(hosts.try_start("a:80"))


@pytest.mark.parametrize("pauses", [(10.0, 1.0), (1.0, 10.0)], ids=["shorter-after", "longer-after"])
def test_the_longer_of_two_pauses_stands(clock: FakeClock, pauses: tuple[float, float]) -> None:
    hosts = HostLimits(clock=clock)
    for seconds in pauses:
        hosts.pause("a:80", seconds)
    assert hosts.try_start("a:80") == Closed(PAUSED, START + 10)


def test_a_pause_of_no_time_changes_nothing(clock: FakeClock) -> None:
    hosts = HostLimits(clock=clock)
    hosts.pause("a:80", 0.0)
    assert not hosts.any_paused
    permit(hosts.try_start("a:80"))


def test_a_pause_closes_a_host_even_below_its_cap(clock: FakeClock) -> None:
    hosts = HostLimits(max_per_host=5, clock=clock)
    hosts.pause("a:80", 1.0)
    assert hosts.try_start("a:80") == Closed(PAUSED, START + 1)


def test_paused_lists_the_hosts_paused_now_with_the_seconds_left(clock: FakeClock) -> None:
    hosts = HostLimits(clock=clock)
    hosts.pause("a:80", 2.0)
    hosts.pause("b:80", 5.0)
    clock.now = START + 3
    assert hosts.paused() == {"b:80": 2.0}
    assert hosts.any_paused


# -- requests within a download (redirect hops) ----------------------------------------------------


def test_a_request_within_a_download_waits_out_a_pause(clock: FakeClock) -> None:
    hosts = HostLimits(clock=clock)
    hosts.pause("a:80", 2.0)
    clock.now = START + 0.5
    assert hosts.reserve_request("a:80") == 1.5
    assert hosts.reserve_request("b:80") == 0.0


def test_requests_within_downloads_wait_their_turn_under_the_rate(clock: FakeClock) -> None:
    hosts = HostLimits(rate_per_host=4, clock=clock)
    assert [hosts.reserve_request("a:80") for _ in range(3)] == [0.0, 0.25, 0.5]
    assert hosts.try_start("a:80") == Closed(HOST_RATE, START + 0.75)


def test_requests_reserved_during_a_pause_are_spaced_by_the_rate_after_it(clock: FakeClock) -> None:
    hosts = HostLimits(rate_per_host=1, clock=clock)
    hosts.pause("a:80", 2.0)
    assert [hosts.reserve_request("a:80") for _ in range(3)] == [2.0, 3.0, 4.0]


def test_requests_within_downloads_never_count_against_the_cap(clock: FakeClock) -> None:
    hosts = HostLimits(max_per_host=1, clock=clock)
    held = permit(hosts.try_start("a:80"))
    assert [hosts.reserve_request("a:80") for _ in range(5)] == [0.0] * 5
    assert hosts.in_flight("a:80") == 1
    held.release()
    permit(hosts.try_start("a:80"))


# -- memory ----------------------------------------------------------------------------------------


def test_hosts_that_need_nothing_kept_are_forgotten(clock: FakeClock) -> None:
    # 5,000 hosts, each started, paused, finished and then left alone for a second: what is
    # kept of them must not grow with their number.  No public view shows a forgotten bucket.
    hosts = HostLimits(max_per_host=2, rate_per_host=10, clock=clock)
    for n in range(5000):
        host = f"host{n}.example:443"
        with permit(hosts.try_start(host)):
            hosts.pause(host, 0.5)
        clock.now += 1.0
    assert len(hosts._in_flight) == 0
    assert len(hosts._buckets) <= 1024
    assert len(hosts._paused) <= 1024
    assert hosts.paused() == {}


# -- the adaptive limit (--adaptive) -----------------------------------------------------------


def test_an_adaptive_host_starts_at_two_and_says_it_is_held_by_it(clock: FakeClock) -> None:
    hosts = HostLimits(adaptive=16, clock=clock)
    permit(hosts.try_start("a:80"))
    permit(hosts.try_start("a:80"))
    assert hosts.try_start("a:80") == Closed(ADAPTIVE, None)
    assert hosts.adaptive_limits() == {"a:80": (2, 16)}


def test_fast_answers_open_an_adaptive_host_up_to_its_cap_and_no_further(clock: FakeClock) -> None:
    hosts = HostLimits(max_per_host=3, adaptive=16, clock=clock)
    for _ in range(10):  # rounds: as many downloads as the host may have, each answered fast
        held = []
        while isinstance(answer := hosts.try_start("a:80"), HostPermit):  # at most the cap, 3
            held.append(answer)
        for each in held:
            each.answered(0.1)
            each.release()
    assert hosts.adaptive_limits() == {}  # none below its cap
    [permit(hosts.try_start("a:80")) for _ in range(3)]
    assert hosts.try_start("a:80") == Closed(HOST_CAP, None)


def test_an_overload_closes_an_adaptive_host_sooner(clock: FakeClock) -> None:
    hosts = HostLimits(adaptive=16, clock=clock)
    for _ in range(3):
        first, second = permit(hosts.try_start("a:80")), permit(hosts.try_start("a:80"))
        first.answered(0.1)
        second.answered(0.1)
        first.release()
        second.release()
    assert hosts.adaptive_limits()["a:80"][0] > 2
    clock.advance(1.0)
    held = permit(hosts.try_start("a:80"))
    held.overloaded()
    held.release()
    (limit, _), = hosts.adaptive_limits().values()
    assert limit < 6


def test_a_download_that_learned_nothing_leaves_the_limit_as_it_was(clock: FakeClock) -> None:
    hosts = HostLimits(adaptive=16, clock=clock)
    permit(hosts.try_start("a:80")).release()
    assert hosts.adaptive_limits() == {"a:80": (2, 16)}


def test_each_adaptive_host_has_a_limit_of_its_own(clock: FakeClock) -> None:
    hosts = HostLimits(adaptive=16, clock=clock)
    held = permit(hosts.try_start("a:80"))
    held.overloaded()
    held.release()
    assert hosts.adaptive_limits()["a:80"][0] == 1
    permit(hosts.try_start("b:80"))
    assert isinstance(hosts.try_start("b:80"), HostPermit)


def test_the_adaptive_history_lists_each_host_with_its_changes(clock: FakeClock) -> None:
    hosts = HostLimits(adaptive=4, clock=clock)
    held = permit(hosts.try_start("a:80"))
    clock.advance(2.0)
    held.overloaded()
    held.release()
    [pace] = hosts.adaptive_history()
    assert (pace.host, pace.cap, pace.final, pace.lowest) == ("a:80", 4, 1, 1)
    assert [limit for _, limit in pace.limits] == [2, 1]
    assert pace.limits[1][0] - pace.limits[0][0] == pytest.approx(2.0)


def test_without_adaptive_there_is_no_adaptive_limit(clock: FakeClock) -> None:
    hosts = HostLimits(clock=clock)
    held = [permit(hosts.try_start("a:80")) for _ in range(50)]
    held[0].overloaded()
    held[0].release()
    assert hosts.adaptive_limits() == {} and hosts.adaptive_history() == []
