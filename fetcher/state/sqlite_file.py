"""The SQLite file behind the state database: its tables, how a connection to it is opened, a write
transaction, and SQLite's errors in words.

The file is in WAL mode, so overlapping runs read while one writes, and
writes from several processes queue for up to ``BUSY_TIMEOUT_S``.  A process
killed at any instant leaves the last committed state, which SQLite recovers
on the next open.  A file of an older schema is migrated in one transaction
as it is opened; one of a newer schema, or another program's, is refused.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import operator
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from .._errors import StateError
from .records import Partial, Saved

log = logging.getLogger("fetcher")

_T = TypeVar("_T")

#: How long a write waits for another process's write before it fails.
BUSY_TIMEOUT_S = 5.0

#: SQLite's page cache for each connection, in KiB.  A run has one per thread that reads, and the
#: file's pages are in the system's cache anyway: SQLite's default (2 MiB) would hold copies of them.
CACHE_KIB = 512

#: Stored in ``PRAGMA user_version``.  Bump it with every change to the tables, and add
#: the change to ``_MIGRATIONS``; a file with a higher number is refused rather than misread.
#: 1: saved, partial (fetcher 0.1).  2: names.
SCHEMA_VERSION = 2

# Column names are the field names, in field order: a row is the record.
SAVED_COLUMNS = tuple(f.name for f in fields(Saved))
PARTIAL_COLUMNS = tuple(f.name for f in fields(Partial))

#: A record's row, its values in column order, in one call.
saved_row = operator.attrgetter(*SAVED_COLUMNS)
partial_row = operator.attrgetter(*PARTIAL_COLUMNS)


def saved_of(row: tuple[Any, ...]) -> Saved:
    """The Saved record a row of the ``saved`` table holds."""
    return Saved(**dict(zip(SAVED_COLUMNS, row, strict=True)))


def partial_of(row: tuple[Any, ...]) -> Partial:
    """The Partial record a row of the ``partial`` table holds."""
    return Partial(**dict(zip(PARTIAL_COLUMNS, row, strict=True)))


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

#: Whether a folder has any name on record.
ANY_NAME = "SELECT 1 FROM names WHERE folder = ? LIMIT 1"


def in_chunks(items: Sequence[_T], largest: int) -> Iterator[Sequence[_T]]:
    """*items* in order, in chunks of a power of two each, none over *largest*: the biggest that fit.

    A statement with one ``?`` per item is a new statement for each length, and SQLite's compiled
    form of each stays in the connection's cache (128 of them): at 1 to 500 rows of a saved record,
    up to 40 MiB.  Chunked so, a kind of statement has at most 10 lengths, whatever the batches.
    """
    size = 1 << (max(1, largest).bit_length() - 1)
    start, count = 0, len(items)
    while start < count:
        while size > count - start:
            size >>= 1
        yield items[start : start + size]
        start += size


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction: committed if the block ends, rolled back if it raises."""
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


def connect(path: Path) -> sqlite3.Connection:
    """Another connection to a file ``open_file`` has opened."""
    # isolation_level=None: sqlite3 opens no transactions of its own, so a
    # lone statement commits by itself and transaction() is the only BEGIN.
    # check_same_thread=False: close() may run on another thread than use.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    return conn


def open_file(path: Path) -> sqlite3.Connection:
    """A connection to the state database at *path*, made (folders and all) if missing, in WAL mode, its tables
    brought to this fetcher's schema; StateError, in words, if any of that fails."""
    _make_file(path)
    try:
        conn = connect(path)
    except sqlite3.Error as exc:
        raise StateError(f"state database '{path}' {trouble(exc)}") from exc
    try:
        _use_wal(conn, path)
        conn.execute("PRAGMA synchronous=NORMAL")
        _check_schema(conn, path)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise StateError(f"state database '{path}' {trouble(exc)}") from exc
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
    with transaction(conn):
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


def trouble(exc: BaseException) -> str:
    """What went wrong, worded to follow "state database 'PATH' "."""
    text = str(exc)
    for piece, words in _TROUBLES:
        if piece in text.lower():
            return words.format(busy=BUSY_TIMEOUT_S)
    return f"failed: {text}"


#: SQLite's limit on the values bound to one statement where it cannot be asked (Python 3.10), its
#: default before SQLite 3.32.
_VALUES_LIMIT_OLD = 999


def values_limit(conn: sqlite3.Connection) -> int:
    """How many values SQLite binds to one statement on *conn*."""
    getlimit = getattr(conn, "getlimit", None)  # Python 3.11+
    return _VALUES_LIMIT_OLD if getlimit is None else int(getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
