"""fetcher.state.store: records and names in and out, threads, overlapping and killed processes."""

from __future__ import annotations

import contextlib
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

from fetcher._errors import StateError
from fetcher.state import DEFAULT_STATE_NAME, Saved, StateStore, behind, sqlite_file
from fetcher.state import store as store_module
from tests.state.helpers import DEST, FOLDER, URL, partial_record, raw, saved_record, wait_until

ROOT = Path(__file__).resolve().parents[2]


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


def test_saved_many_answers_every_url_of_a_list_longer_than_one_query(store: StateStore) -> None:
    urls = [f"{URL}?{n}" for n in range(700)]  # queries of 512, 128, 32, 16, 8 and 4 URLs
    for n, url in enumerate(urls[::2]):
        store.record_saved(saved_record(url, size=n))
    store.flush()
    found = store.saved_many([*urls, URL + "?none"])
    assert sorted(found) == sorted(urls[::2])
    assert [found[url].size for url in urls[::2]] == list(range(350))


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


# -- closing, and a write another process holds up -------------------------------------


def test_close_is_idempotent_and_later_use_is_a_state_error(tmp_path: Path) -> None:
    store = StateStore(tmp_path / DEFAULT_STATE_NAME)
    store.close()
    store.close()
    with pytest.raises(StateError, match="is closed$"):
        store.saved(URL)


def test_a_write_locked_out_too_long_is_a_state_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_file, "BUSY_TIMEOUT_S", 0.05)
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


# -- names ---------------------------------------------------------------------------------


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


def test_a_fresh_folder_looks_up_a_urls_name_once_told_another_process_named_it(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_STATE_NAME
    with StateStore(path) as first, StateStore(path) as second:
        mine, theirs = first.names(FOLDER), second.names(FOLDER)  # both fresh
        theirs.claim("a.txt", URL)
        second.flush()
        assert mine.name_of(URL) is None  # a fresh folder's names are this process's alone
        mine.others_named()
        assert mine.name_of(URL) == "a.txt"
