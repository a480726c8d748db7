"""fetcher.limits.redis_rate: one token bucket for a whole cluster, against a real Redis-protocol server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fetcher import Fetcher
from fetcher.limits.redis_link import Link
from fetcher.limits.redis_rate import UNREACHABLE_WAIT_S, RedisBucket
from tests.cluster_runs import run_side_by_side
from tests.server import LoopbackServer, body

NewBucket = Callable[..., RedisBucket]


@pytest.fixture
def new_bucket(redis_server: str, cluster_name: str) -> Iterator[NewBucket]:
    """Makes buckets named "test" in the test's cluster, each on a connection of its own."""
    links: list[Link] = []

    def make(rate: float, *, burst: float = 1.0) -> RedisBucket:
        links.append(Link(redis_server, cluster_name))
        return RedisBucket(links[-1], links[-1].keys["rate"], rate, burst=burst)

    yield make
    for link in links:
        link.close()


def test_two_handles_share_one_rate(new_bucket: NewBucket) -> None:
    one, two = new_bucket(20.0), new_bucket(20.0)
    taken: list[float] = []
    began = time.monotonic()

    def take(bucket: RedisBucket) -> None:
        while time.monotonic() - began < 1.0:
            if bucket.try_take():
                taken.append(time.monotonic())
            else:
                time.sleep(0.005)

    threads = [threading.Thread(target=take, args=(each,)) for each in (one, two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    elapsed = max(taken) - began
    assert len(taken) <= 1 + 20 * elapsed + 1  # the promise: burst + rate * t (one for timing at the ends)
    assert len(taken) >= 12  # and the rate is used, not starved


def test_a_take_with_no_turn_takes_nothing_and_says_how_long(new_bucket: NewBucket) -> None:
    bucket = new_bucket(4.0)
    assert bucket.try_take() is True
    assert bucket.try_take() is False
    assert 0.1 < bucket.delay() <= 0.25


def test_reservations_queue_one_interval_apart(new_bucket: NewBucket) -> None:
    bucket = new_bucket(10.0)
    waits = [bucket.reserve() for _ in range(3)]
    assert waits[0] == pytest.approx(0.0, abs=0.02)
    assert waits[1] == pytest.approx(0.1, abs=0.03)
    assert waits[2] == pytest.approx(0.2, abs=0.03)


def test_a_reservation_from_a_later_time_waits_until_then(new_bucket: NewBucket) -> None:
    bucket = new_bucket(100.0)
    assert bucket.reserve(not_before=time.monotonic() + 0.5) == pytest.approx(0.5, abs=0.05)


def test_a_burst_lets_that_many_go_at_once(new_bucket: NewBucket) -> None:
    bucket = new_bucket(1.0, burst=3.0)
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]


def test_recent_rate_counts_what_the_cluster_took(new_bucket: NewBucket) -> None:
    one, two = new_bucket(1000.0, burst=1000.0), new_bucket(1000.0, burst=1000.0)
    for _ in range(10):
        one.try_take()
        two.try_take()
    assert two.recent_rate(window=2.0) > 0
    assert one.recent_rate(window=2.0) == pytest.approx(two.recent_rate(window=2.0), rel=0.2)


def test_while_unreachable_nothing_new_starts_but_what_runs_goes_on(cluster_name: str) -> None:
    link = Link("redis://127.0.0.1:1/0", cluster_name)
    bucket = RedisBucket(link, link.keys["rate"], 10.0)
    assert bucket.try_take() is False
    assert bucket.delay() == UNREACHABLE_WAIT_S
    assert bucket.reserve(4096) == 0.0
    assert link.down


def test_a_bad_rate_is_refused(new_bucket: NewBucket) -> None:
    with pytest.raises(ValueError, match="rate and burst"):
        new_bucket(0.0)


# -- whole fetchers sharing a cluster --------------------------------------------------------


def test_three_processes_sharing_rate_10_keep_it_at_the_server(
    server: LoopbackServer, tmp_path: Path, redis_server: str, cluster_name: str
) -> None:
    cluster = ("--max", "4", "--rate", "10", "--redis", redis_server, "--cluster", cluster_name)
    run_side_by_side(server, tmp_path, body(b"x"), *cluster, processes=3, urls=8)
    assert len(server.log) == 24
    # The documented promise, burst 1: at most 1 + 10 t turns in any t seconds.  The server sees each
    # request a little after its turn; a process's first comes later still (its session and connection
    # are made after the turn), so those three are left out, and the windows get 20 ms of slack.
    for window in (0.25, 0.5, 1.0):
        assert server.max_in_any_window(window - 0.02, where=lambda hit: not hit.path.endswith("/0")) <= 1 + 10 * window
    starts = sorted(hit.started for hit in server.log if not hit.path.endswith("/0"))
    assert starts[-1] - starts[0] >= 1.9  # 21 requests at 10/s: 2.0 s (the three did not each take 10/s)



def test_two_fetchers_share_one_byte_rate(
    server: LoopbackServer, tmp_path: Path, redis_server: str, cluster_name: str
) -> None:
    urls = [server.route(f"/big/{n}", body(b"x" * 60_000)) for n in range(2)]
    options = {"max_concurrent": 2, "limit_rate": 100_000, "redis": redis_server, "cluster": cluster_name,
               "state": False}  # fmt: skip
    statuses: list[str] = []
    with Fetcher(dest=tmp_path / "a", **options) as one, Fetcher(dest=tmp_path / "b", **options) as two:  # type: ignore[arg-type]
        began = time.monotonic()
        runs = [threading.Thread(target=lambda f=f, u=u: statuses.extend(r.status for r in f.fetch([u])))
                for f, u in ((one, urls[0]), (two, urls[1]))]  # fmt: skip
        for run in runs:
            run.start()
        for run in runs:
            run.join(20)
        elapsed = time.monotonic() - began
    assert statuses == ["ok", "ok"]
    # 120,000 bytes at 100,000 a second between them, less the burst (10,000): 1.1 s; each alone, 0.5 s.
    assert elapsed >= 1.0
