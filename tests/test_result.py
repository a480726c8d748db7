"""fetcher._result: Result.to_record() and Tally."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
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
