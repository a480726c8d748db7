"""The two records the state keeps for a URL, each checked as it is made: ``Saved``, what fetcher last saved
(what a re-run asks with), and ``Partial``, a download that a later attempt or run can resume.

Both stores hold these: the SQLite file in DEST (store.py) and a cluster's Redis (redis_store.py).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .._errors import ConfigError

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
