"""One attempt at one URL: a plain, conditional or ranged request, all or nothing.

The body is streamed into a temporary file in DEST (``.fetcher-*.part``, a
name no URL can get: URL names never start with a dot) and moved over the
final name with ``os.replace`` only once it is complete and checked.  So a
file under its final name is always whole, and a failed download never
replaces a good file from an earlier run.

What the attempt asks for comes in an ``Ask``: the validators of the file
already saved (a 304 then means "unchanged"), a partial file to continue
(Range + If-Range; only a 206 that continues it exactly is appended,
anything else starts over), a checksum, the time limits.  An attempt that
fails after part of a resumable body arrived hands the partial file back in
its ``Outcome``, for the next attempt or the next run.

"Complete" means the body ended cleanly and, when the server sent a
Content-Length, exactly that many bytes came over the wire (counted here, not
assumed).  A gzip-encoded body is saved decoded; its Content-Length counts the
encoded bytes, and that is what is compared.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urljoin

import requests
import urllib3

from .._config import FetcherConfig
from .._errors import BodyError, Cancelled, DownloadError, HTTPStatusError, TransportError, timed_out, translate
from .._units import format_size
from .bodyfile import KEEP_FROM as KEEP_FROM
from .bodyfile import BodyFile
from .bounds import SizeGuard, SpeedCheck, too_slow
from .hangup import Line, hung_up_on_stop, line_of, response_hung_up_on_stop
from .outcome import Ask as Ask
from .outcome import Outcome as Outcome
from .outcome import Watcher as Watcher
from .outcome import WatchStart as WatchStart
from .session import new_session as new_session  # where the workers have always found it
from .tempfiles import TempFiles
from .timelimits import TimeLimits
from .validators import PartialFile, Validators, conditional_headers, content_range, identity_encoded, resume_headers

log = logging.getLogger("fetcher")


PLAIN = Ask()


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
    ask: Ask = PLAIN,
) -> Outcome:
    """Make one attempt at *url* into *target*; never raises for a failure of the URL."""
    attempt = _Attempt(session, url, target, config, temp_files, cancelled, watch, clock, ask)
    return attempt.run()


class _Attempt:
    """The state of one attempt; ``run()`` once."""

    def __init__(
        self,
        session: requests.Session,
        url: str,
        target: Path,
        config: FetcherConfig,
        temp_files: TempFiles,
        cancelled: threading.Event,
        watch: WatchStart | None,
        clock: Callable[[], float],
        ask: Ask,
    ) -> None:
        self.session, self.url, self.target, self.config = session, url, target, config
        self.temp_files, self.cancelled, self.watch, self.clock, self.ask = temp_files, cancelled, watch, clock, ask
        self.began = clock()
        self.http_status: int | None = None
        self.ttfb_s: float | None = None
        self.body = BodyFile(target, temp_files, ask, config.chunk_size)
        self.received = 0  # bytes of this response's body written
        self.watcher: Watcher | None = None
        self.guard = _size_guard(config.max_filesize)
        self.limits = TimeLimits(config, url, clock, ask.deadline, ask.stop_at)
        # The session's sockets, for a stop to hang up: None for a session new_session did not make.
        self.line: Line | None = None if ask.on_stop is None else line_of(session, url)

    def run(self) -> Outcome:
        error: DownloadError | None = None
        unchanged = False
        validators: Validators | None = None
        mtime_ns: int | None = None
        try:
            resume = self.body.reopen(self.ask.resume)
            with hung_up_on_stop(self.ask.on_stop, self.line):
                try:
                    unchanged, validators, mtime_ns = self._exchange(resume)
                except _StartOver:
                    # The partial file cannot be continued: ask again for the whole body.
                    self._drop_partial()
                    if self.ask.before_request is not None:
                        self.ask.before_request(self.url)
                    unchanged, validators, mtime_ns = self._exchange(None)
        except Exception as exc:  # every failure of this URL becomes its Outcome
            limits = self.limits
            error = translate(exc, self.url, read_timeout=limits.read_timeout)
            if self.cancelled.is_set() and not isinstance(error, Cancelled):
                error = Cancelled(self.url, "cancelled")  # its connection was cut because the run stopped
            elif error.transient and limits.past_max_time():
                error = limits.over_time()  # a read timed out because the time was up
            elif error.transient and limits.speed_window is not None and timed_out(exc):
                # The read timeout was the speed window: the server sent nothing for that long.
                error = BodyError(self.url, too_slow(*limits.speed_window), transient=True)
            log.debug("failed %s: %s", self.target.name, error)
        finally:
            self._close()
        # Kept only for what may pass (a cut, a stall) or was stopped: a body
        # that broke a limit or failed its checksum must not be resumed.
        kept = self.body.release(error is not None and (error.transient or isinstance(error, Cancelled)))
        download_s = None if self.ttfb_s is None else self.clock() - self.began - self.ttfb_s
        return Outcome(
            http_status=self.http_status,
            bytes=self.body.offset + self.received,
            ttfb_s=self.ttfb_s,
            download_s=download_s,
            error=error,
            unchanged=unchanged,
            validators=validators,
            mtime_ns=mtime_ns,
            partial=kept,
            resumed_from=self.body.resumed_from,
        )

    # -- one request and its response --------------------------------------------

    def _exchange(self, resume: PartialFile | None) -> tuple[bool, Validators | None, int | None]:
        """Send the request, write the body; (unchanged, validators, mtime_ns) on success."""
        headers = {}
        if resume is not None:
            headers = resume_headers(resume, self.body.offset)
        elif self.ask.saved:
            headers = conditional_headers(self.ask.saved)
        # None rather than {}: requests merges even an empty dict into the session's headers.
        hooks = None if self.ask.before_request is None else {"response": self._before_hop}
        with (
            self.session.get(
                self.url, stream=True, timeout=self.limits.request_timeout(), headers=headers or None, hooks=hooks
            ) as response,
            response_hung_up_on_stop(self.ask.on_stop, self.line, response),
        ):
            self.ttfb_s = self.clock() - self.began
            self.http_status = response.status_code
            if response.status_code == 304 and ("If-None-Match" in headers or "If-Modified-Since" in headers):
                _finish_reading(response)
                return True, None, None
            ranged = False
            if resume is not None and response.status_code in (206, 416):
                self._check_range(response, resume)
                ranged = True
            else:
                if response.status_code >= 300:
                    _finish_reading(response)
                _check_status(response, self.url)
            # The cheap checks before any file is made.  An encoded body's
            # Content-Length counts compressed bytes; the body check sees the decoded ones.
            expected = _content_length(response, self.url)
            whole = (self.body.offset if ranged else 0) + (expected or 0)
            encoded = "Content-Encoding" in response.headers
            if expected is not None and not encoded and (reason := self.guard.check_length(whole)):
                raise BodyError(self.url, reason)  # before the body: leaving `with` closes it undrained
            _check_room(self.target.parent, expected, self.url)
            if not ranged:
                if self.body.fd is not None:
                    self._drop_partial()  # a 200 to a range request: the server sends it all
                self.body.start(response.headers, expected)
            offset = self.body.offset
            if self.watch is not None:
                self.watcher = self.watch(self.url, self.target.name, None if expected is None else offset + expected)
                if offset:
                    self.watcher.advance(0)
            self._receive(response, expected)
            validators = Validators(
                etag=response.headers.get("ETag"), last_modified=response.headers.get("Last-Modified")
            )
        mtime_ns = self.body.finish(self.body.offset + self.received, validators, self.url)
        return False, validators, mtime_ns

    def _before_hop(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        """A response hook: requests is about to follow this redirect, which is one more request."""
        if response.is_redirect and self.ask.before_request is not None:
            self.ask.before_request(urljoin(response.url, response.headers["Location"]))

    def _check_range(self, response: requests.Response, resume: PartialFile) -> None:
        """Accept a 206 that continues exactly where the partial file ends; otherwise start over."""
        span = content_range(response.headers.get("Content-Range"))
        # The whole rest, or nothing: a server that caps the range it sends
        # would leave a file that can never be checked as complete.
        if response.status_code != 206 or span != (self.body.offset, resume.total - 1, resume.total):
            log.debug("%s: range answer does not continue the partial file; starting over", self.target.name)
            raise _StartOver()
        if not identity_encoded(response.headers):
            raise _StartOver()
        self.body.continue_partial(resume)

    def _receive(self, response: requests.Response, expected: int | None) -> None:
        body = self.body
        fd, hasher, offset = body.fd, body.hasher, body.offset
        assert fd is not None
        chunk_size = self.config.chunk_size
        speed = self.limits.speed_check()
        guarded = self.config.max_filesize is not None or "Content-Encoding" in response.headers
        # One flag per chunk when no bound is set: bounds nobody asked for cost nothing.
        bounded = guarded or speed is not None or self.limits.bounded
        throttle = self.ask.throttle
        wire = response.raw.tell()  # bytes off the wire so far: --limit-rate counts them, not decoded ones
        # A plain body of known length ends with its last byte: asking for more
        # would only hear so (about 10 µs, on every small file).  urllib3 has
        # already given the connection back by then.
        whole_at = None if expected is None or "Content-Encoding" in response.headers else expected
        try:
            # read1: whatever has arrived, up to chunk_size.  A full
            # read(chunk_size) would wait for a whole chunk, so a slow
            # download would show no progress for many seconds.
            while chunk := response.raw.read1(chunk_size, decode_content=True):
                if self.cancelled.is_set():
                    raise Cancelled(self.url, "cancelled")
                # Raw os.write on the descriptor: a file object would add an isatty
                # ioctl, a seek and a stat per file, for no gain with large chunks.
                _write_all(fd, chunk)
                self.received += len(chunk)
                if hasher is not None:
                    hasher.update(chunk)
                if self.watcher is not None:
                    self.watcher.advance(len(chunk))
                if not body.kept and body.partial is not None and offset + self.received >= KEEP_FROM:
                    body.offer()
                if bounded:
                    self._check_bounds(response, speed, guarded)
                if throttle is not None:
                    now_on_wire = response.raw.tell()
                    throttle(now_on_wire - wire)
                    wire = now_on_wire
                if whole_at is not None and response.raw.tell() >= whole_at:
                    break
        except urllib3.exceptions.ProtocolError as exc:
            raise _short_body(self.url, response, expected) from exc
        if expected is None and self.cancelled.is_set():
            # A hang-up ends a body without a length as its server would: the end
            # of the connection.  Once the run stops, that end proves nothing.
            raise Cancelled(self.url, "cancelled")
        if expected is not None and response.raw.tell() != expected:
            raise _short_body(self.url, response, expected)

    # -- bounds: --max-time, --speed-limit, --max-filesize -------------------------------

    def _check_bounds(self, response: requests.Response, speed: SpeedCheck | None, guarded: bool) -> None:
        limits = self.limits
        if limits.past_max_time():
            raise limits.over_time()
        limits.shrink(response)
        if speed is not None and speed.update(self.received, self.clock()):
            raise BodyError(self.url, speed.reason, transient=True)  # retried, and resumed if it can be
        if guarded:
            offset = self.body.offset
            reason = self.guard.check_body(offset + self.received, offset + response.raw.tell())
            if reason is not None:
                raise BodyError(self.url, reason)

    # -- the file ---------------------------------------------------------------------

    def _drop_partial(self) -> None:
        """Empty the file so the whole body can be written from the start, and show the progress afresh."""
        self.body.drop()
        if self.watcher is not None:
            self.watcher.done()
            self.watcher = None

    def _close(self) -> None:
        self.body.close()
        if self.watcher is not None:
            self.watcher.done()
            self.watcher = None


class _StartOver(Exception):
    """The server would not continue the partial file; ask for the whole body."""


#: An answer without a file (a 304, an error page) is read to its end when it
#: is no longer than this, so its connection is kept for the next request:
#: urllib3 closes a connection whose response was left unread.
DRAIN_UP_TO = 64 << 10


def _finish_reading(response: requests.Response) -> None:
    length = response.headers.get("Content-Length", "0" if response.status_code == 304 else "")
    if not length.isdigit() or int(length) > DRAIN_UP_TO or "Content-Encoding" in response.headers:
        return  # unknown or large: cheaper to close the connection than to read it
    try:
        response.raw.read(DRAIN_UP_TO + 1, decode_content=False)
    except (OSError, urllib3.exceptions.HTTPError):
        pass  # the connection is closed then, as it would have been anyway


@functools.lru_cache(maxsize=8)
def _size_guard(max_filesize: int | None) -> SizeGuard:
    """One guard per limit: it is immutable, and checking its values anew for every file costs."""
    return SizeGuard(max_filesize=max_filesize)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _check_status(response: requests.Response, url: str) -> None:
    if response.status_code >= 400:
        raise HTTPStatusError(
            url,
            response.status_code,
            response.reason or "",
            retry_after=response.headers.get("Retry-After"),
            answered_by=response.url,
        )
    if response.status_code >= 300:
        # requests follows redirects; one left over had no usable Location.
        raise TransportError(url, f"HTTP {response.status_code} redirect without a usable Location")


def _content_length(response: requests.Response, url: str) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or "chunked" in response.headers.get("Transfer-Encoding", "").lower():
        return None
    if value.isdigit():
        return int(value)  # the usual case, as the general one below would read it
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
        raise BodyError(
            url, f"Content-Length of {format_size(expected)} is more than the {format_size(free)} free on disk"
        )


def _short_body(url: str, response: requests.Response, expected: int | None) -> BodyError:
    on_wire = response.raw.tell()
    if expected is None:
        return BodyError(url, f"connection closed after {on_wire} bytes, before the body ended", transient=True,
                         overload=True)  # fmt: skip
    if on_wire > expected:
        return BodyError(url, f"body longer than its Content-Length ({expected} bytes)")
    return BodyError(url, f"body cut short: {on_wire} of {expected} bytes", transient=True, overload=True)
