"""fetcher.report.tally: a run's records added up one by one, as a stable sort of them all would name them."""

from __future__ import annotations

from fetcher._result import Status
from fetcher.report.tally import SLOWEST, Tally

from .samples import download


def tally_of(*records: dict[str, object]) -> Tally:
    tally = Tally()
    for record in records:
        tally.add(record)
    return tally


def test_the_slowest_are_named_slowest_first_and_of_equal_times_the_first_in_the_file() -> None:
    records = [download(line, 0, 0, took) for line, took in enumerate([1, 5, 3, 5, 2, 5, 4, 0.5], start=1)]
    assert [r["line"] for r in tally_of(*records).slowest()] == [2, 4, 6, 7, 3][:SLOWEST]


def test_only_requested_urls_count_among_the_slowest_and_in_the_hosts_total_times() -> None:
    gave_up = download(1, 0, 30, 0, status=Status.ACQUIRE_TIMEOUT, attempts=0)
    tally = tally_of(gave_up, download(2, 0, 0, 1))
    assert [r["line"] for r in tally.slowest()] == [2]
    [host] = tally.hosts.values()
    assert (list(host.total_s), list(host.wait_s)) == ([1.0], [30.0, 0.0])


def test_the_first_that_gave_up_are_named_by_line_and_of_equal_lines_in_file_order() -> None:
    gave_up = [download(line, 0, 30, 0, status=Status.ACQUIRE_TIMEOUT, attempts=0, url=f"https://a/{n}")
               for n, line in enumerate([9, 3, 3, 1])]  # fmt: skip
    tally = tally_of(*gave_up)
    assert (tally.gave_up, [r["url"] for r in tally.first_gave_up()]) == (
        4,
        ["https://a/3", "https://a/1", "https://a/2", "https://a/0"],
    )


def test_bytes_are_those_of_the_urls_that_succeeded() -> None:
    tally = tally_of(download(1, 0, 0, 1, bytes=10), download(2, 0, 0, 1, bytes=5, status=Status.FAILED))
    assert (tally.bytes, tally.statuses) == (10, {"ok": 1, "failed": 1})
