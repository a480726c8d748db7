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

import contextlib
import functools
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urljoin

import requests
import urllib3

from .._config import FetcherConfig
from .._errors import BodyError, Cancelled, DownloadError, HTTPStatusError, TransportError, timed_out, translate
from .._units import format_duration, format_size
from .bounds import SizeGuard, SpeedCheck, time_left, too_slow
from .checksum import Hasher
from .hangup import Line, line_of
from .outcome import Ask as Ask
from .outcome import Outcome as Outcome
from .outcome import Watcher as Watcher
from .outcome import WatchStart as WatchStart
from .session import new_session as new_session  # where the workers have always found it
from .tempfiles import TempFiles
from .validators import (
    PartialFile,
    Validators,
    conditional_headers,
    content_range,
    identity_encoded,
    last_modified_ns,
    resumable,
    resume_headers,
)

log = logging.getLogger("fetcher")


#: Last-Modified as an mtime, remembered: the files of one server often share a
#: date, and parsing it costs more than the rest of setting a file's time.
_mtime_of = functools.lru_cache(maxsize=256)(last_modified_ns)

#: os.utime on the open descriptor where the platform has it: no second path lookup.
_UTIME_BY_FD = os.utime in os.supports_fd

#: A partial file smaller than this is not worth a state database write.
KEEP_FROM = 1 << 20

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
        self.fd: int | None = None
        self.temp: Path | None = None
        self.offset = 0  # bytes already in the temp file when this response's body began
        self.received = 0  # bytes of this response's body written
        self.partial: PartialFile | None = None  # set while the temp file could be continued
        self.resumed_from: int | None = None
        self.hasher: Hasher | None = None
        self.watcher: Watcher | None = None
        self.kept = False
        self.guard = _size_guard(config.max_filesize)
        self.speed_window: tuple[int, float] | None = None  # set when the socket timeout is the --speed-time window
        self.read_timeout = config.timeout  # what the socket's timeout is now
        # The session's sockets, for a stop to hang up: None for a session new_session did not make.
        self.line: Line | None = None if ask.on_stop is None else line_of(session, url)

    def run(self) -> Outcome:
        error: DownloadError | None = None
        unchanged = False
        validators: Validators | None = None
        mtime_ns: int | None = None
        try:
            resume = self._reopen(self.ask.resume)
            with self._hung_up_on_stop():
                try:
                    unchanged, validators, mtime_ns = self._exchange(resume)
                except _StartOver:
                    # The partial file cannot be continued: ask again for the whole body.
                    self._drop_partial()
                    if self.ask.before_request is not None:
                        self.ask.before_request(self.url)
                    unchanged, validators, mtime_ns = self._exchange(None)
        except Exception as exc:  # every failure of this URL becomes its Outcome
            error = translate(exc, self.url, read_timeout=self.read_timeout)
            if self.cancelled.is_set() and not isinstance(error, Cancelled):
                error = Cancelled(self.url, "cancelled")  # its connection was cut because the run stopped
            elif error.transient and self._past(self.ask.deadline):
                error = self._over_time()  # a read timed out because the time was up
            elif error.transient and self.speed_window is not None and timed_out(exc):
                # The read timeout was the speed window: the server sent nothing for that long.
                error = BodyError(self.url, too_slow(*self.speed_window), transient=True)
            log.debug("failed %s: %s", self.target.name, error)
        finally:
            self._close()
        # Kept only for what may pass (a cut, a stall) or was stopped: a body
        # that broke a limit or failed its checksum must not be resumed.
        resumable = error is not None and (error.transient or isinstance(error, Cancelled))
        kept = self.partial if resumable and self.temp is not None else None
        if self.temp is not None and kept is None:
            self.temp_files.remove(self.temp)
        download_s = None if self.ttfb_s is None else self.clock() - self.began - self.ttfb_s
        return Outcome(
            http_status=self.http_status,
            bytes=self.offset + self.received,
            ttfb_s=self.ttfb_s,
            download_s=download_s,
            error=error,
            unchanged=unchanged,
            validators=validators,
            mtime_ns=mtime_ns,
            partial=kept,
            resumed_from=self.resumed_from,
        )

    # -- one request and its response --------------------------------------------

    def _exchange(self, resume: PartialFile | None) -> tuple[bool, Validators | None, int | None]:
        """Send the request, write the body; (unchanged, validators, mtime_ns) on success."""
        headers = {}
        if resume is not None:
            headers = resume_headers(resume, self.offset)
        elif self.ask.saved:
            headers = conditional_headers(self.ask.saved)
        # None rather than {}: requests merges even an empty dict into the session's headers.
        hooks = None if self.ask.before_request is None else {"response": self._before_hop}
        with (
            self.session.get(
                self.url, stream=True, timeout=self._timeout(), headers=headers or None, hooks=hooks
            ) as response,
            self._response_hung_up_on_stop(response),
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
            whole = (self.offset if ranged else 0) + (expected or 0)
            encoded = "Content-Encoding" in response.headers
            if expected is not None and not encoded and (reason := self.guard.check_length(whole)):
                raise BodyError(self.url, reason)  # before the body: leaving `with` closes it undrained
            _check_room(self.target.parent, expected, self.url)
            if not ranged:
                self._start_body(response, expected)
            if self.watch is not None:
                self.watcher = self.watch(
                    self.url, self.target.name, None if expected is None else self.offset + expected
                )
                if self.offset:
                    self.watcher.advance(0)
            self._receive(response, expected)
            validators = Validators(
                etag=response.headers.get("ETag"), last_modified=response.headers.get("Last-Modified")
            )
        mtime_ns = self._finish(validators)
        return False, validators, mtime_ns

    def _hung_up_on_stop(self) -> contextlib.AbstractContextManager[object]:
        """While the attempt runs: if the run stops, shut its connection, whatever it waits for."""
        if self.ask.on_stop is None or self.line is None:
            return _NOTHING  # nothing to heed, or a session whose sockets are out of reach: see below
        return _OnStop(self.ask.on_stop, self.line)

    def _response_hung_up_on_stop(self, response: requests.Response) -> contextlib.AbstractContextManager[object]:
        """With a session not made by new_session, the most that can be done: shut the
        connection once the response has come, so a read blocked in the body ends."""
        if self.ask.on_stop is None or self.line is not None:
            return _NOTHING
        return self._response_cut(self.ask.on_stop, response)

    @contextlib.contextmanager
    def _response_cut(
        self, on_stop: Callable[[Callable[[], None]], Callable[[], None]], response: requests.Response
    ) -> Iterator[None]:
        # The hang-up may come from another thread just as the body ends: once this
        # attempt is done with the connection (the pool may hand it to another
        # request), it must not be cut.
        guard = threading.Lock()
        in_flight = True

        def hang_up() -> None:
            with guard:
                if in_flight:
                    _hang_up(response)

        undo = on_stop(hang_up)
        try:
            yield
        finally:
            with guard:
                in_flight = False
            undo()

    def _before_hop(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        """A response hook: requests is about to follow this redirect, which is one more request."""
        if response.is_redirect and self.ask.before_request is not None:
            self.ask.before_request(urljoin(response.url, response.headers["Location"]))

    def _check_range(self, response: requests.Response, resume: PartialFile) -> None:
        """Accept a 206 that continues exactly where the partial file ends; otherwise start over."""
        span = content_range(response.headers.get("Content-Range"))
        # The whole rest, or nothing: a server that caps the range it sends
        # would leave a file that can never be checked as complete.
        if response.status_code != 206 or span != (self.offset, resume.total - 1, resume.total):
            log.debug("%s: range answer does not continue the partial file; starting over", self.target.name)
            raise _StartOver()
        if not identity_encoded(response.headers):
            raise _StartOver()
        self.resumed_from = self.offset
        self.partial = resume
        self.hasher = self._hash_existing()

    def _start_body(self, response: requests.Response, length: int | None) -> None:
        """A whole body is coming: an empty temp file, and may it be resumed later?"""
        if self.fd is None:
            self.fd, self.temp = self.temp_files.create(self.target.parent)
        else:
            self._drop_partial()  # a 200 to a range request: the server sends it all
        self.hasher = None if self.ask.checksum is None else self.ask.checksum.new_hasher()
        found = resumable(response.headers, length)
        self.partial = None
        self.kept = False  # a new body, with its own validator: offer it afresh
        if found is not None and length is not None and self.temp is not None:
            if_range, validators = found
            self.partial = PartialFile(path=self.temp, if_range=if_range, total=length, validators=validators)

    def _receive(self, response: requests.Response, expected: int | None) -> None:
        assert self.fd is not None
        chunk_size = self.config.chunk_size
        speed = self._speed_check()
        guarded = self.config.max_filesize is not None or "Content-Encoding" in response.headers
        # One flag per chunk when no bound is set: bounds nobody asked for cost nothing.
        bounded = guarded or speed is not None or self.ask.deadline is not None or self.ask.stop_at is not None
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
                _write_all(self.fd, chunk)
                self.received += len(chunk)
                if self.hasher is not None:
                    self.hasher.update(chunk)
                if self.watcher is not None:
                    self.watcher.advance(len(chunk))
                if not self.kept and self.partial is not None and self.offset + self.received >= KEEP_FROM:
                    self._offer_partial()
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

    def _timeout(self) -> float:
        """Socket timeout for this request: --timeout, never reaching past --max-time or --deadline."""
        if self._past(self.ask.deadline):
            raise self._over_time()
        timeout = self.config.timeout
        for end in (self.ask.deadline, self.ask.stop_at):
            if (left := time_left(end, self.clock())) is not None:
                timeout = min(timeout, max(left, 0.001))
        speed = self.config.speed_check
        if speed is not None and speed[1] < timeout:
            timeout = speed[1]  # a silent server is as slow as can be
            self.speed_window = speed
        self.read_timeout = timeout
        return timeout

    def _speed_check(self) -> SpeedCheck | None:
        speed = self.config.speed_check
        return None if speed is None else SpeedCheck(limit=speed[0], window=speed[1], now=self.clock())

    def _check_bounds(self, response: requests.Response, speed: SpeedCheck | None, guarded: bool) -> None:
        if self._past(self.ask.deadline):
            raise self._over_time()
        self._shrink_timeout(response)
        if speed is not None and speed.update(self.received, self.clock()):
            raise BodyError(self.url, speed.reason, transient=True)  # retried, and resumed if it can be
        if guarded:
            reason = self.guard.check_body(self.offset + self.received, self.offset + response.raw.tell())
            if reason is not None:
                raise BodyError(self.url, reason)

    def _shrink_timeout(self, response: requests.Response) -> None:
        """Let the next read wait no longer than the time left before --max-time or --deadline.

        The timeout given with the request holds for every read of the body,
        so without this a read late in a transfer could overrun by that much.
        """
        now = self.clock()
        lefts = [left for end in (self.ask.deadline, self.ask.stop_at) if (left := time_left(end, now)) is not None]
        if not lefts:
            return
        left = max(min(lefts), 0.001)
        if left < self.read_timeout:
            sock = getattr(getattr(response.raw, "connection", None), "sock", None)
            if sock is not None:
                sock.settimeout(left)  # urllib3 sets it afresh for the connection's next request
                self.read_timeout = left

    def _past(self, moment: float | None) -> bool:
        return moment is not None and self.clock() >= moment

    def _over_time(self) -> TransportError:
        limit = format_duration(self.config.max_time or 0)
        return TransportError(self.url, f"took longer than the --max-time of {limit}")

    def _finish(self, validators: Validators) -> int:
        """Check the whole body, set its time, put it under the final name; its mtime_ns."""
        assert self.fd is not None and self.temp is not None
        size = self.offset + self.received
        if self.partial is not None and size != self.partial.total:
            raise BodyError(self.url, f"joined file is {size} bytes, the server said {self.partial.total}")
        checksum = self.ask.checksum
        if checksum is not None and self.hasher is not None and not checksum.matches(self.hasher.hexdigest()):
            raise BodyError(self.url, f"checksum mismatch: expected {checksum}, got {self.hasher.hexdigest()}")
        remote_ns = _mtime_of(validators.last_modified) if self.ask.remote_time else None
        if remote_ns is not None:
            os.utime(self.fd if _UTIME_BY_FD else self.temp, ns=(time.time_ns(), remote_ns))
        # Asked, not assumed to be remote_ns: a file system with coarse times
        # (FAT: 2 s) rounds it, and the next run compares with what it stored.
        mtime_ns = os.fstat(self.fd).st_mtime_ns
        os.replace(self.temp, self.target)
        self.temp_files.forget(self.temp)
        self.temp = None
        log.debug("saved %s (%d bytes)", self.target, size)
        return mtime_ns

    # -- the partial file -----------------------------------------------------------

    def _reopen(self, resume: PartialFile | None) -> PartialFile | None:
        if resume is None:
            return None
        fd = self.temp_files.reopen(resume.path)
        if fd is None:
            log.debug("%s: partial file is gone or in use by another run; starting over", self.target.name)
            return None
        size = os.fstat(fd).st_size
        if not 0 < size < resume.total:
            self.fd, self.temp = fd, resume.path
            self._drop_partial()
            return None
        os.lseek(fd, size, os.SEEK_SET)
        # Until the server says otherwise, the file can still be continued: an
        # attempt that fails before any answer (a 503, a refused connection)
        # hands it on rather than deleting it.
        self.fd, self.temp, self.offset, self.partial = fd, resume.path, size, resume
        # Kept only if this process marked it so; a partial from an earlier run
        # is on record already, and is offered again so that this run keeps it too.
        self.kept = self.temp_files.is_kept(resume.path)
        if not self.kept and size >= KEEP_FROM:
            self._offer_partial()
        return resume

    def _drop_partial(self) -> None:
        """Empty the temp file so the whole body can be written from the start."""
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.lseek(self.fd, 0, os.SEEK_SET)
        if self.temp is not None:
            # Whatever the state database says of this file no longer holds;
            # the new body is offered afresh if it is worth keeping.
            self.temp_files.unkeep(self.temp)
        self.offset = 0
        self.partial = None
        self.resumed_from = None
        self.kept = False
        if self.watcher is not None:
            self.watcher.done()
            self.watcher = None

    def _hash_existing(self) -> Hasher | None:
        """A hasher that has already seen the bytes of the partial file."""
        if self.ask.checksum is None or self.fd is None:
            return None
        hasher = self.ask.checksum.new_hasher()
        position = 0
        while position < self.offset:
            block = os.pread(self.fd, min(self.config.chunk_size, self.offset - position), position)
            if not block:
                break
            hasher.update(block)
            position += len(block)
        return hasher

    def _offer_partial(self) -> None:
        self.kept = True  # asked once, whatever the answer
        if self.partial is not None and self.ask.on_resumable is not None and self.ask.on_resumable(self.partial):
            self.temp_files.keep(self.partial.path)

    def _close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.watcher is not None:
            self.watcher.done()
            self.watcher = None


#: The context of an attempt with nothing to hang up (a plain class, not a
#: generator: it is entered twice per file).
_NOTHING = contextlib.nullcontext()


class _OnStop:
    """While an attempt runs, a stop of the run hangs up its session's line."""

    __slots__ = ("line", "on_stop", "undo")

    def __init__(self, on_stop: Callable[[Callable[[], None]], Callable[[], None]], line: Line) -> None:
        self.on_stop, self.line = on_stop, line
        self.undo: Callable[[], None] | None = None

    def __enter__(self) -> None:
        self.undo = self.on_stop(self.line.open())

    def __exit__(self, *exc: object) -> None:
        if self.undo is not None:
            self.undo()
        self.line.close()


class _StartOver(Exception):
    """The server would not continue the partial file; ask for the whole body."""


#: An answer without a file (a 304, an error page) is read to its end when it
#: is no longer than this, so its connection is kept for the next request:
#: urllib3 closes a connection whose response was left unread.
DRAIN_UP_TO = 64 << 10


def _hang_up(response: requests.Response) -> None:
    """Shut the connection *response* comes on, from another thread: a read blocked on it returns.

    shutdown, not close: closing a socket another thread reads from does not
    wake that read on Linux.
    """
    connection = getattr(response.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


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
