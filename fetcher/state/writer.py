"""The state database's writer thread: saved records and name claims handed to it one by one, written in
batches through a connection of its own, and answered from memory until they are.

A commit per file would cost more than the rest of a small download, and the
workers would queue behind each other's commits: the thread commits what has
gathered in one transaction (a batch per ``WRITE_EVERY_S`` at most, see
behind.py).  The price: a run killed by SIGKILL loses the records of its last
fraction of a second, and the next run downloads those few files in full
instead of asking if they changed.  A name claim whose write failed stays in
memory for the life of the store, so that no later URL of the run is given
its name.  It also keeps, as a Bloom filter (a byte and a half a name, 5.3 MiB
at most), which names this process claimed, so that the lookup of a name's
owner needs no query in a folder that had no names (``alone_in``), until
another connection writes to the file.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from pathlib import Path
from typing import Any

from .._errors import StateError
from . import sqlite_file
from .behind import MAX_PENDING, Behind
from .records import Saved
from .seen import Bloom, fingerprint
from .sqlite_file import ANY_NAME, SAVED_COLUMNS, connect, in_chunks, saved_row, transaction, trouble, values_limit

log = logging.getLogger("fetcher")

#: The largest layer of the Bloom filter of the names this process claimed: 4 MiB (5.3 MiB in all),
#: half a ``Seen``'s, as the feeder holds one of those too.  Past ~5,000,000 names, more of the names
#: this process never claimed are looked up in the database (a third at 10,000,000).
CLAIMED_FILTER_BITS = 1 << 25

# A saved record forgets only partials older than itself: one recorded since
# (another run, another fetch of the URL) stays.
_FORGET_OLDER_PARTIAL = "DELETE FROM partial WHERE url = ? AND updated_at <= ?"
# A URL's new name replaces its old one; a name another process claimed first stays its.
_DROP_NAMES = "DELETE FROM names WHERE folder = ? AND url IN "
_CLAIM_NAMES = "INSERT OR IGNORE INTO names (folder, name_folded, url, name) VALUES "
_PUT_SAVED_ROWS = f"INSERT OR REPLACE INTO saved ({', '.join(SAVED_COLUMNS)}) VALUES "
_ANY_PARTIAL = "SELECT 1 FROM partial LIMIT 1"

#: Rows in one statement of the writer's at most (fewer where SQLite binds fewer values); a batch goes
#: in chunks of powers of two (``in_chunks``).
ROWS_PER_STATEMENT = 256


def _hashed(name_folded: str) -> tuple[int, int]:
    """A name's hash and Bloom fingerprint."""
    h = int.from_bytes(hashlib.blake2b(name_folded.encode("utf-8", "surrogatepass"), digest_size=16).digest(), "little")
    return h, fingerprint(h)


class Batch:
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

    def absorb(self, other: Batch) -> None:
        for (folder, url), name in other.names.items():
            self.claim(folder, name, url)


class Writer(Behind):
    """A thread that writes saved records and name claims in batches, through a connection of its own."""

    def __init__(self, path: Path, *, max_pending: int = MAX_PENDING) -> None:
        # Bounded: a writer stuck behind another process's lock logs it and drops the batch after the busy
        # timeout; never hang the caller on it.
        super().__init__(max_pending=max_pending, flush_wait_s=sqlite_file.BUSY_TIMEOUT_S * 2 + 1,
                         close_wait_s=sqlite_file.BUSY_TIMEOUT_S * 3, thread_name="fetcher-state-writer")  # fmt: skip
        self._path = path
        self._waiting = Batch()  # handed over, not yet being written
        self._writing = Batch()  # in the transaction under way
        self._lost = Batch()  # claims that could not be written: still answered, so no name is given twice
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
        if claimed is None and not self._others_write:
            claimed = self._claimed[folder] = Bloom(last_bits=CLAIMED_FILTER_BITS)
            if fresh:
                self._unchecked.append(folder)
        if claimed is not None:
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
            conn = connect(self._path)
            conn.execute("PRAGMA synchronous=NORMAL")
            while True:
                with self._changed:
                    if not self._gathered():
                        return  # closing, and everything is written
                    self._writing, self._waiting = self._waiting, Batch()
                    self._changed.notify_all()  # callers waiting for room
                written = self._write(conn, self._writing)
                with self._changed:
                    if not written:
                        self._lost.absorb(self._writing)
                    self._writing = Batch()
                    self._changed.notify_all()
        except sqlite3.Error as exc:
            log.warning("could not record saved files: state database '%s' %s", self._path, trouble(exc))
        finally:
            with self._changed:
                self._lost.absorb(self._writing)
                self._lost.absorb(self._waiting)
                self._waiting, self._writing = Batch(), Batch()
                self._changed.notify_all()
            if conn is not None:
                conn.close()

    def _write(self, conn: sqlite3.Connection, batch: Batch) -> bool:
        # Many rows a statement, not one (executemany): sqlite3 lets go of the GIL for every step, and
        # each time the run's other threads take it, so the writer waited for it 4 times a URL.
        records = list(batch.saved.values())
        claims = [(folder, name.casefold(), url, name) for (folder, url), name in batch.names.items()]
        by_folder: dict[str, list[str]] = {}
        for folder, _, url, _ in claims:
            by_folder.setdefault(folder, []).append(url)
        try:
            with transaction(conn):
                self._look_for_others(conn)
                _put_rows(conn, _PUT_SAVED_ROWS, [saved_row(saved) for saved in records])
                # A saved record forgets the URL's older partial: there is none to look for when the
                # table is empty, as it is on almost every run (the write lock is held: none comes).
                if records and conn.execute(_ANY_PARTIAL).fetchone() is not None:
                    conn.executemany(_FORGET_OLDER_PARTIAL, [(saved.url, saved.saved_at) for saved in records])
                step = _rows_per_statement(conn, 1)
                for folder, urls in by_folder.items():
                    for chunk in in_chunks(urls, step):
                        conn.execute(f"{_DROP_NAMES}({', '.join('?' * len(chunk))})", [folder, *chunk])
                _put_rows(conn, _CLAIM_NAMES, claims)
        except sqlite3.Error as exc:
            # This batch is lost; the next run downloads those files in full. Go on with the next.
            log.warning("could not record %d saved files and %d names: state database '%s' %s", len(records),
                        len(claims), self._path, trouble(exc))  # fmt: skip
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
            with self._changed:
                # For good: no folder is alone_in again, so the filters are asked nothing more (up to 5.3 MiB
                # each; a long list's feeder process, whose parent records the saved files, gets here at once).
                self._others_write = True
                self._alone = set()
                self._claimed = {}
            return
        self._version = version
        self._alone.update(folder for folder in folders if not conn.execute(ANY_NAME, (folder,)).fetchone())


def _rows_per_statement(conn: sqlite3.Connection, width: int) -> int:
    """Rows of *width* values that one statement may bind on *conn* (one more value for the DELETE's folder)."""
    return max(1, min(ROWS_PER_STATEMENT, (values_limit(conn) - 1) // width))


def _put_rows(conn: sqlite3.Connection, head: str, rows: list[tuple[Any, ...]]) -> None:
    """``head`` (an INSERT up to ``VALUES``) with *rows*, in as few statements as SQLite allows, in order."""
    if not rows:
        return
    width = len(rows[0])
    step = _rows_per_statement(conn, width)
    row = f"({', '.join('?' * width)})"
    for chunk in in_chunks(rows, step):
        conn.execute(head + ", ".join([row] * len(chunk)), [value for each in chunk for value in each])
