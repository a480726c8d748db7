"""fetcher._errors: the exception tree and translate().

The library exceptions are built the way requests and urllib3 build them
(wrapped in MaxRetryError / in args / chained by ``raise ... from``), with
connection objects that are never connected: no network is used.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Callable
from typing import TypeVar

import pytest
import requests
import urllib3
import urllib3.exceptions as u3

from fetcher._errors import (
    BodyError,
    ClosedError,
    ConfigError,
    DestinationError,
    DiskError,
    DownloadError,
    FetcherError,
    HTTPStatusError,
    TransportError,
    URLListError,
    translate,
)

URL = "https://example.com/file.bin"
SECRET_URL = "https://user:s3cret@example.com/file.bin"

E = TypeVar("E", bound=BaseException)


def _conn() -> urllib3.connection.HTTPConnection:
    return urllib3.connection.HTTPConnection("example.com", 443)


def _pool() -> urllib3.HTTPConnectionPool:
    return urllib3.HTTPConnectionPool("example.com", 443)


def _caused_by(exc: E, cause: BaseException) -> E:
    exc.__cause__ = cause  # what `raise exc from cause` does
    return exc


def _connect_timeout() -> BaseException:
    reason = u3.ConnectTimeoutError(_conn(), "Connection to example.com timed out. (connect timeout=30)")
    return requests.exceptions.ConnectTimeout(u3.MaxRetryError(_pool(), "/file.bin", reason))


def _read_timeout() -> BaseException:
    return requests.exceptions.ReadTimeout(u3.ReadTimeoutError(_pool(), None, "Read timed out. (read timeout=30)"))


def _read_timeout_mid_body() -> BaseException:
    # iter_content() re-raises a mid-body urllib3 ReadTimeoutError as requests.ConnectionError.
    return requests.ConnectionError(u3.ReadTimeoutError(_pool(), None, "Read timed out."))


def _name_resolution() -> BaseException:
    gaierror = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    reason = _caused_by(u3.NameResolutionError("example.com", _conn(), gaierror), gaierror)
    return requests.ConnectionError(u3.MaxRetryError(_pool(), "/file.bin", reason))


def _refused() -> BaseException:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    reason = _caused_by(u3.NewConnectionError(_conn(), f"Failed to establish a new connection: {refused}"), refused)
    return requests.ConnectionError(u3.MaxRetryError(_pool(), "/file.bin", reason))


def _ssl() -> BaseException:
    reason = u3.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    return requests.exceptions.SSLError(u3.MaxRetryError(_pool(), "/file.bin", reason))


def _chunked() -> BaseException:
    return requests.exceptions.ChunkedEncodingError(
        u3.ProtocolError("Connection broken: IncompleteRead(10 bytes read, 90 more expected)")
    )


def _decoding() -> BaseException:
    return requests.exceptions.ContentDecodingError(
        u3.DecodeError("Received response with content-encoding: gzip, but failed to decode it.")
    )


@pytest.mark.parametrize(
    ("make", "kind", "keyword"),
    [
        pytest.param(_connect_timeout, TransportError, "timed out", id="connect-timeout"),
        pytest.param(_read_timeout, TransportError, "no data for 30s", id="read-timeout"),
        pytest.param(_read_timeout_mid_body, TransportError, "read timeout", id="read-timeout-mid-body"),
        pytest.param(
            _name_resolution,
            TransportError,
            "resolve",
            id="name-resolution",
        ),
        pytest.param(
            _refused,
            TransportError,
            "refused",
            id="connection-refused",
        ),
        pytest.param(
            lambda: requests.exceptions.TooManyRedirects("Exceeded 10 redirects."),
            TransportError,
            "redirects",
            id="too-many-redirects",
        ),
        pytest.param(
            lambda: requests.exceptions.InvalidSchema("No connection adapters were found for 'ftp://x/'"),
            TransportError,
            "not http or https",
            id="invalid-schema",
        ),
        pytest.param(_ssl, TransportError, "TLS", id="ssl"),
        pytest.param(_chunked, BodyError, "before the body was complete", id="chunked-encoding"),
        pytest.param(_decoding, BodyError, "decode", id="content-decoding"),
        pytest.param(lambda: OSError(errno.ENOSPC, "No space left on device"), DiskError, "no space", id="disk-full"),
        pytest.param(
            lambda: PermissionError(errno.EACCES, "Permission denied"), DiskError, "could not write", id="disk-other"
        ),
        pytest.param(lambda: KeyError("surprise"), DownloadError, "KeyError", id="unknown"),
    ],
)
def test_translate_maps_library_exceptions_to_a_class_and_reason(
    make: Callable[[], BaseException], kind: type[DownloadError], keyword: str
) -> None:
    error = translate(make(), URL)
    assert type(error) is kind
    assert keyword.lower() in str(error).lower()


def test_translated_error_carries_the_url() -> None:
    assert translate(_read_timeout(), URL).url == URL


def test_translate_passes_a_download_error_through_unchanged() -> None:
    original = HTTPStatusError(URL, 404, "Not Found")
    assert translate(original, "https://other.example/") is original


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda text: requests.ConnectionError(text), id="connection-error"),
        pytest.param(lambda text: requests.exceptions.SSLError(text), id="ssl-error"),
        pytest.param(lambda text: requests.exceptions.InvalidURL(text), id="invalid-url"),
        pytest.param(lambda text: ValueError(text), id="unknown"),
        pytest.param(
            lambda text: OSError(text),
            id="oserror-without-strerror",
        ),
        pytest.param(
            lambda text: requests.exceptions.RetryError(text),
            id="retry-error",
        ),
    ],
)
def test_translated_message_never_contains_a_password(make: Callable[[str], BaseException]) -> None:
    error = translate(make(f"failed for url: {SECRET_URL} (see '{SECRET_URL}')"), SECRET_URL)
    assert "s3cret" not in str(error)
    assert "s3cret" not in error.reason


def test_a_redirect_to_a_password_with_a_raw_slash_gives_no_piece_of_it() -> None:
    # requests' words for Location "http://user:s3/cret@host/": urllib read "s3" as the port.
    error = translate(requests.exceptions.InvalidURL("Port could not be cast to integer value as 's3'"), URL)
    assert error.reason == "invalid URL after redirect: port is not a number"


def test_translate_does_not_report_a_requests_error_as_a_disk_error() -> None:
    error = translate(requests.exceptions.RetryError("too many 503 error responses"), URL)
    assert not isinstance(error, DiskError)


@pytest.mark.parametrize(
    ("sub", "base"),
    [
        (ConfigError, FetcherError),
        (ConfigError, ValueError),
        (DestinationError, ConfigError),
        (URLListError, FetcherError),
        (ClosedError, FetcherError),
        (ClosedError, RuntimeError),
        (DownloadError, FetcherError),
        (HTTPStatusError, DownloadError),
        (BodyError, DownloadError),
        (TransportError, DownloadError),
        (DiskError, DownloadError),
    ],
)
def test_exception_tree(sub: type[BaseException], base: type[BaseException]) -> None:
    assert issubclass(sub, base)


def test_http_status_error_carries_the_status_code_and_phrase() -> None:
    error = HTTPStatusError(URL, 503, "Service Unavailable")
    assert (error.status_code, str(error), error.url) == (503, "HTTP 503 Service Unavailable", URL)


def test_tls_error_names_the_openssl_reason_not_the_wrappers() -> None:
    inner = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    inner.verify_message = "self-signed certificate in certificate chain"
    wrapped = urllib3.exceptions.SSLError(inner)
    pool = urllib3.HTTPSConnectionPool("files.example", 443)
    error = translate(requests.exceptions.SSLError(urllib3.exceptions.MaxRetryError(pool, "/x", wrapped)), URL)
    assert str(error) == (
        "TLS error: certificate verify failed: self-signed certificate in certificate chain "
        "(for a private CA, pass --ca-certificate FILE)"
    )


def test_a_tls_handshake_failure_is_not_told_to_trust_a_ca() -> None:
    error = translate(ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), URL)
    assert "--ca-certificate" not in str(error) and str(error).startswith("TLS error:")


def test_a_stall_before_the_headers_says_how_long_from_urllib3s_message() -> None:
    assert str(translate(_read_timeout(), URL)) == "server stalled: no data for 30s (--timeout)"


def test_a_stall_mid_body_says_how_long_when_the_caller_knows() -> None:
    error = translate(_read_timeout_mid_body(), URL, read_timeout=7.5)
    assert str(error) == "server stalled: no data for 7.5s (--timeout)"


def test_a_stall_of_unknown_length_still_names_the_option() -> None:
    assert (
        str(translate(_read_timeout_mid_body(), URL)) == "server stalled: no data within the read timeout (--timeout)"
    )


# -- overload: what --adaptive cuts a host's limit for ----------------------------------------


@pytest.mark.parametrize("make", [_connect_timeout, _read_timeout, _refused, _chunked], ids=lambda m: m.__name__)
def test_refusals_resets_and_timeouts_are_signs_of_overload(make: Callable[[], BaseException]) -> None:
    assert translate(make(), URL).overload


@pytest.mark.parametrize("make", [_name_resolution, _ssl, _decoding], ids=lambda m: m.__name__)
def test_other_transport_failures_are_not_signs_of_overload(make: Callable[[], BaseException]) -> None:
    assert not translate(make(), URL).overload


@pytest.mark.parametrize(("status", "overload"), [(429, True), (503, True), (500, False), (404, False)])
def test_only_429_and_503_say_the_server_is_overloaded(status: int, overload: bool) -> None:
    assert HTTPStatusError(URL, status, "").overload is overload


def test_the_sign_of_overload_survives_the_trip_from_a_worker_process() -> None:
    import pickle

    assert pickle.loads(pickle.dumps(HTTPStatusError(URL, 429, "Too Many Requests"))).overload
