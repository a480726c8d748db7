"""The URL list: reading it lazily, and deciding which lines are usable URLs.

Format: one URL per line; surrounding white space is stripped; blank lines and
lines starting with ``#`` are skipped.  Reading is lazy: a list of a million
lines is read one line at a time as the downloads need more.
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO
from urllib.parse import urlsplit

import requests

from ._errors import FetcherError, URLListError

#: Longer URLs are refused: servers reject them anyway, and they bloat the report.
MAX_URL_LENGTH = 8192

_SPACE = re.compile(r"\s")


@dataclass(frozen=True, kw_only=True, slots=True)
class Entry:
    """One URL and the line of the list it came from (1-based)."""

    url: str
    line: int


def open_url_list(source: str) -> Iterator[Entry]:
    """Open the list at *source* (a path, or ``-`` for standard input).

    The file is opened now, so a missing or unreadable list fails here with
    URLListError; its lines are read later, as the returned iterator is used.
    """
    if source == "-":
        stream: TextIO = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", errors="replace")
        return _entries(stream, "standard input", close=False)
    try:
        stream = open(source, encoding="utf-8-sig", errors="replace")  # noqa: SIM115 - closed by _entries
    except OSError as exc:
        raise URLListError(f"cannot read URL list '{source}': {exc.strerror or exc}") from exc
    return _entries(stream, source, close=True)


def _entries(stream: TextIO, name: str, *, close: bool) -> Iterator[Entry]:
    try:
        for number, raw in enumerate(stream, start=1):
            text = raw.strip()
            if text and not text.startswith("#"):
                yield Entry(url=text, line=number)
    except OSError as exc:
        raise URLListError(f"cannot read URL list '{name}': {exc.strerror or exc}") from exc
    finally:
        if close:
            stream.close()
        elif isinstance(stream, io.TextIOWrapper):
            stream.detach()  # so collecting the wrapper does not close stdin


def count_entries(source: str) -> int | None:
    """How many URL lines a list file holds (duplicates included), or None.

    Only for regular files: standard input can be read only once.
    """
    if source == "-":
        return None
    try:
        return sum(1 for _ in open_url_list(source))
    except FetcherError:
        return None


def check_url(url: str) -> str | None:
    """Return why *url* cannot be downloaded, or None if it can."""
    if len(url) > MAX_URL_LENGTH:
        return f"URL longer than {MAX_URL_LENGTH} characters"
    if "://" not in url:
        return "not a URL (expected http:// or https://)"
    if not url.isprintable() or _SPACE.search(url):
        return "URL contains spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    scheme = parts.scheme.lower()
    if not scheme:
        return "not a URL (expected http:// or https://)"
    if scheme not in ("http", "https"):
        return f"unsupported scheme '{scheme}:' (only http and https)"
    if not parts.hostname:
        return "URL has no host"
    if parts.hostname.startswith(("*", ".")):
        return "URL has an invalid host"
    if not url.isascii():
        # requests' own checks of international host names (IDNA), with no
        # network.  An ASCII URL passes them whenever it passes the above.
        try:
            requests.PreparedRequest().prepare_url(url, None)
        except requests.exceptions.RequestException as exc:
            return f"not a valid URL ({exc.__class__.__name__})"
    return None
