"""The exception tree, and the one place lower-level exceptions are translated.

    FetcherError                  root of everything fetcher raises
    ├── ConfigError (ValueError)  a bad argument or option value
    │   ├── DestinationError      DEST is not a usable folder
    │   └── StateError            the state database cannot be opened or used
    ├── URLListError              the URL list cannot be opened or read
    ├── ClosedError (RuntimeError) the Fetcher was used after close()
    └── DownloadError             one URL failed; carries ``url``
        ├── HTTPStatusError       the server answered 4xx/5xx; ``status_code``
        ├── BodyError             the body was cut short, too long or unusable
        ├── TransportError        no answer: DNS, connect, TLS, timeouts, redirects
        └── DiskError             the file could not be written

Only the first four are raised to callers.  A DownloadError's ``transient``
says whether the same request may well work a little later (a reset, a
stall, a 503): the retry policy retries those and nothing else.  A DownloadError never escapes a
``fetch()``: it becomes a failed Result whose ``error`` is its message.
"""

from __future__ import annotations

import errno
import functools
import re
import socket
from typing import Any

from ._text import redact_message


class FetcherError(Exception):
    """Root of every exception fetcher raises."""


class ConfigError(FetcherError, ValueError):
    """An argument or option has a value fetcher cannot use."""


class DestinationError(ConfigError):
    """The destination folder does not exist and cannot be made, or is not writable."""


class StateError(ConfigError):
    """The state database cannot be opened, or is not one fetcher can use."""


class URLListError(FetcherError):
    """The URL list cannot be opened or read."""


class ClosedError(FetcherError, RuntimeError):
    """The Fetcher was used after it was closed."""


class DownloadError(FetcherError):
    """One URL failed.  The message is short and safe to show (no password).

    ``transient`` is True when trying again later may well work.
    ``overload`` is True when the server is likely overloaded: it said so
    (429, 503), or it refused, reset or did not answer in time (what
    ``--adaptive`` cuts a host's limit for).
    """

    def __init__(self, url: str, reason: str, *, transient: bool = False, overload: bool = False) -> None:
        super().__init__(reason)
        self.url = url
        self.reason = reason
        self.transient = transient
        self.overload = overload

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors come back from worker processes pickled.  The default would call
        # __init__ again with the message alone, which the subclasses' signatures refuse.
        return _restore, (type(self), self.args, self.__dict__)


#: Statuses that say "not now" rather than "no": worth another attempt.
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Statuses that say "too much": the server's own sign of overload.
OVERLOAD_STATUSES = frozenset({429, 503})


class HTTPStatusError(DownloadError):
    """The server answered with an error status.

    ``retry_after`` is the raw ``Retry-After`` header, if the server sent one.
    ``answered_by`` is the URL that answered, after redirects (``url`` is the
    one asked for); None when not known.
    """

    def __init__(
        self,
        url: str,
        status_code: int,
        reason_phrase: str,
        *,
        retry_after: str | None = None,
        answered_by: str | None = None,
    ) -> None:
        phrase = f" {reason_phrase}" if reason_phrase else ""
        super().__init__(url, f"HTTP {status_code}{phrase}", transient=status_code in TRANSIENT_STATUSES,
                         overload=status_code in OVERLOAD_STATUSES)  # fmt: skip
        self.status_code = status_code
        self.retry_after = retry_after
        self.answered_by = answered_by


class BodyError(DownloadError):
    """The response body was incomplete, over-long or could not be decoded."""


class TransportError(DownloadError):
    """The exchange with the server failed before a usable answer came."""


class DiskError(DownloadError):
    """The downloaded data could not be written to disk."""


class Cancelled(DownloadError):
    """The download was stopped because its run was cancelled."""


def translate(exc: BaseException, url: str, *, read_timeout: float | None = None) -> DownloadError:
    """Map any exception raised while downloading *url* to a DownloadError.

    This is the one place that knows about requests', urllib3's and the OS's
    exceptions.  *read_timeout*, the seconds a server may send nothing,
    makes a stall's message say how long it was (urllib3 says so only for
    the wait for the headers).  Messages never include the URL (the record has it) and are
    scrubbed of credentials in case a library put the URL in its own text.
    """
    if isinstance(exc, DownloadError):
        return exc
    # Imported here, not at the top: a process whose downloads all run in worker processes never needs them.
    import ssl

    import requests
    import urllib3.exceptions

    connect_timeouts, read_timeouts = _timeouts()
    causes = _chain(exc)
    # Before the timeouts: urllib3 2 makes NewConnectionError (refused, DNS)
    # a subclass of ConnectTimeoutError.
    if _any(causes, urllib3.exceptions.NameResolutionError, socket.gaierror):
        return TransportError(url, "could not resolve the host name", transient=_resolver_busy(causes))
    if _any(causes, ConnectionRefusedError):
        return TransportError(url, "connection refused", transient=True, overload=True)
    if _any(causes, *connect_timeouts):
        return TransportError(url, "connection timed out", transient=True, overload=True)
    if _any(causes, *read_timeouts):
        return TransportError(url, _stalled(causes, read_timeout), transient=True, overload=True)
    if _any(causes, requests.exceptions.TooManyRedirects):
        return TransportError(url, "too many redirects")
    if _any(causes, requests.exceptions.InvalidSchema):
        return TransportError(url, "redirected to a URL that is not http or https")
    if _any(causes, requests.exceptions.SSLError, urllib3.exceptions.SSLError, ssl.SSLError):
        # A certificate that does not verify will not verify in a minute; a
        # handshake cut off by a busy server may well pass.
        verify_failed = _any(causes, ssl.SSLCertVerificationError)
        hint = f" ({TRUST_A_CA})" if verify_failed else ""
        return TransportError(
            url, f"TLS error: {_tls_detail(causes) or _detail(exc)}{hint}", transient=not verify_failed
        )
    if _any(causes, requests.exceptions.ContentDecodingError, urllib3.exceptions.DecodeError):
        return BodyError(url, "could not decode the compressed body")
    if _any(causes, requests.exceptions.ChunkedEncodingError):
        return BodyError(url, "connection closed before the body was complete", transient=True, overload=True)
    if _any(causes, urllib3.exceptions.ProtocolError):
        return TransportError(url, "connection closed before a response came", transient=True, overload=True)
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema)):
        return TransportError(url, f"invalid URL after redirect: {_detail(exc)}")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return TransportError(url, f"connection failed: {_detail(exc)}", transient=True, overload=True)
    if isinstance(exc, OSError) and not isinstance(exc, requests.exceptions.RequestException):
        if exc.errno == errno.ENOSPC:
            return DiskError(url, "no space left on the destination disk")
        return DiskError(url, f"could not write the file: {exc.strerror or _detail(exc)}")
    return DownloadError(url, f"{type(exc).__name__}: {_detail(exc)}")


#: The next step after a certificate that does not verify.
TRUST_A_CA = "for a private CA, pass --ca-certificate FILE"


@functools.cache
def _timeouts() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """The connect timeouts and the read timeouts of requests, urllib3 and the socket module."""
    import requests
    import urllib3.exceptions

    connect = (requests.exceptions.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError)
    read = (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError, socket.timeout)
    return connect, read


def timed_out(exc: BaseException) -> bool:
    """Whether *exc* is, or wraps, a connect or read timeout (as ``translate`` finds them)."""
    connect, read = _timeouts()
    return _any(_chain(exc), *connect, *read)


def _stalled(causes: list[BaseException], read_timeout: float | None) -> str:
    """How long the server sent nothing, from the caller or urllib3's "(read timeout=30)", and the option."""
    if read_timeout is None:
        for cause in causes:
            found = re.search(r"read timeout=([0-9.]+)", str(cause))
            if found:
                read_timeout = float(found[1])
                break
    if read_timeout is None:
        return "server stalled: no data within the read timeout (--timeout)"
    return f"server stalled: no data for {read_timeout:g}s (--timeout)"


def _resolver_busy(causes: list[BaseException]) -> bool:
    """True for "try again" from the resolver, False for "no such host".

    A name that does not exist will not exist in a minute either; a resolver
    that timed out may well answer then.
    """
    return any(isinstance(cause, socket.gaierror) and cause.errno == socket.EAI_AGAIN for cause in causes)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, its causes and contexts, and exceptions wrapped in args.

    requests wraps urllib3 errors in ``args[0]`` or ``reason`` rather than in
    ``__cause__``, so a plain cause walk would miss them.
    """
    seen: list[BaseException] = []
    todo: list[object] = [exc]
    while todo and len(seen) < 16:
        item = todo.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        todo.extend([item.__cause__, item.__context__, getattr(item, "reason", None), *item.args[:1]])
    return seen


def _tls_detail(causes: list[BaseException]) -> str | None:
    """The OpenSSL reason under requests' and urllib3's wrappers, if any."""
    import ssl

    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {cause.verify_message}"
    for cause in causes:
        reason = getattr(cause, "reason", None)  # unset on an SSLError made by hand
        if isinstance(cause, ssl.SSLError) and reason:
            return str(reason).lower().replace("_", " ")
    return None


def _any(causes: list[BaseException], *kinds: type[BaseException]) -> bool:
    return any(isinstance(cause, kinds) for cause in causes)


def _detail(exc: BaseException) -> str:
    text = redact_message(str(exc))
    return text[:200] or type(exc).__name__


def _restore(cls: type[DownloadError], args: tuple[Any, ...], state: dict[str, Any]) -> DownloadError:
    """A DownloadError as it was pickled, without calling its __init__."""
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error
