"""A real HTTP/1.1 server on a loopback address for tests, with routes as plain functions.

Why not pytest-httpserver: the faults under test (a body cut short with the
socket closed, a lying Content-Length, a stall mid-body) need byte-level
control of the response, and werkzeug's server keeps a connection open after
a short body, which turns a truncation into a stall.  This is the standard
library's ThreadingHTTPServer with counters added.

Besides fixed answers it serves ``Resource``: one representation with
validators, answering conditional GET (304) and Range/If-Range (206, 416) as
RFC 9110 says, optionally cut short or paced; and ``faulty``, which answers a
path's first requests with faults and the rest normally.  It is not a general
web server: GET only (no HEAD), one byte range per request, no content
negotiation.

Each server binds one loopback address, 127.0.0.1 unless told otherwise; on
Linux every 127.x.y.z works without setup, so servers on 127.0.0.1, 127.0.0.2
and 127.0.0.3 are three distinct hosts to a client's per-host limits.  The
request ``log`` (when each request came and ended) and ``max_in_any_window``
check request rates; ``too_many`` answers 429 with a Retry-After.

For the bounds on time and size there are abusive answers: ``trickle`` (a
body at a few bytes a second), ``endless`` (a body without end),
``gzip_bomb`` (a small body that decodes a thousand times larger),
``zip_ratio_text`` (gzip of text, as real files compress) and ``huge_length``
(a Content-Length of terabytes, then silence), and ``held_headers`` (a request
read, then no answer at all).  ``hangups`` tells a test which of their
clients hung up rather than read to the end.  ``Silent`` is a port where
nobody answers, for a client stuck in its connect or TLS handshake.

Every sleep here waits on the server's stop event, so shutting the server
down never waits for a stalled handler.
"""

from __future__ import annotations

import enum
import functools
import gzip
import random
import re
import select
import socket
import struct
import threading
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from typing import TypeVar

Handler = Callable[["Request"], None]
T = TypeVar("T")

# No test waits longer than this for anything the server does.
MAX_STALL_S = 10.0
# How often the serving loop looks at the stop flag: stop() waits up to this long,
# once per test.
POLL_S = 0.01
# headers_seen and statuses keep at most this many (the latest) entries per path.
HISTORY_CAP = 1000
# The request log keeps at most this many (the latest) requests, of all paths.
LOG_CAP = 10_000


@dataclass(kw_only=True, slots=True)
class Hit:
    """One request in ``LoopbackServer.log``.

    ``finished`` is filled in when its handler returns, which can be a moment
    after the client has the whole answer: wait for ``in_flight == 0`` before
    reading it.
    """

    path: str
    # time.monotonic() when the request line was read, before the headers.
    started: float
    finished: float | None
    # The Host header as the client sent it ("" if none), e.g. "127.0.0.2:40123".
    host: str


class Request(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    # The route path of the request being answered ("" before one is read),
    # and whether its headers are out, so that only body bytes are counted.
    route_path = ""
    in_body = False
    request_line_at = 0.0

    def setup(self) -> None:
        super().setup()
        self.wfile = _BodyCounter(self.wfile, self)  # type: ignore[assignment]
        self.server.owner._count_connection()

    def finish(self) -> None:
        super().finish()
        self.server.owner._count_connection_ended()

    def parse_request(self) -> bool:
        # http.server calls this just after reading the request line, before the headers.
        self.request_line_at = time.monotonic()
        return super().parse_request()

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        self.route_path, self.in_body = path, False
        handler = owner.routes.get(path)
        hit = Hit(path=path, started=self.request_line_at, finished=None, host=self.headers.get("Host", ""))
        owner._enter(path, dict(self.headers.items()), hit)
        try:
            if handler is None:
                send(self, b"no such route\n", status=404)
            else:
                handler(self)
        finally:
            owner._leave(hit)

    def send_response(self, code: int, message: str | None = None) -> None:
        if self.route_path:
            self.server.owner._record_status(self.route_path, code)
        super().send_response(code, message)

    def end_headers(self) -> None:
        super().end_headers()
        self.in_body = True

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean


class _BodyCounter:
    """A handler's ``wfile`` that adds what is written after the headers to ``bytes_sent``.

    Counting at the socket rather than in each handler keeps the figure honest
    for every handler, including ones a test writes itself.  A write counts
    once the kernel took it, which is not proof that the client read it.
    """

    def __init__(self, raw: BufferedIOBase, request: Request) -> None:
        self._raw = raw
        self._request = request

    def write(self, data: bytes) -> int:
        written = self._raw.write(data)
        if self._request.in_body and data:
            self._request.server.owner._count_body(self._request.route_path, len(data))
        return written

    def flush(self) -> None:
        self._raw.flush()

    def close(self) -> None:
        self._raw.close()

    @property
    def closed(self) -> bool:
        return self._raw.closed


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: LoopbackServer

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up mid-response are what the fault tests do


class LoopbackServer:
    """Start with ``start()``, add routes with ``route()``, read the counters.

    Counters, per route path (the URL path without its query):

    * ``requests``: requests received;
    * ``headers_seen``: each request's headers as a dict, in order (the latest
      ``HISTORY_CAP``), e.g. ``headers_seen["/f"][-1].get("If-None-Match")``;
    * ``statuses``: the status sent to each request, in order (the latest
      ``HISTORY_CAP``);
    * ``bytes_sent``: body bytes written, headers not counted;
    * ``hangups``: answers of the abusive handlers (``trickle``, ``endless``,
      ``gzip_bomb``, ``zip_ratio_text``, ``huge_length``) that the client cut
      short by closing the connection; ``wait_for_hangups`` waits for one;

    and for the whole server ``connections`` (``connections_ended``: those
    that ended, which ``wait_for_connections_ended`` waits for), ``in_flight``, ``max_in_flight``
    and ``log``: a ``Hit`` per request (the latest ``LOG_CAP``), in the order
    they came, each with its path, Host header and times; ``max_in_any_window``
    reads the request rate from it.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: Counter[str] = Counter()
        self.headers_seen: dict[str, list[dict[str, str]]] = defaultdict(list)
        self.statuses: dict[str, list[int]] = defaultdict(list)
        self.bytes_sent: Counter[str] = Counter()
        self.hangups: Counter[str] = Counter()
        self.connections = 0
        self.connections_ended = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.log: list[Hit] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._hangup_seen = threading.Condition(self._lock)
        self._httpd = _Server((host, 0), Request)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": POLL_S}, daemon=True)

    @property
    def base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def route(self, path: str, handler: Handler) -> str:
        self.routes[path] = handler
        return self.url(path)

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._thread.is_alive():
            self._httpd.shutdown()  # blocks forever if serve_forever never ran
        self._httpd.server_close()
        if self._thread.is_alive():
            self._thread.join(5)

    def sleep(self, seconds: float) -> None:
        self.stopping.wait(min(seconds, MAX_STALL_S))

    def wait_idle(self, *, timeout: float = 5.0) -> bool:
        """Wait until no request is being answered; False if *timeout* seconds pass first.

        A client can have a whole answer before its handler returns and the
        counters (``bytes_sent``, ``Hit.finished``) catch up: read them after this.
        """
        with self._hangup_seen:
            return self._hangup_seen.wait_for(lambda: self.in_flight == 0, timeout)

    def wait_for_hangups(self, path: str, count: int = 1, *, timeout: float = 5.0) -> bool:
        """Wait until ``hangups[path]`` reaches *count*; False if *timeout* seconds pass first.

        A handler notices a hang-up within ``POLL_S`` of it, on its own thread,
        so a test that has just closed its response waits here, not in a loop.
        """
        with self._hangup_seen:
            return self._hangup_seen.wait_for(lambda: self.hangups[path] >= count, timeout)

    def max_in_any_window(self, window_s: float, where: Callable[[Hit], bool] | None = None) -> int:
        """The most requests (those *where* admits) that started within any *window_s* seconds (ends
        included), from ``log``."""
        with self._lock:
            starts = sorted(hit.started for hit in self.log if where is None or where(hit))
        most, first = 0, 0
        for last, start in enumerate(starts):
            while start - starts[first] > window_s:
                first += 1
            most = max(most, last - first + 1)
        return most

    def _count_connection(self) -> None:
        with self._lock:
            self.connections += 1

    def _count_connection_ended(self) -> None:
        with self._lock:
            self.connections_ended += 1
            self._hangup_seen.notify_all()

    def wait_for_connections_ended(self, count: int, *, timeout: float = 5.0) -> bool:
        """Wait until *count* connections have ended (the client closed them); False if not within *timeout*."""
        with self._hangup_seen:
            return self._hangup_seen.wait_for(lambda: self.connections_ended >= count, timeout)

    def _enter(self, path: str, headers: dict[str, str], hit: Hit) -> None:
        with self._lock:
            self.requests[path] += 1
            _append_capped(self.headers_seen[path], headers)
            _append_capped(self.log, hit, LOG_CAP)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self, hit: Hit) -> None:
        with self._hangup_seen:
            hit.finished = time.monotonic()
            self.in_flight -= 1
            self._hangup_seen.notify_all()  # for wait_idle

    def _record_status(self, path: str, code: int) -> None:
        with self._lock:
            _append_capped(self.statuses[path], code)

    def _count_body(self, path: str, size: int) -> None:
        with self._lock:
            self.bytes_sent[path] += size

    def _count_hangup(self, path: str) -> None:
        with self._hangup_seen:
            self.hangups[path] += 1
            self._hangup_seen.notify_all()


def _append_capped(history: list[T], item: T, cap: int | None = None) -> None:
    history.append(item)
    if len(history) > (HISTORY_CAP if cap is None else cap):
        del history[0]


# -- handlers: each returns a function that answers one request ---------------


def send(request: Request, body: bytes, *, status: int = 200, headers: dict[str, str] | None = None) -> None:
    request.send_response(status)
    all_headers = {"Content-Length": str(len(body)), "Content-Type": "application/octet-stream", **(headers or {})}
    for name, value in all_headers.items():
        request.send_header(name, value)
    request.end_headers()
    request.wfile.write(body)


def body(data: bytes, *, status: int = 200, headers: dict[str, str] | None = None, delay: float = 0.0) -> Handler:
    """Answer with *data*, after *delay* seconds."""

    def handle(request: Request) -> None:
        if delay:
            request.server.owner.sleep(delay)
        send(request, data, status=status, headers=headers)

    return handle


def status(code: int, headers: dict[str, str] | None = None, body: bytes = b"") -> Handler:
    """Answer with status *code*, e.g. ``status(503, headers={"Retry-After": "0"})``."""

    def handle(request: Request) -> None:
        send(request, body, status=code, headers=headers)

    return handle


def too_many(retry_after: str | None, *, status: int = 429) -> Handler:
    """Answer *status* (429 Too Many Requests) with ``Retry-After: retry_after`` if given, and a short body.

    For a paced answer there is ``Resource(data, rate=...)``; for a fault that clears, ``faulty``.
    """
    headers = {"Content-Type": "text/plain"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return body(b"too many requests\n", status=status, headers=headers)


def faulty(first: list[Handler], then: Handler) -> Handler:
    """Faults that clear: request i of this handler is answered by ``first[i]``, later ones by ``then``."""
    answered = 0
    lock = threading.Lock()

    def handle(request: Request) -> None:
        nonlocal answered
        with lock:
            index = answered
            answered += 1
        (first[index] if index < len(first) else then)(request)

    return handle


def gzipped(data: bytes) -> Handler:
    """Answer with *data* gzip-encoded in transit (Content-Encoding: gzip)."""
    return body(gzip.compress(data), headers={"Content-Encoding": "gzip"})


def truncated(data: bytes, *, claimed: int) -> Handler:
    """Claim *claimed* bytes, send *data*, then close the connection."""
    return stalled(data, claimed=claimed, stall=0.0)


def stalled(data: bytes, *, claimed: int, stall: float) -> Handler:
    """Claim *claimed* bytes, send *data*, send nothing for *stall* seconds, then close."""

    def handle(request: Request) -> None:
        request.send_response(200)
        request.send_header("Content-Length", str(claimed))
        request.end_headers()
        request.wfile.write(data)
        request.wfile.flush()
        if stall:
            request.server.owner.sleep(stall)
        request.close_connection = True

    return handle


def raw(response: bytes) -> Handler:
    """Write *response* bytes as they are (status line and headers included), then close."""

    def handle(request: Request) -> None:
        head, blank, rest = response.partition(b"\r\n\r\n")
        code = head.split(b" ", 2)[1:2]
        if code and code[0].isdigit():
            request.server.owner._record_status(request.route_path, int(code[0]))
        request.wfile.write(head + blank)
        request.in_body = bool(blank)  # only what follows a complete head is body
        request.wfile.write(rest)
        request.wfile.flush()
        request.close_connection = True

    return handle


def redirect(location: str, *, status: int = 302) -> Handler:
    return body(b"", status=status, headers={"Location": location})


# -- Resource: one representation with validators, conditional GET and ranges --


class _Next(enum.Enum):
    """Default of ``Resource.update``: move the validator on to its next value."""

    VALUE = 0


NEXT = _Next.VALUE
_ETAG = re.compile(r'\s*(W/)?"([^"]*)"\s*(?:,|$)')
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def http_date(timestamp: float) -> str:
    """*timestamp* as an IMF-fixdate, the form servers send (``Sun, 06 Nov 1994 08:49:37 GMT``)."""
    return formatdate(timestamp, usegmt=True)


def _date(text: str) -> float | None:
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _entity_tags(field: str) -> list[tuple[bool, str]] | None:
    """The (weak, opaque tag) pairs of an If-None-Match list; None if it does not parse."""
    tags, position = [], 0
    while position < len(field):
        match = _ETAG.match(field, position)
        if match is None:
            return None
        tags.append((bool(match.group(1)), match.group(2)))
        position = match.end()
    return tags


class Resource:
    """One static representation, served as RFC 9110 says; a test may change it between requests.

    ``Resource(data, etag='"v1"', last_modified=<a day ago>, ...)`` is a handler:
    ``server.route("/f", resource)``.  It answers, in the RFC's order:

    * ``If-None-Match`` (weak comparison, ``*`` matches) -> 304 with the
      validators and no body; only when that header is absent,
      ``If-Modified-Since`` -> 304 when Last-Modified is not later (with
      ``ims_exact=True``, only when the string equals Last-Modified byte for
      byte, as nginx does by default);
    * with ``ranges=True``, ``Range: bytes=N-``, ``bytes=N-M`` or ``bytes=-S``
      -> 206 with ``Content-Range: bytes N-M/total``, unless ``If-Range`` is
      present and false (strong comparison with the ETag, so a weak tag never
      matches; or a date equal to Last-Modified byte for byte) -> the full 200.
      A range starting at or past the end -> 416 with ``Content-Range:
      bytes */total``.  A malformed or multi-range header is ignored (200).
      ``ranges=False`` ignores Range altogether, as Python's http.server does;
    * ``Accept-Ranges: bytes`` when ``accept_ranges`` (independent of
      ``ranges``, so a server that advertises ranges and ignores them can be
      built), and always ``Date``.

    ``content_encoding="gzip"`` sends ``data`` gzip-compressed with
    ``Content-Encoding: gzip``; ranges and lengths then count encoded bytes.

    Faults and pacing, for body-bearing answers (200 and 206):

    * ``cut_after=K, cuts=C``: the first C of them send only K body bytes
      (counted from the start of what that answer sends) under the full
      Content-Length, then close the connection;
    * ``rate=B``: the body goes out at B bytes per second in small pieces,
      each wait through ``server.sleep``; a resumed (206) answer is paced too.

    ``body_responses`` counts the 200 and 206 answers sent so far.
    """

    def __init__(
        self,
        data: bytes,
        *,
        etag: str | None = '"v1"',
        last_modified: str | None | _Next = NEXT,
        accept_ranges: bool = True,
        ranges: bool = True,
        ims_exact: bool = False,
        content_encoding: str | None = None,
        cut_after: int | None = None,
        cuts: int = 0,
        rate: float | None = None,
    ) -> None:
        if content_encoding not in (None, "gzip"):
            raise ValueError(f"content_encoding: only gzip is supported, not {content_encoding!r}")
        if rate is not None and rate <= 0:
            raise ValueError(f"rate: must be above 0 bytes/s, not {rate!r}")
        self.accept_ranges = accept_ranges
        self.ranges = ranges
        self.ims_exact = ims_exact
        self.content_encoding = content_encoding
        self.cut_after = cut_after
        self.cuts = cuts
        self.rate = rate
        self.body_responses = 0
        self._version = 0
        self._lock = threading.Lock()
        default_date = http_date(time.time() - 86400)
        self._set(data, etag, default_date if last_modified is NEXT else last_modified)

    def update(self, data: bytes, *, etag: str | None | _Next = NEXT, last_modified: str | None | _Next = NEXT) -> None:
        """Replace the representation.

        By default the validators move on, so that a client can tell: the ETag
        becomes ``"v<n>"`` (n = 2, 3, ...; it stays absent if it was None) and
        Last-Modified one second later than before (stays absent if None).  Pass
        them to choose, e.g. the old ones to build a server that lies.
        """
        with self._lock:
            if etag is NEXT:
                etag = None if self.etag is None else f'"v{self._version + 1}"'
            if last_modified is NEXT:
                old = None if self.last_modified is None else _date(self.last_modified)
                last_modified = None if old is None else http_date(old + 1)
            self._set(data, etag, last_modified)

    def _set(self, data: bytes, etag: str | None, last_modified: str | None) -> None:
        """Replace everything at once (under the lock after __init__), so no answer mixes versions."""
        self.data, self.etag, self.last_modified = data, etag, last_modified
        self.encoded = gzip.compress(data, mtime=0) if self.content_encoding == "gzip" else data
        self._version += 1

    def __call__(self, request: Request) -> None:
        with self._lock:
            encoded, etag, last_modified = self.encoded, self.etag, self.last_modified
        headers = {"Content-Type": "application/octet-stream"}
        if etag is not None:
            headers["ETag"] = etag
        if last_modified is not None:
            headers["Last-Modified"] = last_modified
        if self._not_modified(request, etag, last_modified):
            _send_head(request, 304, headers)
            return
        if self.accept_ranges:
            headers["Accept-Ranges"] = "bytes"
        if self.content_encoding:
            headers["Content-Encoding"] = self.content_encoding
        total = len(encoded)
        span = self._range(request, etag, last_modified, total)
        if span == "unsatisfiable":
            _send_head(request, 416, {"Content-Range": f"bytes */{total}", "Content-Length": "0"})
            return
        code, start, end = (200, 0, total) if span is None else (206, *span)
        if code == 206:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
        headers["Content-Length"] = str(end - start)
        with self._lock:
            self.body_responses += 1
            cut = self.cut_after if self.body_responses <= self.cuts else None
        _send_head(request, code, headers)
        _write_body(request, encoded[start:end], limit=cut, rate=self.rate)
        if cut is not None:
            request.close_connection = True

    def _not_modified(self, request: Request, etag: str | None, last_modified: str | None) -> bool:
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None:
            if if_none_match.strip() == "*":
                return True
            theirs = _entity_tags(if_none_match) or []
            mine = _entity_tags(etag or "") or []
            # Weak comparison: the opaque tags match, W/ or not (RFC 9110 8.8.3.2).
            return len(mine) == 1 and mine[0][1] in {tag for _, tag in theirs}
        since = request.headers.get("If-Modified-Since")
        if since is None or last_modified is None:
            return False
        if self.ims_exact:
            return since == last_modified
        since_ts, modified_ts = _date(since), _date(last_modified)
        return since_ts is not None and modified_ts is not None and modified_ts <= since_ts

    def _range(
        self, request: Request, etag: str | None, last_modified: str | None, total: int
    ) -> tuple[int, int] | str | None:
        """(start, end) to send, "unsatisfiable", or None for the whole representation."""
        header = request.headers.get("Range")
        if not self.ranges or header is None:
            return None
        match = _RANGE.fullmatch(header.strip())
        if match is None or not (match.group(1) or match.group(2)):
            return None  # malformed or several ranges: ignored, as RFC 9110 14.2 allows
        if_range = request.headers.get("If-Range")
        if if_range is not None and not _if_range_holds(if_range.strip(), etag, last_modified):
            return None
        first, last = match.group(1), match.group(2)
        if not first:  # suffix: the last S bytes
            suffix = int(last)
            return (max(0, total - suffix), total) if suffix and total else "unsatisfiable"
        start = int(first)
        if last and int(last) < start:
            return None
        if start >= total:
            return "unsatisfiable"
        return start, min(total, int(last) + 1) if last else total


def _if_range_holds(if_range: str, etag: str | None, last_modified: str | None) -> bool:
    """RFC 9110 13.1.5: a strong ETag match, or a date equal to Last-Modified byte for byte."""
    if if_range.startswith(('"', 'W/"')):
        theirs, mine = _entity_tags(if_range), _entity_tags(etag) if etag else None
        if not theirs or not mine or len(theirs) != 1:
            return False
        (their_weak, their_tag), (my_weak, my_tag) = theirs[0], mine[0]
        return not their_weak and not my_weak and their_tag == my_tag
    return last_modified is not None and if_range == last_modified


def _send_head(request: Request, code: int, headers: dict[str, str]) -> None:
    request.send_response(code)
    for name, value in headers.items():
        request.send_header(name, value)
    request.end_headers()


def _write_body(request: Request, data: bytes, *, limit: int | None, rate: float | None) -> None:
    """Write *data* (only its first *limit* bytes if given), at *rate* bytes/s if given."""
    if limit is not None:
        data = data[:limit]
    if rate is None:
        request.wfile.write(data)
        request.wfile.flush()
        return
    owner = request.server.owner
    # Pieces small enough for ~50 of them a second: a test that kills the
    # client "at 60 %" gets close to 60 %.
    piece = max(1, min(16384, int(rate / 50)))
    start = time.monotonic()
    for offset in range(0, len(data), piece):
        # Piece k leaves at start + k * piece / rate: no drift from slow writes.
        wait = start + offset / rate - time.monotonic()
        if wait > 0:
            owner.sleep(wait)
        if owner.stopping.is_set():
            request.close_connection = True
            return
        request.wfile.write(data[offset : offset + piece])


# -- abusive servers: slow, endless, bombs and lies about size -----------------
#
# Each answer below runs at most MAX_STALL_S from its first byte, ends within
# POLL_S of the server stopping or the client hanging up, and counts such a
# hang-up in ``hangups``.  Their waits watch the socket as well as the stop
# event, so that a client that leaves is seen at once, not at the next write.


class _Stream:
    """One abusive answer's body on its way out, bounded in time, by the server's stop and by the client.

    Use as a context manager after the head is sent.  ``write`` and
    ``wait_until`` return False once the answer must end (client gone, server
    stopping, time up), and then nothing more is sent.  On exit the connection
    is closed unless ``finish()`` said a length-delimited body went out whole.
    """

    def __init__(self, request: Request) -> None:
        self._request = request
        self._owner = request.server.owner
        self._sock = request.connection
        self._timeout = self._sock.gettimeout()
        self._whole = False
        self.started = time.monotonic()
        self.deadline = self.started + MAX_STALL_S
        self.hung_up = False

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._sock.settimeout(self._timeout)
        if self.hung_up:
            self._owner._count_hangup(self._request.route_path)
        if not self._whole:
            self._request.close_connection = True

    def finish(self) -> None:
        """The body went out whole and its length was declared: the connection may serve another request."""
        self._whole = True

    def write(self, data: bytes) -> bool:
        if not self._ready(self.deadline, writing=True):
            return False
        # Backstop for a client that stops reading mid-write: sendall gives up at the deadline.
        self._sock.settimeout(max(self.deadline - time.monotonic(), 0.001))
        try:
            self._request.wfile.write(data)
        except ConnectionError:
            self.hung_up = True
            return False
        except OSError:  # the timeout: time is up
            return False
        return True

    def write_zeros(self, size: int) -> bool:
        for offset in range(0, size, len(_ZEROS)):
            if not self.write(_ZEROS[: min(len(_ZEROS), size - offset)]):
                return False
        return True

    def wait_until(self, when: float) -> bool:
        """Send nothing until monotonic time *when*; False if the answer must end first."""
        return self._ready(when, writing=False)

    def _ready(self, until: float, *, writing: bool) -> bool:
        """Wait for *until* or, when *writing*, for room in the socket; False if the answer must end first."""
        while not self._owner.stopping.is_set():
            now = time.monotonic()
            if now >= self.deadline:
                return False
            if now >= until:
                return True
            wait = min(until, self.deadline) - now, POLL_S
            readable, writable, _ = select.select([self._sock], [self._sock] if writing else [], [], min(wait))
            if readable and self._client_left():
                return False
            if writable:
                return True
            if readable:  # the client sent something: not a hang-up; do not spin on it
                self._owner.sleep(POLL_S)
        return False

    def _client_left(self) -> bool:
        try:
            self.hung_up = self._sock.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            return False
        except OSError:  # reset
            self.hung_up = True
        return self.hung_up


_ZEROS = bytes(64 << 10)
_OCTETS = {"Content-Type": "application/octet-stream"}
# Close-delimited: no length, and the end of the body is the end of the connection.
_TO_CLOSE = {**_OCTETS, "Connection": "close"}


def trickle(total: int, *, every: float, piece: int = 1, length: bool = True) -> Handler:
    """Claim *total* zero bytes, then send *piece* of them at once and one more *piece* every *every* seconds.

    With ``length`` the claim is a Content-Length; without, the body is
    close-delimited (no length, ``Connection: close``).  Piece k leaves at
    k * *every* seconds after the head, so slow writes do not add up.  It ends
    when the total is sent, the client hangs up, or MAX_STALL_S passes (then
    the connection closes, a body cut short).
    """
    if total < 0 or piece < 1 or every < 0:
        raise ValueError(f"trickle: total >= 0, piece >= 1 and every >= 0, not {total!r}, {piece!r}, {every!r}")
    data = bytes(piece)

    def handle(request: Request) -> None:
        _send_head(request, 200, {**_OCTETS, "Content-Length": str(total)} if length else _TO_CLOSE)
        with _Stream(request) as stream:
            for index, offset in enumerate(range(0, total, piece)):
                if not stream.wait_until(stream.started + index * every):
                    return
                if not stream.write(data[: total - offset]):
                    return
            if length:
                stream.finish()

    return handle


def endless(*, rate: float | None = None, piece: int = 64 << 10) -> Handler:
    """A 200 without a length whose zero bytes never end, until the client hangs up or the server stops.

    As fast as the client reads, or at *rate* bytes per second (then in pieces
    of at most rate / 50 bytes, for a smooth pace).  The body is
    close-delimited, and MAX_STALL_S still ends it: at full speed on loopback
    that can be gigabytes, so a test whose client might not stop should set a
    rate.
    """
    if piece < 1 or (rate is not None and rate <= 0):
        raise ValueError(f"endless: piece >= 1 and rate above 0 bytes/s, not {piece!r}, {rate!r}")
    size = piece if rate is None else max(1, min(piece, int(rate / 50)))
    data = bytes(size)

    def handle(request: Request) -> None:
        _send_head(request, 200, _TO_CLOSE)
        with _Stream(request) as stream:
            sent = 0
            while rate is None or stream.wait_until(stream.started + sent / rate):
                if not stream.write(data):
                    return
                sent += size

    return handle


def huge_length(claimed: int, *, send: int = 0) -> Handler:
    """A 200 claiming ``Content-Length: claimed`` (10 TiB, say) that sends *send* zero bytes, then nothing.

    It then waits for the client to hang up (``hangups[path]`` counts it: the
    client gave up on the body without draining it), for the server to stop,
    or MAX_STALL_S, whichever comes first.  A client that tries to drain the
    body waits that long and gets a body cut short.
    """
    if not 0 <= send <= claimed:
        raise ValueError(f"huge_length: 0 <= send <= claimed, not send={send!r}, claimed={claimed!r}")

    def handle(request: Request) -> None:
        _send_head(request, 200, {**_OCTETS, "Content-Length": str(claimed)})
        with _Stream(request) as stream:
            if stream.write_zeros(send):
                stream.wait_until(stream.deadline)

    return handle


def held_headers() -> Handler:
    """Read the request, then answer nothing, not even a status line.

    It waits for the client to hang up (``hangups[path]`` counts it), for the
    server to stop, or MAX_STALL_S, whichever comes first, then closes the
    connection.
    """

    def handle(request: Request) -> None:
        with _Stream(request) as stream:
            stream.wait_until(stream.deadline)

    return handle


def gzip_bomb(decoded: int, *, chunk: int = 1 << 20, length: bool = True) -> Handler:
    """``Content-Encoding: gzip`` whose body decodes to *decoded* zero bytes, about 1,000 times what is sent.

    The stream is made from *chunk* zero bytes compressed once (see
    ``_GzipRepeat``), so neither the decoded nor the whole encoded body is ever
    in memory, and any size is ready at once.  With ``length`` the compressed
    size is sent as Content-Length; without, the body is close-delimited.
    """
    if decoded < 0 or chunk < 1:
        raise ValueError(f"gzip_bomb: decoded >= 0 and chunk >= 1, not {decoded!r}, {chunk!r}")
    return _GzipRepeat(bytes(chunk), decoded, length=length).handle


def zip_ratio_text(decoded: int) -> Handler:
    """``Content-Encoding: gzip`` of *decoded* bytes of English-like text (``ratio_text``), about 4:1.

    What a real compressible file (an RFC, a log) looks like to a bomb guard:
    large if *decoded* is, but never at a bomb's ratio.  Sent with Content-Length.
    """
    if decoded < 0:
        raise ValueError(f"zip_ratio_text: decoded >= 0, not {decoded!r}")
    return _GzipRepeat(_text_block(), decoded, length=True).handle


def ratio_text(size: int) -> bytes:
    """The *size* bytes that ``zip_ratio_text(size)`` decodes to."""
    block = _text_block()
    return (block * (size // len(block) + 1))[:size]


class _GzipRepeat:
    """A gzip member of *decoded* bytes made of *unit* over and over, built from *unit* compressed once.

    A full flush ends a deflate block on a byte boundary and forgets the
    history, so the compressed form of each whole *unit* is the same bytes
    every time: the stream is a header, that block repeated, the compressed
    remainder as the final block, and a trailer whose CRC-32 is computed as the
    blocks go out, so a client that stops early costs the server nothing more.
    Deflate looks back only 32 KiB, so for a longer *unit* the repetition does
    not improve the ratio.
    """

    _HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip, deflate, no name, mtime 0, unknown OS

    def __init__(self, unit: bytes, decoded: int, *, length: bool) -> None:
        self.unit, self.decoded, self.length = unit, decoded, length
        self.whole_units, rest = divmod(decoded, len(unit))
        self.rest = unit[:rest]
        compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        self.block = compressor.compress(unit) + compressor.flush(zlib.Z_FULL_FLUSH)
        last = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        self.last = last.compress(self.rest) + last.flush(zlib.Z_FINISH)
        self.encoded_size = len(self._HEADER) + self.whole_units * len(self.block) + len(self.last) + 8
        # Writes of about 64 KiB rather than one small block each.
        self.blocks_per_write = max(1, (64 << 10) // len(self.block))

    def handle(self, request: Request) -> None:
        head = {**_OCTETS, "Content-Encoding": "gzip"}
        _send_head(
            request, 200, {**head, "Content-Length": str(self.encoded_size)} if self.length else {**head, **_TO_CLOSE}
        )
        with _Stream(request) as stream:
            if not stream.write(self._HEADER):
                return
            crc, left = 0, self.whole_units
            while left:
                count = min(left, self.blocks_per_write)
                if not stream.write(self.block * count):
                    return
                for _ in range(count):
                    crc = zlib.crc32(self.unit, crc)
                left -= count
            crc = zlib.crc32(self.rest, crc)
            if stream.write(self.last + struct.pack("<II", crc, self.decoded & 0xFFFFFFFF)) and self.length:
                stream.finish()


# Common English words, most frequent first; with a Zipf-like choice among them
# they gzip about as well as English prose does.
_WORDS = """the of and to a in is that for it as was with be by on not he this are or his from at which but have an
they you were her she there been one all we their has would when if so no will can more out up into do any your what
some them about than then its our two these may other only time could new like over such very first made also after
many did most well where down should before through back just now each people those little how even must because
long same much still between work own under while last might being great again never day world old right another
year house thought place found without three state small part number general every water public system case point
given around against however within form order night line during whole known interest light course nothing few
something whose often present country upon done change certain always large until early although report server file
request response client connection data network protocol message header section document value field method""".split()


@functools.cache
def _text_block() -> bytes:
    """64 KiB of sentences and paragraphs in 72 columns, the same every run (longer than deflate's window)."""
    rng = random.Random(13)
    weights = [1 / (rank + 1) ** 1.5 for rank in range(len(_WORDS))]
    text, line, size = [], "", 0
    while size < 64 << 10:
        words = rng.choices(_WORDS, weights, k=rng.randint(5, 18))
        words = [word + ("," if rng.random() < 0.08 else "") for word in words[:-1]] + [words[-1] + "."]
        words[0] = words[0].capitalize()
        for word in words:
            if line and len(line) + 1 + len(word) > 72:
                text.append(line + "\n")
                size += len(line) + 1
                line = ""
            line = f"{line} {word}" if line else word
        if rng.random() < 0.1:
            text.append(line + "\n\n")
            size += len(line) + 2
            line = ""
    return "".join(text).encode()[: 64 << 10]


class Overlap:
    """A handler that counts its requests inside their delay at once, before any answer goes out.

    ``max_in_flight`` counts a request until its handler returns, which on a busy machine can be
    after the client has the answer and has started the next one; this count cannot run late.
    """

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.most = 0
        self._now = 0
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> None:
        with self._lock:
            self._now += 1
            self.most = max(self.most, self._now)
        try:
            request.server.owner.sleep(self.delay)
        finally:
            with self._lock:
                self._now -= 1
        send(request, b"x")


class Silent:
    """A TCP port on loopback where nobody answers: for a client stuck before any HTTP.

    It listens and never accepts.  The kernel still completes the connects
    (into the listen queue), so a request or a TLS ClientHello sent there
    waits for an answer that never comes.  With ``full``, the listen queue is
    kept full (one connection of its own in a queue of one), and Linux drops
    the SYNs of any other: a connect there does not complete at all.  Close
    it (or use ``with``) when done.
    """

    def __init__(self, *, full: bool = False, host: str = "127.0.0.1") -> None:
        self._listener = socket.create_server((host, 0), backlog=0 if full else 16)
        self._own: socket.socket | None = None
        if full:
            self._own = socket.create_connection(self._listener.getsockname()[:2], timeout=MAX_STALL_S)

    def url(self, path: str, *, scheme: str = "http") -> str:
        host, port = self._listener.getsockname()[:2]
        return f"{scheme}://{host}:{port}{path}"

    def connects(self, wait: float) -> bool:
        """Whether a connect completes within *wait* seconds (with ``full``, it should not)."""
        try:
            with socket.create_connection(self._listener.getsockname()[:2], timeout=wait):
                return True
        except OSError:
            return False

    def close(self) -> None:
        if self._own is not None:
            self._own.close()
        self._listener.close()

    def __enter__(self) -> Silent:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Capacity:
    """A handler whose answers depend on load, for ``--adaptive``: a server that can serve so many at once.

    It serves at most ``capacity(t)`` requests at a time (*t*: seconds since
    its first request; None: no limit), each taking *service_s*; the rest wait
    their turn (latency grows with the load), or with ``reject`` get a 429
    without Retry-After at once.  It keeps, for the test, the requests in
    flight at it over time (waiting or served), the requests and the 429s.
    Route it at as many paths as the test needs: they share one capacity.
    """

    def __init__(self, data: bytes, *, service_s: float, capacity: Callable[[float], int | None],
                 reject: bool = False) -> None:  # fmt: skip
        self.data, self.service_s, self.capacity, self.reject = data, service_s, capacity, reject
        self._changed = threading.Condition()
        self._serving = 0
        self._in_flight = 0
        self.first: float | None = None
        self.events: list[tuple[float, int]] = []  # (when, in flight from then on)
        self.requests = 0
        self.rejected = 0

    def __call__(self, request: Request) -> None:
        # Headers and body each go at once: Nagle's wait for a delayed ACK would add 40 ms to some answers.
        request.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        served = self._enter(request.server.owner.stopping)
        try:
            if served:
                request.server.owner.sleep(self.service_s)
        finally:
            # Out of flight before the answer goes: the client may start its next request the moment it has
            # the answer, before this thread runs again, and that must not look like one more at once.
            with self._changed:
                self._serving -= served
                self._changed.notify_all()
                self._count(-1)
        if served:
            send(request, self.data)
        else:
            send(request, b"", status=429)

    def _enter(self, stopping: threading.Event) -> bool:
        """Count the request in, and wait for its turn; False: it gets a 429."""
        with self._changed:
            now = time.monotonic()
            self.first = self.first or now
            self.requests += 1
            self._count(+1)
            deadline = now + MAX_STALL_S
            while not stopping.is_set() and time.monotonic() < deadline:
                cap = self.capacity(time.monotonic() - self.first)
                if cap is None or self._serving < cap:
                    self._serving += 1
                    return True
                if self.reject:
                    self.rejected += 1
                    return False
                self._changed.wait(0.05)
            return False

    def _count(self, change: int) -> None:
        self._in_flight += change
        self.events.append((time.monotonic(), self._in_flight))

    def mean_in_flight(self, start: float, end: float) -> float:
        """The requests in flight, on average over time, between two ``time.monotonic()`` times."""
        with self._changed:
            events = list(self.events)
        level, total, at = 0, 0.0, start
        for when, count in events:
            if when <= start:
                level = count
                continue
            if when >= end:
                break
            total += level * (when - at)
            at, level = when, count
        total += level * (end - at)
        return total / (end - start) if end > start else 0.0

    def max_in_flight(self, since: float = 0.0) -> int:
        with self._changed:
            return max((count for when, count in self.events if when >= since), default=0)

    @property
    def last(self) -> float:
        with self._changed:
            return self.events[-1][0] if self.events else 0.0
