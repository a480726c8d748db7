"""fetcher.report.summary: what one run did, as numbers."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from fetcher._result import Result, Status
from fetcher.report import ReportWriter, read_report
from fetcher.report.summary import INVALID_HOST, Summary, percentile, seconds_text, summarise
from fetcher.report.which_run import pick_run, runs_in

from .samples import NOW, at, download, result, run_record
from .simulated import simulated_run


def summary_of(*records: dict[str, Any], run_id: str | None = None) -> Summary:
    return summarise(pick_run(runs_in(records), run_id))


def test_statuses_are_counted_and_only_successes_count_bytes() -> None:
    summary = summary_of(
        download(1, 0, 0, 1, bytes=100),
        download(2, 0, 0, 1, bytes=50, status=Status.UNCHANGED),
        download(3, 0, 0, 1, bytes=7, status=Status.FAILED, path=None, error="HTTP 500"),
    )
    assert summary.statuses == {"ok": 1, "unchanged": 1, "failed": 1}
    assert (summary.urls, summary.bytes) == (3, 150)


def test_urls_with_more_than_one_attempt_count_as_retried() -> None:
    summary = summary_of(download(1, 0, 0, 1, attempts=3), download(2, 0, 0, 1), download(3, 0, 0, 1, attempts=2))
    assert summary.retried == 2


def test_the_limits_that_held_urls_back_are_counted() -> None:
    summary = summary_of(download(1, 0, 1, 1), download(2, 0, 1, 1, waited_on="host"), download(3, 0, 1, 1))
    assert summary.waited_on == {"slots": 2, "host": 1}


def test_wall_time_comes_from_the_run_record() -> None:
    run = run_record(started_at=at(-1), finished_at=at(9)).to_record()
    summary = summary_of(download(1, 0, 0, 2), run)
    assert (summary.run_record, summary.wall_s) == (True, cast(object, pytest.approx(10)))
    assert summary.ended == "finished"


def test_a_run_without_a_run_record_is_timed_from_its_first_start_to_its_last_finish() -> None:
    summary = summary_of(download(1, 0, 0, 2), download(2, 1, 0, 4))
    assert (summary.run_record, summary.ended, summary.wall_s) == (False, None, cast(object, pytest.approx(5)))
    assert summary.started_at == NOW.isoformat(timespec="milliseconds")


def test_the_slots_are_all_busy_while_max_downloads_are_in_flight() -> None:
    # --max 2: two downloads overlap from 1 s to 3 s.  Records without the slot's times (0.2.0): rebuilt.
    run = run_record(options={"max": 2}).to_record()
    summary = summary_of(download(1, 0, 0, 3), download(2, 0, 1, 3), download(3, 0, 4, 1), run)
    assert (summary.slots, summary.slots_from, summary.peak_in_use) == (2, "max", 2)
    assert summary.all_busy_s == pytest.approx(2)


def test_millisecond_downloads_that_keep_every_slot_taken_read_as_all_busy() -> None:
    # --max 3, 10 URLs of 1.2 ms one after another in each slot, the slots 0.4 ms apart: all three are taken
    # from 0.8 ms to 12 ms.  To the millisecond of started_at and finished_at, nothing of this would show.
    records: list[dict[str, Any]] = []
    for slot in range(3):
        for turn in range(10):
            taken = slot * 0.0004 + turn * 0.0012
            held = {"slot_taken_at": at(taken), "slot_released_at": at(taken + 0.0012)}
            records.append(download(len(records) + 1, 0, taken, 0.0012, **held))
    summary = summary_of(*records, run_record(options={"max": 3}, finished_at=at(0.013)).to_record())
    assert (summary.peak_in_use, summary.all_busy_s) == (3, cast(object, pytest.approx(0.0112, abs=1e-5)))


def test_without_a_run_record_the_peak_in_use_stands_for_max() -> None:
    summary = summary_of(download(1, 0, 0, 3), download(2, 0, 1, 3), download(3, 0, 0, 1))
    assert (summary.slots, summary.slots_from) == (2, "peak")
    assert summary.all_busy_s == pytest.approx(3)  # 0-1 s and 1-3 s


def test_a_retried_url_holds_a_slot_for_its_last_attempt_only() -> None:
    # Ready at 0, first slot at 0, finished at 10 after a 2 s last attempt: in a slot 8-10 s.
    retried = download(1, 0, 0, 10, attempts=2, ttfb_s=0.5, download_s=1.5)
    summary = summary_of(retried, download(2, 0, 0, 9), run_record(options={"max": 2}).to_record())
    assert summary.all_busy_s == pytest.approx(1)


def test_urls_that_asked_nothing_hold_no_slot() -> None:
    nothing = {"attempts": 0, "ttfb_s": None, "download_s": None, "path": None}
    summary = summary_of(
        download(1, 0, 5, 0, status=Status.ACQUIRE_TIMEOUT, **nothing),
        download(2, 0, 0, 0, status=Status.SKIPPED, **nothing),
        download(3, 0, 0, 2),
    )
    assert summary.peak_in_use == 1


def test_per_host_spreads_are_median_and_95th_percentile() -> None:
    records = [download(line, 0, line, 1, url=f"https://a.example/{line}") for line in range(1, 21)]
    (host,) = summary_of(*records).hosts
    assert (host.host, host.urls, host.bytes) == ("a.example:443", 20, 20 * 42)
    assert (host.wait_s.median, host.wait_s.p95) == pytest.approx((10.5, 19.05))
    assert host.ttfb_s.median == pytest.approx(0.5)


def test_hosts_are_listed_most_urls_first_with_invalid_urls_apart() -> None:
    summary = summary_of(
        download(1, 0, 0, 1, url="https://b.example/1"),
        download(2, 0, 0, 1, url="https://a.example:8443/2"),
        download(3, 0, 0, 1, url="https://a.example:8443/3"),
        download(4, 0, 0, 0, url="htp:/nowhere", status=Status.INVALID, wait_s=None, attempts=0),
        download(5, 0, 0, 0, url="https://x.example:99999/", status=Status.FAILED),
    )
    assert [(h.host, h.urls) for h in summary.hosts] == [
        ("a.example:8443", 2),
        ("b.example:443", 1),
        (INVALID_HOST, 2),
    ]


def test_the_slowest_are_the_longest_requested_ones_slowest_first() -> None:
    records = [download(line, 0, 0, line) for line in range(1, 9)]
    records.append(download(9, 0, 60, 0, status=Status.ACQUIRE_TIMEOUT, attempts=0))
    assert [u.line for u in summary_of(*records).slowest] == [8, 7, 6, 5, 4]


def test_urls_that_gave_up_waiting_are_counted_and_named_by_line() -> None:
    summary = summary_of(
        download(7, 0, 30, 0, status=Status.ACQUIRE_TIMEOUT, attempts=0),
        download(2, 0, 30, 0, status=Status.ACQUIRE_TIMEOUT, attempts=0, waited_on="host"),
        download(3, 0, 0, 1),
    )
    assert summary.gave_up == 2
    assert [(u.line, u.wait_s, u.waited_on) for u in summary.gave_up_urls] == [(2, 30, "host"), (7, 30, "slots")]


def test_a_record_without_usable_times_is_counted_not_raised() -> None:
    broken = download(2, 0, 0, 1) | {"started_at": "yesterday"}
    garbage = download(3, 0, 0, 1) | {"bytes": "many"}
    summary = summary_of(download(1, 0, 0, 1), broken, garbage)
    assert (summary.urls, summary.unusable) == (1, 2)


def _write(path: Path, results: list[Result], run: Any = None) -> Path:
    with ReportWriter(path) as writer:
        for item in results:
            writer.write(item)
        if run is not None:
            writer.write_run(run)
    return path


def _from_file(path: Path) -> Summary:
    report = read_report(path)
    records = list(report)
    return summarise(pick_run(runs_in(records)), skipped_lines=report.skipped)


def test_a_csv_report_gives_the_same_summary_as_json_lines(tmp_path: Path) -> None:
    results, run = simulated_run(200, acquire_timeout=5.0)
    earlier, _ = simulated_run(30, run_id="earlier", start=NOW - timedelta(days=1))
    jsonl = _write(tmp_path / "r.jsonl", earlier + results, run)
    csv = _write(tmp_path / "r.csv", earlier + results, run)
    summary = _from_file(jsonl)
    assert summary == _from_file(csv)
    assert set(summary.statuses) == {"ok", "unchanged", "failed", "acquire-timeout", "invalid"}
    assert summary.retried and summary.gave_up and summary.urls == 200


def test_a_cut_last_line_is_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path / "r.jsonl", [result(1), result(2)])
    with open(path, "a") as stream:
        stream.write('{"run_id": "run-1", "line": 3, "url": "https://exa')
    with caplog.at_level(logging.WARNING, logger="fetcher"):
        summary = _from_file(path)
    assert (summary.urls, summary.skipped_lines) == (2, 1)
    assert "line 3 is not a whole record" in caplog.text


def test_ten_thousand_records_read_and_summarise_in_well_under_a_second(tmp_path: Path) -> None:
    # 100,000 took 2.7 s here (read 1.5 s): 10,000 should take 0.3 s; the bound is wide for busy machines.
    results, run = simulated_run(10_000, slots=16, acquire_timeout=600.0)
    path = _write(tmp_path / "big.jsonl", results, run)
    began = time.perf_counter()
    summary = _from_file(path)
    assert time.perf_counter() - began < 2.5
    assert summary.urls == 10_000


def test_percentiles_interpolate_between_the_nearest_two() -> None:
    assert percentile([], 0.5) is None
    assert percentile([4.0], 0.95) == 4.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([0.0, 10.0], 0.95) == pytest.approx(9.5)


def test_seconds_read_as_a_person_writes_them() -> None:
    assert [seconds_text(s) for s in (None, 0.0421, 3.214, 42.46, 192.4, 5400)] == [
        "-",
        "0.0421s",
        "3.21s",
        "42.5s",
        "3m12s",
        "1h30m",
    ]


def test_the_summary_is_plain_json_for_scripts() -> None:
    record = summary_of(download(1, 0, 0, 1)).to_record()
    assert record["statuses"] == {"ok": 1}
    assert record["hosts"][0]["wait_s"] == {"count": 1, "median": 0.0, "p95": 0.0}
    assert record["slowest"][0]["url"] == "https://example.com/1.txt"


def test_each_host_has_its_adaptive_limit_from_the_run_record() -> None:
    limits = {"a.example:443": {"cap": 8, "final": 3, "lowest": 1, "limits": [[0.0, 2], [1.5, 1], [3.0, 3]]}}
    run = run_record(adaptive=limits).to_record()
    summary = summary_of(download(1, 0, 0, 1, url="https://a.example/1"), run)
    [host] = summary.hosts
    assert host.limit is not None
    assert (host.limit.cap, host.limit.final, host.limit.lowest) == (8, 3, 1)
    assert host.limit.points == ((0.0, 2), (1.5, 1), (3.0, 3))
    assert summary.to_record()["hosts"][0]["limit"]["final"] == 3


@pytest.mark.parametrize("entry", ["3", {"cap": 8, "final": "3", "lowest": 1}, {"cap": True, "final": 1, "lowest": 1}])
def test_an_adaptive_entry_that_is_not_a_limit_is_left_out(entry: object) -> None:
    run = {**run_record().to_record(), "adaptive": {"a.example:443": entry}}  # as a person might edit it
    [host] = summary_of(download(1, 0, 0, 1, url="https://a.example/1"), run).hosts
    assert host.limit is None


def test_a_run_without_adaptive_has_no_limits() -> None:
    [host] = summary_of(download(1, 0, 0, 1, url="https://a.example/1"), run_record().to_record()).hosts
    assert host.limit is None
