"""``fetcher enqueue``, ``fetcher work`` and ``fetcher cluster status|export|report``, as processes against a real
Redis-protocol server (valkey-server) and loopback HTTP servers."""

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
    assert f"fetcher: queued 2 URLs in cluster {cluster_name} (0 queued before, 1 invalid line)" in err
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


@pytest.mark.parametrize(
    "args",
    [["work"], ["enqueue", "urls.txt"], ["cluster", "status"], ["cluster", "export", "-"], ["cluster", "report"]],
)
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


def work(redis_url: str, cluster: str, dest: Path) -> int:
    return fetcher("work", "--redis", redis_url, "--cluster", cluster, "-q", "-d", dest)


def test_cluster_export_gives_a_report_with_the_counts_of_cluster_status(
    server: LoopbackServer, tmp_path: Path, redis_server: str, cluster_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = [server.route(f"/e/{n}", srv.body(b"x" * 10)) for n in range(3)] + [server.route("/gone", srv.status(404))]
    cluster = ["--redis", redis_server, "--cluster", cluster_name]
    assert fetcher("enqueue", listing(tmp_path, urls), *cluster, "-q") == 0
    assert work(redis_server, cluster_name, tmp_path / "out") == 1
    assert fetcher("cluster", "status", *cluster, "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert fetcher("cluster", "export", *cluster, tmp_path / "cluster.jsonl") == 0
    exported = f"exported 4 records of cluster {cluster_name} to {tmp_path / 'cluster.jsonl'}"
    assert capsys.readouterr().err == f"fetcher: {exported} (run cluster-{cluster_name}, finished)\n"
    assert fetcher("report", tmp_path / "cluster.jsonl", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["urls"], summary["statuses"], summary["ended"]) == (status["done"], status["statuses"], "finished")
    assert summary["statuses"] == {"ok": 3, "failed": 1}


def test_cluster_report_sums_up_every_workers_run_as_one(
    server: LoopbackServer, tmp_path: Path, redis_server: str, cluster_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = ["--redis", redis_server, "--cluster", cluster_name]
    for k in range(2):  # two worker runs, one after the other, each with its own report
        urls = [server.route(f"/r{k}/{n}", srv.body(b"x")) for n in range(2)]
        assert fetcher("enqueue", listing(tmp_path, urls, f"urls{k}.txt"), *cluster, "-q") == 0
        assert work(redis_server, cluster_name, tmp_path / f"out{k}") == 0
    assert fetcher("report", tmp_path / "out1" / "fetcher-report.jsonl", "--json") == 0
    assert json.loads(capsys.readouterr().out)["urls"] == 2  # the last worker's run only
    assert fetcher("cluster", "report", *cluster, "--json", "--html", tmp_path / "cluster.html") == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["run_id"], summary["urls"], summary["statuses"]) == (f"cluster-{cluster_name}", 4, {"ok": 4})
    assert "<svg" in (tmp_path / "cluster.html").read_text()
    assert fetcher("cluster", "report", *cluster) == 0
    assert capsys.readouterr().out.startswith(f"run cluster-{cluster_name}: finished, fetcher ")


def test_cluster_export_to_stdout(
    server: LoopbackServer, tmp_path: Path, redis_server: str, cluster_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = ["--redis", redis_server, "--cluster", cluster_name]
    assert fetcher("enqueue", listing(tmp_path, [server.route("/s", srv.body(b"x"))]), *cluster, "-q") == 0
    assert work(redis_server, cluster_name, tmp_path / "out") == 0
    capsys.readouterr()
    assert fetcher("cluster", "export", *cluster, "-", "-q") == 0
    out, err = capsys.readouterr()
    assert ([json.loads(line).get("record") for line in out.splitlines()], err) == ([None, "run"], "")


def test_a_password_in_a_queued_url_reaches_neither_redis_nor_the_export(
    server: LoopbackServer, tmp_path: Path, redis_server: str, cluster_name: str
) -> None:
    url = server.route("/p", srv.body(b"x")).replace("http://", "http://user:secret@")
    cluster = ["--redis", redis_server, "--cluster", cluster_name]
    assert fetcher("enqueue", listing(tmp_path, [url]), *cluster, "-q") == 0
    assert work(redis_server, cluster_name, tmp_path / "out") == 0
    assert "secret" not in json.dumps(records(redis_server, cluster_name))
    assert fetcher("cluster", "export", *cluster, tmp_path / "cluster.jsonl", "-q") == 0
    assert "secret" not in (tmp_path / "cluster.jsonl").read_text()


UNREACHABLE = "redis://:pw@127.0.0.1:1/0"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["export", "--redis", UNREACHABLE, "out.jsonl"], "cannot use Redis at redis://127.0.0.1:1/0: "),
        (["report", "--redis", UNREACHABLE], "cannot use Redis at redis://127.0.0.1:1/0: "),
        (["export", "--redis", "REDIS", "out.jsonl"], "cluster NAME at REDIS has no final records (nothing is queued"),
        (["report", "--redis", "REDIS"], "cluster NAME at REDIS has no final records (nothing is queued"),
        (["export", "--redis", "REDIS", "a-file/out.jsonl"], "cannot write a-file/out.jsonl: Not a directory"),
    ],
    ids=["export-unreachable", "report-unreachable", "export-no-records", "report-no-records", "unwritable"],
)
def test_cluster_export_and_report_fail_in_one_line_with_exit_2(
    args: list[str], says: str, tmp_path: Path, redis_server: str, cluster_name: str,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    if "a-file" in args[-1]:  # a cluster with a record, so that the file is what fails
        client = redis.Redis.from_url(redis_server)
        client.hset(cluster_keys(cluster_name)["records"], "https://a.example/", '{"status": "ok"}')
        client.close()
    args = [redis_server if arg == "REDIS" else arg for arg in args]
    assert fetcher("cluster", *args, "--cluster", cluster_name) == 2
    err = capsys.readouterr().err
    assert err.startswith("fetcher: error: " + says.replace("NAME", cluster_name).replace("REDIS", redis_server))
    assert len(err.splitlines()) == 1 and "pw" not in err and "Traceback" not in err
    assert [path.name for path in tmp_path.iterdir()] == ["a-file"]


# -- the state shared in Redis, and a nightly re-run ------------------------------------------------------------


def test_a_nightly_rerun_of_the_same_list_asks_only_with_conditional_gets(
    server: LoopbackServer, tmp_path: Path, redis_server: str, cluster_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [f"/n/{n}.txt" for n in range(10)]
    urls = [server.route(path, srv.Resource(path.encode())) for path in paths]
    cluster = ["--redis", redis_server, "--cluster", cluster_name]
    assert fetcher("enqueue", listing(tmp_path, urls), *cluster, "-q") == 0
    assert work(redis_server, cluster_name, tmp_path / "shared") == 0
    assert fetcher("enqueue", "--again", listing(tmp_path, urls), *cluster) == 0
    assert capsys.readouterr().err == (
        f"fetcher: a new run of cluster {cluster_name} (10 final records of the last one cleared)\n"
        f"fetcher: queued 10 URLs in cluster {cluster_name} (0 queued before)\n")  # fmt: skip
    assert work(redis_server, cluster_name, tmp_path / "shared") == 0
    assert all(server.statuses[path] == [200, 304] for path in paths)
    assert {record["status"] for record in records(redis_server, cluster_name).values()} == {"unchanged"}


def test_enqueue_again_is_refused_while_urls_of_the_run_are_waiting(
    tmp_path: Path, redis_server: str, cluster_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = ["--redis", redis_server, "--cluster", cluster_name]
    assert fetcher("enqueue", listing(tmp_path, ["https://a.example/1"]), *cluster, "-q") == 0
    assert fetcher("enqueue", "--again", listing(tmp_path, ["https://a.example/1"]), *cluster, "-q") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fetcher: error: cluster {cluster_name} at {redis_server} has URLs waiting or in progress")
    assert len(err.splitlines()) == 1


def test_a_cluster_run_keeps_its_state_in_redis_unless_state_names_a_file(
    server: LoopbackServer, tmp_path: Path, redis_server: str, cluster_name: str
) -> None:
    listed = listing(tmp_path, [server.route("/a.txt", srv.body(b"x"))])
    cluster = ["--redis", redis_server, "--cluster", cluster_name, "-q"]
    assert fetcher(listed, *cluster, "-d", tmp_path / "shared") == 0
    assert sorted(os.listdir(tmp_path / "shared")) == ["a.txt", "fetcher-report.jsonl"]
    assert fetcher(listed, *cluster, "-d", tmp_path / "local", "--state", tmp_path / "local" / "state.db") == 0
    assert (tmp_path / "local" / "state.db").exists()
    options = [run_options(tmp_path / dest) for dest in ("shared", "local")]
    assert [(o["shared_state"], o["state"]) for o in options] == [
        (True, None), (False, str((tmp_path / "local" / "state.db").resolve()))]  # fmt: skip


def run_options(dest: Path) -> dict[str, object]:
    lines = (dest / "fetcher-report.jsonl").read_text().splitlines()
    [run] = [record for record in map(json.loads, lines) if record.get("record") == "run"]
    return dict(run["options"])
