"""fetcher.report.which_run: which run of a report to summarise, and its records, kept from one read where it can."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from fetcher._errors import ConfigError
from fetcher.report.which_run import RECORDS_KEPT, USED_FIELDS, pick_run, read_run, runs_in

from .samples import at, download, run_record


def test_the_default_run_is_the_one_that_started_last() -> None:
    later = download(1, 100, 0, 1, run_id="later")
    earlier = download(1, 0, 0, 1, run_id="earlier")
    runs = runs_in([later, earlier, run_record(run_id="earlier", started_at=at(0), finished_at=at(1)).to_record()])
    assert [run.run_id for run in runs] == ["earlier", "later"]
    assert pick_run(runs).run_id == "later"
    assert pick_run(runs, "earlier").run is not None


def test_an_unknown_run_names_the_last_runs() -> None:
    runs = runs_in(download(1, n, 0, 1, run_id=f"run-{n}") for n in range(8))
    with pytest.raises(ConfigError, match="no run 'nope' in the report; its last runs: run-3, .*, run-7$"):
        pick_run(runs, "nope")


def test_a_report_without_records_has_no_run_to_summarise() -> None:
    with pytest.raises(ConfigError, match="no records"):
        pick_run(runs_in([]))


def nightly(runs: int, urls: int) -> list[dict[str, Any]]:
    """A report a cron job appended to *runs* times, a day apart: *urls* URL records and a run record each."""
    return list(nightly_as_read(runs, urls))


def nightly_as_read(runs: int, urls: int) -> Iterator[dict[str, Any]]:
    """``nightly``, each record made as it is read."""
    for day in range(runs):
        start = day * 86_400.0
        run_id = f"day-{day}"
        for line in range(1, urls + 1):
            yield download(line, start + line, 0, 1, run_id=run_id)
        yield run_record(run_id=run_id, started_at=at(start), finished_at=at(start + urls + 1)).to_record()


def test_one_read_keeps_the_last_run_of_a_report_a_run_at_a_time() -> None:
    records = nightly(runs=3, urls=4)
    read = read_run(records)
    assert read.ids == ["day-0", "day-1", "day-2"] and read.chosen == "day-2"
    assert read.run is not None
    whole = pick_run(runs_in(records))
    assert [r["line"] for r in read.run.urls] == [r["line"] for r in whole.urls]
    assert list(read.run.spans) == whole.spans and read.run.run == whole.run


def test_the_records_kept_hold_the_fields_the_summary_reads() -> None:
    read = read_run(nightly(runs=1, urls=2))
    assert read.run is not None
    assert [set(r) for r in read.run.urls] == [set(USED_FIELDS)] * 2


def test_a_run_asked_for_is_kept_from_one_read() -> None:
    read = read_run(nightly(runs=3, urls=4), "day-0")
    assert read.run is not None and read.run.run_id == "day-0" and len(read.run.urls) == 4


def test_runs_written_in_turns_need_a_second_read_that_keeps_the_chosen_one() -> None:
    first, second = nightly(runs=2, urls=3)[:4], nightly(runs=2, urls=3)[4:]
    turns = [first[0], second[0], *first[1:], *second[1:]]  # day-1 wrote a record while day-0 was writing
    read = read_run(turns)
    assert (read.chosen, read.run) == ("day-1", None)
    again = read_run(turns, only=read.chosen)
    assert again.run is not None and [r["line"] for r in again.run.urls] == [1, 2, 3]


def test_a_run_that_appeared_first_but_started_last_needs_a_second_read() -> None:
    later = [download(1, 100, 0, 1, run_id="later")]
    earlier = [download(1, 0, 0, 1, run_id="earlier"), download(2, 1, 0, 1, run_id="earlier")]
    read = read_run([*later, *earlier])
    assert (read.ids, read.chosen, read.run) == (["earlier", "later"], "later", None)
    again = read_run([*later, *earlier], only="later")
    assert again.run is not None and len(again.run.urls) == 1


def test_a_run_with_only_a_run_record_needs_no_second_read() -> None:
    records = [
        *nightly(runs=1, urls=2),
        run_record(run_id="empty", started_at=at(90_000), finished_at=at(90_001)).to_record(),
    ]
    read = read_run(records)
    assert read.chosen == "empty" and read.run is not None and read.run.urls == []


def test_an_unknown_run_is_said_as_pick_run_says_it_and_no_record_is_no_run() -> None:
    with pytest.raises(ConfigError, match="no run 'nope' in the report; its last runs: day-0, day-1$"):
        read_run(nightly(runs=2, urls=1), "nope")
    nothing = read_run([])
    assert (nothing.ids, nothing.chosen, nothing.run) == ([], None, None)


def test_one_read_holds_one_run_of_a_long_report_at_a_time() -> None:
    one_run = nightly(runs=1, urls=300)

    def peak_while_reading(runs: int) -> int:
        # Each night's records made as they are read (the same times: the last night is the one chosen).
        as_read = ({**record, "run_id": f"night-{night}"} for night in range(runs) for record in one_run)
        tracemalloc.start()
        try:
            read = read_run(as_read)
            assert read.run is not None and read.chosen == f"night-{runs - 1}" and len(read.run.urls) == 300
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak_while_reading(1)  # the first read's one-off allocations (caches, interned texts) apart
    assert peak_while_reading(50) < 1.5 * peak_while_reading(1)


def test_a_run_past_the_records_kept_keeps_each_place_on_the_clock_in_a_fraction_of_the_memory() -> None:
    urls = RECORDS_KEPT * 3
    records = [download(line, float(line), 0.5, 1, run_id="long") for line in range(1, urls + 1)]
    whole = pick_run(runs_in(records))
    tracemalloc.start()
    try:
        read = read_run(iter(records))
        kept = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert read.run is not None and read.run.urls == []
    assert list(read.run.spans) == whole.spans
    assert kept < 100 * urls  # a list of Span objects: about 400 bytes a URL
