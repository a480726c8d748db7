"""Hanging up a request from another thread, whatever it is waiting for.

A request can wait up to --timeout in four places: the TCP connect, the TLS
handshake, the response's headers, and each read of its body.  A stop
(Ctrl-C, SIGTERM, ``Fetcher.stop()``, ``--deadline``, ``close()``) must end
all four at once.  Shutting the socket down does: the blocked call returns at
once, with an error or an end of file.  (Closing it would not: on Linux a
close does not wake a call another thread is blocked in.)

So the sessions ``new_session`` makes hand their sockets to a ``Line`` as
they are made, before they connect, and again each time a kept-alive
connection carries a request.  One Line per session: a session is used by
one worker thread, one attempt at a time.  The attempt opens the line, gives
its run the hang-up ``open()`` returns, and closes the line when it is done,
so that a stop that comes late never cuts the connection of a later attempt.

A session fetcher did not make (``session_factory``) has no Line: its
requests can be hung up only once their headers are in (see download.py).
The name lookup cannot be cut either way (getaddrinfo cannot be woken).
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

import requests
from requests.adapters import HTTPAdapter
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager, poolmanager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, LocationParseError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from .headers import HTTPResponse
from .lines import HangUps as HangUps
from .lines import HungUp as HungUp
from .lines import Line as Line

#: Pools an adapter finds without asking the pool manager again: this many, or twice its ``pool_connections`` if
#: more; past that it starts afresh.
_POOLS_REMEMBERED = 64


class HangUpAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections hand their sockets to ``self.line``."""

    def __init__(self, **kwargs: Any) -> None:
        self.line = Line()  # before HTTPAdapter.__init__, which makes the pool manager
        self._pools: dict[tuple[str, Any, Any], HTTPConnectionPool] = {}  # (origin, verify, cert) -> its pool
        super().__init__(**kwargs)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.line = Line()  # unpickled: a line of its own, before the pool manager is made again
        self._pools = {}
        super().__setstate__(state)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _report_to(self.poolmanager, self.line)
        _close_evicted(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        _report_to(manager, self.line)
        _close_evicted(manager)
        return manager

    def get_connection_with_tls_context(
        self, request: requests.PreparedRequest, verify: Any, proxies: Any = None, cert: Any = None
    ) -> HTTPConnectionPool:
        """requests' own; without proxies, the pool of the URL's origin as found last time.

        requests builds the pool manager's key (a URL parse, a dict of settings)
        on every request to find a pool that, for a list of files, is nearly
        always the one it found last time.  A pool the manager has closed since
        (it keeps the ``pool_connections`` last used) is looked up again: this
        memory never keeps a connection open.
        """
        if proxies:
            return super().get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert)
        key, pool = _origin_key(request.url, verify, cert), None
        if key is not None:
            pool = self._pools.get(key)
        if pool is not None and pool.pool is not None:  # .pool: None once the manager closed it
            return pool
        try:
            host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        except ValueError as exc:
            raise requests.exceptions.InvalidURL(exc, request=request) from exc
        pool = self.poolmanager.connection_from_host(**host_params, pool_kwargs=pool_kwargs)
        if key is not None:
            if len(self._pools) >= max(_POOLS_REMEMBERED, 2 * self._pool_connections):
                self._pools.clear()
            self._pools[key] = pool
        return pool

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        """requests' own, but the cookie jar looks at the headers only when they set a cookie.

        With no Set-Cookie header it would find nothing, after making two
        wrapper objects and a search of every header.
        """
        response = requests.Response()
        response.status_code = getattr(resp, "status", None)  # type: ignore[assignment]
        response.headers = CaseInsensitiveDict(getattr(resp, "headers", {}))
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = resp
        response.reason = response.raw.reason
        response.url = req.url.decode("utf-8") if isinstance(req.url, bytes) else req.url  # type: ignore[assignment]
        if sets_cookies(response.headers):
            extract_cookies_to_jar(response.cookies, req, resp)
        response.request = req
        response.connection = self
        return response

    def request_url(self, request: requests.PreparedRequest, proxies: Any) -> str:
        """requests' own; without proxies, the path, found without a search of the empty proxy table."""
        return super().request_url(request, proxies) if proxies else request.path_url

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """requests' own, but a CA bundle path is looked at once, not on every request.

        For a path, requests asks the file system whether it is a folder each
        time; the answer only decides which pool setting carries it.
        """
        folder = _is_folder(verify) if isinstance(verify, str) else None
        if folder is None:
            return super().build_connection_pool_key_attributes(request, verify, cert)
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, True, cert)
        # requests 2.32.3 and 2.32.4 give True their preloaded default context, shared by every pool: with a
        # bundle, urllib3 would load it into that context. requests gives a bundle none; nor do we.
        pool_kwargs.pop("ssl_context", None)
        pool_kwargs["ca_cert_dir" if folder else "ca_certs"] = verify
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        """requests' own, but a CA bundle path found once is not looked for again on every HTTPS request."""
        https = url.lower().startswith("https")
        folder = _is_folder(verify) if https and isinstance(verify, str) and not cert else None
        if folder is None:
            super().cert_verify(conn, url, verify, cert)  # a bundle not there: requests raises its error
            return
        conn.cert_reqs = "CERT_REQUIRED"
        if folder:
            conn.ca_cert_dir = verify
        else:
            conn.ca_certs = verify


def _origin_key(url: str | bytes | None, verify: Any, cert: Any) -> tuple[str, Any, Any] | None:
    """What decides a request's pool: the URL up to its path ("scheme://host:port"), verify and cert;
    None for a URL or settings that cannot make a key (found afresh each time)."""
    if not isinstance(url, str):
        return None
    start = url.find("//")
    end = url.find("/", start + 2) if start != -1 else -1
    if end == -1:
        return None
    try:
        hash((verify, cert))
    except TypeError:  # a list for cert
        return None
    return url[:end], verify, cert


def sets_cookies(headers: Mapping[str, str]) -> bool:
    """Whether a response with *headers* (any case-insensitive mapping) sets a cookie."""
    return "Set-Cookie" in headers or "Set-Cookie2" in headers


#: CA bundle paths seen, and whether each is a folder; only paths that exist, so one that appears later is found.
_BUNDLES: dict[str, bool] = {}


def _is_folder(path: str) -> bool | None:
    """Whether the CA bundle *path* is a folder (a file if not); None if it is not there."""
    folder = _BUNDLES.get(path)
    if folder is None and os.path.exists(path):
        folder = _BUNDLES[path] = os.path.isdir(path)
    return folder


def line_of(session: requests.Session, url: str) -> Line | None:
    """The Line of the adapter *session* sends *url* with; None if that adapter is not fetcher's."""
    try:
        adapter = session.get_adapter(url)
    except requests.exceptions.InvalidSchema:
        return None
    return adapter.line if isinstance(adapter, HangUpAdapter) else None


def _close_evicted(manager: PoolManager) -> None:
    """Make *manager* close a pool, and so its idle connection, when it evicts it for a new host.

    urllib3 leaves an evicted pool to the garbage collector, because another
    thread may be about to use it (urllib3 issue #1252).  A session here
    belongs to one thread, which is done with a pool by the time it asks for
    another: closing at once keeps its idle connections to the
    ``pool_connections`` it was given (session.py's ``hosts_kept``).
    """
    manager.pools.dispose_func = _close_pool


def _close_pool(pool: HTTPConnectionPool) -> None:
    pool.close()


def _report_to(manager: PoolManager, line: Line) -> None:
    """Make *manager*'s new pools use connections that report to *line*.

    Only a manager with urllib3's own pool classes: a SOCKS proxy's keeps its
    own connections, which are then cut as a session not made here is.
    """
    if manager.pool_classes_by_scheme is not poolmanager.pool_classes_by_scheme:
        return
    # The manager calls the pool class with the pool's arguments; the pool passes
    # what it does not know (the line) on to each connection it makes.
    manager.pool_classes_by_scheme = {
        "http": cast("type[HTTPConnectionPool]", functools.partial(_HTTPPool, line=line)),
        "https": cast("type[HTTPConnectionPool]", functools.partial(_HTTPSPool, line=line)),
    }


class _Reporting(HTTPConnection):
    """A connection that hands its socket to its Line before connecting, and again for each request."""

    response_class = HTTPResponse  # its header block read without the email package (headers.py)

    def __init__(self, *args: Any, line: Line, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line = line

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None:
            self.line.add(self.sock)  # kept alive from an earlier request, or just through its TLS handshake
        super().request(*args, **kwargs)

    def _new_conn(self) -> socket.socket:
        # urllib3's own, but with the socket on the line before it connects.
        try:
            sock = self._connect()
        except socket.gaierror as e:
            raise NameResolutionError(self.host, self, e) from e
        except TimeoutError as e:
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from e
        except OSError as e:
            raise NewConnectionError(self, f"Failed to establish a new connection: {e}") from e
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock

    def _connect(self) -> socket.socket:
        """urllib3.util.connection.create_connection, with each socket added to the line before it connects."""
        host = self._dns_host.strip("[]") if self._dns_host.startswith("[") else self._dns_host
        try:
            host.encode("idna")
        except UnicodeError:
            raise LocationParseError(f"'{host}', label empty or too long") from None
        error: OSError | None = None
        for family, kind, proto, _, address in socket.getaddrinfo(
            host, self.port, allowed_gai_family(), socket.SOCK_STREAM
        ):
            sock = None
            try:
                sock = socket.socket(family, kind, proto)
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                if cast(object, self.timeout) is not _DEFAULT_TIMEOUT:  # typed as resolved; not always so
                    sock.settimeout(self.timeout)
                if self.source_address:
                    sock.bind(self.source_address)
                self.line.add(sock)
                sock.connect(address)
                return sock
            except OSError as exc:
                error = exc
                if sock is not None:
                    sock.close()
            if isinstance(error, HungUp):
                break  # no other address either
        raise error or OSError("getaddrinfo returns an empty list")


class _ReportingTLS(_Reporting, HTTPSConnection):
    """Also reports the socket through its TLS handshake.

    urllib3 wraps the socket by moving its descriptor to a new SSLSocket, and
    that object is only handed back once the handshake is over: a duplicate
    descriptor on the line lets a hang-up reach the socket meanwhile.
    """

    _stand_in: socket.socket | None = None

    def connect(self) -> None:
        try:
            super().connect()
        finally:
            if self._stand_in is not None:
                self.line.discard(self._stand_in)
                self._stand_in = None

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        try:
            self._stand_in = self.line.add_duplicate(sock)
        except BaseException:
            sock.close()
            raise
        return sock


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _Reporting


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _ReportingTLS


# -- an attempt's side: hung up while it runs ----------------------------------------

#: An attempt's ``Ask.on_stop``: it takes the hang-up to call if the run stops, and gives back its undo.
OnStop = Callable[[Callable[[], None]], Callable[[], None]]


def hung_up_on_stop(on_stop: OnStop | None, line: Line | None) -> contextlib.AbstractContextManager[object]:
    """While an attempt runs: if the run stops, shut its connection, whatever it waits for."""
    if on_stop is None or line is None:
        return _NOTHING  # nothing to heed, or a session whose sockets are out of reach: see below
    return _OnStop(on_stop, line)


def response_hung_up_on_stop(
    on_stop: OnStop | None, line: Line | None, response: requests.Response
) -> contextlib.AbstractContextManager[object]:
    """With a session not made by new_session (no *line*), the most that can be done: shut the
    connection once the response has come, so a read blocked in the body ends."""
    if on_stop is None or line is not None:
        return _NOTHING
    return _response_cut(on_stop, response)


@contextlib.contextmanager
def _response_cut(on_stop: OnStop, response: requests.Response) -> Iterator[None]:
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


#: The context of an attempt with nothing to hang up (a plain class, not a
#: generator: it is entered twice per file).
_NOTHING = contextlib.nullcontext()


class _OnStop:
    """While an attempt runs, a stop of the run hangs up its session's line."""

    __slots__ = ("line", "on_stop", "undo")

    def __init__(self, on_stop: OnStop, line: Line) -> None:
        self.on_stop, self.line = on_stop, line
        self.undo: Callable[[], None] | None = None

    def __enter__(self) -> None:
        self.undo = self.on_stop(self.line.open())

    def __exit__(self, *exc: object) -> None:
        if self.undo is not None:
            self.undo()
        self.line.close()


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
