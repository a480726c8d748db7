"""A real HTTP/1.1 server on 127.0.0.1 for tests, with routes as plain functions.

Why not pytest-httpserver: the faults under test (a body cut short with the
socket closed, a lying Content-Length, a stall mid-body) need byte-level
control of the response, and werkzeug's server keeps a connection open after
a short body, which turns a truncation into a stall.  This is the standard
library's ThreadingHTTPServer with counters added.

Every sleep here waits on the server's stop event, so shutting the server
down never waits for a stalled handler.
"""

from __future__ import annotations

import gzip
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Handler = Callable[["Request"], None]

# No test waits longer than this for anything the server does.
MAX_STALL_S = 10.0


class Request(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.owner._count_connection()

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        handler = owner.routes.get(path)
        owner._enter(path)
        try:
            if handler is None:
                send(self, b"no such route\n", status=404)
            else:
                handler(self)
        finally:
            owner._leave()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: LoopbackServer

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up mid-response are what the fault tests do


class LoopbackServer:
    """Start with ``start()``, add routes with ``route()``, read the counters."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: Counter[str] = Counter()
        self.connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), Request)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

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

    def _count_connection(self) -> None:
        with self._lock:
            self.connections += 1

    def _enter(self, path: str) -> None:
        with self._lock:
            self.requests[path] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


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
        request.wfile.write(response)
        request.wfile.flush()
        request.close_connection = True

    return handle


def redirect(location: str, *, status: int = 302) -> Handler:
    return body(b"", status=status, headers={"Location": location})
