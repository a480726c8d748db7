"""fetcher.report.reader: a report read back as typed records, cut lines skipped with a warning."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from fetcher._result import FIELDS, Result, Status
from fetcher.report import ReportWriter, is_run, read_report
from fetcher.report.reader import MAX_WARNINGS

from .samples import NOW, result, run_record


def _report(path: Path, *results: Result, run: bool = False) -> Path:
    with ReportWriter(path) as writer:
        for item in results:
            writer.write(item)
        if run:
            writer.write_run(run_record(ended="interrupted"))
    return path


@pytest.mark.parametrize("name", ["report.jsonl", "report.csv"])
def test_url_records_come_back_typed_with_every_field(tmp_path: Path, name: str) -> None:
    path = _report(tmp_path / name, result(1), result(2, status=Status.FAILED, path=None, http_status=None))
    first, second = read_report(path).urls()
    assert first == result(1).to_record()
    assert list(second) == list(FIELDS)
    assert (second["line"], second["http_status"], second["wait_s"], second["path"]) == (2, None, 0.25, None)


@pytest.mark.parametrize("name", ["report.jsonl", "report.csv"])
def test_a_cut_line_is_skipped_with_a_warning_and_the_rest_is_read(
    tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = _report(tmp_path / name, result(1))
    cut = b'run-1,2,"https://exa' if name.endswith("csv") else b'{"run_id": "r'
    path.write_bytes(path.read_bytes() + cut)
    _report(path, result(3))
    report = read_report(path)
    with caplog.at_level(logging.WARNING, logger="fetcher"):
        lines = [record["line"] for record in report.urls()]
    assert lines == [1, 3] and report.skipped == 1
    line_number = 3 if name.endswith("csv") else 2
    assert [record.getMessage() for record in caplog.records] == [
        f"{path} line {line_number} is not a whole record; skipped"
    ]


def test_garbage_is_counted_but_only_the_first_lines_are_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "report.jsonl"
    path.write_bytes(b"\x1f\x8b garbage\n" * (MAX_WARNINGS + 5))
    report = read_report(path)
    with caplog.at_level(logging.WARNING, logger="fetcher"):
        assert list(report) == []
    assert report.skipped == MAX_WARNINGS + 5
    assert len(caplog.records) == MAX_WARNINGS


def test_a_csv_row_that_is_not_typed_right_is_skipped(tmp_path: Path) -> None:
    path = _report(tmp_path / "report.csv", result(1))
    path.write_bytes(path.read_bytes() + b"run-1,two," + b"," * (len(FIELDS) - 3) + b"\n")
    report = read_report(path)
    assert [record["line"] for record in report.urls()] == [1] and report.skipped == 1


def test_a_csv_row_with_more_cells_than_its_header_gets_the_newer_fields(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    old_header = ",".join(FIELDS[: FIELDS.index("attempts")])  # a report started by 0.1: no attempts and after
    path.write_text(old_header + "\n", encoding="utf-8")
    _report(path, result(1, attempts=2, resumed_from=10, waited_on="slots"))
    [record] = read_report(path).urls()
    assert (record["attempts"], record["resumed_from"], record["waited_on"]) == (2, 10, "slots")


def test_a_csv_report_started_by_0_2_0_gets_the_slot_times_of_newer_rows(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    path.write_text(",".join(FIELDS[: FIELDS.index("waited_on") + 1]) + "\n", encoding="utf-8")
    _report(path, result(1, slot_taken_at=NOW, slot_released_at=NOW + timedelta(microseconds=1500)))
    [record] = read_report(path).urls()
    assert (record["slot_taken_at"], record["slot_released_at"]) == (
        "2024-05-01T12:00:00.123456+00:00",
        "2024-05-01T12:00:00.124956+00:00",
    )


def test_a_jsonl_record_of_an_older_version_gets_none_for_the_newer_fields(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl"
    old = {name: value for name, value in result(1).to_record().items() if name != "waited_on"}
    path.write_text(json.dumps(old) + "\n", encoding="utf-8")
    [record] = read_report(path).urls()
    assert record["waited_on"] is None and list(record) == list(FIELDS)


@pytest.mark.parametrize("name", ["report.jsonl", "report.csv"])
def test_run_records_are_read_from_the_report_or_the_csv_side_file(tmp_path: Path, name: str) -> None:
    path = _report(tmp_path / name, result(1), run=True)
    report = read_report(path)
    assert list(report.runs()) == [run_record(ended="interrupted").to_record()]
    assert [is_run(record) for record in report] == [False, True]


def test_a_csv_report_without_a_side_file_has_no_run_records(tmp_path: Path) -> None:
    path = _report(tmp_path / "report.csv", result(1))
    assert list(read_report(path).runs()) == []


def test_a_record_of_an_unknown_kind_is_passed_over_quietly(tmp_path: Path) -> None:
    path = _report(tmp_path / "report.jsonl", result(1))
    path.write_bytes(path.read_bytes() + b'{"record": "host", "host": "example.com"}\n')
    report = read_report(path)
    assert [record["line"] for record in report] == [1] and report.skipped == 0
