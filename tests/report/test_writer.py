"""fetcher.report.writer: ReportWriter appends one record per Result (and per run), in batches, whole or not at all."""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from fetcher._result import FIELDS, Result, Status
from fetcher.report import ReportWriter
from fetcher.report.writer import BATCH_BYTES

from .samples import result, run_record

HOSTILE_URL = "https://example.com/\x1b[2J\x1b]0;pwned\x07\r\nfake line"


def _write(path: Path, *results: Result) -> None:
    with ReportWriter(path) as writer:
        for item in results:
            writer.write(item)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def test_jsonl_writes_one_object_per_line_with_every_field(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl"
    _write(path, result(1), result(2))
    records = _jsonl(path)
    assert [list(record) for record in records] == [list(FIELDS), list(FIELDS)]
    assert [record["line"] for record in records] == [1, 2]


def test_jsonl_is_the_format_for_any_other_suffix(tmp_path: Path) -> None:
    path = tmp_path / "report.log"
    _write(path, result())
    assert _jsonl(path)[0]["url"] == "https://example.com/1.txt"


def test_jsonl_appends_across_runs_without_rewriting(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl"
    _write(path, result(1, run_id="first"))
    before = path.read_bytes()
    _write(path, result(1, run_id="second"))
    assert path.read_bytes().startswith(before)
    assert [record["run_id"] for record in _jsonl(path)] == ["first", "second"]


def test_jsonl_never_holds_a_raw_control_character(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl"
    _write(path, result(url=HOSTILE_URL))
    data = path.read_bytes()
    assert b"\x1b" not in data and b"\x07" not in data and b"\r" not in data
    assert data.count(b"\n") == 1
    assert _jsonl(path)[0]["url"] == HOSTILE_URL


def test_csv_writes_the_header_once_across_runs(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    _write(path, result(1))
    _write(path, result(2))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(FIELDS)
    assert lines.count(",".join(FIELDS)) == 1
    assert [row["line"] for row in _csv(path)] == ["1", "2"]


def test_csv_suffix_is_case_insensitive(tmp_path: Path) -> None:
    path = tmp_path / "REPORT.CSV"
    _write(path, result())
    assert path.read_text(encoding="utf-8").splitlines()[0] == ",".join(FIELDS)


def test_csv_rows_have_every_field_and_none_becomes_empty(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    _write(path, result(status=Status.FAILED, path=None, http_status=None, wait_s=None, error="connection refused"))
    [row] = _csv(path)
    assert list(row) == list(FIELDS)
    assert (row["status"], row["path"], row["http_status"], row["wait_s"]) == ("failed", "", "", "")
    assert row["error"] == "connection refused"


def test_csv_escapes_control_characters(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    _write(path, result(url=HOSTILE_URL))
    data = path.read_bytes()
    assert b"\x1b" not in data and b"\x07" not in data and b"\r" not in data
    [row] = _csv(path)
    assert row["url"] == "https://example.com/\\x1b[2J\\x1b]0;pwned\\x07\\x0d\\x0afake line"


@pytest.mark.parametrize("name", ["report.jsonl", "report.csv"])
def test_missing_parent_folders_are_created(tmp_path: Path, name: str) -> None:
    path = tmp_path / "a" / "b" / name
    _write(path, result())
    assert path.is_file()


def test_a_path_below_a_file_is_refused_at_construction(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "plain-file"
    not_a_folder.write_text("x")
    with pytest.raises(NotADirectoryError):
        ReportWriter(not_a_folder / "sub" / "report.jsonl")


def test_a_folder_is_refused_at_construction(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        ReportWriter(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to a read-only file")
def test_a_read_only_file_is_refused_at_construction(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl"
    path.write_text("")
    path.chmod(0o444)
    with pytest.raises(PermissionError):
        ReportWriter(path)


@pytest.mark.parametrize("name", ["report.jsonl", "report.csv"])
def test_writes_from_many_threads_give_whole_lines(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with ReportWriter(path) as writer:

        def worker(thread: int) -> None:
            for i in range(50):
                writer.write(result(thread * 1000 + i, error="x" * (i * 20)))

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


# -- batches ----------------------------------------------------------------------------------


def test_records_wait_in_memory_until_flushed(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl"
    with ReportWriter(path, flush_s=60) as writer:
        writer.write(result(1))
        writer.write(result(2))
        assert not path.exists()
        assert writer.flush()
        assert [record["line"] for record in _jsonl(path)] == [1, 2]


def test_closing_writes_the_records_waiting(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    writer = ReportWriter(path, flush_s=60)
    writer.write(result(1))
    writer.close()
    assert [row["line"] for row in _csv(path)] == ["1"]


@pytest.mark.parametrize("name", ["report.jsonl", "report.csv"])
def test_a_batch_of_records_costs_one_write_and_one_fstat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    path = tmp_path / name
    calls = {"write": 0, "fstat": 0}
    real_write, real_fstat = os.write, os.fstat

    def counted(call: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(fd: int, *args: Any) -> Any:
            if os.path.realpath(f"/proc/self/fd/{fd}") == str(path.resolve()):
                calls[call] += 1
            return real(fd, *args)

        return wrapper

    with ReportWriter(path, flush_s=60) as writer:
        monkeypatch.setattr(os, "write", counted("write", real_write))
        monkeypatch.setattr(os, "fstat", counted("fstat", real_fstat))
        for line in range(1, 101):
            writer.write(result(line))
        writer.flush()
        assert calls == {"write": 1, "fstat": 1}
    assert len(_csv(path) if name.endswith(".csv") else _jsonl(path)) == 100


def test_a_batch_is_written_once_it_reaches_batch_bytes(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl"
    with ReportWriter(path, flush_s=60) as writer:
        line = 0
        while not path.exists():
            line += 1
            writer.write(result(line, error="x" * 1000))
            assert line * 1000 < 2 * BATCH_BYTES
        assert len(path.read_bytes()) >= BATCH_BYTES


def test_records_are_written_within_flush_s_without_a_flush(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl"
    with ReportWriter(path, flush_s=0.1) as writer:
        writer.write(result(1))
        deadline = time.monotonic() + 5.0
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [record["line"] for record in _jsonl(path)] == [1]
        writer.write(result(2))  # the writer's thread, once idle, takes the next batch too
        while len(_jsonl(path)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [record["line"] for record in _jsonl(path)] == [1, 2]


_KEEP_WRITING = """
import sys, time
from datetime import datetime, timezone
from pathlib import Path
from fetcher.report import ReportWriter
from tests.report.samples import result
writer = ReportWriter(Path(sys.argv[1]))
line = 0
while True:
    line += 1
    writer.write(result(line, error="e" * (line % 700), finished_at=datetime.now(timezone.utc)))
    time.sleep(0.001)
"""


def test_a_kill_at_any_instant_loses_at_most_the_last_second_and_leaves_only_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl"
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen([sys.executable, "-c", _KEEP_WRITING, str(path)], cwd=root)
    try:
        deadline = time.monotonic() + 20.0
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.7)
        killed_at = datetime.now(timezone.utc)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(10)
    # After the last newline: nothing, or the line the kill cut short (readers skip it).
    *whole, _cut = path.read_bytes().split(b"\n")
    records = [json.loads(line) for line in whole]
    assert [record["line"] for record in records] == list(range(1, len(records) + 1))
    assert datetime.fromisoformat(records[-1]["finished_at"]) >= killed_at - timedelta(seconds=1)


# -- cut lines, full disks ------------------------------------------------------------------


def test_a_jsonl_report_cut_mid_line_gets_the_next_record_on_a_line_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl"
    path.write_bytes(b'{"run_id": "killed", "line": 1, "wait_s": 0.0093')
    _write(path, result(2))
    lines = path.read_bytes().split(b"\n")
    assert lines[0] == b'{"run_id": "killed", "line": 1, "wait_s": 0.0093'
    assert json.loads(lines[1])["line"] == 2 and lines[2:] == [b""]


def test_a_csv_report_cut_mid_row_gets_the_next_row_on_a_line_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    _write(path, result(1))
    path.write_bytes(path.read_bytes() + b"killed,2,https://exa")
    _write(path, result(3))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[-2] == "killed,2,https://exa"
    assert lines[-1].startswith("run-1,3,")


def _failing_os_write(monkeypatch: pytest.MonkeyPatch, path: Path, *, raise_after_part: bool) -> Callable[[bool], None]:
    """os.write that, while switched on, writes half of a write to *path* and then fails with ENOSPC.

    raise_after_part: the failing call itself writes the half and raises; else it returns the short
    count (as Linux does) and the next call raises.  Other files are written as usual.
    """
    real_write = os.write
    state = {"on": False, "short": False}

    def fake(fd: int, data: bytes) -> int:
        if not state["on"] or os.path.realpath(f"/proc/self/fd/{fd}") != str(path.resolve()):
            return real_write(fd, data)
        if state["short"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        count = real_write(fd, bytes(data[: len(data) // 2]))
        if raise_after_part:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        state["short"] = True
        return count

    def switch(on: bool) -> None:
        state["on"], state["short"] = on, False

    monkeypatch.setattr(os, "write", fake)
    return switch


@pytest.mark.parametrize("raise_after_part", [False, True], ids=["short-write", "raise-after-part"])
@pytest.mark.parametrize("name", ["report.jsonl", "report.csv"])
def test_a_write_that_fails_half_way_leaves_no_part_of_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, raise_after_part: bool
) -> None:
    path = tmp_path / name
    with ReportWriter(path) as writer:
        writer.write(result(1))
        assert writer.flush()
        before = path.read_bytes()
        switch = _failing_os_write(monkeypatch, path, raise_after_part=raise_after_part)
        switch(True)
        writer.write(result(2, error="x" * 500))
        assert writer.flush() is False
    assert path.read_bytes() == before


def test_a_failed_write_is_counted_with_its_error_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "report.jsonl"
    writer = ReportWriter(path)
    assert (writer.lost, writer.first_error) == (0, None)
    switch = _failing_os_write(monkeypatch, path, raise_after_part=False)
    writer.write(result(1))
    writer.flush()
    switch(True)
    writer.write(result(2))
    writer.write(result(3))
    assert writer.flush() is False
    assert writer.lost == 2
    assert isinstance(writer.first_error, OSError) and writer.first_error.errno == errno.ENOSPC
    writer.close()


def test_the_first_lost_record_is_logged_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "report.jsonl"
    with ReportWriter(path) as writer:
        switch = _failing_os_write(monkeypatch, path, raise_after_part=False)
        writer.write(result(1))
        writer.flush()
        switch(True)
        with caplog.at_level(logging.WARNING, logger="fetcher"):
            for line in range(2, 5):
                writer.write(result(line))
                writer.flush()
    assert [record.getMessage() for record in caplog.records] == [
        f"cannot write the report {path}: No space left on device; records are being lost"
    ]


def test_records_are_written_again_once_space_is_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "report.jsonl"
    with ReportWriter(path) as writer:
        switch = _failing_os_write(monkeypatch, path, raise_after_part=False)
        switch(True)
        writer.write(result(1))
        assert writer.flush() is False
        switch(False)
        writer.write(result(2))
        assert writer.flush() is True
        assert writer.lost == 1
    assert [record["line"] for record in _jsonl(path)] == [2]


@pytest.mark.parametrize("name", ["report.jsonl", "report.csv"])
def test_a_full_filesystem_leaves_only_whole_records_and_they_resume_when_space_is_freed(
    small_disk: Path, name: str
) -> None:
    path = small_disk / name
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * 40 * 1024)
    with ReportWriter(path) as writer:
        for line in range(1, 200):
            writer.write(result(line, error="e" * (line * 7 % 300)))
        assert writer.flush() is False
        assert writer.lost > 0 and writer.first_error is not None and writer.first_error.errno == errno.ENOSPC
        lost = writer.lost
        filler.unlink()
        writer.write(result(1000))
        assert writer.flush() and writer.lost == lost
    records: list[dict[str, Any]] = _csv(path) if name.endswith(".csv") else _jsonl(path)
    lines = [int(record["line"]) for record in records]
    assert lines[-1] == 1000 and lines == sorted(lines) and len(lines) == 199 - lost + 1
    assert all(list(record) == list(FIELDS) for record in records)


def test_a_batch_too_big_for_the_disk_keeps_the_records_that_fit(small_disk: Path) -> None:
    path = small_disk / "report.jsonl"
    (small_disk / "filler").write_bytes(b"\0" * 48 * 1024)
    with ReportWriter(path, flush_s=60) as writer:
        for line in range(1, 101):
            writer.write(result(line, error="e" * 300))  # about 40 KiB, where 16 KiB are free
        assert writer.flush() is False
        assert 0 < writer.lost < 100
    lines = [record["line"] for record in _jsonl(path)]
    assert lines == list(range(1, 101 - writer.lost))


# -- lazy creation ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["report.jsonl", "report.csv"])
def test_a_writer_that_writes_nothing_leaves_no_file_and_no_folder(tmp_path: Path, name: str) -> None:
    path = tmp_path / "new" / name
    ReportWriter(path).close()
    assert not (tmp_path / "new").exists()


def test_a_report_it_made_for_records_that_were_all_lost_is_removed(small_disk: Path) -> None:
    (small_disk / "filler").write_bytes(b"\0" * (64 << 10))  # not a byte left
    path = small_disk / "report.jsonl"
    with ReportWriter(path) as writer:
        writer.write(result(1))
        assert writer.flush() is False
    assert not path.exists()


def test_an_empty_report_that_was_there_before_is_kept(small_disk: Path) -> None:
    path = small_disk / "report.jsonl"
    path.write_bytes(b"")
    (small_disk / "filler").write_bytes(b"\0" * (64 << 10))
    with ReportWriter(path) as writer:
        writer.write(result(1))
        assert writer.flush() is False
    assert path.exists()


def test_the_csv_header_goes_into_an_existing_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    path.write_bytes(b"")
    _write(path, result(1))
    assert path.read_text(encoding="utf-8").splitlines()[0] == ",".join(FIELDS)


# -- run records --------------------------------------------------------------------------------


def test_a_run_record_is_a_line_of_the_jsonl_report_marked_as_a_run(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl"
    with ReportWriter(path) as writer:
        writer.write(result(1))
        assert writer.write_run(run_record())
    url, run = _jsonl(path)
    assert "record" not in url
    assert run == run_record().to_record() and next(iter(run.items())) == ("record", "run")


def test_the_run_records_of_a_csv_report_go_to_a_jsonl_side_file(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    side = tmp_path / "report.csv.runs.jsonl"
    with ReportWriter(path) as writer:
        writer.write(result(1))
        assert not side.exists()
        writer.write_run(run_record())
    assert [row["line"] for row in _csv(path)] == ["1"]
    assert _jsonl(side) == [run_record().to_record()]


def test_a_run_record_that_cannot_be_written_is_counted_as_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "report.jsonl"
    with ReportWriter(path) as writer:
        switch = _failing_os_write(monkeypatch, path, raise_after_part=True)
        writer.write(result(1))
        writer.flush()
        switch(True)
        assert writer.write_run(run_record()) is False
        assert writer.lost == 1
    assert len(_jsonl(path)) == 1
