"""fetcher.state.writer: records answered until written, then written in batches, whole and bounded, or logged."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from fetcher.state import DEFAULT_STATE_NAME, StateStore, behind, sqlite_file
from fetcher.state import writer as writer_module
from tests.state.helpers import FOLDER, URL, partial_record, raw, saved_record


def test_a_saved_record_is_answered_before_it_is_written(tmp_path: Path) -> None:
    with StateStore(tmp_path / DEFAULT_STATE_NAME) as store:
        with raw(store.path) as other:
            other.execute("BEGIN IMMEDIATE")  # the writer cannot write yet
            store.record_saved(saved_record())
            assert store.saved(URL) == saved_record()
            other.execute("ROLLBACK")


def test_saved_records_are_written_by_close(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_STATE_NAME
    with StateStore(path) as store:
        for n in range(300):
            store.record_saved(saved_record(url=f"{URL}?{n}"))
    with raw(path) as conn:
        assert conn.execute("SELECT count(*) FROM saved").fetchone() == (300,)


def test_a_batch_the_writer_cannot_write_is_logged_and_the_next_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sqlite_file, "BUSY_TIMEOUT_S", 0.05)
    with StateStore(tmp_path / DEFAULT_STATE_NAME) as store:
        with raw(store.path) as other:
            other.execute("BEGIN IMMEDIATE")
            store.record_saved(saved_record())
            store.flush()
            other.execute("ROLLBACK")
        store.record_saved(saved_record(url=URL + "?next"))
        store.flush()
        assert store.saved(URL) is None and store.saved(URL + "?next") is not None
    assert "could not record 1 saved files" in caplog.text


def test_records_that_come_one_by_one_are_committed_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commits: list[int] = []
    write = writer_module.Writer._write

    def counted(writer: writer_module.Writer, conn: sqlite3.Connection, batch: writer_module.Batch) -> bool:
        commits.append(len(batch.saved) + len(batch.names))
        return write(writer, conn, batch)

    monkeypatch.setattr(writer_module.Writer, "_write", counted)
    with StateStore(tmp_path / DEFAULT_STATE_NAME) as store:
        began = time.monotonic()
        for n in range(200):  # about 0.3 s of downloads finishing one by one
            store.record_saved(saved_record(url=f"{URL}?{n}"))
            time.sleep(0.0015)
        store.flush()
        took = time.monotonic() - began
    assert sum(commits) == 200
    # One commit per WRITE_EVERY_S gathered, not one per record: a wake-up per record cut the gathering short.
    assert len(commits) <= took / behind.WRITE_EVERY_S + 3, commits


def test_a_writer_that_falls_behind_makes_the_callers_wait_instead_of_piling_up(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_STATE_NAME
    StateStore(path).close()  # the tables
    writer = writer_module.Writer(path, max_pending=5)
    done = threading.Event()

    def record_twenty() -> None:
        for n in range(20):
            writer.put(saved_record(url=f"{URL}?{n}"))
        done.set()

    try:
        with raw(path) as other:
            other.execute("BEGIN IMMEDIATE")  # the writer's transaction waits for this one
            caller = threading.Thread(target=record_twenty, daemon=True)
            caller.start()
            assert not done.wait(0.5), "20 records went into a writer that could take 5 and write none"
            assert len(writer._waiting) <= 5
            other.execute("ROLLBACK")
        assert done.wait(10)
        writer.flush()
    finally:
        writer.close()
    with raw(path) as conn:
        assert conn.execute("SELECT count(*) FROM saved").fetchone() == (20,)


def test_a_saved_record_forgets_only_partials_older_than_itself(store: StateStore) -> None:
    store.record_partial(partial_record(updated_at=2000.0))  # recorded after the file below was saved
    store.record_saved(saved_record(saved_at=1500.0))
    store.flush()
    assert [p.url for p in store.partials()] == [URL]


def test_a_batch_larger_than_one_statement_is_written_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "ROWS_PER_STATEMENT", 3)  # 10 records and 10 names: 5 statements of 2 each
    with StateStore(tmp_path / DEFAULT_STATE_NAME) as store:
        names = store.names(FOLDER)
        for n in range(10):
            store.record_saved(saved_record(url=f"{URL}?{n}", size=n))
            names.claim(f"rfc791-{n}.txt", f"{URL}?{n}")
        store.flush()
    with StateStore(tmp_path / DEFAULT_STATE_NAME) as reopened:
        again = reopened.names(FOLDER)
        assert [(s.size if (s := reopened.saved(f"{URL}?{n}")) else None) for n in range(10)] == list(range(10))
        assert [again.name_of(f"{URL}?{n}") for n in range(10)] == [f"rfc791-{n}.txt" for n in range(10)]


def test_new_claims_in_two_folders_free_only_that_folders_old_names(store: StateStore) -> None:
    other_folder = os.path.join(FOLDER, "other")
    store.names(FOLDER).claim("old.txt", URL)
    store.names(other_folder).claim("kept.txt", URL)
    store.flush()
    store.names(FOLDER).claim("new.txt", URL)
    store.names(other_folder).claim("kept-too.txt", URL + "?2")
    store.flush()
    here, other = store.names(FOLDER), store.names(other_folder)
    assert (here.name_of(URL), here.owner_of("old.txt")) == ("new.txt", None)
    assert (other.name_of(URL), other.name_of(URL + "?2")) == ("kept.txt", "kept-too.txt")


def test_a_claim_the_writer_could_not_write_is_still_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sqlite_file, "BUSY_TIMEOUT_S", 0.05)
    with StateStore(tmp_path / DEFAULT_STATE_NAME) as store:
        names = store.names(FOLDER)
        with raw(store.path) as other:
            other.execute("BEGIN IMMEDIATE")
            names.claim("a.txt", URL)
            store.flush()
            other.execute("ROLLBACK")
        assert names.owner_of("a.txt") == URL
    assert "could not record 0 saved files and 1 names" in caplog.text


def test_a_writer_that_sees_another_connection_write_keeps_no_filter_of_its_claims(tmp_path: Path) -> None:
    # Once another connection writes, names are always looked up: a filter of the claims would only cost memory.
    path = tmp_path / DEFAULT_STATE_NAME
    with StateStore(path) as first, StateStore(path) as second:
        mine = first.names(FOLDER)
        mine.claim("b.txt", URL)
        first.flush()
        assert first._writer._claimed
        second.record_saved(saved_record(URL + "?other"))
        second.flush()
        mine.claim("c.txt", URL + "?c")  # the transaction that notices the other's write
        first.flush()
        mine.claim("d.txt", URL + "?d")
        first.flush()
        assert first._writer._claimed == {}
        assert not first._writer.alone_in(FOLDER)
        assert (mine.owner_of("c.txt"), mine.owner_of("d.txt")) == (URL + "?c", URL + "?d")
