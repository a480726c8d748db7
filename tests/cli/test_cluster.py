"""``fetcher enqueue``, ``fetcher work`` and ``fetcher cluster status``, as processes against a real Redis-protocol
server (valkey-server) and loopback HTTP servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from fetcher.cli.main import main
from fetcher.limits.redis import cluster_keys
from tests import server as srv
from tests.server import Capacity, LoopbackServer


def fetcher(*args: str | Path) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return int(exit_info.value.code or 0)


def command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "fetcher", *map(str, args)]


def listing(tmp_path: Path, urls: list[str], name: str = "urls.txt") -> Path:
    path = tmp_path / name
    path.write_text("".join(f"{url}\n" for url in urls))
    return path


def records(redis_url: str, cluster: str) -> dict[str, dict[str, object]]:
    client = redis.Redis.from_url(redis_url)
    try:
        raw = client.hgetall(cluster_keys(cluster)["records"])
    finally:
        client.close()
    return {url.decode() if isinstance(url, bytes) else url: json.loads(record) for url, record in raw.items()}


def test_enqueue_queues_each_url_once_and_names_invalid_lines(
    tmp_path: Path, redis_server: str, cluster_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first = listing(tmp_path, ["https://a.example/1", "https://a.example/2", "nope"], "one.txt")
    second = listing(tmp_path, ["https://A.example:443/2", "https://a.example/3"], "two.txt")
    assert fetcher("enqueue", first, "--redis", redis_server, "--cluster", cluster_name) == 1
    err = capsys.readouterr().err
    assert "fetcher: line 3: not a URL" in err
    assert f"fetcher: queued 2 URLs in cluster {cluster_name} (0 queued before, 1 invalid lines)" in err
    assert fetcher("enqueue", second, "--redis", redis_server, "--cluster", cluster_name, "-q") == 0
    assert capsys.readouterr().err == ""


def test_three_workers_drain_one_queue_fetching_each_url_once(
    server: LoopbackServer, tmp_path: Path, redis_server: str, cluster_name: str
) -> None:
    paths = [f"/d/{n}" for n in range(3000)]
    urls = [server.route(path, srv.body(b"x" * 64)) for path in paths]
    assert fetcher("enqueue", listing(tmp_path, urls), "--redis", redis_server, "--cluster", cluster_name, "-q") == 0
    workers = [
        subprocess.Popen(command("work", "--redis", redis_server, "--cluster", cluster_name, "--max", "8", "-q",
                                 "-d", tmp_path / f"out{k}"), stderr=subprocess.PIPE, text=True)  # fmt: skip
        for k in range(3)
    ]
    for worker in workers:
        assert worker.wait(120) == 0, worker.stderr.read() if worker.stderr else ""
    assert all(len(server.statuses[path]) == 1 for path in paths)
    saved = [name for k in range(3) for name in os.listdir(tmp_path / f"out{k}") if not name.startswith(".")]
    assert len([name for name in saved if name != "fetcher-report.jsonl"]) == 3000
    assert len(records(redis_server, cluster_name)) == 3000


def test_a_killed_workers_urls_are_finished_by_the_others_with_one_record_each(
    server: LoopbackServer, tmp_path: Path, redis_server: str, cluster_name: str
) -> None:
    slow = Capacity(b"x" * 64, service_s=0.4, capacity=lambda t: None)
    urls = [server.route(f"/k/{n}", slow) for n in range(40)]
    assert fetcher("enqueue", listing(tmp_path, urls), "--redis", redis_server, "--cluster", cluster_name, "-q") == 0
    options = ["--redis", redis_server, "--cluster", cluster_name, "--max", "4", "--lease", "1s", "-q"]
    victim = subprocess.Popen(command("work", *options, "-d", tmp_path / "victim"), stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while slow.max_in_flight() < 4 and time.monotonic() < deadline:  # bounded: 30 s at most
            time.sleep(0.02)
        assert slow.max_in_flight() == 4  # the victim holds all four slots, mid-download
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
    finally:
        victim.kill()
    others = [subprocess.Popen(command("work", *options, "-d", tmp_path / f"out{k}"), stderr=subprocess.PIPE,
                               text=True) for k in range(2)]  # fmt: skip
    for worker in others:
        assert worker.wait(120) == 0, worker.stderr.read() if worker.stderr else ""
    kept = records(redis_server, cluster_name)
    assert sorted(kept) == sorted(urls)  # every URL, one final record each
    assert {record["status"] for record in kept.values()} == {"ok"}
    assert slow.requests >= 44  # the victim's four were asked for again


def test_cluster_status_shows_the_queue_slots_and_workers(
    tmp_path: Path, redis_server: str, cluster_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = [f"https://a.example/{n}" for n in range(5)]
    assert fetcher("enqueue", listing(tmp_path, urls), "--redis", redis_server, "--cluster", cluster_name, "-q") == 0
    assert fetcher("cluster", "status", "--redis", redis_server, "--cluster", cluster_name) == 0
    out = capsys.readouterr().out
    assert f"cluster {cluster_name} at {redis_server}\n" in out
    assert "queue     5 waiting, 0 in progress, 0 done\n" in out
    assert fetcher("cluster", "status", "--redis", redis_server, "--cluster", cluster_name, "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["waiting"], status["done"], status["workers_alive"]) == (5, 0, 0)


def test_a_worker_whose_urls_fail_exits_1_and_the_cluster_counts_them(
    server: LoopbackServer, tmp_path: Path, redis_server: str, cluster_name: str
) -> None:
    urls = [server.route("/gone", srv.status(404)), server.route("/there", srv.body(b"x"))]
    assert fetcher("enqueue", listing(tmp_path, urls), "--redis", redis_server, "--cluster", cluster_name, "-q") == 0
    assert fetcher("work", "--redis", redis_server, "--cluster", cluster_name, "-q", "-d", tmp_path / "out") == 1
    assert {url: record["status"] for url, record in records(redis_server, cluster_name).items()} == {
        urls[0]: "failed", urls[1]: "ok"}  # fmt: skip


@pytest.mark.parametrize("args", [["work"], ["enqueue", "urls.txt"], ["cluster", "status"]])
def test_the_cluster_commands_need_redis_and_a_cluster(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fetcher(*args) == 2
    assert capsys.readouterr().err.startswith("fetcher: error: missing --")


def test_an_unreachable_redis_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher("cluster", "status", "--redis", "redis://:pw@127.0.0.1:1/0", "--cluster", "c") == 2
    err = capsys.readouterr().err
    assert err.startswith("fetcher: error: cannot use Redis at redis://127.0.0.1:1/0: ") and "pw" not in err
    assert len(err.splitlines()) == 1
