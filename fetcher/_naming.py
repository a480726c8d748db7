"""File names: from a URL to a safe name inside DEST, distinct for each URL.

A name comes from the URL's last path segment, percent-decoded, and is then
made safe: it can never name a path outside DEST, never be hidden, never carry
control characters.  Server headers (Content-Disposition) are ignored on
purpose: the list's author chose the URLs, the server does not choose names.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

#: The name used when the URL's last segment leaves nothing (``https://host/dir/``).
FALLBACK_NAME = "index.html"

#: Most file systems allow 255 bytes in one name.
MAX_NAME_BYTES = 255

# Path separators, characters Windows forbids, and the NUL byte.
_FORBIDDEN = frozenset('/\\<>:"|?*\0')
_FORBIDDEN_RE = re.compile("[" + re.escape("".join(sorted(_FORBIDDEN))) + "]")


def name_from_url(url: str) -> str:
    """The safe file name a URL would get if no other URL claimed it first."""
    try:
        path = urlsplit(url).path
    except ValueError:
        path = ""
    segment = path.rpartition("/")[2]
    return safe_name(unquote(segment, errors="replace"))


def safe_name(name: str) -> str:
    """Make *name* usable as one file name inside DEST, and nothing else."""
    cleaned = name
    if not name.isprintable() or _FORBIDDEN_RE.search(name):  # the rare case: check each character
        cleaned = "".join("_" if c in _FORBIDDEN or not c.isprintable() else c for c in name)
    cleaned = cleaned.strip().rstrip(".")
    if cleaned in ("", ".", ".."):
        return FALLBACK_NAME
    if cleaned.startswith("."):
        # No hidden files; this also keeps names apart from fetcher's own
        # temporary files, which all start with a dot.
        cleaned = "_" + cleaned[1:]
    return _fit(cleaned)


def _fit(name: str, limit: int = MAX_NAME_BYTES) -> str:
    """Shorten *name* to *limit* UTF-8 bytes, keeping a short extension."""
    if len(name.encode()) <= limit:
        return name
    stem, ext = os.path.splitext(name)
    if len(ext.encode()) > 16:
        stem, ext = name, ""
    room = limit - len(ext.encode())
    stem = stem.encode()[:room].decode(errors="ignore")
    return stem + ext


class Namer:
    """Gives each URL one name, the same every time, never another URL's.

    The first URL to claim a name gets it plain; a later URL whose name is
    taken gets the name with a short hash of its own URL before the extension
    (``rfc791-3fa2c1d0.txt``), so its name does not depend on how many others
    collided.  Names are compared case-insensitively, because two names that
    differ only in case are one file on macOS and Windows.

    Thread-safe.  Memory grows with the number of distinct URLs named.
    """

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._by_url: dict[str, str] = {}
        self._taken: set[str] = {name.casefold() for name in reserved}

    def name_for(self, url: str, *, preferred: str | None = None) -> str:
        """*url*'s name; *preferred* (the list's ``out=``) instead of the URL's own, made safe."""
        with self._lock:
            name = self._by_url.get(url)
            if name is None:
                name = self._claim(url, preferred)
                self._by_url[url] = name
            return name

    def _claim(self, url: str, preferred: str | None) -> str:
        name = name_from_url(url) if preferred is None else safe_name(preferred)
        stem, ext = os.path.splitext(name)
        if len(ext.encode()) > 16:
            stem, ext = name, ""  # not really an extension; keep the suffix room small
        attempt = 0
        while name.casefold() in self._taken:
            attempt += 1
            digest = hashlib.sha256(f"{url}#{attempt}".encode()).hexdigest()[:8]
            tail = f"-{digest}{ext}"
            name = _fit(stem, MAX_NAME_BYTES - len(tail.encode())) + tail
        self._taken.add(name.casefold())
        return name
