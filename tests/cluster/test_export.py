"""fetcher.cluster.export: a cluster's final records as one report, read from a real Redis-protocol server (valkey)."""

from __future__ import annotations

import io
import itertools
import json
import tracemalloc
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis

from fetcher import ConfigError, Entry, Result, Status
from fetcher._result import FIELDS
from fetcher.cluster import export
from fetcher.cluster.export import export_to, write_records
from fetcher.cluster.queue import ClusterQueue
from fetcher.limits.redis import cluster_keys
from fetcher.report import read_report
from fetcher.report.summary import summarise
from fetcher.report.which_run import runs_in

START = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def client(redis_server: str) -> Iterator[Any]:
    connection = redis.Redis.from_url(redis_server)
    yield connection
    connection.close()


def finish(redis_server: str, cluster: str, statuses: list[Status], *, queued: int = 0) -> None:
    """Queue len(statuses) + *queued* URLs; one worker (its run "worker-1") finishes the first with *statuses*."""
    queue = ClusterQueue(redis_server, cluster, batch=len(statuses))
    try:
        queue.enqueue(Entry(url=f"https://example.org/f/{n}", line=n + 1) for n in range(len(statuses) + queued))
        taken = list(itertools.islice(queue.entries(), len(statuses)))
        for n, (entry, status) in enumerate(zip(taken, statuses, strict=True)):
            started = START + timedelta(seconds=n)
            queue.finished(Result(run_id="worker-1", line=entry.line, url=entry.url, status=status, bytes=100,
                                  started_at=started, finished_at=started + timedelta(seconds=2)))  # fmt: skip
    finally:
        queue.close()


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_export_is_a_report_that_fetcher_report_sums_up_as_one_run(
    tmp_path: Path, redis_server: str, cluster_name: str
) -> None:
    finish(redis_server, cluster_name, [Status.OK, Status.OK, Status.FAILED])
    export_to(redis_server, cluster_name, tmp_path / "cluster.jsonl")
    [run] = runs_in(read_report(tmp_path / "cluster.jsonl"))
    summary = summarise(run)
    assert (summary.run_id, summary.run_record, summary.ended) == (f"cluster-{cluster_name}", True, "finished")
    assert (summary.urls, dict(summary.statuses), summary.bytes) == (3, {"ok": 2, "failed": 1}, 200)


def test_every_url_record_has_the_report_fields_in_order_and_the_clusters_run_id(
    tmp_path: Path, redis_server: str, cluster_name: str
) -> None:
    finish(redis_server, cluster_name, [Status.OK, Status.FAILED])
    export_to(redis_server, cluster_name, tmp_path / "cluster.jsonl")
    *urls, _ = lines(tmp_path / "cluster.jsonl")
    assert [tuple(record) for record in urls] == [FIELDS] * 2
    assert {record["run_id"] for record in urls} == {f"cluster-{cluster_name}"}


def test_the_run_record_comes_last_and_spans_the_records(tmp_path: Path, redis_server: str, cluster_name: str) -> None:
    finish(redis_server, cluster_name, [Status.OK, Status.OK, Status.SKIPPED])
    export_to(redis_server, cluster_name, tmp_path / "cluster.jsonl")
    run = lines(tmp_path / "cluster.jsonl")[-1]
    assert (run["record"], run["totals"], run["bytes"]) == ("run", {"ok": 2, "skipped": 1}, 300)
    assert (run["started_at"], run["finished_at"]) == ("2024-05-01T12:00:00.000+00:00", "2024-05-01T12:00:04.000+00:00")
    assert run["options"]["list"] == f"cluster {cluster_name} at {redis_server}"


def test_a_cluster_with_urls_left_is_exported_as_interrupted(
    tmp_path: Path, redis_server: str, cluster_name: str
) -> None:
    finish(redis_server, cluster_name, [Status.OK], queued=2)
    exported = export_to(redis_server, cluster_name, tmp_path / "cluster.jsonl")
    run = lines(tmp_path / "cluster.jsonl")[-1]
    assert (exported.ended, run["ended"]) == ("interrupted", "interrupted")
    assert run["reason"] == "exported with 2 URLs still waiting or in progress"


def test_a_cluster_without_final_records_is_a_config_error_and_no_file(
    tmp_path: Path, redis_server: str, cluster_name: str
) -> None:
    with pytest.raises(ConfigError, match=r"has no final records \(nothing is queued under that name\)"):
        export_to(redis_server, cluster_name, tmp_path / "cluster.jsonl")
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_redis_is_a_config_error_without_the_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^cannot use Redis at redis://127\.0\.0\.1:1/0: ") as error:
        export_to("redis://:secret@127.0.0.1:1/0", "c", tmp_path / "cluster.jsonl")
    assert "secret" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_a_file_in_a_folder_that_is_not_there_is_a_config_error(
    tmp_path: Path, redis_server: str, cluster_name: str
) -> None:
    finish(redis_server, cluster_name, [Status.OK])
    with pytest.raises(ConfigError, match=r"^cannot write .*/gone/cluster\.jsonl: No such file or directory$"):
        export_to(redis_server, cluster_name, tmp_path / "gone" / "cluster.jsonl")


def test_a_csv_name_is_refused_rather_than_written_as_json_lines(
    tmp_path: Path, redis_server: str, cluster_name: str
) -> None:
    finish(redis_server, cluster_name, [Status.OK])
    with pytest.raises(ConfigError, match=r"an export is JSON Lines \(name it \.jsonl\)"):
        export_to(redis_server, cluster_name, tmp_path / "cluster.csv")


def test_an_export_that_fails_midway_leaves_the_file_as_it_was_and_no_part(
    small_disk: Path, client: Any, redis_server: str, cluster_name: str
) -> None:
    finish(redis_server, cluster_name, [Status.OK])
    record = json.dumps({"status": "ok", "url": "https://example.org/x", "error": "x" * 1000})
    client.hset(cluster_keys(cluster_name)["records"], mapping={f"https://example.org/{n}": record for n in range(200)})
    (small_disk / "cluster.jsonl").write_text("before\n")
    with pytest.raises(ConfigError, match=r"No space left on device"):
        export_to(redis_server, cluster_name, small_disk / "cluster.jsonl")
    assert sorted(path.name for path in small_disk.iterdir()) == ["cluster.jsonl"]
    assert (small_disk / "cluster.jsonl").read_text() == "before\n"


def test_an_existing_file_is_replaced_whole(tmp_path: Path, redis_server: str, cluster_name: str) -> None:
    finish(redis_server, cluster_name, [Status.OK])
    (tmp_path / "cluster.jsonl").write_text('{"run_id": "old"}\n' * 50)
    export_to(redis_server, cluster_name, tmp_path / "cluster.jsonl")
    assert [record["run_id"] for record in lines(tmp_path / "cluster.jsonl")] == [f"cluster-{cluster_name}"] * 2


def test_a_password_in_a_kept_url_is_not_exported(
    tmp_path: Path, client: Any, redis_server: str, cluster_name: str
) -> None:
    record = {"status": "ok", "url": "https://user:secret@example.org/x", "started_at": START.isoformat()}
    client.hset(cluster_keys(cluster_name)["records"], "https://example.org/x", json.dumps(record))
    export_to(redis_server, cluster_name, tmp_path / "cluster.jsonl")
    assert "secret" not in (tmp_path / "cluster.jsonl").read_text()
    assert lines(tmp_path / "cluster.jsonl")[0]["url"] == "https://example.org/x"


def test_a_kept_value_that_is_no_record_is_left_out_and_counted(
    tmp_path: Path, client: Any, redis_server: str, cluster_name: str
) -> None:
    finish(redis_server, cluster_name, [Status.OK])
    client.hset(cluster_keys(cluster_name)["records"], mapping={"https://example.org/a": "{cut", "b": "[1]"})
    exported = export_to(redis_server, cluster_name, tmp_path / "cluster.jsonl")
    assert (exported.records, exported.unreadable) == (1, 2)
    assert len(lines(tmp_path / "cluster.jsonl")) == 2


def test_the_records_are_streamed_not_held(
    tmp_path: Path, client: Any, redis_server: str, cluster_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "EXPORT_BATCH", 100)
    record = json.dumps({"status": "ok", "url": "https://example.org/x", "error": "x" * 400})
    with client.pipeline(transaction=False) as pipe:
        for start in range(0, 10_000, 1000):
            pipe.hset(cluster_keys(cluster_name)["records"],
                      mapping={f"https://example.org/{n}": record for n in range(start, start + 1000)})  # fmt: skip
        pipe.execute()
    tracemalloc.start()
    try:
        export_to(redis_server, cluster_name, tmp_path / "cluster.jsonl")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = (tmp_path / "cluster.jsonl").stat().st_size
    assert size > 5_000_000
    assert peak < size / 10


def test_records_can_be_written_to_an_open_stream(redis_server: str, cluster_name: str) -> None:
    finish(redis_server, cluster_name, [Status.OK, Status.FAILED])
    stream = io.BytesIO()
    exported = write_records(redis_server, cluster_name, stream)
    assert exported.records == 2
    assert [json.loads(line).get("record") for line in stream.getvalue().splitlines()] == [None, None, "run"]
