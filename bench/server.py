"""A small, fast, threaded HTTP/1.1 file server for the benchmark.

Run as a separate process by ``bench.py`` so that its CPU time is not counted
against the client being measured::

    python bench/server.py ROOT [--paced DIR ...] [--pace-seconds 1.0]
                                [--rated DIR ...] [--rate BYTES_PER_S]
                                [--host 127.0.0.1] [--log-requests]

It serves the files under ROOT at ``http://HOST:PORT/<relative path>``,
prints ``PORT <n>`` on its standard output once it listens, and exits when its
standard input reaches end-of-file (so it never outlives the benchmark, even if
the benchmark is killed).

How files are served:

* files under a ``--paced`` top-level folder are sent in small pieces, piece k
  no earlier than ``start + k * interval``, so a whole response takes
  ``--pace-seconds`` of wall-clock time whatever the client does;
* files under a ``--rated`` top-level folder are sent at ``--rate`` bytes per
  second (pieces of at most 256 KiB, each on a fixed schedule), so a harness
  can kill a client part-way through a large download;
* other small files are held in memory and sent with a single ``sendall``;
* large files are sent from disk with ``socket.sendfile`` (zero-copy), so the
  server is not the bottleneck.

Every file has validators, as common servers give them: a strong ``ETag``
made of its size and ``mtime_ns`` and a ``Last-Modified`` from its mtime.
``If-None-Match`` (weak comparison) and, without it, ``If-Modified-Since``
(date comparison) get a ``304``. ``Range: bytes=N-`` or ``bytes=N-M`` gets a
``206`` unless ``If-Range`` is present and is neither the ETag nor the
Last-Modified string exactly (then a full ``200``); a range starting at or
past the end gets a ``416``. Other range forms are ignored (a full ``200``).

Counters: ``GET /__stats`` answers JSON ``{"requests": n, "status": {"200":
n, ...}, "body_bytes": n}`` for everything served since the start or the last
``GET /__stats/reset`` (which answers the same figures and sets them to zero).
Body bytes are counted as they are handed to the kernel (piece by piece when
paced or rated), so a harness can poll them during a download. These two
paths are not counted themselves.

Request log (only with ``--log-requests``, so the other scenarios pay nothing
for it): ``GET /__log`` answers a JSON list of ``[start, end, path]``, one per
request, where ``start`` is ``time.monotonic()`` when the request line was
read and ``end`` when the response was handed to the kernel whole (the same
clock as any other process's ``time.monotonic()`` on Linux).
``GET /__log/reset`` answers the same and empties it. Neither is logged.

Connections are HTTP/1.1 keep-alive (exact ``Content-Length``, an explicit
``Connection: keep-alive``), Nagle is off, and nothing is logged per request.
Only GET and HEAD are supported. It is standard library only and binds to
127.0.0.1 only, unless ``--host`` names another loopback address (127.0.0.2:
a second "host" for per-host limits).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

IN_MEMORY_LIMIT = 1 << 20  # files up to 1 MiB are cached in memory
PACE_PIECE = 2048  # bytes per paced piece
RATE_PIECE_MAX = 256 * 1024  # largest piece sent at --rate
MAX_LINE = 8192  # longest request or header line read
MAX_HEADERS = 100  # most header lines read per request
MAX_REQUESTS_PER_CONNECTION = 1_000_000  # keeps the keep-alive loop bounded


STATS_PATH = "/__stats"
RESET_PATH = "/__stats/reset"
LOG_PATH = "/__log"
LOG_RESET_PATH = "/__log/reset"
CONTROL_PATHS = frozenset({STATS_PATH, RESET_PATH, LOG_PATH, LOG_RESET_PATH})
MAX_LOGGED = 1_000_000  # requests kept in the log between two resets
WANTED_HEADERS = frozenset({"connection", "if-none-match", "if-modified-since", "range",
                            "if-range"})


@dataclass(frozen=True)
class Served:
    """One served file: its bytes (small files) or its path, and its validators."""
    path: Path
    size: int
    data: bytes | None  # None: sent from disk
    etag: str
    last_modified: str
    mtime_s: int  # what Last-Modified says, for If-Modified-Since
    validators: str  # the header lines every 200/206/304 of this file carries
    full_extra: str  # the header lines of a 200 beyond the basic ones
    paced: bool
    rated: bool


class FileStore:
    """Index of the served files: relative URL path -> Served."""

    def __init__(self, root: Path, paced_dirs: set[str], rated_dirs: set[str]) -> None:
        self.files: dict[str, Served] = {}
        for path in sorted(root.rglob("*")):
            if not path.is_file():
                continue
            rel = "/" + path.relative_to(root).as_posix()
            st = path.stat()
            # Strong, as nginx and apache make them (apache: size-mtime).
            etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
            last_modified = formatdate(st.st_mtime, usegmt=True)
            top = rel.split("/", 2)[1]
            self.files[rel] = Served(
                path=path, size=st.st_size,
                data=path.read_bytes() if st.st_size <= IN_MEMORY_LIMIT else None,
                etag=etag, last_modified=last_modified, mtime_s=int(st.st_mtime),
                validators=f"ETag: {etag}\r\nLast-Modified: {last_modified}\r\n",
                full_extra=(f"ETag: {etag}\r\nLast-Modified: {last_modified}\r\n"
                            "Accept-Ranges: bytes\r\n"),
                paced=top in paced_dirs, rated=top in rated_dirs)


class Stats:
    """Requests by status and body bytes sent, shared by all handler threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status: dict[int, int] = {}
        self._body_bytes = 0

    def status(self, code: int, body_bytes: int = 0) -> None:
        with self._lock:
            self._status[code] = self._status.get(code, 0) + 1
            self._body_bytes += body_bytes

    def body(self, size: int) -> None:
        with self._lock:
            self._body_bytes += size

    def snapshot(self, reset: bool = False) -> dict[str, object]:
        with self._lock:
            figures = {"requests": sum(self._status.values()),
                       "status": {str(k): v for k, v in sorted(self._status.items())},
                       "body_bytes": self._body_bytes}
            if reset:
                self._status, self._body_bytes = {}, 0
        return figures


class RequestLog:
    """Each request's start and end times, when the server was asked to keep them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[tuple[float, float, str]] = []

    def add(self, start: float, end: float, path: str) -> None:
        with self._lock:
            if len(self._entries) < MAX_LOGGED:
                self._entries.append((start, end, path))

    def snapshot(self, reset: bool = False) -> list[tuple[float, float, str]]:
        with self._lock:
            entries = self._entries
            if reset:
                self._entries = []
            else:
                entries = list(entries)
        return entries


def parse_date(text: str) -> float | None:
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def not_modified(served: Served, headers: dict[str, str]) -> bool:
    """RFC 9110 13.2.2: If-None-Match (weak comparison) first, else If-Modified-Since."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if if_none_match == served.etag or if_none_match == "*":
            return True  # the common case, without parsing a list
        tags = (t.strip().removeprefix("W/") for t in if_none_match.split(","))
        return served.etag in tags
    since = headers.get("if-modified-since")
    if since is None:
        return False
    if since == served.last_modified:
        return True
    since_ts = parse_date(since)
    return since_ts is not None and served.mtime_s <= since_ts


def byte_range(served: Served, headers: dict[str, str]) -> tuple[int, int] | None:
    """(start, end) of a 206, (size, size) when unsatisfiable, None for the whole file."""
    spec = headers.get("range")
    if spec is None or not spec.startswith("bytes="):
        return None
    first, dash, last = spec[6:].strip().partition("-")
    if not dash or not first.isdigit() or (last and not last.isdigit()):
        return None  # suffix ranges and lists are not served: a full 200
    if_range = headers.get("if-range")
    if if_range is not None and if_range not in (served.etag, served.last_modified):
        return None  # strong comparison: a W/ tag or another date never matches
    start = int(first)
    end = min(served.size, int(last) + 1) if last else served.size
    if start >= served.size:
        return served.size, served.size
    return (start, end) if end > start else None


class Handler(socketserver.StreamRequestHandler):
    """A minimal HTTP/1.1 handler: GET and HEAD of static files, keep-alive.

    http.server's BaseHTTPRequestHandler parses every request's headers with
    the email package, which costs about as much CPU per request as a fast
    client spends in scenario (b); this reads only what it needs.
    """

    store: FileStore  # set on the class by make_server()
    stats: Stats
    log: RequestLog | None  # None: requests are not logged
    pace_seconds: float
    rate: float
    close_connection: bool

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self) -> None:
        self.close_connection = False
        for _ in range(MAX_REQUESTS_PER_CONNECTION):
            if not self._handle_one() or self.close_connection:
                return

    def _handle_one(self) -> bool:
        """Serve one request; False when the connection is finished."""
        request_line = self.rfile.readline(MAX_LINE + 1)
        if not request_line:
            return False
        started = time.monotonic()
        parts = request_line.decode("latin-1").split()
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS):
            line = self.rfile.readline(MAX_LINE + 1)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name in WANTED_HEADERS:
                headers[name] = value.strip()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self.stats.status(400)
            self._send_status(400, "Bad Request", close=True)
            return False
        method, target, version = parts
        connection = headers.get("connection", "").lower()
        self.close_connection = connection == "close" or (
            version == "HTTP/1.0" and connection != "keep-alive")
        if method not in ("GET", "HEAD"):
            self.stats.status(501)
            self._send_status(501, "Not Implemented", close=True)  # body left unread
        else:
            path = unquote(urlsplit(target).path)
            self._serve(path, headers, send_body=method == "GET")
            if self.log is not None and path not in CONTROL_PATHS:
                self.log.add(started, time.monotonic(), path)
        return True

    def _headers(self, length: int, status: str = "200 OK", extra: str = "") -> bytes:
        # Say keep-alive explicitly, as common servers do: wget2 1.99 closes
        # the connection after every HTTP/1.1 response that does not.
        return (f"HTTP/1.1 {status}\r\n"
                "Content-Type: application/octet-stream\r\n"
                f"Content-Length: {length}\r\n"
                f"{extra}"
                f"Connection: {'close' if self.close_connection else 'keep-alive'}\r\n"
                "\r\n").encode("ascii")

    def _send_status(self, code: int, reason: str, close: bool = False, extra: str = "",
                     body: bytes | None = None) -> None:
        self.close_connection = self.close_connection or close
        body = f"{code} {reason}\n".encode() if body is None else body
        self.connection.sendall(self._headers(len(body), f"{code} {reason}", extra) + body)

    def _serve(self, rel: str, headers: dict[str, str], send_body: bool) -> None:
        served = self.store.files.get(rel)
        if served is None:
            if rel in (STATS_PATH, RESET_PATH):
                figures = self.stats.snapshot(reset=rel == RESET_PATH)
                self._send_status(200, "OK", body=json.dumps(figures).encode())
            elif rel in (LOG_PATH, LOG_RESET_PATH) and self.log is not None:
                entries = self.log.snapshot(reset=rel == LOG_RESET_PATH)
                self._send_status(200, "OK", body=json.dumps(entries).encode())
            else:
                self.stats.status(404)
                self._send_status(404, "Not Found")
            return
        if (headers.get("if-none-match") or headers.get("if-modified-since")) and \
                not_modified(served, headers):
            # RFC 9110 15.4.5: the validators; a 304 never has a body.
            self.stats.status(304)
            self.connection.sendall(
                (f"HTTP/1.1 304 Not Modified\r\n{served.validators}"
                 f"Connection: {'close' if self.close_connection else 'keep-alive'}\r\n"
                 "\r\n").encode("ascii"))
            return
        span = byte_range(served, headers) if "range" in headers else None
        start, end = span or (0, served.size)
        extra = served.full_extra
        if span is None:
            status = "200 OK"
            if send_body and served.data is not None and not served.paced and \
                    not served.rated:
                # The common case of (b), kept short: one lock, one sendall.
                self.stats.status(200, served.size)
                self.connection.sendall(self._headers(served.size, status, extra)
                                        + served.data)
                return
        elif start == end:
            self.stats.status(416)
            self._send_status(416, "Range Not Satisfiable",
                              extra=f"Content-Range: bytes */{served.size}\r\n")
            return
        else:
            status = "206 Partial Content"
            extra += f"Content-Range: bytes {start}-{end - 1}/{served.size}\r\n"
        self.stats.status(206 if span else 200)
        head = self._headers(end - start, status, extra)
        if not send_body:
            self.connection.sendall(head)
        elif served.rated:
            self._send_rated(head, served, start, end)
        elif served.data is not None and served.paced:
            self._send_paced(head, served.data[start:end])
        elif served.data is not None:
            body = served.data if span is None else served.data[start:end]
            self.connection.sendall(head + body)
            self.stats.body(len(body))
        else:
            self.connection.sendall(head)
            with open(served.path, "rb") as f:
                self.stats.body(self.connection.sendfile(f, start, end - start))

    def _send_paced(self, head: bytes, data: bytes) -> None:
        """Send ``data`` so that the last byte leaves at start + pace_seconds."""
        sock = self.connection
        pieces = [data[i : i + PACE_PIECE] for i in range(0, len(data), PACE_PIECE)]
        interval = self.pace_seconds / max(1, len(pieces))
        start = time.monotonic()
        sock.sendall(head)
        for k, piece in enumerate(pieces, start=1):
            delay = start + k * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sock.sendall(piece)
            self.stats.body(len(piece))

    def _send_rated(self, head: bytes, served: Served, start: int, end: int) -> None:
        """Send bytes start..end of the file at ``rate`` bytes per second, from disk."""
        sock = self.connection
        piece = max(1, min(RATE_PIECE_MAX, int(self.rate / 100)))
        began = time.monotonic()
        sock.sendall(head)
        with open(served.path, "rb") as f:
            for offset in range(start, end, piece):
                # Piece k leaves at began + k * piece / rate: a slow write does not drift.
                delay = began + (offset - start) / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                try:
                    self.stats.body(sock.sendfile(f, offset, min(piece, end - offset)))
                except (BrokenPipeError, ConnectionResetError):
                    # What (e) does on purpose: the client was killed mid-body.
                    self.close_connection = True
                    return


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    allow_reuse_address = True

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        """One line per error instead of a traceback (the bench counts them)."""
        print(f"error serving {client_address}: {sys.exc_info()[1]!r}",
              file=sys.stderr, flush=True)


def make_server(root: Path, paced_dirs: set[str], pace_seconds: float,
                rated_dirs: set[str] | None = None, rate: float = 64 * 1024 * 1024,
                host: str = "127.0.0.1", log_requests: bool = False) -> Server:
    Handler.store = FileStore(root, paced_dirs, rated_dirs or set())
    Handler.stats = Stats()
    Handler.log = RequestLog() if log_requests else None
    Handler.pace_seconds = pace_seconds
    Handler.rate = rate
    return Server((host, 0), Handler)


def exit_when_stdin_closes() -> None:
    """Exit the whole process once the parent closes our stdin (or dies)."""
    try:
        while sys.stdin.buffer.read(65536):
            pass
    finally:
        os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--paced", action="append", default=[],
                        help="top-level folder whose files are paced")
    parser.add_argument("--pace-seconds", type=float, default=1.0)
    parser.add_argument("--rated", action="append", default=[],
                        help="top-level folder whose files are sent at --rate")
    parser.add_argument("--rate", type=float, default=64 * 1024 * 1024,
                        help="bytes per second for --rated folders (default 64 MiB/s)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="loopback address to bind (default 127.0.0.1; 127.0.0.2 "
                             "is a second host)")
    parser.add_argument("--log-requests", action="store_true",
                        help="keep each request's start and end time, for GET /__log")
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error("--rate must be above 0")
    if not args.host.startswith("127."):
        parser.error("--host must be a loopback address (127.x.y.z)")

    server = make_server(args.root, set(args.paced), args.pace_seconds, set(args.rated),
                         args.rate, args.host, args.log_requests)
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.5)


if __name__ == "__main__":
    main()
