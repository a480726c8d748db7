"""StateStore: the state database in a SQLite file, as a run asks it for records and names.

Two connections, because every URL of a run is looked up and then recorded:

- Lookups go through a connection per thread (WAL readers never wait for
  each other).  The run reads ahead in batches (``saved_many``) on one
  thread, so in practice this is one or two connections.
  The rare partial-file writes go through one connection under a lock,
  each its own short transaction.
- ``record_saved`` (and ``Names.claim``) hands its record to the writer
  thread (writer.py), which commits what has gathered in batches.  Until
  written, a record is answered from memory, so the process always sees its
  own writes.

Which URLs have a partial file is also kept in memory (it is few, and read
at open), so that the lookup every URL makes needs no query when, as almost
always, there is none.  Nothing else per URL is kept in memory.  No sqlite3
exception leaves the package: each becomes a ``StateError`` with one
readable line (sqlite_file.py words them); the writer thread logs its own.
The file itself, its tables and how it is opened: sqlite_file.py.  The
records: records.py.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from .._errors import StateError
from .behind import WRITE_EVERY_S as WRITE_EVERY_S  # the writer commits at least this often while records wait
from .records import Partial, Saved
from .sqlite_file import (
    ANY_NAME,
    PARTIAL_COLUMNS,
    SAVED_COLUMNS,
    connect,
    in_chunks,
    open_file,
    partial_of,
    partial_row,
    saved_of,
    trouble,
)
from .writer import Writer

__all__ = ["DEFAULT_STATE_NAME", "Names", "Partial", "Saved", "StateStore", "WRITE_EVERY_S"]

log = logging.getLogger("fetcher")

#: The file's name in DEST.  Hidden: URL names never start with a dot.
DEFAULT_STATE_NAME = ".fetcher-state.db"

_T = TypeVar("_T")


def _upsert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


_PUT_PARTIAL = _upsert("partial", PARTIAL_COLUMNS)
_GET_SAVED = f"SELECT {', '.join(SAVED_COLUMNS)} FROM saved WHERE url = ?"
_GET_SAVED_IN = f"SELECT {', '.join(SAVED_COLUMNS)} FROM saved WHERE url IN"
_GET_PARTIAL = f"SELECT {', '.join(PARTIAL_COLUMNS)} FROM partial WHERE url = ?"
_ALL_PARTIALS = f"SELECT {', '.join(PARTIAL_COLUMNS)} FROM partial ORDER BY url"
_FORGET_PARTIAL = "DELETE FROM partial WHERE url = ?"
_NAME_OF = "SELECT name FROM names WHERE folder = ? AND url = ?"
_OWNER_OF = "SELECT url FROM names WHERE folder = ? AND name_folded = ?"


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
        self._conn: sqlite3.Connection | None = open_file(self.path)
        try:
            urls = self._conn.execute("SELECT url FROM partial").fetchall()
        except sqlite3.Error as exc:
            self._conn.close()
            raise StateError(f"state database '{self.path}' {trouble(exc)}") from exc
        self._partial_urls: set[str] = {url for (url,) in urls}
        self._writer = Writer(self.path)
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
            return None if row is None else saved_of(row)

        return self._read("look up a saved file", work)

    def saved_many(self, urls: list[str]) -> dict[str, Saved]:
        """The saved records of those *urls* that have one: a query per up to 512 URLs, not per URL."""
        found = self._writer.pending_many(urls)
        rest = [url for url in urls if url not in found]

        def work(conn: sqlite3.Connection) -> dict[str, Saved]:
            rows: dict[str, Saved] = {}
            for chunk in in_chunks(rest, 512):
                query = f"{_GET_SAVED_IN} ({', '.join('?' * len(chunk))})"
                for row in conn.execute(query, chunk):
                    saved = saved_of(row)
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
            return None if row is None else partial_of(row)

        return self._read("look up a partial download", work)

    def record_partial(self, partial: Partial) -> None:
        self._run("record a partial download", lambda conn: conn.execute(_PUT_PARTIAL, partial_row(partial)))
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
        return self._run("list partial downloads", lambda conn: list(map(partial_of, conn.execute(_ALL_PARTIALS))))

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
                conn = connect(self.path)
                with self._lock:
                    self._reader_conns.append(conn)
                self._readers.conn = conn
            return work(conn)
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            raise StateError(f"could not {doing}: state database '{self.path}' {trouble(exc)}") from exc

    def _run(self, doing: str, work: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._lock:
            if self._conn is None:
                raise StateError(f"could not {doing}: state database '{self.path}' is closed")
            try:
                return work(self._conn)
            # ValueError: text sqlite3 cannot encode, or a stored row that is not a valid record.
            except (sqlite3.Error, ValueError, OverflowError) as exc:
                raise StateError(f"could not {doing}: state database '{self.path}' {trouble(exc)}") from exc


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
        self._fresh = self._lookup("look up file names", ANY_NAME, None) is None

    def others_named(self) -> None:
        """Names may have been claimed here by another process since this was made: look each one up."""
        self._fresh = False

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
        # else writes names there (see Writer.alone_in).
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

    def _writer_open(self) -> Writer:
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
