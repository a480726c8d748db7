"""fetcher.limits.redis: cluster-wide slots as leases, against a real Redis-protocol server (valkey-server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fetcher import ConfigError, Fetcher, Status
from fetcher.limits.redis import HAND_ON_MAX, HAND_ON_WAIT_S, RedisGate
from tests.cluster_runs import run_side_by_side
from tests.server import Capacity, LoopbackServer

NewGate = Callable[..., RedisGate]


@pytest.fixture
def new_gate(redis_server: str, cluster_name: str) -> Iterator[NewGate]:
    """Makes gates of the test's own cluster (``cluster=`` another), on the session's server; closed at its end."""
    made: list[RedisGate] = []

    def make(capacity: int, *, cluster: str = cluster_name, lease_s: float = 10.0) -> RedisGate:
        made.append(RedisGate(redis_server, cluster, capacity, lease_s=lease_s))
        return made[-1]

    yield make
    for each in made:
        each.close()


def test_slots_are_shared_by_every_gate_of_a_cluster(new_gate: NewGate) -> None:
    one, two = new_gate(2), new_gate(2)
    held = [one.acquire(0), two.acquire(0)]
    assert all(held) and one.acquire(0) is None and two.acquire(0) is None
    assert one.in_use_by_all() == 2 and (one.in_use, two.in_use) == (1, 1)
    held[0].release()  # type: ignore[union-attr]
    assert two.acquire(1.0) is not None  # once one keeps it no longer for a next download of its own


def members(gate: RedisGate) -> list[bytes]:
    return list(gate.link.client.zrange(gate.link.keys["slots"], 0, -1))


def test_a_slot_given_back_serves_the_next_download_of_its_process_with_no_round_trip(new_gate: NewGate) -> None:
    one = new_gate(1)
    first = one.acquire(0)
    assert first is not None
    lease = members(one)
    first.release()
    assert one.acquire(0) is not None and members(one) == lease  # the same lease, not given back


def test_a_kept_slot_no_download_takes_goes_back_to_the_cluster_soon(new_gate: NewGate) -> None:
    one, two = new_gate(1), new_gate(1)
    held = one.acquire(0)
    assert held is not None
    held.release()
    began = time.monotonic()
    assert two.acquire(2.0) is not None
    assert time.monotonic() - began < HAND_ON_WAIT_S + 1.0


def test_a_lease_goes_back_to_the_cluster_after_serving_its_run_of_downloads(new_gate: NewGate) -> None:
    one = new_gate(1)
    leases = []
    for _ in range(HAND_ON_MAX + 1):
        slot = one.acquire(1.0)
        assert slot is not None
        leases.append(members(one))
        slot.release()
    assert leases[:HAND_ON_MAX] == [leases[0]] * HAND_ON_MAX and leases[HAND_ON_MAX] != leases[0]


def test_clusters_do_not_share_slots(new_gate: NewGate) -> None:
    first = new_gate(1)
    assert first.acquire(0) is not None
    assert new_gate(1, cluster="other-" + first.cluster).acquire(0) is not None


def test_acquire_waits_its_timeout_for_a_slot(new_gate: NewGate) -> None:
    full = new_gate(1)
    assert full.acquire(0) is not None
    began = time.monotonic()
    assert full.acquire(0.3) is None
    assert 0.25 <= time.monotonic() - began < 2.0


def test_a_slot_given_back_wakes_a_waiter(new_gate: NewGate) -> None:
    one = new_gate(1)
    held = one.acquire(0)
    assert held is not None
    threading.Timer(0.2, held.release).start()
    assert new_gate(1).acquire(5.0) is not None


def test_a_cluster_refuses_another_count_naming_both(new_gate: NewGate) -> None:
    new_gate(4)
    with pytest.raises(ConfigError, match=r"runs with --max 4 \(this fetcher: 5\)"):
        new_gate(5)


def test_a_held_slot_outlives_its_lease_while_renewed(new_gate: NewGate) -> None:
    holder = new_gate(1, lease_s=0.3)
    assert holder.acquire(0) is not None
    time.sleep(1.0)  # three leases
    assert new_gate(1).acquire(0) is None


def test_an_unreachable_server_is_one_clear_error_at_the_start(cluster_name: str) -> None:
    with pytest.raises(ConfigError, match=r"^cannot use Redis at redis://127.0.0.1:1/0: "):
        RedisGate("redis://127.0.0.1:1/0", cluster_name, 2)


def test_a_password_in_the_url_is_never_in_a_message(cluster_name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RedisGate("redis://user:hunter2@127.0.0.1:1/0", cluster_name, 2)
    assert "hunter2" not in str(caught.value)


def test_without_redis_py_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch, cluster_name: str) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"pip install 'fetcher\[redis\]'"):
        RedisGate("redis://127.0.0.1:1/0", cluster_name, 2)


HOLDER = textwrap.dedent(
    """
    import sys, time
    from fetcher.limits.redis import RedisGate
    gate = RedisGate(sys.argv[1], sys.argv[2], 2, lease_s=1.0)
    held = [gate.acquire(0), gate.acquire(0)]
    print("held" if all(held) else "not held", flush=True)
    time.sleep(60)
    """
)


def test_a_killed_holders_slots_come_back_after_its_lease_not_before(
    redis_server: str, cluster_name: str, new_gate: NewGate
) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, redis_server, cluster_name], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        os.kill(holder.pid, signal.SIGKILL)
        killed = time.monotonic()
        holder.wait(10)
        waiter = new_gate(2)
        assert waiter.acquire(0.5) is None  # its lease (1 s) still runs: the download might be going on
        assert waiter.acquire(3.0) is not None
        assert 0.8 <= time.monotonic() - killed < 4.0
    finally:
        holder.kill()
        holder.wait(10)


# -- whole fetchers sharing a cluster --------------------------------------------------------


def test_three_processes_sharing_max_4_never_pass_4_at_the_server(
    server: LoopbackServer, tmp_path: Path, redis_server: str, cluster_name: str
) -> None:
    slow = Capacity(b"x" * 100, service_s=0.05, capacity=lambda t: None)
    cluster = ("--max", "4", "--redis", redis_server, "--cluster", cluster_name)
    run_side_by_side(server, tmp_path, slow, *cluster, processes=3, urls=12)
    assert slow.requests == 36
    assert slow.max_in_flight() == 4


def test_a_url_held_back_by_the_cluster_says_so(
    server: LoopbackServer, tmp_path: Path, redis_server: str, cluster_name: str
) -> None:
    urls = [server.route(f"/c/{n}", Capacity(b"x", service_s=0.05, capacity=lambda t: None)) for n in range(4)]
    with Fetcher(dest=tmp_path, max_concurrent=1, redis=redis_server, cluster=cluster_name, state=False) as fetcher:
        results = list(fetcher.fetch(urls))
    assert {r.status for r in results} == {Status.OK}
    assert {r.waited_on for r in results[1:]} == {"cluster"}
