"""fetcher._result: Result.to_record(), Result.to_json() and Tally."""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest

from fetcher._result import FIELDS, Result, Status, Tally, duplicate_error

STARTED = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)


def _result(status: Status = Status.OK, **changes: Any) -> Result:
    values: dict[str, Any] = {
        "run_id": "run-1",
        "line": 1,
        "url": "https://example.com/a.txt",
        "status": status,
        "started_at": STARTED,
        "finished_at": STARTED + timedelta(seconds=1.5),
    }
    values.update(changes)
    return Result(**values)


def test_record_keys_are_the_fields_in_order() -> None:
    assert tuple(_result().to_record()) == FIELDS


@pytest.mark.parametrize(
    ("status", "value"),
    [
        (Status.OK, "ok"),
        (Status.FAILED, "failed"),
        (Status.ACQUIRE_TIMEOUT, "acquire-timeout"),
        (Status.INVALID, "invalid"),
        (Status.DUPLICATE, "duplicate"),
    ],
)
def test_record_status_is_the_status_value(status: Status, value: str) -> None:
    record_status = _result(status).to_record()["status"]
    assert record_status == value
    assert type(record_status) is str


def test_record_datetimes_are_iso_8601_with_timezone() -> None:
    record = _result().to_record()
    for key in ("started_at", "finished_at"):
        parsed = datetime.fromisoformat(record[key])
        assert parsed.tzinfo is not None
    assert datetime.fromisoformat(record["finished_at"]) - datetime.fromisoformat(record["started_at"]) == timedelta(
        seconds=1.5
    )


def test_record_path_is_a_string() -> None:
    assert _result(path=Path("rfcs") / "rfc791.txt").to_record()["path"] == str(Path("rfcs") / "rfc791.txt")


def test_record_path_is_none_without_a_file() -> None:
    assert _result(Status.FAILED).to_record()["path"] is None


def test_result_is_frozen() -> None:
    result = _result()
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.bytes = 5  # type: ignore[misc]


def test_result_ok_is_true_only_for_ok_status() -> None:
    assert _result(Status.OK).ok
    assert not _result(Status.FAILED).ok


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        ([], 0),
        ([Status.OK, Status.OK], 0),
        ([Status.OK, Status.FAILED], 1),
        ([Status.INVALID], 1),
        ([Status.OK, Status.ACQUIRE_TIMEOUT], 3),
        ([Status.ACQUIRE_TIMEOUT], 3),
        ([Status.FAILED, Status.ACQUIRE_TIMEOUT], 1),
        ([Status.INVALID, Status.ACQUIRE_TIMEOUT, Status.OK], 1),
        ([Status.OK, Status.DUPLICATE], 0),
        ([Status.DUPLICATE, Status.FAILED], 1),
    ],
)
def test_tally_exit_code(statuses: list[Status], code: int) -> None:
    tally = Tally()
    for status in statuses:
        tally.add(_result(status))
    assert tally.exit_code == code


def test_tally_counts_each_status_and_the_total() -> None:
    tally = Tally()
    for status in (Status.OK, Status.OK, Status.FAILED):
        tally.add(_result(status))
    assert (tally.counts[Status.OK], tally.counts[Status.FAILED], tally.total) == (2, 1, 3)


def test_tally_bytes_sums_only_ok_results() -> None:
    tally = Tally()
    tally.add(_result(Status.OK, bytes=10))
    tally.add(_result(Status.OK, bytes=5))
    tally.add(_result(Status.FAILED, bytes=7))
    assert tally.bytes == 15


def test_a_duplicate_succeeds_and_has_its_own_count() -> None:
    tally = Tally()
    tally.add(_result(Status.OK, bytes=10))
    duplicate = _result(Status.DUPLICATE, line=4, attempts=0, error=duplicate_error(1))
    tally.add(duplicate)
    assert duplicate.ok
    assert (tally.counts[Status.DUPLICATE], tally.counts[Status.OK], tally.bytes) == (1, 1, 10)


def test_a_duplicates_error_names_the_line_that_was_kept() -> None:
    assert _result(Status.DUPLICATE, error=duplicate_error(3)).to_record()["error"] == "same as line 3"


# -- to_json: the report's JSON line, as json.dumps writes the record ---------------------------


class _Weird(float):
    """A float subclass (as numpy's float64 is): json writes it as a float."""


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"path": Path("/dest/a.txt"), "http_status": 200, "bytes": 2048, "wait_s": 0.25, "ttfb_s": 0.0012345678,
         "download_s": 0.000234, "total_s": 0.0123456, "error": None, "attempts": 2, "resumed_from": 1024,
         "waited_on": "slots", "slot_taken_at": STARTED, "slot_released_at": STARTED + timedelta(microseconds=7)},
        {"url": "https://example.com/\x1b[2J\u202e\"quoted\"\\back\u00e9\U0001f600", "error": "a\nb\tc \u2028"},
        {"path": Path("/dest/caf\u00e9 \x07.txt"), "run_id": "run \"1\""},
        {"wait_s": 5e-05, "ttfb_s": 1e-07, "download_s": 123456789.123456789, "total_s": 0.0},
        {"wait_s": 0.00009999995, "ttfb_s": 999999.9999996, "download_s": 1e6, "total_s": 3},
        {"wait_s": float("nan"), "ttfb_s": float("inf"), "download_s": -0.5, "total_s": -0.0},
        {"wait_s": _Weird(0.5), "total_s": _Weird(1e-5)},
        {"http_status": HTTPStatus.NOT_FOUND, "status": Status.FAILED, "error": "HTTP 404"},
        {"started_at": datetime(2024, 5, 1, 12, 0, 0, 999999, tzinfo=timezone(timedelta(hours=2))),
         "finished_at": datetime(2024, 5, 1, 12, 0, 0), "slot_taken_at": datetime(2024, 5, 1, 12, 0, 0),
         "slot_released_at": datetime(1999, 12, 31, 23, 59, 59, 0, tzinfo=timezone(timedelta(hours=-5)))},
        {"started_at": datetime(2024, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
         "finished_at": datetime(2025, 1, 1, 0, 0, 0, 500, tzinfo=timezone.utc),
         "slot_taken_at": datetime(2025, 1, 1, 0, 0, 0, 0, tzinfo=timezone.utc)},
    ],
    ids=["nones", "every-field", "hostile-url", "odd-path", "tiny-and-huge", "rounding-edges", "nan-inf-negative",
         "float-subclass", "int-enum", "other-time-zones", "year-end"],
)  # fmt: skip
def test_to_json_is_what_json_dumps_writes_for_the_record(changes: dict[str, Any]) -> None:
    result = _result(**changes)
    assert result.to_json() == json.dumps(result.to_record(), ensure_ascii=True)


def test_to_json_of_a_field_of_an_unexpected_type_is_still_json_dumps() -> None:
    result = _result(line="7", bytes=2.5)  # built by hand, past the type hints
    assert result.to_json() == json.dumps(result.to_record(), ensure_ascii=True)


def test_to_json_writes_every_second_count_as_round_to_microseconds_does() -> None:
    rng = random.Random(18)
    values = [10 ** rng.uniform(-8, 8) * rng.random() for _ in range(2_000)]
    values += [round(rng.random() * 10 ** rng.randint(0, 6), rng.randint(0, 8)) for _ in range(2_000)]
    for value in values:
        result = _result(total_s=value, wait_s=value / 3)
        assert result.to_json() == json.dumps(result.to_record()), value


def test_record_times_are_isoformat_at_every_minute_second_and_millisecond() -> None:
    rng = random.Random(18)
    base = datetime(2024, 2, 28, 23, 0, tzinfo=timezone.utc)
    # More minutes than the cache of minutes keeps, so it is emptied and filled again on the way.
    moments = [base + timedelta(seconds=rng.uniform(0, 3 * 86400)) for _ in range(5_000)]
    moments += [base + timedelta(minutes=minute, microseconds=999_999) for minute in range(200)]
    for moment in moments:
        record = _result(started_at=moment, slot_taken_at=moment).to_record()
        assert record["started_at"] == moment.isoformat(timespec="milliseconds")
        assert record["slot_taken_at"] == moment.isoformat(timespec="microseconds")
