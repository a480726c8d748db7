"""fetcher._report: ReportWriter appends one record per Result, as JSON Lines or CSV."""

from __future__ import annotations

import csv
import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from fetcher.report import ReportWriter
from fetcher._result import FIELDS, Result, Status

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
HOSTILE_URL = "https://example.com/\x1b[2J\x1b]0;pwned\x07\r\nfake line"


def _result(line: int = 1, **changes: Any) -> Result:
    values: dict[str, Any] = {
        "run_id": "run-1",
        "line": line,
        "url": f"https://example.com/{line}.txt",
        "status": Status.OK,
        "path": Path(f"/dest/{line}.txt"),
        "http_status": 200,
        "bytes": 42,
        "started_at": NOW,
        "finished_at": NOW,
    }
    values.update(changes)
    return Result(**values)


def _write(path: Path, *results: Result) -> None:
    with ReportWriter(path) as writer:
        for result in results:
            writer.write(result)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def test_jsonl_writes_one_object_per_line_with_every_field(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl"
    _write(path, _result(1), _result(2))
    records = _jsonl(path)
    assert [list(record) for record in records] == [list(FIELDS), list(FIELDS)]
    assert [record["line"] for record in records] == [1, 2]


def test_jsonl_is_the_format_for_any_other_suffix(tmp_path: Path) -> None:
    path = tmp_path / "report.log"
    _write(path, _result())
    assert _jsonl(path)[0]["url"] == "https://example.com/1.txt"


def test_jsonl_appends_across_runs_without_rewriting(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl"
    _write(path, _result(1, run_id="first"))
    before = path.read_bytes()
    _write(path, _result(1, run_id="second"))
    assert path.read_bytes().startswith(before)
    assert [record["run_id"] for record in _jsonl(path)] == ["first", "second"]


def test_jsonl_never_holds_a_raw_control_character(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl"
    _write(path, _result(url=HOSTILE_URL))
    data = path.read_bytes()
    assert b"\x1b" not in data and b"\x07" not in data and b"\r" not in data
    assert data.count(b"\n") == 1
    assert _jsonl(path)[0]["url"] == HOSTILE_URL


def test_csv_writes_the_header_once_across_runs(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    _write(path, _result(1))
    _write(path, _result(2))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(FIELDS)
    assert lines.count(",".join(FIELDS)) == 1
    assert [row["line"] for row in _csv(path)] == ["1", "2"]


def test_csv_suffix_is_case_insensitive(tmp_path: Path) -> None:
    path = tmp_path / "REPORT.CSV"
    _write(path, _result())
    assert path.read_text(encoding="utf-8").splitlines()[0] == ",".join(FIELDS)


def test_csv_rows_have_every_field_and_none_becomes_empty(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    _write(path, _result(status=Status.FAILED, path=None, http_status=None, error="connection refused"))
    [row] = _csv(path)
    assert list(row) == list(FIELDS)
    assert (row["status"], row["path"], row["http_status"], row["wait_s"]) == ("failed", "", "", "")
    assert row["error"] == "connection refused"


def test_csv_escapes_control_characters(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    _write(path, _result(url=HOSTILE_URL))
    data = path.read_bytes()
    assert b"\x1b" not in data and b"\x07" not in data and b"\r" not in data
    [row] = _csv(path)
    assert row["url"] == "https://example.com/\\x1b[2J\\x1b]0;pwned\\x07\\x0d\\x0afake line"


@pytest.mark.parametrize("name", ["report.jsonl", "report.csv"])
def test_missing_parent_folders_are_created(tmp_path: Path, name: str) -> None:
    path = tmp_path / "a" / "b" / name
    _write(path, _result())
    assert path.is_file()


def test_an_unwritable_path_raises_oserror(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "plain-file"
    not_a_folder.write_text("x")
    with pytest.raises(OSError):
        ReportWriter(not_a_folder / "report.jsonl")


@pytest.mark.parametrize("name", ["report.jsonl", "report.csv"])
def test_writes_from_many_threads_give_whole_lines(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with ReportWriter(path) as writer:

        def worker(thread: int) -> None:
            for i in range(50):
                writer.write(_result(thread * 1000 + i, error="x" * (i * 20)))

        threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10.0)
        assert not any(thread.is_alive() for thread in threads)
    records: list[dict[str, Any]] = _csv(path) if name.endswith(".csv") else _jsonl(path)
    assert len(records) == 400
    assert all(list(record) == list(FIELDS) for record in records)
    assert {int(record["line"]) for record in records} == {t * 1000 + i for t in range(8) for i in range(50)}
