"""fetcher.limits.redis_hosts: per-host caps, rates, pauses and adaptive limits for a whole cluster."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fetcher import Fetcher, Status
from fetcher.limits import ADAPTIVE, CLUSTER, HOST_CAP, HOST_RATE, PAUSED, Closed, HostPermit
from fetcher.limits.redis import RedisGate
from fetcher.limits.redis_hosts import RECHECK_S, ClusterHostLimits
from tests.cluster_runs import run_side_by_side
from tests.server import Capacity, LoopbackServer, Request, body, too_many

NewLimits = Callable[..., ClusterHostLimits]
HOST = "example.org:80"


@pytest.fixture
def new_limits(redis_server: str, cluster_name: str) -> Iterator[NewLimits]:
    """Makes the per-host limits of one fetcher of the test's cluster (its own gate and connection)."""
    made: list[tuple[RedisGate, ClusterHostLimits]] = []

    def make(*, lease_s: float = 10.0, **options: float | None) -> ClusterHostLimits:
        gate = RedisGate(redis_server, cluster_name, 8, lease_s=lease_s, limits={"options": sorted(options)})
        limits = ClusterHostLimits(gate, **options)  # type: ignore[arg-type]
        made.append((gate, limits))
        return limits

    yield make
    for gate, limits in made:
        limits.close()
        gate.close()


def permit(answer: HostPermit | Closed) -> HostPermit:
    assert isinstance(answer, HostPermit), answer
    return answer


def test_a_host_cap_counts_the_downloads_of_every_fetcher(new_limits: NewLimits) -> None:
    one, two = new_limits(max_per_host=1), new_limits(max_per_host=1)
    held = permit(one.try_start(HOST))
    closed = two.try_start(HOST)
    assert isinstance(closed, Closed) and closed.limit == HOST_CAP
    held.release()
    permit(two.try_start(HOST))


def test_a_host_closed_by_another_fetcher_is_asked_again_soon(new_limits: NewLimits) -> None:
    one, two = new_limits(max_per_host=1), new_limits(max_per_host=1)
    permit(one.try_start(HOST))
    closed = two.try_start(HOST)
    assert isinstance(closed, Closed) and closed.until is not None
    assert 0 < closed.until - time.monotonic() <= RECHECK_S  # the other's release does not reach this one


def test_other_hosts_are_not_held_by_a_hosts_cap(new_limits: NewLimits) -> None:
    one, two = new_limits(max_per_host=1), new_limits(max_per_host=1)
    permit(one.try_start(HOST))
    permit(two.try_start("other.example:80"))


def test_a_host_lease_that_is_not_renewed_comes_back_after_the_lease(new_limits: NewLimits) -> None:
    dying = new_limits(max_per_host=1, lease_s=0.3)
    permit(dying.try_start(HOST))
    dying._gate.close()  # its renewals stop, as when its process is killed
    waiter = new_limits(max_per_host=1)
    assert isinstance(waiter.try_start(HOST), Closed)
    time.sleep(0.5)
    permit(waiter.try_start(HOST))


def test_a_held_host_lease_is_renewed(new_limits: NewLimits) -> None:
    holder = new_limits(max_per_host=1, lease_s=0.3)
    permit(holder.try_start(HOST))
    time.sleep(1.0)  # three leases
    assert isinstance(new_limits(max_per_host=1).try_start(HOST), Closed)


def test_a_pause_reaches_every_fetcher_of_the_cluster(new_limits: NewLimits) -> None:
    one, two = new_limits(), new_limits()
    permit(two.try_start("warm.example:80"))  # two listens from its first start
    time.sleep(0.2)
    one.pause(HOST, 5.0)
    give_up = time.monotonic() + 3.0
    while HOST not in two.paused() and time.monotonic() < give_up:
        time.sleep(0.02)
    assert 4.0 < two.paused()[HOST] <= 5.0
    closed = two.try_start(HOST)
    assert isinstance(closed, Closed) and closed.limit == PAUSED


def test_a_pause_set_before_a_fetcher_joined_holds_it_too(new_limits: NewLimits) -> None:
    new_limits().pause(HOST, 5.0)
    late = new_limits()
    late.try_start("warm.example:80")
    give_up = time.monotonic() + 3.0
    while HOST not in late.paused() and time.monotonic() < give_up:
        time.sleep(0.02)
    assert HOST in late.paused()


def test_a_start_that_asks_the_cluster_sees_a_pause_at_once(new_limits: NewLimits) -> None:
    new_limits(max_per_host=2).pause(HOST, 5.0)
    closed = new_limits(max_per_host=2)._start_in_cluster(HOST)
    assert isinstance(closed, Closed) and closed.limit == PAUSED


def test_a_host_rate_is_shared(new_limits: NewLimits) -> None:
    one, two = new_limits(rate_per_host=5.0), new_limits(rate_per_host=5.0)
    permit(one.try_start(HOST))
    closed = two.try_start(HOST)
    assert isinstance(closed, Closed) and closed.limit == HOST_RATE
    assert closed.until is not None and 0.1 < closed.until - time.monotonic() <= 0.21


def test_a_redirect_hop_waits_for_the_clusters_host_rate(new_limits: NewLimits) -> None:
    one, two = new_limits(rate_per_host=5.0), new_limits(rate_per_host=5.0)
    permit(one.try_start(HOST))
    assert 0.1 < two.reserve_request(HOST) <= 0.21


def test_an_adaptive_limit_set_by_one_fetcher_holds_the_others(new_limits: NewLimits) -> None:
    one, two = new_limits(adaptive=8), new_limits(adaptive=8)
    first = permit(one.try_start(HOST))
    first.overloaded()  # cuts one's limit from 2 to 1, which one tells the cluster
    first.release()
    permit(one.try_start(HOST))
    closed = two.try_start(HOST)
    assert isinstance(closed, Closed) and closed.limit == ADAPTIVE


def test_while_redis_is_unreachable_no_start_that_needs_it_goes(new_limits: NewLimits) -> None:
    limits = new_limits(max_per_host=1)
    limits._link.client.connection_pool.connection_kwargs["port"] = 1
    limits._link.client.connection_pool.disconnect()
    closed = limits.try_start(HOST)
    assert isinstance(closed, Closed) and closed.limit == CLUSTER


# -- whole fetchers sharing a cluster --------------------------------------------------------


def test_two_processes_sharing_max_per_host_2_never_pass_2_at_the_host(
    server: LoopbackServer, tmp_path: Path, redis_server: str, cluster_name: str
) -> None:
    slow = Capacity(b"x" * 100, service_s=0.05, capacity=lambda t: None)
    cluster = ("--max", "4", "--max-per-host", "2", "--redis", redis_server, "--cluster", cluster_name)
    run_side_by_side(server, tmp_path, slow, *cluster, processes=2, urls=10)
    assert slow.requests == 20
    assert slow.max_in_flight() == 2


def test_a_servers_pause_holds_every_fetcher_of_the_cluster(
    server: LoopbackServer, tmp_path: Path, redis_server: str, cluster_name: str
) -> None:
    paused_at: list[float] = []

    def pause_once(request: Request) -> None:
        if not paused_at:
            paused_at.append(time.monotonic())
            too_many("2")(request)
        else:
            body(b"x")(request)

    first = server.route("/first", pause_once)
    others = [server.route(f"/other/{n}", body(b"y")) for n in range(3)]
    options = {"max_concurrent": 2, "redis": redis_server, "cluster": cluster_name, "state": False}
    with Fetcher(dest=tmp_path / "a", **options) as one, Fetcher(dest=tmp_path / "b", **options) as two:  # type: ignore[arg-type]
        firsts: list[Status] = []
        waiter = threading.Thread(target=lambda: firsts.extend(r.status for r in one.fetch([first])))
        waiter.start()
        give_up = time.monotonic() + 5.0
        while not paused_at and time.monotonic() < give_up:
            time.sleep(0.01)
        time.sleep(0.2)  # the pause is published
        assert {r.status for r in two.fetch(others)} == {Status.OK}
        waiter.join(10)
        assert firsts == [Status.OK]
    later = [hit.started for hit in server.log if hit.path.startswith("/other/")]
    assert min(later) - paused_at[0] >= 1.7  # Retry-After: 2, told to the other fetcher


def test_a_slot_another_fetcher_frees_of_a_full_host_reopens_it_at_once(new_limits: NewLimits) -> None:
    one, two = new_limits(max_per_host=1), new_limits(max_per_host=1)
    held = permit(one.try_start(HOST))
    freed: list[str] = []
    two.add_listener(freed.append)
    assert isinstance(two.try_start(HOST), Closed)  # full; two now listens
    time.sleep(0.2)  # subscribed
    held.release()
    give_up = time.monotonic() + 3.0
    while HOST not in freed and time.monotonic() < give_up:
        time.sleep(0.01)
    assert HOST in freed and time.monotonic() < give_up - 3.0 + RECHECK_S  # before the fallback recheck
    permit(two.try_start(HOST))


def test_a_release_of_a_host_that_was_not_full_tells_no_one(new_limits: NewLimits) -> None:
    one, two = new_limits(max_per_host=2), new_limits(max_per_host=2)
    freed: list[str] = []
    two.add_listener(freed.append)
    permit(two.try_start("warm.example:80"))  # two listens
    time.sleep(0.2)
    permit(one.try_start(HOST)).release()
    time.sleep(0.3)
    assert freed == []
