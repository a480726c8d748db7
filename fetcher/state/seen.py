"""Seen: the keys met so far, each with a value, kept on disk so that memory does not grow with them.

A run remembers something for every URL it reads: the feeder, the line each
URL was first seen on (to find duplicates); a Namer without a state database,
each URL's name and every name given.  In dicts that cost ~190 bytes a URL,
2 GiB at 10,000,000 URLs.  Seen keeps them in a private temporary SQLite
database instead (SQLite's own: in its temporary folder, ``$SQLITE_TMPDIR``,
``$TMPDIR``, else ``/var/tmp`` or ``/tmp``; unlinked as soon as it is created,
so even a killed run leaves nothing behind, and never in DEST).  In memory it
keeps only:

- the keys added since the last write, ``BATCH`` at most, written in one
  transaction of a few statements of many rows each (not one per row: SQLite
  gives up the GIL for each step, and retaking it among a run's threads costs
  more than the row);
- a Bloom filter over the keys on disk, about a byte and a half a key, so
  that the common question, a key never met, is answered without a query.  A
  key it may hold (a real repeat, or a few percent of new keys) is looked up
  on disk.

A list of fewer than ``BATCH`` keys never touches the disk, and costs what a
dict costs.  Keys are stored as keyed digests (BLAKE2b, 128 bits, keyed by a
secret made for each Seen): no URL, and no password in one, reaches the disk,
and two keys share a digest with a chance of about n² / 2¹²⁹.  If the temporary database cannot be written
(its folder full or read-only), Seen says so once in the log and keeps what it
could not write in memory, as fetcher did before.

Not thread-safe: each user calls it from one thread at a time.
"""

from __future__ import annotations

import array
import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Sequence
from typing import Generic, TypeVar

from .sqlite_file import values_limit

log = logging.getLogger("fetcher")

#: Keys gathered in memory before they are written to disk in one statement.
BATCH = 8192

#: Bloom filter bits for each key a layer is made for.  The filter is blocked:
#: a key's 6 bits are all in one 64-bit word, so a test is one read (~1.1%
#: false positives in a full layer; the layers' add up, to 3-5%).
BITS_PER_KEY = 12

#: The first layer's bits (16 KiB, ~11,000 keys); each next layer has 4 times
#: as many, up to LAST_LAYER_BITS (8 MiB, ~5,600,000 keys), which then takes
#: every key past ~9,300,000, its false positives slowly rising: answers stay
#: right, they only cost more queries.  13 MiB in all at 10,000,000 keys.
FIRST_LAYER_BITS = 1 << 17
LAST_LAYER_BITS = 1 << 26

#: SQLite's page cache for the temporary database, in KiB (memory; the rest is read from the file,
#: which the system caches).  2 MiB was no faster: 300,000 URLs through bench/dispatch.py took
#: 86-93 µs a URL with it, 84-90 with 512 KiB.
CACHE_KIB = 512

#: Hashes of keys looked up and not (yet) added that are kept for their add.
_LOOKED_UP_KEPT = 64

#: What a key is given: a line number, a file name.
V = TypeVar("V", int, str)

_LOW64 = (1 << 64) - 1
_HALF = 1 << 63

_CREATE = "CREATE TABLE seen (a INTEGER NOT NULL, b INTEGER NOT NULL, v NOT NULL, PRIMARY KEY (a, b)) WITHOUT ROWID"
_GET = "SELECT v FROM seen WHERE a = ? AND b = ?"
_ROW = "(?, ?, ?)"
# The rows go as bound values of one INSERT, sorted in Python so that they walk the B-tree in order:
# 1.45 µs a key, against 2.35 through json_each() of one JSON text (bench/README.md).
_PUT = "INSERT OR IGNORE INTO seen (a, b, v) VALUES "

#: Rows in one INSERT: a batch goes in several, in one transaction.  A statement for all 8,192 was no
#: faster and its compiled form held 4 MiB more.
ROWS_PER_STATEMENT = 1024

# Two of a fingerprint's bits for each 12 bits of a hash: three look-ups instead of six shifts
# (0.19 µs a fingerprint instead of 0.49; a run makes about six for each URL).  180 KiB.
_TWO_BITS = [(1 << (c & 63)) | (1 << (c >> 6)) for c in range(1 << 12)]


def fingerprint(h: int, _two_bits: list[int] = _TWO_BITS) -> int:
    """The 6 bits of a 64-bit word that stand for the hash *h* (from its upper half; the lower picks the word).

    The bits are those at the six 6-bit numbers in bits 64-99 of *h*.
    """
    x = h >> 64
    return _two_bits[x & 4095] | _two_bits[x >> 12 & 4095] | _two_bits[x >> 24 & 4095]


class _Unreadable(Exception):
    """The temporary database failed to answer (the disk failed under SQLite)."""


class Bloom:
    """A growing Bloom filter over 128-bit hashes: "no" is certain, "maybe" is right but for a few percent.

    Each call takes the hash and its ``fingerprint()``, worked out once by the caller.
    """

    def __init__(self, first_bits: int = FIRST_LAYER_BITS, last_bits: int = LAST_LAYER_BITS) -> None:
        self._last_words = max(first_bits, last_bits) // 64
        self._layers: list[tuple[array.array[int], int]] = []  # (words, index mask); keys go to the last
        self._room = 0  # keys the last layer is still made for
        self._grow(first_bits // 64)

    @classmethod
    def for_keys(cls, expected: int) -> Bloom:
        """A filter whose first layer is made for *expected* keys, within the usual first and last sizes.

        The filter grows four-fold a layer, so one that grows to a known count may hold 4 times the
        bits it needs (5.3 MiB for 1,000,000 keys); made for the count, it holds 2 MiB.
        """
        bits = FIRST_LAYER_BITS
        while bits < expected * BITS_PER_KEY and bits < LAST_LAYER_BITS:
            bits *= 2
        return cls(bits)

    def __len__(self) -> int:
        """Bytes held."""
        return sum(len(words) * 8 for words, _ in self._layers)

    def add(self, h: int, bits: int) -> None:
        words, mask = self._layers[-1]
        if self._room <= 0 and len(words) < self._last_words:
            self._grow(min(len(words) * 4, self._last_words))
            words, mask = self._layers[-1]
        self._room -= 1
        words[h & mask] |= bits

    def may_hold(self, h: int, bits: int) -> bool:
        for words, mask in self._layers:
            if words[h & mask] & bits == bits:
                return True
        return False

    def _grow(self, size_words: int) -> None:
        self._layers.append((array.array("Q", bytes(8 * size_words)), size_words - 1))
        self._room = size_words * 64 // BITS_PER_KEY


class Seen(Generic[V]):
    """Keys (text) with a value each (all ints or all text), on disk past the first ``batch``.

    *what*: the keys' kind, for the log ("URLs", "file names").
    """

    def __init__(self, what: str, *, batch: int | None = None, bloom: Bloom | None = None) -> None:
        self._what = what
        self._batch = BATCH if batch is None else batch
        # Keyed by a secret of this Seen's own; each digest starts from a copy of the keyed state,
        # which spares the key's own block (0.43 µs a digest instead of 0.58).
        self._keyed = hashlib.blake2b(digest_size=16, key=os.urandom(16))
        self._bloom = bloom if bloom is not None else Bloom()  # over the keys on disk
        self._pending: dict[str, V] = {}  # added, not written yet: a plain dict, as long as a list is short
        # Hashes worked out by a look-up, kept for the key's add and write: a key is usually
        # looked up just before it is added (setdefault, the Namer), and a hash costs ~0.7 µs.
        self._looked_up: dict[str, int] = {}
        self._hashes: dict[str, int] = {}  # of pending keys, where known
        self._conn: sqlite3.Connection | None = None
        self._rows_per_statement = 0  # set on connecting (SQLite limits the values bound to a statement)
        self._statements: dict[int, str] = {}  # INSERTs by their count of rows
        self._on_disk = 0  # keys written
        self._broken = False  # a write failed once: what is not written stays in memory
        self._read_failed = False

    def __len__(self) -> int:
        return self._on_disk + len(self._pending)

    def get(self, key: str) -> V | None:
        """*key*'s value, or None if it was never added."""
        found = self._pending.get(key)
        if found is not None or not self._on_disk:
            return found
        h = self._hash(key)
        if not self._bloom.may_hold(h, fingerprint(h)):
            return None
        try:
            return self._read(h)
        except _Unreadable:
            return None  # only when the disk fails under SQLite: taken as new (a URL is fetched again)

    def setdefault(self, key: str, value: V) -> V:
        """*key*'s value; added as *value* first if it has none."""
        found = self.get(key)
        if found is not None:
            return found
        self.add(key, value)
        return value

    def may_hold(self, key: str) -> bool:
        """False if *key* was never added; True if it was, or if the disk cannot say."""
        if key in self._pending:
            return True
        if not self._on_disk:
            return False
        h = self._hash(key)
        if not self._bloom.may_hold(h, fingerprint(h)):
            return False
        try:
            return self._read(h) is not None
        except _Unreadable:
            return True  # the safe side for a name: taken

    def add(self, key: str, value: V) -> None:
        """Give *key*, which the caller knows was never added, *value*."""
        self._pending[key] = value
        h = self._looked_up.pop(key, None)
        if h is not None:
            self._hashes[key] = h
        if len(self._pending) >= self._batch and not self._broken:
            self._write()

    def close(self) -> None:
        """Forget every key; the temporary database goes with its connection."""
        self._pending = {}
        self._hashes = {}
        self._looked_up = {}
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error as exc:
                log.debug("closing the temporary list of %s: %s", self._what, exc)

    def _hash(self, key: str) -> int:
        """*key*'s hash, for a look-up: kept until *key* is added (a few of the latest only)."""
        h = self._digest(key)
        looked_up = self._looked_up
        if len(looked_up) >= _LOOKED_UP_KEPT:
            looked_up.clear()  # keys looked up and never added (found, or taken)
        looked_up[key] = h
        return h

    def _digest(self, key: str) -> int:
        hasher = self._keyed.copy()
        hasher.update(key.encode("utf-8", "surrogatepass"))
        return int.from_bytes(hasher.digest(), "little")

    def _write(self) -> None:
        known = self._hashes
        hashes = [h if (h := known.get(key)) is not None else self._digest(key) for key in self._pending]
        # A text value goes as its JSON text, which keeps any string exactly (lone surrogates too).
        rows = sorted(
            ((h & _LOW64) - _HALF, (h >> 64) - _HALF, v if isinstance(v, int) else json.dumps(v))
            for h, v in zip(hashes, self._pending.values(), strict=True)
        )
        try:
            conn = self._connect()
            step = self._rows_per_statement
            if len(rows) <= step:
                self._insert(conn, rows)  # autocommit: the statement is its own transaction
            else:
                conn.execute("BEGIN")  # all of the batch or none of it
                try:
                    for start in range(0, len(rows), step):
                        self._insert(conn, rows[start : start + step])
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:  # SQLite may have rolled it back itself (a full disk)
                        conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            self._broken = True
            log.warning(
                "could not keep the %s read so far in a temporary file (%s): they stay in memory", self._what, exc
            )
            return
        bloom = self._bloom
        for h in hashes:
            bloom.add(h, fingerprint(h))
        self._on_disk += len(rows)
        self._pending = {}
        self._hashes = {}

    def _insert(self, conn: sqlite3.Connection, rows: Sequence[tuple[int, int, int | str]]) -> None:
        statement = self._statements.get(len(rows))
        if statement is None:
            statement = self._statements[len(rows)] = _PUT + ", ".join([_ROW] * len(rows))
        conn.execute(statement, [value for row in rows for value in row])

    def _read(self, h: int) -> V | None:
        """*h*'s value on disk, or None; ``_Unreadable`` if the disk fails to say."""
        conn = self._conn
        if conn is None:
            return None  # nothing written
        try:
            row = conn.execute(_GET, ((h & _LOW64) - _HALF, (h >> 64) - _HALF)).fetchone()
        except sqlite3.Error as exc:
            if not self._read_failed:
                self._read_failed = True
                log.warning("could not look up the %s read so far in their temporary file: %s", self._what, exc)
            raise _Unreadable from exc
        if row is None:
            return None
        value: V = json.loads(row[0]) if isinstance(row[0], str) else row[0]
        return value

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            # "": a private temporary database, deleted by SQLite itself.  The rollback
            # journal stays (a failed write leaves the table as it was); no fsync.
            conn = sqlite3.connect("", isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA synchronous=OFF")
                conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
                conn.execute(_CREATE)
            except sqlite3.Error:
                conn.close()
                raise
            self._rows_per_statement = max(1, min(ROWS_PER_STATEMENT, values_limit(conn) // 3))
            self._conn = conn
        return self._conn
