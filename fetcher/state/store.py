"""StateStore: the SQLite file behind the state database, and the three kinds of record it holds.

The file is in WAL mode, so overlapping runs read while one writes, and
writes from several processes queue for up to ``BUSY_TIMEOUT_S``.  A process
killed at any instant leaves the last committed state, which SQLite recovers
on the next open.

Two connections, because every URL of a run is looked up and then recorded:

- Lookups go through a connection per thread (WAL readers never wait for
  each other).  The run reads ahead in batches (``saved_many``) on one
  thread, so in practice this is one or two connections.
  The rare partial-file writes go through one connection under a lock,
  each its own short transaction.
- ``record_saved`` (and ``Names.claim``) hands its record to a writer thread, which commits what has
  gathered in one transaction (a batch per ``WRITE_EVERY_S`` at most).  A
  commit per file would cost more than the rest of a small download, and the
  workers would queue behind each other's commits.  The price: a run killed
  by SIGKILL loses the records of its last fraction of a second, and the next
  run downloads those few files in full instead of asking if they changed.
  Until written, a record is answered from memory, so the process always
  sees its own writes.  A name claim whose write failed stays in memory for
  the life of the store, so that no later URL of the run is given its name.

Which URLs have a partial file is also kept in memory (it is few, and read
at open), so that the lookup every URL makes needs no query when, as almost
always, there is none; and which names this process claimed, as a Bloom
filter (a byte and a half a name, 5.3 MiB at most), so that the lookup of a
name's owner needs no query in a folder that had no names.  Nothing else per
URL is kept in memory.  No sqlite3 exception leaves this module: each becomes
a ``StateError`` with one readable line; the writer thread logs its own.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import math
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from .._errors import ConfigError, StateError
from .behind import WRITE_EVERY_S as WRITE_EVERY_S  # the writer commits at least this often while records wait
from .behind import Behind
from .seen import Bloom, fingerprint

log = logging.getLogger("fetcher")

#: The file's name in DEST.  Hidden: URL names never start with a dot.
DEFAULT_STATE_NAME = ".fetcher-state.db"

#: Records handed to the writer and not yet being written, at most: a caller that
#: would add more waits for the writer (a bounded queue: memory must not grow when
#: downloads finish faster than SQLite commits them).
MAX_PENDING = 10_000

#: The largest layer of the Bloom filter of the names this process claimed: 4 MiB (5.3 MiB in all),
#: half a ``Seen``'s, as the feeder holds one of those too.  Past ~5,000,000 names, more of the names
#: this process never claimed are looked up in the database (a third at 10,000,000).
CLAIMED_FILTER_BITS = 1 << 25

#: SQLite's page cache for each connection, in KiB.  A run has one per thread that reads, and the
#: file's pages are in the system's cache anyway: SQLite's default (2 MiB) would hold copies of them.
CACHE_KIB = 512

#: Stored in ``PRAGMA user_version``.  Bump it with every change to the tables, and add
#: the change to ``_MIGRATIONS``; a file with a higher number is refused rather than misread.
#: 1: saved, partial (fetcher 0.1).  2: names.
SCHEMA_VERSION = 2

#: How long a write waits for another process's write before it fails.
BUSY_TIMEOUT_S = 5.0

_T = TypeVar("_T")

#: SQLite integers are signed 64-bit.
_INT64 = 1 << 63


@dataclass(frozen=True, kw_only=True, slots=True)
class Saved:
    """What fetcher last saved for a URL."""

    url: str
    #: Absolute path of the file as saved.
    path: str
    size: int
    #: The file's st_mtime_ns right after saving.
    mtime_ns: int
    #: Exactly as the server sent it.
    etag: str | None
    #: Exactly as the server sent it: nginx compares If-Modified-Since byte for byte.
    last_modified: str | None
    #: e.g. "sha-256=ab12..." when one was verified at save time.
    checksum: str | None
    #: Unix seconds, from the store's clock.
    saved_at: float

    def __post_init__(self) -> None:
        _check_common(self, "saved_at")
        _check_whole("size", self.size, low=0)
        _check_whole("mtime_ns", self.mtime_ns, low=-_INT64)
        _check_text("checksum", self.checksum)


@dataclass(frozen=True, kw_only=True, slots=True)
class Partial:
    """A partial download kept so a later attempt or run can resume it."""

    url: str
    #: Absolute path of the hidden .part file.
    path: str
    #: The strong ETag to send in If-Range.
    etag: str | None
    last_modified: str | None
    #: Full length of the representation, if known.
    total: int | None
    #: Unix seconds, from the store's clock.
    updated_at: float

    def __post_init__(self) -> None:
        _check_common(self, "updated_at")
        if self.total is not None:
            _check_whole("total", self.total, low=0)


def _check_common(record: Saved | Partial, stamp: str) -> None:
    """Check the fields both records have, and make the time stamp named *stamp* a float."""
    if not isinstance(record.url, str) or not record.url:
        raise ConfigError(f"url must be non-empty text, not {record.url!r}")
    if not isinstance(record.path, str) or not os.path.isabs(record.path):
        raise ConfigError(f"path must be an absolute path as text, not {record.path!r}")
    _check_text("etag", record.etag)
    _check_text("last_modified", record.last_modified)
    value = getattr(record, stamp)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{stamp} must be a finite number of unix seconds, not {value!r}")
    object.__setattr__(record, stamp, float(value))


def _check_whole(name: str, value: object, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value < _INT64:
        raise ConfigError(f"{name} must be a whole number from {low} to {_INT64 - 1}, not {value!r}")


def _check_text(name: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{name} must be text or None, not {value!r}")


# Column names are the field names, in field order: a row is the record.
_SAVED = tuple(f.name for f in fields(Saved))
_PARTIAL = tuple(f.name for f in fields(Partial))

_SCHEMA_1 = (
    """CREATE TABLE saved (
        url TEXT PRIMARY KEY NOT NULL,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        etag TEXT,
        last_modified TEXT,
        checksum TEXT,
        saved_at REAL NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE partial (
        url TEXT PRIMARY KEY NOT NULL,
        path TEXT NOT NULL,
        etag TEXT,
        last_modified TEXT,
        total INTEGER,
        updated_at REAL NOT NULL
    ) WITHOUT ROWID""",
)

# The file name each URL was given in a folder, so that it keeps it from run to
# run whatever the list's order.  One row per name: a name (compared
# case-folded, as macOS and Windows do) has one owner; the index gives a URL
# one name.  Keyed by folder too: a database shared by two DESTs names each
# apart.  ``url`` is the URL in normal form without its password.
_NAMES = (
    """CREATE TABLE names (
        folder TEXT NOT NULL,
        name_folded TEXT NOT NULL,
        url TEXT NOT NULL,
        name TEXT NOT NULL,
        PRIMARY KEY (folder, name_folded)
    ) WITHOUT ROWID""",
    "CREATE UNIQUE INDEX names_by_url ON names (folder, url)",
)

#: The statements that bring a file of version N - 1 to version N, by N.
_MIGRATIONS: dict[int, tuple[str, ...]] = {1: _SCHEMA_1, 2: _NAMES}


def _upsert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


_PUT_PARTIAL = _upsert("partial", _PARTIAL)
_GET_SAVED = f"SELECT {', '.join(_SAVED)} FROM saved WHERE url = ?"
_GET_SAVED_IN = f"SELECT {', '.join(_SAVED)} FROM saved WHERE url IN"
_GET_PARTIAL = f"SELECT {', '.join(_PARTIAL)} FROM partial WHERE url = ?"
_ALL_PARTIALS = f"SELECT {', '.join(_PARTIAL)} FROM partial ORDER BY url"
_FORGET_PARTIAL = "DELETE FROM partial WHERE url = ?"
# A saved record forgets only partials older than itself: one recorded since
# (another run, another fetch of the URL) stays.
_FORGET_OLDER_PARTIAL = "DELETE FROM partial WHERE url = ? AND updated_at <= ?"
_NAME_OF = "SELECT name FROM names WHERE folder = ? AND url = ?"
_ANY_NAME = "SELECT 1 FROM names WHERE folder = ? LIMIT 1"
_OWNER_OF = "SELECT url FROM names WHERE folder = ? AND name_folded = ?"
# A URL's new name replaces its old one; a name another process claimed first stays its.
_DROP_NAMES = "DELETE FROM names WHERE folder = ? AND url IN "
_CLAIM_NAMES = "INSERT OR IGNORE INTO names (folder, name_folded, url, name) VALUES "
_PUT_SAVED_ROWS = f"INSERT OR REPLACE INTO saved ({', '.join(_SAVED)}) VALUES "
_SAVED_VALUES = operator.attrgetter(*_SAVED)  # a Saved's row, in one call
_ANY_PARTIAL = "SELECT 1 FROM partial LIMIT 1"

#: Rows in one statement of the writer's (fewer where SQLite binds fewer values).
ROWS_PER_STATEMENT = 500

#: SQLite's limit on the values bound to one statement where it cannot be asked (Python 3.10), its
#: default before SQLite 3.32.
_VALUES_LIMIT_OLD = 999


class StateStore:
    """The state database at *path*, opened (and created, folders and all) now.

    Safe to call from any number of threads.  Raises StateError when the file
    cannot be opened or used; the message names the file and what to do.
    """

    path: Path

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(os.path.abspath(path))
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = _open(self.path)
        try:
            urls = self._conn.execute("SELECT url FROM partial").fetchall()
        except sqlite3.Error as exc:
            self._conn.close()
            raise StateError(f"state database '{self.path}' {_trouble(exc)}") from exc
        self._partial_urls: set[str] = {url for (url,) in urls}
        self._writer = _Writer(self.path)
        self._readers = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []

    def now(self) -> float:
        """The store's clock: what callers put in ``saved_at`` and ``updated_at``."""
        return self._clock()

    def saved(self, url: str) -> Saved | None:
        waiting = self._writer.pending(url)
        if waiting is not None:
            return waiting

        def work(conn: sqlite3.Connection) -> Saved | None:
            row = conn.execute(_GET_SAVED, (url,)).fetchone()
            return None if row is None else Saved(**dict(zip(_SAVED, row, strict=True)))

        return self._read("look up a saved file", work)

    def saved_many(self, urls: list[str]) -> dict[str, Saved]:
        """The saved records of those *urls* that have one: a query per 500 URLs, not per URL."""
        found = self._writer.pending_many(urls)
        rest = [url for url in urls if url not in found]

        def work(conn: sqlite3.Connection) -> dict[str, Saved]:
            rows: dict[str, Saved] = {}
            for start in range(0, len(rest), 500):
                chunk = rest[start : start + 500]
                query = f"{_GET_SAVED_IN} ({', '.join('?' * len(chunk))})"
                for row in conn.execute(query, chunk):
                    saved = Saved(**dict(zip(_SAVED, row, strict=True)))
                    rows[saved.url] = saved
            return rows

        if rest:
            found.update(self._read("look up saved files", work))
        return found

    def record_saved(self, saved: Saved) -> None:
        """Remember *saved*, replacing the URL's old record and forgetting its partial, in one transaction.

        Written behind, within WRITE_EVERY_S; ``saved()`` answers it at once.
        """
        if self._conn is None:
            raise StateError(f"could not record a saved file: state database '{self.path}' is closed")
        with self._lock:
            self._partial_urls.discard(saved.url)
        self._writer.put(saved)

    def partial(self, url: str) -> Partial | None:
        if url not in self._partial_urls:
            return None  # as good as a query: a partial recorded since by another run is merely not resumed

        def work(conn: sqlite3.Connection) -> Partial | None:
            row = conn.execute(_GET_PARTIAL, (url,)).fetchone()
            return None if row is None else _partial(row)

        return self._read("look up a partial download", work)

    def record_partial(self, partial: Partial) -> None:
        self._run("record a partial download", lambda conn: conn.execute(_PUT_PARTIAL, _row(partial, _PARTIAL)))
        with self._lock:
            self._partial_urls.add(partial.url)

    def forget_partial(self, url: str) -> None:
        if url not in self._partial_urls:
            return  # nothing on record (as far as this process knows): no write
        self._run("forget a partial download", lambda conn: conn.execute(_FORGET_PARTIAL, (url,)))
        with self._lock:
            self._partial_urls.discard(url)

    def names(self, folder: str | Path) -> Names:
        """The names given to URLs in *folder* (DEST), as ``Namer`` asks for them."""
        return Names(self, os.path.abspath(folder))

    def flush(self) -> None:
        """Write every record handed to ``record_saved`` or claimed so far (close() does this too)."""
        self._writer.flush()

    def partials(self) -> list[Partial]:
        """Every partial download on record, by URL (saved records written first, so none is stale)."""
        self._writer.flush()
        return self._run("list partial downloads", lambda conn: [_partial(row) for row in conn.execute(_ALL_PARTIALS)])

    def close(self) -> None:
        self._writer.close()
        with self._lock:
            conn, self._conn = self._conn, None
            readers, self._reader_conns = self._reader_conns, []
        for reader in readers:
            with contextlib.suppress(sqlite3.Error):
                reader.close()
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error as exc:
                raise StateError(f"could not close state database '{self.path}': {exc}") from exc

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<StateStore {'closed' if self._conn is None else 'open'} {str(self.path)!r}>"

    def _read(self, doing: str, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run a query on this thread's own connection: in WAL mode readers never wait for each other."""
        if self._conn is None:
            raise StateError(f"could not {doing}: state database '{self.path}' is closed")
        try:
            conn = getattr(self._readers, "conn", None)
            if conn is None:
                conn = _connect(self.path)
                with self._lock:
                    self._reader_conns.append(conn)
                self._readers.conn = conn
            return work(conn)
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            raise StateError(f"could not {doing}: state database '{self.path}' {_trouble(exc)}") from exc

    def _run(self, doing: str, work: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._lock:
            if self._conn is None:
                raise StateError(f"could not {doing}: state database '{self.path}' is closed")
            try:
                return work(self._conn)
            # ValueError: text sqlite3 cannot encode, or a stored row that is not a valid record.
            except (sqlite3.Error, ValueError, OverflowError) as exc:
                raise StateError(f"could not {doing}: state database '{self.path}' {_trouble(exc)}") from exc


class Names:
    """The file names given to URLs in one folder: what ``fetcher._naming.Namer`` asks a store.

    *url* is the caller's key for a URL (fetcher's: the normal form without a
    password).  Reads go through the store's per-thread connections after the
    claims not yet written; claims go to its writer thread.  A read that fails
    is logged (once) and answered "none": the run goes on, and names only lose
    their memory of earlier runs.
    """

    def __init__(self, store: StateStore, folder: str) -> None:
        self._store = store
        self.folder = folder
        self._warned = False
        # A folder with no name on record when the run began (a first run) has no URL
        # to look up: each URL is named once a run, so only this run's claims could
        # answer, and they are still pending.  A query per URL costs more than its
        # own time (each gives up the GIL among all the run's threads): measured,
        # +0.3 ms of CPU per file on the 2,000-file list for both queries.
        self._fresh = self._lookup("look up file names", _ANY_NAME, None) is None

    def name_of(self, url: str) -> str | None:
        """The name *url* was given, or None."""
        found = self._store._writer.pending_name(self.folder, url)
        if found is not None or self._fresh:
            return found
        return self._lookup("look up a file name", _NAME_OF, url)

    def owner_of(self, name_folded: str) -> str | None:
        """The URL that was given the name whose ``casefold()`` is *name_folded*, or None."""
        writer = self._store._writer
        found = writer.pending_owner(self.folder, name_folded)
        if found is not None:
            return found
        # In a fresh folder only this process's claims and other processes' can be on record.  The
        # common case, a name not claimed here, needs no query (a query per URL costs 8-25 µs,
        # mostly the GIL retaken among the run's threads) once the writer has seen that no one
        # else writes names there (see _Writer.alone_in).
        if self._fresh and writer.alone_in(self.folder) and not writer.may_have_claimed(self.folder, name_folded):
            return None
        return self._lookup("look up a file name", _OWNER_OF, name_folded)

    def claim(self, name: str, url: str) -> None:
        """Give *url* the name *name* (in place of any name it had), written behind."""
        self._writer_open().claim(self.folder, name, url, fresh=self._fresh)

    def known_or_claim(self, name: str, url: str, *, state_key: str | None = None) -> str | None:
        """*url*'s name on record; else *name*, now claimed for it, if no other URL has it; else None.

        In a fresh folder where only this process writes names, one step under the writer's lock;
        elsewhere ``name_of``, ``owner_of`` and ``claim`` in turn.  *state_key* is not used: the
        state is read when asked.
        """
        if self._fresh:
            answered, found = self._writer_open().known_or_claim(self.folder, name, url)
            if answered:
                return found
        known = self.name_of(url)
        if known is not None:
            return known
        if self.owner_of(name.casefold()) is not None:
            return None
        self.claim(name, url)
        return name

    def _writer_open(self) -> _Writer:
        if self._store._conn is None:
            raise StateError(f"could not record a file name: state database '{self._store.path}' is closed")
        return self._store._writer

    def _lookup(self, doing: str, query: str, value: str | None) -> str | None:
        arguments = (self.folder,) if value is None else (self.folder, value)
        try:
            row = self._store._read(doing, lambda conn: conn.execute(query, arguments).fetchone())
        except StateError as exc:
            if not self._warned:
                self._warned = True
                log.warning("%s; file names are given afresh", exc)
            return None
        return None if row is None else str(row[0])

    def __repr__(self) -> str:
        return f"<Names {self.folder!r} in {self._store!r}>"


def _hashed(name_folded: str) -> tuple[int, int]:
    """A name's hash and Bloom fingerprint."""
    h = int.from_bytes(hashlib.blake2b(name_folded.encode("utf-8", "surrogatepass"), digest_size=16).digest(), "little")
    return h, fingerprint(h)


def _row(record: Saved | Partial, columns: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(getattr(record, name) for name in columns)


class _Batch:
    """Records handed to the writer and not yet committed: saved files by URL, name claims both ways."""

    __slots__ = ("saved", "names", "owners")

    def __init__(self) -> None:
        self.saved: dict[str, Saved] = {}
        self.names: dict[tuple[str, str], str] = {}  # (folder, url) -> name
        self.owners: dict[tuple[str, str], str] = {}  # (folder, name_folded) -> url

    def __bool__(self) -> bool:
        return bool(self.saved or self.names)

    def __len__(self) -> int:
        return len(self.saved) + len(self.names)

    def claim(self, folder: str, name: str, url: str) -> None:
        old = self.names.get((folder, url))
        if old is not None and self.owners.get((folder, old.casefold())) == url:
            del self.owners[folder, old.casefold()]
        self.names[folder, url] = name
        self.owners[folder, name.casefold()] = url

    def absorb(self, other: _Batch) -> None:
        for (folder, url), name in other.names.items():
            self.claim(folder, name, url)


class _Writer(Behind):
    """A thread that writes saved records and name claims in batches, through a connection of its own."""

    def __init__(self, path: Path, *, max_pending: int = MAX_PENDING) -> None:
        # Bounded: a writer stuck behind another process's lock logs it and drops the batch after the busy
        # timeout; never hang the caller on it.
        super().__init__(max_pending=max_pending, flush_wait_s=BUSY_TIMEOUT_S * 2 + 1,
                         close_wait_s=BUSY_TIMEOUT_S * 3, thread_name="fetcher-state-writer")  # fmt: skip
        self._path = path
        self._waiting = _Batch()  # handed over, not yet being written
        self._writing = _Batch()  # in the transaction under way
        self._lost = _Batch()  # claims that could not be written: still answered, so no name is given twice
        # By folder, the names claimed through this writer, as a Bloom filter (about a byte and a
        # half a name): in a fresh folder, a name not in it can only be another process's (owner_of).
        self._claimed: dict[str, Bloom] = {}
        self._unchecked: list[str] = []  # fresh folders claimed in, not yet looked at for others' names
        self._alone: set[str] = set()  # fresh folders where no one else has written names (alone_in)
        self._others_write = False  # another connection has written to the file since the first transaction
        self._version: int | None = None  # PRAGMA data_version in the last transaction

    def put(self, saved: Saved) -> None:
        with self._changed:
            self._take("a saved file")
            self._waiting.saved[saved.url] = saved
            self._wake()

    def claim(self, folder: str, name: str, url: str, *, fresh: bool = False) -> None:
        with self._changed:
            self._claim(folder, name, url, _hashed(name.casefold()), fresh=fresh)

    def known_or_claim(self, folder: str, name: str, url: str) -> tuple[bool, str | None]:
        """``Names.known_or_claim`` in one step, where no query is needed: (True, its answer); else (False, None).

        It can tell in a folder this writer is ``alone_in``: there only this process's claims, all
        known here, can hold a name.
        """
        folded = name.casefold()
        with self._changed:
            known = self._name((folder, url))
            if known is not None:
                return True, known
            if self._owner((folder, folded)) is not None:
                return True, None
            hashed = _hashed(folded)
            if folder not in self._alone or self._may_hold(folder, hashed):
                return False, None
            self._claim(folder, name, url, hashed, fresh=True)
            return True, name

    def _claim(self, folder: str, name: str, url: str, hashed: tuple[int, int], *, fresh: bool) -> None:
        """Under the lock: ``claim``, with the hash of the name's ``casefold()``."""
        self._take("a file name")
        self._waiting.claim(folder, name, url)
        claimed = self._claimed.get(folder)
        if claimed is None:
            claimed = self._claimed[folder] = Bloom(last_bits=CLAIMED_FILTER_BITS)
            if fresh:
                self._unchecked.append(folder)
        claimed.add(*hashed)
        self._wake()

    def alone_in(self, folder: str) -> bool:
        """Whether, as of this writer's last transaction, only this writer has written names to *folder*.

        True only for a folder that had no names when its ``Names`` was made (a claim
        said so), from the transaction that wrote its first claims, and only while no
        other connection has written anything to the file since: a commit of another
        process shows within a transaction, the lag of a claim of this one not written
        yet.  A partial file this process records (on its own connection) counts as
        another's write: names are then looked up, as before.
        """
        return folder in self._alone

    def may_have_claimed(self, folder: str, name_folded: str) -> bool:
        """False if no name claimed through this writer in *folder* has this ``casefold()``; else most likely."""
        with self._changed:
            return self._may_hold(folder, _hashed(name_folded))

    def _may_hold(self, folder: str, hashed: tuple[int, int]) -> bool:
        """Under the lock: ``may_have_claimed``, with the hash of the name's ``casefold()``."""
        claimed = self._claimed.get(folder)
        return claimed is not None and claimed.may_hold(*hashed)

    def _take(self, what: str) -> None:
        """Check a record can be taken (see Behind._make_room)."""
        if self._closing:
            raise StateError(f"could not record {what}: state database '{self._path}' is closed")
        self._make_room()

    def _count(self) -> int:
        return len(self._waiting)

    def _busy(self) -> bool:
        return bool(self._waiting or self._writing)

    def _write_now(self) -> bool:
        # Not the first claims in a fresh folder: until they are written, every name given there is
        # looked up in the database (see alone_in), and a long list's first URLs come fast.
        return bool(self._unchecked)

    def pending(self, url: str) -> Saved | None:
        with self._changed:
            return self._waiting.saved.get(url) or self._writing.saved.get(url)

    def pending_many(self, urls: list[str]) -> dict[str, Saved]:
        """``pending`` for each of *urls* that has a record waiting, under one taking of the lock."""
        with self._changed:
            waiting, writing = self._waiting.saved, self._writing.saved
            if not waiting and not writing:
                return {}
            return {url: saved for url in urls if (saved := waiting.get(url) or writing.get(url)) is not None}

    def pending_name(self, folder: str, url: str) -> str | None:
        with self._changed:
            return self._name((folder, url))

    def pending_owner(self, folder: str, name_folded: str) -> str | None:
        with self._changed:
            return self._owner((folder, name_folded))

    def _name(self, key: tuple[str, str]) -> str | None:
        return self._waiting.names.get(key) or self._writing.names.get(key) or self._lost.names.get(key)

    def _owner(self, key: tuple[str, str]) -> str | None:
        return self._waiting.owners.get(key) or self._writing.owners.get(key) or self._lost.owners.get(key)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            conn = _connect(self._path)
            conn.execute("PRAGMA synchronous=NORMAL")
            while True:
                with self._changed:
                    if not self._gathered():
                        return  # closing, and everything is written
                    self._writing, self._waiting = self._waiting, _Batch()
                    self._changed.notify_all()  # callers waiting for room
                written = self._write(conn, self._writing)
                with self._changed:
                    if not written:
                        self._lost.absorb(self._writing)
                    self._writing = _Batch()
                    self._changed.notify_all()
        except sqlite3.Error as exc:
            log.warning("could not record saved files: state database '%s' %s", self._path, _trouble(exc))
        finally:
            with self._changed:
                self._lost.absorb(self._writing)
                self._lost.absorb(self._waiting)
                self._waiting, self._writing = _Batch(), _Batch()
                self._changed.notify_all()
            if conn is not None:
                conn.close()

    def _write(self, conn: sqlite3.Connection, batch: _Batch) -> bool:
        # Many rows a statement, not one (executemany): sqlite3 lets go of the GIL for every step, and
        # each time the run's other threads take it, so the writer waited for it 4 times a URL.
        records = list(batch.saved.values())
        claims = [(folder, name.casefold(), url, name) for (folder, url), name in batch.names.items()]
        by_folder: dict[str, list[str]] = {}
        for folder, _, url, _ in claims:
            by_folder.setdefault(folder, []).append(url)
        try:
            with _transaction(conn):
                self._look_for_others(conn)
                _put_rows(conn, _PUT_SAVED_ROWS, [_SAVED_VALUES(saved) for saved in records])
                # A saved record forgets the URL's older partial: there is none to look for when the
                # table is empty, as it is on almost every run (the write lock is held: none comes).
                if records and conn.execute(_ANY_PARTIAL).fetchone() is not None:
                    conn.executemany(_FORGET_OLDER_PARTIAL, [(saved.url, saved.saved_at) for saved in records])
                step = _rows_per_statement(conn, 1)
                for folder, urls in by_folder.items():
                    for start in range(0, len(urls), step):
                        chunk = urls[start : start + step]
                        conn.execute(f"{_DROP_NAMES}({', '.join('?' * len(chunk))})", [folder, *chunk])
                _put_rows(conn, _CLAIM_NAMES, claims)
        except sqlite3.Error as exc:
            # This batch is lost; the next run downloads those files in full. Go on with the next.
            log.warning("could not record %d saved files and %d names: state database '%s' %s", len(records),
                        len(claims), self._path, _trouble(exc))  # fmt: skip
            return False
        return True

    def _look_for_others(self, conn: sqlite3.Connection) -> None:
        """Keep ``alone_in`` true (this transaction holds the write lock; nothing is written yet).

        A folder fresh when its Names was made may have been written to since: it is
        looked at in the transaction that writes its first claims, where a name on record
        is another's.  After that, any change between two transactions is another's.
        """
        with self._changed:
            folders, self._unchecked = self._unchecked, []
        if self._others_write:
            return
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        if self._version is not None and version != self._version:
            log.debug("state database '%s': another connection writes to it too; names are looked up", self._path)
            self._others_write = True
            self._alone = set()
            return
        self._version = version
        self._alone.update(folder for folder in folders if not conn.execute(_ANY_NAME, (folder,)).fetchone())


def _rows_per_statement(conn: sqlite3.Connection, width: int) -> int:
    """Rows of *width* values that one statement may bind on *conn* (one more value for the DELETE's folder)."""
    getlimit = getattr(conn, "getlimit", None)  # Python 3.11+
    values = _VALUES_LIMIT_OLD if getlimit is None else getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return max(1, min(ROWS_PER_STATEMENT, (values - 1) // width))


def _put_rows(conn: sqlite3.Connection, head: str, rows: list[tuple[Any, ...]]) -> None:
    """``head`` (an INSERT up to ``VALUES``) with *rows*, in as few statements as SQLite allows, in order."""
    if not rows:
        return
    width = len(rows[0])
    step = _rows_per_statement(conn, width)
    row = f"({', '.join('?' * width)})"
    for start in range(0, len(rows), step):
        chunk = rows[start : start + step]
        conn.execute(head + ", ".join([row] * len(chunk)), [value for each in chunk for value in each])


def _partial(row: tuple[Any, ...]) -> Partial:
    return Partial(**dict(zip(_PARTIAL, row, strict=True)))


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock first, waiting through the busy timeout; a
    # deferred transaction that reads and then writes can fail at once in WAL
    # mode when another process wrote in between.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: sqlite3 opens no transactions of its own, so a
    # lone statement commits by itself and _transaction is the only BEGIN.
    # check_same_thread=False: close() may run on another thread than use.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    return conn


def _open(path: Path) -> sqlite3.Connection:
    _make_file(path)
    try:
        conn = _connect(path)
    except sqlite3.Error as exc:
        raise StateError(f"state database '{path}' {_trouble(exc)}") from exc
    try:
        _use_wal(conn, path)
        conn.execute("PRAGMA synchronous=NORMAL")
        _check_schema(conn, path)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise StateError(f"state database '{path}' {_trouble(exc)}") from exc
        raise
    return conn


def _use_wal(conn: sqlite3.Connection, path: Path) -> None:
    # Switching a new file to WAL needs it to itself, and SQLite fails at once
    # rather than wait when another process opening it at the same instant has
    # it for a moment: so wait here, as the busy timeout would.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    pause = 0.001
    while True:
        try:
            mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            break
        except sqlite3.OperationalError as exc:
            if "database is locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(2 * pause, 0.05)
    if mode.lower() != "wal":
        log.warning("state database %s: WAL refused (%s); overlapping runs will wait on each other", path, mode)


def _make_file(path: Path) -> None:
    """Create *path* and its folders, so the OS (not SQLite) says what is wrong."""
    if path.is_dir():
        raise StateError(f"state database '{path}' is a folder, not a file (move it away or choose another path)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o666))
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTDIR):
            reason = "part of its path is a file, not a folder"
        else:
            reason = (exc.strerror or str(exc)).lower()
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            reason += " (fetcher must be able to write to it and to its folder)"
        raise StateError(f"cannot open state database '{path}': {reason}") from exc


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    version = _newest_known(conn, path)
    if version == SCHEMA_VERSION:
        return
    with _transaction(conn):
        version = _newest_known(conn, path)  # another process may have created or migrated it meanwhile
        if version == 0 and conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1").fetchone():
            raise StateError(f"state database '{path}' belongs to some other program (choose another path)")
        if version < SCHEMA_VERSION:
            # One transaction from whatever version it is to this one: a file is
            # never left half-migrated, and its records stay as they were.
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[step]:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            if version:
                log.info("state database %s: schema %d brought to %d", path, version, SCHEMA_VERSION)


def _newest_known(conn: sqlite3.Connection, path: Path) -> int:
    """The file's schema version, if this fetcher knows it."""
    version = _user_version(conn)
    if version > SCHEMA_VERSION:
        raise StateError(
            f"state database '{path}' was written by a newer fetcher (schema {version}, this one knows up to"
            f" {SCHEMA_VERSION}): upgrade fetcher, or move the file away to start afresh"
        )
    return version


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


#: Pieces of SQLite's messages (stable across versions), and what to tell the user.
_TROUBLES = (
    ("file is not a database", "is not a SQLite database (move it away to start afresh)"),
    ("malformed", "is damaged (move it away to start afresh)"),
    ("database is locked", "stayed locked by another process for {busy:g} s (let that run finish, then try again)"),
    ("readonly", "is read-only (make it and its folder writable)"),
    ("unable to open", "cannot be opened (its folder must be writable: SQLite keeps -wal and -shm files beside it)"),
    ("full", "cannot grow: the disk is full"),
)


def _trouble(exc: BaseException) -> str:
    """What went wrong, worded to follow "state database 'PATH' "."""
    text = str(exc)
    for piece, trouble in _TROUBLES:
        if piece in text.lower():
            return trouble.format(busy=BUSY_TIMEOUT_S)
    return f"failed: {text}"
