"""Downloading one URL into one file, all or nothing.

The body is streamed into a temporary file in DEST (``.fetcher-*.part``, a
name no URL can get: URL names never start with a dot) and moved over the
final name with ``os.replace`` only once it is complete.  So a file under its
final name is always whole, and a failed download never replaces a good file
from an earlier run.

"Complete" means the body ended cleanly and, when the server sent a
Content-Length, exactly that many bytes came over the wire (counted here, not
assumed).  A gzip-encoded body is saved decoded; its Content-Length counts the
encoded bytes, and that is what is compared.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import requests
import urllib3
from requests.adapters import HTTPAdapter

from .._config import FetcherConfig
from .._errors import BodyError, Cancelled, DownloadError, HTTPStatusError, TransportError, translate
from .tempfiles import TempFiles

log = logging.getLogger("fetcher")


class Watcher(Protocol):
    """Told about one download's bytes as they arrive (the progress display)."""

    def advance(self, n: int) -> None: ...

    def done(self) -> None: ...


#: Called when a response's headers are in: (url, file name, expected bytes or None).
WatchStart = Callable[[str, str, "int | None"], Watcher]


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """What one download attempt did.  ``error`` is None when the file is in place."""

    http_status: int | None
    bytes: int
    ttfb_s: float | None
    download_s: float | None
    error: DownloadError | None


def new_session(config: FetcherConfig) -> requests.Session:
    """A Session for one worker thread: keep-alive, bounded redirects, no retries."""
    session = requests.Session()
    session.max_redirects = config.max_redirects
    session.headers["User-Agent"] = config.user_agent
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=1, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if not urllib.request.getproxies() and not _netrc_present():
        # With trust_env on, requests re-reads every proxy variable and looks
        # for ~/.netrc on each request: half a millisecond of CPU per file,
        # more than the rest of a small download.  With no proxy and no netrc
        # configured, only the CA bundle variables are left to honour, and
        # they are read here once.  Otherwise requests keeps its per-URL
        # checks (NO_PROXY, netrc hosts).
        session.trust_env = False
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return session


def _netrc_present() -> bool:
    """Whether requests would find a netrc file (the places it looks)."""
    names = [os.environ["NETRC"]] if os.environ.get("NETRC") else ["~/.netrc", "~/_netrc"]
    return any(os.path.exists(os.path.expanduser(name)) for name in names)


def download(
    session: requests.Session,
    url: str,
    target: Path,
    *,
    config: FetcherConfig,
    temp_files: TempFiles,
    cancelled: threading.Event,
    watch: WatchStart | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Download *url* to *target*; never raises for a failure of the URL."""
    began = clock()
    http_status: int | None = None
    ttfb_s: float | None = None
    received = 0
    temp: Path | None = None
    watcher: Watcher | None = None
    try:
        with session.get(url, stream=True, timeout=config.timeout) as response:
            ttfb_s = clock() - began
            http_status = response.status_code
            _check_status(response, url)
            expected = _content_length(response, url)
            _check_room(target.parent, expected, url)
            fd, temp = temp_files.create(target.parent)
            if watch is not None:
                watcher = watch(url, target.name, expected)
            # Raw os.write on the descriptor: a file object would add an isatty
            # ioctl, a seek and a stat per file, for no gain with large chunks.
            with _closing_fd(fd):
                try:
                    # read1: whatever has arrived, up to chunk_size.  A full
                    # read(chunk_size) would wait for a whole chunk, so a slow
                    # download would show no progress for many seconds.
                    while chunk := response.raw.read1(config.chunk_size, decode_content=True):
                        if cancelled.is_set():
                            raise Cancelled(url, "cancelled")
                        _write_all(fd, chunk)
                        received += len(chunk)
                        if watcher is not None:
                            watcher.advance(len(chunk))
                except urllib3.exceptions.ProtocolError as exc:
                    raise _short_body(url, response, expected) from exc
            on_wire = response.raw.tell()
            if expected is not None and on_wire != expected:
                raise _short_body(url, response, expected)
        os.replace(temp, target)
        temp_files.forget(temp)
        temp = None
        error = None
        log.debug("saved %s (%d bytes)", target, received)
    except Exception as exc:  # every failure of this URL becomes its Outcome
        error = translate(exc, url)
        log.debug("failed %s: %s", target.name, error)
    finally:
        if temp is not None:
            temp_files.remove(temp)
        if watcher is not None:
            watcher.done()
    download_s = None if ttfb_s is None else clock() - began - ttfb_s
    return Outcome(http_status=http_status, bytes=received, ttfb_s=ttfb_s, download_s=download_s, error=error)


@contextlib.contextmanager
def _closing_fd(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _check_status(response: requests.Response, url: str) -> None:
    if response.status_code >= 400:
        raise HTTPStatusError(url, response.status_code, response.reason or "")
    if response.status_code >= 300:
        # requests follows redirects; one left over had no usable Location.
        raise TransportError(url, f"HTTP {response.status_code} redirect without a usable Location")


def _content_length(response: requests.Response, url: str) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or "chunked" in response.headers.get("Transfer-Encoding", "").lower():
        return None
    # Repeated headers arrive joined by commas; identical repeats are harmless.
    values = {part.strip() for part in value.split(",")}
    if len(values) != 1 or not next(iter(values)).isdigit():
        raise BodyError(url, f"invalid Content-Length header {value[:40]!r}")
    return int(next(iter(values)))


#: Below this, a body cannot be absurd enough to be worth a statfs call per file.
ROOM_CHECK_FROM = 64 << 20


def _check_room(folder: Path, expected: int | None, url: str) -> None:
    if expected is None or expected < ROOM_CHECK_FROM:
        return
    free = shutil.disk_usage(folder).free
    if expected > free:
        raise BodyError(url, f"Content-Length of {expected} bytes is more than the {free} bytes free on disk")


def _short_body(url: str, response: requests.Response, expected: int | None) -> BodyError:
    on_wire = response.raw.tell()
    if expected is None:
        return BodyError(url, f"connection closed after {on_wire} bytes, before the body ended")
    if on_wire > expected:
        return BodyError(url, f"body longer than its Content-Length ({expected} bytes)")
    return BodyError(url, f"body cut short: {on_wire} of {expected} bytes")
