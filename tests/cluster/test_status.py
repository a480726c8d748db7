"""fetcher.cluster.status: what ``fetcher cluster status`` reads, while fetchers of the cluster run."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from fetcher import Fetcher, Status
from fetcher.cluster.status import read_status, status_text
from fetcher.limits.redis import RedisGate
from fetcher.limits.redis_hosts import ClusterHostLimits
from tests.server import Capacity, LoopbackServer


def test_a_cluster_no_fetcher_runs_in_shows_no_slots(redis_server: str, cluster_name: str) -> None:
    status = read_status(redis_server, cluster_name)
    assert (status.slots, status.slots_in_use, dict(status.hosts), status.request_rate) == (None, 0, {}, None)
    assert "slots     none fixed (no fetcher runs)" in status_text(status)


def test_status_shows_slots_by_host_and_the_rate_while_a_fetcher_runs(
    server: LoopbackServer, tmp_path: Path, redis_server: str, cluster_name: str
) -> None:
    slow = Capacity(b"x", service_s=1.5, capacity=lambda t: None)
    urls = [server.route(f"/s/{n}", slow) for n in range(3)]
    results: list[Status] = []
    with Fetcher(dest=tmp_path, max_concurrent=4, rate=50.0, redis=redis_server, cluster=cluster_name,
                 cluster_lease=0.6, state=False) as fetcher:  # fmt: skip
        run = threading.Thread(target=lambda: results.extend(r.status for r in fetcher.fetch(urls)))
        run.start()
        time.sleep(0.9)  # the leases are renewed (every 0.2 s), and say what they download
        status = read_status(redis_server, cluster_name)
        run.join(10)
    host = urls[0].split("/")[2]
    assert (status.slots, status.slots_in_use, dict(status.hosts)) == (4, 3, {host: 3})
    assert status.request_rate is not None and status.request_rate > 0
    assert dict(status.limits)["rate"] == 50.0
    text = status_text(status)
    assert f"by host   {host} 3" in text and "/50 req/s" in text
    assert results == [Status.OK] * 3


def test_status_shows_a_paused_host_and_its_time_left(redis_server: str, cluster_name: str) -> None:
    gate = RedisGate(redis_server, cluster_name, 2)
    hosts = ClusterHostLimits(gate)
    try:
        hosts.pause("slow.example:443", 30.0)
        status = read_status(redis_server, cluster_name)
    finally:
        hosts.close()
        gate.close()
    assert list(status.paused) == ["slow.example:443"] and 28 < status.paused["slow.example:443"] <= 30
    assert "paused    slow.example:443 30s" in status_text(status)


def test_the_json_has_every_field(redis_server: str, cluster_name: str) -> None:
    record = read_status(redis_server, cluster_name).to_record()
    assert {"hosts", "request_rate", "byte_rate", "limits", "paused", "slots", "workers_alive"} <= set(record)
