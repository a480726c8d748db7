"""Validators: what lets fetcher ask "has it changed?" and "send me the rest".

Pure functions on header values; no I/O.  The rules follow RFC 9110 and what
real servers do (shared/notes/libraries.md, §7 and §8):

- A re-run sends back ``ETag`` as ``If-None-Match`` and ``Last-Modified`` as
  ``If-Modified-Since``, each exactly as the server sent it: nginx answers
  304 only to its own date string, byte for byte.
- A resume sends ``Range: bytes=N-`` with ``If-Range``, always: a Range
  without If-Range after the file changed joins the old head to the new tail.
  If-Range carries a *strong* ETag, or else a Last-Modified date that is
  itself strong (at least a second older than the response's Date), as
  §13.1.5 requires; apache gives a freshly written file a weak ETag, so its
  date is what makes it resumable.
- Only a body sent without Content-Encoding can be continued: a range of a
  gzip body counts encoded bytes, and fetcher saves bodies decoded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

__all__ = [
    "PartialFile",
    "Validators",
    "conditional_headers",
    "content_range",
    "identity_encoded",
    "last_modified_ns",
    "parse_http_date",
    "resumable",
    "resume_headers",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Validators:
    """What a server said identifies the version of the body it sent."""

    etag: str | None = None
    last_modified: str | None = None

    def __bool__(self) -> bool:
        return bool(self.etag or self.last_modified)


@dataclass(frozen=True, kw_only=True, slots=True)
class PartialFile:
    """The start of a body on disk, which a later request may continue.

    ``if_range`` is the validator to send in If-Range (a strong ETag or a
    strong date); ``total`` is the whole body's length.
    """

    path: Path
    if_range: str
    total: int
    validators: Validators


def conditional_headers(saved: Validators) -> dict[str, str]:
    """Headers that ask for the body only if it changed since *saved*."""
    headers = {}
    if saved.etag:
        headers["If-None-Match"] = saved.etag
    if saved.last_modified:
        headers["If-Modified-Since"] = saved.last_modified
    return headers


def resume_headers(partial: PartialFile, offset: int) -> dict[str, str]:
    """Headers that ask for the body from byte *offset*, if it is still the same body."""
    # identity: a range of an encoded body counts encoded bytes (see above).
    return {"Range": f"bytes={offset}-", "If-Range": partial.if_range, "Accept-Encoding": "identity"}


def resumable(headers: Mapping[str, str], length: int | None) -> tuple[str, Validators] | None:
    """(If-Range value, validators) when a 200 response with these headers can be continued later.

    *headers* is case-insensitive (requests' headers); *length* is its
    Content-Length, without which a joined file could not be checked.
    """
    if length is None or "bytes" not in headers.get("Accept-Ranges", "").lower():
        return None
    if not identity_encoded(headers):
        return None
    etag = headers.get("ETag")
    last_modified = headers.get("Last-Modified")
    validators = Validators(etag=etag, last_modified=last_modified)
    if etag and _strong_etag(etag):
        return etag, validators
    if last_modified and _strong_date(last_modified, headers.get("Date")):
        return last_modified, validators
    return None


def identity_encoded(headers: Mapping[str, str]) -> bool:
    """Whether a response's body comes as it is, without a Content-Encoding."""
    return headers.get("Content-Encoding", "identity").strip().lower() == "identity"


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


def content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """(first, last, total) from a ``Content-Range: bytes first-last/total``; None if unusable."""
    match = _CONTENT_RANGE.match(value or "")
    if match is None:
        return None
    first, last = int(match[1]), int(match[2])
    total = None if match[3] == "*" else int(match[3])
    if last < first or (total is not None and last >= total):
        return None
    return first, last, total


def last_modified_ns(value: str | None) -> int | None:
    """A Last-Modified date as nanoseconds since the epoch, for the file's mtime; None if unusable."""
    moment = _date(value)
    return None if moment is None else int(moment * 1_000_000_000)


def _strong_etag(etag: str) -> bool:
    return not etag.lstrip().startswith(("W/", "w/"))


def _strong_date(last_modified: str, date: str | None) -> bool:
    # RFC 9110 §8.8.2.2: a date is strong if the server's clock had moved on
    # by at least a second since then, so no second change hides in it.
    modified, sent = _date(last_modified), _date(date)
    return modified is not None and sent is not None and sent - modified >= 1


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP-date in any of RFC 9110's three forms, as an aware datetime; None if unusable."""
    if not value:
        return None
    from email.utils import parsedate_to_datetime  # here: the deciding process rarely parses a date

    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        # Python 3.10 raises TypeError on text that is not a date at all; 3.11+ ValueError.
        return None
    if moment.tzinfo is None:
        # The asctime form has no zone and "-0000" means none: both are GMT in
        # HTTP (RFC 9110 §5.6.7), never the local time a naive datetime means.
        moment = moment.replace(tzinfo=timezone.utc)
    return moment


def _date(value: str | None) -> float | None:
    moment = parse_http_date(value)
    try:
        return None if moment is None else moment.timestamp()
    except (OverflowError, ValueError, OSError):
        return None
