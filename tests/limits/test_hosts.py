"""fetcher.limits.hosts: caps, request rates and pauses per host, against a fake clock (no test sleeps)."""

from __future__ import annotations

import pytest

from fetcher.limits.hosts import Closed, HostLimits, HostPermit
from fetcher.limits.kinds import HOST_CAP, HOST_RATE, PAUSED
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
