"""What the tests of the state package share: a URL, its records, and a plain connection to a database file."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from fetcher.state import Partial, Saved

URL = "https://files.example/rfc791.txt"

DEST = os.path.abspath(os.sep + "dest")

FOLDER = DEST

# The tables as fetcher 0.1 created them (schema 1), kept here verbatim: a file
# made by that version must open and keep its records.


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


def raw(db: Path) -> contextlib.closing[sqlite3.Connection]:
    """A plain sqlite3 connection in autocommit mode, closed at the end of the with block."""
    return contextlib.closing(sqlite3.connect(db, timeout=5, isolation_level=None))


def wait_until(condition: Callable[[], bool], *, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"still not true after {limit_s} s"
        time.sleep(0.01)
