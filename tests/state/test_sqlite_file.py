"""fetcher.state.sqlite_file: opening the file (made, in WAL mode, migrated), and each failure to open, in one line."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from fetcher._errors import StateError
from fetcher.state import DEFAULT_STATE_NAME, StateStore, sqlite_file
from tests.state.helpers import FOLDER, URL, partial_record, raw, saved_record

SCHEMA_1 = (
    """CREATE TABLE saved (
        url TEXT PRIMARY KEY NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
        etag TEXT, last_modified TEXT, checksum TEXT, saved_at REAL NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE partial (
        url TEXT PRIMARY KEY NOT NULL, path TEXT NOT NULL, etag TEXT, last_modified TEXT, total INTEGER,
        updated_at REAL NOT NULL
    ) WITHOUT ROWID""",
    "PRAGMA user_version = 1",
)


def test_opening_creates_the_hidden_file_and_missing_folders(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dest" / DEFAULT_STATE_NAME
    with StateStore(path) as store:
        assert store.path == path
        assert path.is_file()
        assert path.name.startswith(".")


def test_the_database_is_in_wal_mode(store: StateStore) -> None:
    with raw(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite_file.SCHEMA_VERSION


def test_opening_waits_while_another_process_is_creating_the_file(tmp_path: Path) -> None:
    # What a second run sees when the first is just switching the new file to
    # WAL: SQLite itself fails at once there instead of waiting.
    path = tmp_path / DEFAULT_STATE_NAME
    with contextlib.closing(sqlite3.connect(path, isolation_level=None, check_same_thread=False)) as other:
        other.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.1, lambda: other.execute("COMMIT"))
        release.start()
        try:
            with StateStore(path) as store:
                store.record_saved(saved_record())
        finally:
            release.join(timeout=5)
    with raw(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_junk_file_is_a_state_error_saying_to_move_it_away(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_STATE_NAME
    path.write_bytes(b"this is not a database\n" * 100)
    with pytest.raises(StateError) as caught:
        StateStore(path)
    assert str(caught.value) == f"state database '{path}' is not a SQLite database (move it away to start afresh)"
    assert path.read_bytes() == b"this is not a database\n" * 100


def test_a_folder_at_the_path_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / DEFAULT_STATE_NAME).mkdir()
    with pytest.raises(StateError, match=r"^state database '.*' is a folder, not a file \(move it away"):
        StateStore(tmp_path / DEFAULT_STATE_NAME)


def test_a_path_under_a_file_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / DEFAULT_STATE_NAME
    with pytest.raises(StateError) as caught:
        StateStore(path)
    assert str(caught.value) == f"cannot open state database '{path}': part of its path is a file, not a folder"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write to a read-only folder")
def test_a_read_only_folder_is_a_state_error(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    with pytest.raises(StateError, match=r"^cannot open state database '.*/ro/\.fetcher-state\.db': permission denied"):
        StateStore(folder / DEFAULT_STATE_NAME)


def test_a_newer_schema_is_a_state_error(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_STATE_NAME
    StateStore(path).close()
    with raw(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StateError, match=r"^state database '.*' was written by a newer fetcher \(schema 99,"):
        StateStore(path)


def test_another_programs_database_is_a_state_error(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with raw(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(StateError, match=r"^state database '.*' belongs to some other program"):
        StateStore(path)


def test_a_schema_1_database_is_migrated_and_keeps_its_records(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_STATE_NAME
    saved, partial = saved_record(), partial_record(url=URL + "?p")
    with raw(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        for statement in SCHEMA_1:
            conn.execute(statement)
        conn.execute("INSERT INTO saved VALUES (?, ?, ?, ?, ?, ?, ?, ?)", dataclasses.astuple(saved))
        conn.execute("INSERT INTO partial VALUES (?, ?, ?, ?, ?, ?)", dataclasses.astuple(partial))
    with StateStore(path) as store:
        assert (store.saved(URL), store.partials()) == (saved, [partial])
        store.names(FOLDER).claim("a.txt", URL)
    with raw(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (sqlite_file.SCHEMA_VERSION,)
        assert conn.execute("SELECT name FROM names").fetchall() == [("a.txt",)]


def test_chunks_hold_every_item_once_in_order() -> None:
    items = list(range(1_000))
    chunks = list(sqlite_file.in_chunks(items, 500))
    assert [item for chunk in chunks for item in chunk] == items
    assert [len(chunk) for chunk in chunks] == [256, 256, 256, 128, 64, 32, 8]


def test_chunks_of_any_batch_come_in_at_most_ten_lengths() -> None:
    # Each length is a statement SQLite compiles and keeps in the connection's cache.
    lengths = {len(chunk) for count in range(2_000) for chunk in sqlite_file.in_chunks(range(count), 500)}
    assert lengths == {1, 2, 4, 8, 16, 32, 64, 128, 256}


def test_chunks_keep_to_a_largest_that_is_no_power_of_two() -> None:
    assert [len(chunk) for chunk in sqlite_file.in_chunks("abcdefg", 3)] == [2, 2, 2, 1]
    assert list(sqlite_file.in_chunks("", 3)) == []
