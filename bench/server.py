"""A small, fast, threaded HTTP/1.1 file server for the benchmark.

Run as a separate process by ``bench.py`` so that its CPU time is not counted
against the client being measured::

    python bench/server.py ROOT [--paced DIR ...] [--pace-seconds 1.0]

It serves the files under ROOT at ``http://127.0.0.1:PORT/<relative path>``,
prints ``PORT <n>`` on its standard output once it listens, and exits when its
standard input reaches end-of-file (so it never outlives the benchmark, even if
the benchmark is killed).

How files are served:

* files under a ``--paced`` top-level folder are sent in small pieces, piece k
  no earlier than ``start + k * interval``, so a whole response takes
  ``--pace-seconds`` of wall-clock time whatever the client does;
* other small files are held in memory and sent with a single ``sendall``;
* large files are sent from disk with ``socket.sendfile`` (zero-copy), so the
  server is not the bottleneck.

Connections are HTTP/1.1 keep-alive (exact ``Content-Length``, an explicit
``Connection: keep-alive``), Nagle is off, and nothing is logged per request.
Only GET and HEAD are supported; Range requests are ignored (a full ``200`` is
always sent). It is standard library only and binds to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import socket
import socketserver
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

IN_MEMORY_LIMIT = 1 << 20  # files up to 1 MiB are cached in memory
PACE_PIECE = 2048  # bytes per paced piece
MAX_LINE = 8192  # longest request or header line read
MAX_HEADERS = 100  # most header lines read per request
MAX_REQUESTS_PER_CONNECTION = 1_000_000  # keeps the keep-alive loop bounded


class FileStore:
    """Index of the served files: relative URL path -> bytes or on-disk path."""

    def __init__(self, root: Path, paced_dirs: set[str]) -> None:
        self.paced_dirs = paced_dirs
        self.memory: dict[str, bytes] = {}
        self.disk: dict[str, tuple[Path, int]] = {}
        for path in sorted(root.rglob("*")):
            if not path.is_file():
                continue
            rel = "/" + path.relative_to(root).as_posix()
            size = path.stat().st_size
            if size <= IN_MEMORY_LIMIT:
                self.memory[rel] = path.read_bytes()
            else:
                self.disk[rel] = (path, size)

    def is_paced(self, rel: str) -> bool:
        return rel.split("/", 2)[1] in self.paced_dirs


class Handler(socketserver.StreamRequestHandler):
    """A minimal HTTP/1.1 handler: GET and HEAD of static files, keep-alive.

    http.server's BaseHTTPRequestHandler parses every request's headers with
    the email package, which costs about as much CPU per request as a fast
    client spends in scenario (b); this reads only what it needs.
    """

    store: FileStore  # set on the class by make_server()
    pace_seconds: float
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
        parts = request_line.decode("latin-1").split()
        connection = ""
        for _ in range(MAX_HEADERS):
            line = self.rfile.readline(MAX_LINE + 1)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "connection":
                connection = value.strip().lower()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._send_status(400, "Bad Request", close=True)
            return False
        method, target, version = parts
        self.close_connection = connection == "close" or (
            version == "HTTP/1.0" and connection != "keep-alive")
        if method not in ("GET", "HEAD"):
            self._send_status(501, "Not Implemented", close=True)  # body left unread
        else:
            self._serve(unquote(urlsplit(target).path), send_body=method == "GET")
        return True

    def _headers(self, length: int, status: str = "200 OK") -> bytes:
        # Say keep-alive explicitly, as common servers do: wget2 1.99 closes
        # the connection after every HTTP/1.1 response that does not.
        return (f"HTTP/1.1 {status}\r\n"
                "Content-Type: application/octet-stream\r\n"
                f"Content-Length: {length}\r\n"
                f"Connection: {'close' if self.close_connection else 'keep-alive'}\r\n"
                "\r\n").encode("ascii")

    def _send_status(self, code: int, reason: str, close: bool = False) -> None:
        self.close_connection = self.close_connection or close
        body = f"{code} {reason}\n".encode()
        self.connection.sendall(self._headers(len(body), f"{code} {reason}") + body)

    def _serve(self, rel: str, send_body: bool) -> None:
        store = self.store
        if rel in store.memory:
            data = store.memory[rel]
            if not send_body:
                self.connection.sendall(self._headers(len(data)))
            elif store.is_paced(rel):
                self._send_paced(data)
            else:
                self.connection.sendall(self._headers(len(data)) + data)
        elif rel in store.disk:
            path, size = store.disk[rel]
            self.connection.sendall(self._headers(size))
            if send_body:
                with open(path, "rb") as f:
                    self.connection.sendfile(f)
        else:
            self._send_status(404, "Not Found")

    def _send_paced(self, data: bytes) -> None:
        """Send ``data`` so that the last byte leaves at start + pace_seconds."""
        sock = self.connection
        pieces = [data[i : i + PACE_PIECE] for i in range(0, len(data), PACE_PIECE)]
        interval = self.pace_seconds / max(1, len(pieces))
        start = time.monotonic()
        sock.sendall(self._headers(len(data)))
        for k, piece in enumerate(pieces, start=1):
            delay = start + k * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sock.sendall(piece)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    allow_reuse_address = True

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        """One line per error instead of a traceback (the bench counts them)."""
        print(f"error serving {client_address}: {sys.exc_info()[1]!r}",
              file=sys.stderr, flush=True)


def make_server(root: Path, paced_dirs: set[str], pace_seconds: float) -> Server:
    Handler.store = FileStore(root, paced_dirs)
    Handler.pace_seconds = pace_seconds
    return Server(("127.0.0.1", 0), Handler)


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
    args = parser.parse_args(argv)

    server = make_server(args.root, set(args.paced), args.pace_seconds)
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.5)


if __name__ == "__main__":
    main()
