"""--adaptive against real loopback servers whose answers depend on load (``tests.server.Capacity``).

Each server counts the requests in flight at it; the Fetcher runs as a
script would use it.  The margins are wide enough for a busy 2-core
machine: the figures of bench/adaptive.py are the sharper measure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fetcher import Fetcher, Result, Status
from tests.server import Capacity, LoopbackServer, faulty, too_many

DATA = b"x" * 2048


def routed(server: LoopbackServer, handler: Callable[..., None], count: int, prefix: str = "f") -> list[str]:
    return [server.route(f"/{prefix}/{n}", handler) for n in range(count)]


def fetch_all(dest: Path, urls: list[str], **options: object) -> tuple[list[Result], Fetcher]:
    with Fetcher(dest=dest, state=False, **options) as fetcher:  # type: ignore[arg-type]
        results = list(fetcher.fetch(urls))
    return results, fetcher


@pytest.fixture
def server_c() -> Iterator[LoopbackServer]:
    """A third host (127.0.0.3)."""
    loopback = LoopbackServer(host="127.0.0.3").start()
    yield loopback
    loopback.stop()


def test_a_queueing_server_gets_about_its_capacity_in_flight(server: LoopbackServer, tmp_path: Path) -> None:
    queue = Capacity(DATA, service_s=0.04, capacity=lambda t: 2)
    urls = routed(server, queue, 100)
    began = time.monotonic()
    results, fetcher = fetch_all(tmp_path, urls, max_concurrent=12, adaptive=True)
    assert {r.status for r in results} == {Status.OK}
    assert queue.first is not None
    assert queue.mean_in_flight(queue.first + 0.5, queue.last) <= 2.5 * 2
    assert time.monotonic() - began < 2.5 * (100 * 0.04 / 2)  # the ideal is 2 s
    [pace] = fetcher.adaptive_limits()
    assert pace.cap == 12 and pace.lowest <= pace.final < 12


def test_without_adaptive_every_slot_waits_in_the_servers_queue(server: LoopbackServer, tmp_path: Path) -> None:
    queue = Capacity(DATA, service_s=0.1, capacity=lambda t: 2)
    results, fetcher = fetch_all(tmp_path, routed(server, queue, 30), max_concurrent=12)
    assert queue.max_in_flight() >= 8  # 12 on an idle machine; far above the 2.5 x 2 of the adaptive run
    assert fetcher.adaptive_limits() == []


def test_urls_held_back_by_the_adaptive_limit_say_so(server: LoopbackServer, tmp_path: Path) -> None:
    queue = Capacity(DATA, service_s=0.02, capacity=lambda t: 1)
    results, _ = fetch_all(tmp_path, routed(server, queue, 20), max_concurrent=8, adaptive=True)
    assert {r.waited_on for r in results[4:]} == {"adaptive"}


def test_a_server_that_refuses_past_its_capacity_gets_few_429s(server: LoopbackServer, tmp_path: Path) -> None:
    refusing = Capacity(DATA, service_s=0.04, capacity=lambda t: 2, reject=True)
    results, _ = fetch_all(tmp_path, routed(server, refusing, 80), max_concurrent=12, adaptive=True, retries=10)
    assert {r.status for r in results} == {Status.OK}  # every file arrives
    assert refusing.rejected < 0.15 * refusing.requests


def test_a_bare_429_does_not_pause_an_adaptive_host(server: LoopbackServer, tmp_path: Path) -> None:
    urls = [server.route("/once", faulty([too_many(None)], then=Capacity(DATA, service_s=0, capacity=lambda t: None)))]
    began = time.monotonic()
    results, _ = fetch_all(tmp_path, urls, adaptive=True, retry_wait_max=0.01)
    assert results[0].status is Status.OK and time.monotonic() - began < 0.9  # no pause of wait_base, 1 s


def test_a_429_with_retry_after_still_pauses_an_adaptive_host(server: LoopbackServer, tmp_path: Path) -> None:
    urls = [server.route("/once", faulty([too_many("1")], then=Capacity(DATA, service_s=0, capacity=lambda t: None)))]
    began = time.monotonic()
    results, _ = fetch_all(tmp_path, urls, adaptive=True)
    assert results[0].status is Status.OK and time.monotonic() - began >= 0.95


def test_on_a_fast_server_the_limit_reaches_max(server: LoopbackServer, tmp_path: Path) -> None:
    fast = Capacity(DATA, service_s=0.01, capacity=lambda t: None)
    results, _ = fetch_all(tmp_path, routed(server, fast, 150), max_concurrent=8, adaptive=True)
    assert {r.status for r in results} == {Status.OK}
    assert fast.max_in_flight() == 8


def test_max_per_host_is_never_passed_and_is_reached(server: LoopbackServer, tmp_path: Path) -> None:
    fast = Capacity(DATA, service_s=0.01, capacity=lambda t: None)
    fetch_all(tmp_path, routed(server, fast, 100), max_concurrent=16, max_per_host=3, adaptive=True)
    assert fast.max_in_flight() == 3


def test_a_slow_host_does_not_hold_a_fast_host_back(
    server_b: LoopbackServer, server_c: LoopbackServer, tmp_path: Path
) -> None:
    slow = Capacity(DATA, service_s=0.05, capacity=lambda t: 1)
    fast = Capacity(DATA, service_s=0.01, capacity=lambda t: None)
    urls = routed(server_c, fast, 200)
    for n, url in enumerate(routed(server_b, slow, 30)):
        urls.insert(n * 7, url)
    results, _ = fetch_all(tmp_path, urls, max_concurrent=8, adaptive=True)
    assert {r.status for r in results} == {Status.OK}
    assert fast.max_in_flight() >= 6  # the whole --max but what the slow host holds (1 to 2)


def test_the_limit_climbs_back_when_the_server_recovers(server: LoopbackServer, tmp_path: Path) -> None:
    recovering = Capacity(DATA, service_s=0.04, capacity=lambda t: 1 if t < 1.0 else 8)
    results, fetcher = fetch_all(tmp_path, routed(server, recovering, 250), max_concurrent=16, adaptive=True)
    assert recovering.first is not None
    assert recovering.max_in_flight(since=recovering.first + 1.5) >= 6
    [pace] = fetcher.adaptive_limits()
    assert pace.lowest <= 2 and pace.final >= 6


def test_a_hosts_cap_is_max_per_host_but_never_above_max(server: LoopbackServer, tmp_path: Path) -> None:
    fast = Capacity(DATA, service_s=0.0, capacity=lambda t: None)
    _, fetcher = fetch_all(tmp_path, routed(server, fast, 10), max_concurrent=4, max_per_host=10, adaptive=True)
    [pace] = fetcher.adaptive_limits()
    assert pace.cap == 4


def test_worker_processes_keep_to_the_adaptive_limit(server: LoopbackServer, tmp_path: Path) -> None:
    # Worker processes asked for: they start with the Fetcher and take the downloads once up (the first few go
    # to threads meanwhile); the limits stay in this process.
    queue = Capacity(DATA, service_s=0.03, capacity=lambda t: 4)
    results, fetcher = fetch_all(tmp_path, routed(server, queue, 200), max_concurrent=16, adaptive=True, workers=2)
    assert {r.status for r in results} == {Status.OK}
    assert queue.first is not None
    assert queue.mean_in_flight(queue.first + 0.5, queue.last) <= 2.5 * 4
    assert {r.waited_on for r in results[20:]} == {"adaptive"}
