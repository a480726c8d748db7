"""fetcher.state.store: records in and out, opening failures, threads, overlapping and killed processes."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fetcher._errors import ConfigError, StateError
from fetcher.state import DEFAULT_STATE_NAME, Partial, Saved, StateStore, behind
from fetcher.state import store as store_module

ROOT = Path(__file__).resolve().parents[2]
URL = "https://files.example/rfc791.txt"
DEST = os.path.abspath(os.sep + "dest")


def saved_record(url: str = URL, **changes: object) -> Saved:
    values: dict[str, object] = {
        "url": url,
        "path": os.path.join(DEST, "rfc791.txt"),
        "size": 98_765,
        "mtime_ns": 1_700_000_000_123_456_789,
        "etag": '"5f1b-3e2a"',
        "last_modified": "Tue, 15 Nov 1994 08:12:31 GMT",
        "checksum": "sha-256=" + "ab12" * 16,
        "saved_at": 1000.25,
    }
    return Saved(**{**values, **changes})  # type: ignore[arg-type]


def partial_record(url: str = URL, **changes: object) -> Partial:
    values: dict[str, object] = {
        "url": url,
        "path": os.path.join(DEST, ".fetcher-1-ab-0.part"),
        "etag": '"5f1b-3e2a"',
        "last_modified": None,
        "total": 1 << 20,
        "updated_at": 999.5,
    }
    return Partial(**{**values, **changes})  # type: ignore[arg-type]


def written(prefix: str, i: int) -> Saved:
    """The record the child processes below write for their i-th URL."""
    return Saved(
        url=f"https://{prefix}.example/{i}",
        path=os.path.join(DEST, f"{prefix}-{i}"),
        size=i,
        mtime_ns=i * 1_000_003,
        etag=f'"{prefix}-{i}"',
        last_modified=f"day {i}",
        checksum=f"sha-256={i:064x}",
        saved_at=float(i),
    )


# Opens the store, says "ready", waits for a line on stdin, then records COUNT
# URLs: each first as a partial, then as saved (which forgets the partial).
CHILD = f"""
import os, sys
from fetcher.state import Partial, Saved, StateStore
DEST = {DEST!r}
{inspect.getsource(written)}
db, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with StateStore(db) as store:
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(count):
        saved = written(prefix, i)
        store.record_partial(Partial(url=saved.url, path=saved.path + ".part", etag=saved.etag,
                                     last_modified=None, total=None, updated_at=saved.saved_at - 1))
        store.record_saved(saved)
"""


Starter = Callable[..., list[subprocess.Popen[str]]]


@pytest.fixture
def start_children(tmp_path: Path) -> Iterator[Starter]:
    """start(db, count, *prefixes): child processes that have opened *db* and wait for go().

    Any child still running at the end of the test is killed.
    """
    started: list[subprocess.Popen[str]] = []

    def start(db: Path, count: int, *prefixes: str) -> list[subprocess.Popen[str]]:
        children = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, str(db), prefix, str(count)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for prefix in prefixes
        ]
        started.extend(children)
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n"  # "" if the child died instead
        return children

    yield start
    for child in started:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=10)


def go(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.write("go\n")
    child.stdin.flush()


def count_rows(db: Path, table: str = "saved") -> int:
    with raw(db) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def integrity(db: Path) -> str:
    with raw(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def raw(db: Path) -> contextlib.closing[sqlite3.Connection]:
    """A plain sqlite3 connection in autocommit mode, closed at the end of the with block."""
    return contextlib.closing(sqlite3.connect(db, timeout=5, isolation_level=None))


def wait_until(condition: Callable[[], bool], *, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"still not true after {limit_s} s"
        time.sleep(0.01)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore(tmp_path / DEFAULT_STATE_NAME, clock=lambda: 1234.5) as opened:
        yield opened


# -- records ---------------------------------------------------------------------


def test_a_saved_record_round_trips_exactly(store: StateStore) -> None:
    record = saved_record(etag='W/"weak"', last_modified="Tue, 15 Nov 1994 08:12:31 GMT ")
    store.record_saved(record)
    assert store.saved(URL) == record


def test_a_saved_record_may_lack_validators_and_checksum(store: StateStore) -> None:
    record = saved_record(etag=None, last_modified=None, checksum=None)
    store.record_saved(record)
    assert store.saved(URL) == record


def test_an_unknown_url_has_no_records(store: StateStore) -> None:
    assert store.saved("https://files.example/other") is None
    assert store.partial("https://files.example/other") is None


def test_record_saved_replaces_the_old_record(store: StateStore) -> None:
    store.record_saved(saved_record(size=1, etag='"v1"'))
    store.record_saved(saved_record(size=2, etag='"v2"'))
    assert store.saved(URL) == saved_record(size=2, etag='"v2"')


def test_record_saved_forgets_the_partial_of_that_url_only(store: StateStore) -> None:
    store.record_partial(partial_record())
    store.record_partial(partial_record("https://files.example/other"))
    store.record_saved(saved_record())
    assert store.partial(URL) is None
    assert store.partial("https://files.example/other") == partial_record("https://files.example/other")


def test_a_partial_round_trips_and_is_replaced(store: StateStore) -> None:
    store.record_partial(partial_record(total=None))
    assert store.partial(URL) == partial_record(total=None)
    store.record_partial(partial_record(total=5, last_modified="Wed, 16 Nov 1994 08:12:31 GMT"))
    assert store.partial(URL) == partial_record(total=5, last_modified="Wed, 16 Nov 1994 08:12:31 GMT")


def test_forget_partial_removes_it_and_ignores_unknown_urls(store: StateStore) -> None:
    store.record_partial(partial_record())
    store.forget_partial(URL)
    store.forget_partial("https://files.example/never")
    assert store.partial(URL) is None


def test_partials_lists_every_partial_by_url(store: StateStore) -> None:
    urls = ["https://b.example/2", "https://a.example/1", "https://c.example/3"]
    for url in urls:
        store.record_partial(partial_record(url))
    assert store.partials() == [partial_record(url) for url in sorted(urls)]


def test_records_survive_closing_and_reopening(tmp_path: Path) -> None:
    with StateStore(tmp_path / DEFAULT_STATE_NAME) as first:
        first.record_saved(saved_record())
        first.record_partial(partial_record("https://files.example/big"))
    with StateStore(tmp_path / DEFAULT_STATE_NAME) as second:
        assert second.saved(URL) == saved_record()
        assert second.partials() == [partial_record("https://files.example/big")]


def test_now_is_the_injected_clock(store: StateStore) -> None:
    assert store.now() == 1234.5


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: saved_record(size=-1), "size"),
        (lambda: saved_record(size=True), "size"),
        (lambda: saved_record(path="relative/file"), "path"),
        (lambda: saved_record(url=""), "url"),
        (lambda: saved_record(etag=b'"v1"'), "etag"),
        (lambda: saved_record(saved_at=float("nan")), "saved_at"),
        (lambda: partial_record(total=-5), "total"),
        (lambda: partial_record(updated_at="now"), "updated_at"),
    ],
)
def test_a_record_with_a_bad_field_is_refused_naming_it(make: Callable[[], object], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field} must be"):
        make()


def test_timestamps_are_stored_as_floats(store: StateStore) -> None:
    store.record_saved(saved_record(saved_at=1000))
    record = store.saved(URL)
    assert record is not None and type(record.saved_at) is float


# -- the file ----------------------------------------------------------------------


def test_opening_creates_the_hidden_file_and_missing_folders(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dest" / DEFAULT_STATE_NAME
    with StateStore(path) as store:
        assert store.path == path
        assert path.is_file()
        assert path.name.startswith(".")


def test_the_database_is_in_wal_mode(store: StateStore) -> None:
    with raw(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store_module.SCHEMA_VERSION


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


def test_close_is_idempotent_and_later_use_is_a_state_error(tmp_path: Path) -> None:
    store = StateStore(tmp_path / DEFAULT_STATE_NAME)
    store.close()
    store.close()
    with pytest.raises(StateError, match="is closed$"):
        store.saved(URL)


# -- failures to open, each one readable line ----------------------------------------


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


def test_a_write_locked_out_too_long_is_a_state_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.05)
    with StateStore(tmp_path / DEFAULT_STATE_NAME) as store:
        store.record_saved(saved_record())
        store.flush()
        with raw(store.path) as other:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StateError, match=r"^could not record a partial download: .* stayed locked"):
                store.record_partial(partial_record())
            assert store.saved(URL) == saved_record()  # WAL: reading goes on while another writes
            other.execute("ROLLBACK")
        store.record_partial(partial_record())


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
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.05)
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


def test_records_that_come_one_by_one_are_committed_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits: list[int] = []
    write = store_module._Writer._write

    def counted(writer: store_module._Writer, conn: sqlite3.Connection, batch: store_module._Batch) -> bool:
        commits.append(len(batch.saved) + len(batch.names))
        return write(writer, conn, batch)

    monkeypatch.setattr(store_module._Writer, "_write", counted)
    with StateStore(tmp_path / DEFAULT_STATE_NAME) as store:
        began = time.monotonic()
        for n in range(200):  # about 0.3 s of downloads finishing one by one
            store.record_saved(saved_record(url=f"{URL}?{n}"))
            time.sleep(0.0015)
        store.flush()
        took = time.monotonic() - began
    assert sum(commits) == 200
    # One commit per WRITE_EVERY_S gathered, not one per record: a wake-up per record cut the gathering short.
    assert len(commits) <= took / store_module.WRITE_EVERY_S + 3, commits


def test_a_writer_that_falls_behind_makes_the_callers_wait_instead_of_piling_up(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_STATE_NAME
    StateStore(path).close()  # the tables
    writer = store_module._Writer(path, max_pending=5)
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


def test_recording_a_saved_file_forgets_its_partial_at_once(store: StateStore) -> None:
    store.record_partial(partial_record())
    store.record_saved(saved_record())
    assert store.partial(URL) is None
    store.flush()
    assert store.partials() == []


# -- concurrency and crashes -------------------------------------------------------------


def test_eight_threads_writing_at_once_lose_nothing(store: StateStore) -> None:
    start = threading.Barrier(8, timeout=10)
    failures: list[BaseException] = []

    def work(t: int) -> None:
        try:
            start.wait()
            for i in range(200):
                store.record_partial(partial_record(f"https://t{t}.example/{i}"))
                store.record_saved(saved_record(f"https://t{t}.example/{i}", size=i))
        except BaseException as exc:  # noqa: B036 - reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    assert all(store.saved(f"https://t{t}.example/{i}") == saved_record(f"https://t{t}.example/{i}", size=i)
               for t in range(8) for i in range(200))  # fmt: skip
    assert store.partials() == []


def test_two_processes_writing_at_once_both_succeed(tmp_path: Path, start_children: Starter) -> None:
    db = tmp_path / DEFAULT_STATE_NAME  # neither child finds it: both create it
    children = start_children(db, 500, "one", "two")
    for child in children:
        go(child)
    for child in children:
        _, errors = child.communicate(timeout=30)
        assert (child.returncode, errors) == (0, "")
    assert integrity(db) == "ok"
    assert (count_rows(db, "saved"), count_rows(db, "partial")) == (1000, 0)
    with StateStore(db) as store:
        assert all(store.saved(written(p, i).url) == written(p, i) for p in ("one", "two") for i in range(500))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_process_killed_mid_write_leaves_every_record_whole(tmp_path: Path, start_children: Starter) -> None:
    db = tmp_path / DEFAULT_STATE_NAME
    (child,) = start_children(db, 10**6, "k")
    go(child)
    wait_until(lambda: count_rows(db) >= 50, limit_s=10)
    time.sleep(0.1)  # and then some: the kill lands at no particular point
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert integrity(db) == "ok"
    with StateStore(db) as store:
        done = count_rows(db)
        assert 50 <= done < 10**6
        assert all(store.saved(written("k", i).url) == written("k", i) for i in range(done))
        # Saved records are written in batches: the kill loses at most the batch being gathered,
        # so the partials left are those of the URLs after the last one saved, never an earlier one.
        left = {p.url for p in store.partials()}
        assert left == {written("k", i).url for i in range(done, done + len(left))}


def test_a_saved_record_forgets_only_partials_older_than_itself(store: StateStore) -> None:
    store.record_partial(partial_record(updated_at=2000.0))  # recorded after the file below was saved
    store.record_saved(saved_record(saved_at=1500.0))
    store.flush()
    assert [p.url for p in store.partials()] == [URL]


def test_a_batch_larger_than_one_statement_is_written_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "ROWS_PER_STATEMENT", 3)  # 10 records and 10 names: 4 statements each
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


# -- names ---------------------------------------------------------------------------------

FOLDER = DEST

# The tables as fetcher 0.1 created them (schema 1), kept here verbatim: a file
# made by that version must open and keep its records.
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


def test_a_claimed_name_is_answered_both_ways(store: StateStore) -> None:
    names = store.names(FOLDER)
    names.claim("RFC791.txt", URL)
    assert (names.name_of(URL), names.owner_of("rfc791.txt")) == ("RFC791.txt", URL)
    store.flush()
    next_run = store.names(FOLDER)
    assert (next_run.name_of(URL), next_run.owner_of("rfc791.txt")) == ("RFC791.txt", URL)


def test_in_a_folder_with_no_names_yet_only_owners_are_looked_up_once_written(store: StateStore) -> None:
    # A first run names each URL once, and the Namer finds a URL's name again through
    # owner_of (its own names are free to it): name_of costs no query there.
    names = store.names(FOLDER)
    names.claim("rfc791.txt", URL)
    store.flush()
    assert (names.name_of(URL), names.owner_of("rfc791.txt")) == (None, URL)


def test_an_unknown_url_and_name_have_no_record(store: StateStore) -> None:
    names = store.names(FOLDER)
    assert (names.name_of(URL), names.owner_of("rfc791.txt")) == (None, None)


def test_a_new_claim_frees_the_urls_old_name(store: StateStore) -> None:
    store.names(FOLDER).claim("old.txt", URL)
    store.flush()
    store.names(FOLDER).claim("new.txt", URL)
    store.flush()
    next_run = store.names(FOLDER)
    assert (next_run.name_of(URL), next_run.owner_of("old.txt")) == ("new.txt", None)


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


def test_names_in_two_folders_are_apart(store: StateStore) -> None:
    store.names(FOLDER).claim("a.txt", URL)
    other = store.names(os.path.join(FOLDER, "other"))
    assert (other.name_of(URL), other.owner_of("a.txt")) == (None, None)


def test_a_name_claimed_first_by_another_process_stays_its(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_STATE_NAME
    with StateStore(path) as first, StateStore(path) as second:
        first.names(FOLDER).claim("a.txt", URL)
        first.flush()
        second.names(FOLDER).claim("a.txt", URL + "?other")
        second.flush()
        assert second.names(FOLDER).owner_of("a.txt") == URL


def counting_reads(store: StateStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The queries *store* makes from now on, by what they do."""
    reads: list[str] = []
    original = store._read

    def read(doing: str, work: Callable[[sqlite3.Connection], object]) -> object:
        reads.append(doing)
        return original(doing, work)

    monkeypatch.setattr(store, "_read", read)
    return reads


def claimed_and_written(
    store: StateStore, monkeypatch: pytest.MonkeyPatch, name: str = "a.txt"
) -> tuple[store_module.Names, list[str]]:
    """FOLDER's names, fresh, once *name* was claimed for URL and written; and the queries made from then on."""
    names = store.names(FOLDER)
    names.claim(name, URL)
    store.flush()
    return names, counting_reads(store, monkeypatch)


def test_in_a_fresh_folder_a_name_claimed_by_no_one_needs_no_query(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    names, reads = claimed_and_written(store, monkeypatch)
    assert names.owner_of("b.txt") is None
    assert reads == []


def test_in_a_fresh_folder_the_first_claims_are_written_without_waiting_for_a_batch(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Until they are written, every other name given there is looked up: a long list's first URLs.
    monkeypatch.setattr(behind, "WRITE_EVERY_S", 60.0)
    names = store.names(FOLDER)
    names.claim("a.txt", URL)
    wait_until(lambda: store._writer.alone_in(FOLDER), limit_s=10.0)
    reads = counting_reads(store, monkeypatch)
    assert names.owner_of("b.txt") is None
    assert reads == []


def test_in_a_fresh_folder_a_name_claimed_here_is_still_looked_up(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    names, reads = claimed_and_written(store, monkeypatch, "A.txt")
    assert names.owner_of("a.txt") == URL
    assert reads == ["look up a file name"]


def test_known_or_claim_claims_a_free_name(store: StateStore) -> None:
    names = store.names(FOLDER)
    assert names.known_or_claim("a.txt", URL) == "a.txt"
    assert (names.name_of(URL), names.owner_of("a.txt")) == ("a.txt", URL)


def test_known_or_claim_answers_a_urls_name_on_record(store: StateStore) -> None:
    store.names(FOLDER).claim("old.txt", URL)
    store.flush()
    assert store.names(FOLDER).known_or_claim("new.txt", URL) == "old.txt"


def test_known_or_claim_leaves_a_name_another_url_has(store: StateStore) -> None:
    names = store.names(FOLDER)
    names.claim("A.txt", URL + "?other")
    assert names.known_or_claim("a.txt", URL) is None
    assert names.name_of(URL) is None


def test_in_a_fresh_folder_known_or_claim_of_a_name_claimed_by_no_one_needs_no_query(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    names, reads = claimed_and_written(store, monkeypatch)
    assert names.known_or_claim("b.txt", URL + "?b") == "b.txt"
    assert reads == []


def test_in_a_fresh_folder_known_or_claim_sees_a_name_another_process_gave(tmp_path: Path) -> None:
    with given_by_another_after_a_write_here(tmp_path) as mine:
        assert mine.known_or_claim("a.txt", URL + "?a") is None


def test_a_name_another_process_gave_before_the_first_write_here_is_seen(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_STATE_NAME
    with StateStore(path) as first, StateStore(path) as second:
        mine, theirs = first.names(FOLDER), second.names(FOLDER)  # both fresh
        theirs.claim("a.txt", URL + "?other")
        second.flush()
        assert mine.owner_of("a.txt") == URL + "?other"  # nothing written here yet
        mine.claim("b.txt", URL)
        first.flush()
        assert mine.owner_of("a.txt") == URL + "?other"


@contextlib.contextmanager
def given_by_another_after_a_write_here(tmp_path: Path) -> Iterator[store_module.Names]:
    """This process's names in FOLDER, where another process gave "a.txt" after this one wrote a claim."""
    path = tmp_path / DEFAULT_STATE_NAME
    with StateStore(path) as first, StateStore(path) as second:
        mine, theirs = first.names(FOLDER), second.names(FOLDER)
        mine.claim("b.txt", URL)
        first.flush()
        theirs.claim("a.txt", URL + "?other")
        second.flush()
        mine.claim("c.txt", URL + "?c")  # the transaction that notices the other's write
        first.flush()
        yield mine


def test_a_name_another_process_gives_after_a_write_here_is_seen(tmp_path: Path) -> None:
    with given_by_another_after_a_write_here(tmp_path) as mine:
        assert mine.owner_of("a.txt") == URL + "?other"


def test_names_survive_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_STATE_NAME
    with StateStore(path) as store:
        store.names(FOLDER).claim("a.txt", URL)
    with StateStore(path) as store:
        assert store.names(FOLDER).name_of(URL) == "a.txt"


def test_a_claim_the_writer_could_not_write_is_still_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.05)
    with StateStore(tmp_path / DEFAULT_STATE_NAME) as store:
        names = store.names(FOLDER)
        with raw(store.path) as other:
            other.execute("BEGIN IMMEDIATE")
            names.claim("a.txt", URL)
            store.flush()
            other.execute("ROLLBACK")
        assert names.owner_of("a.txt") == URL
    assert "could not record 0 saved files and 1 names" in caplog.text


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
        assert conn.execute("PRAGMA user_version").fetchone() == (store_module.SCHEMA_VERSION,)
        assert conn.execute("SELECT name FROM names").fetchall() == [("a.txt",)]
