"""Sockets handed to a Line as they are made: a hang-up reaches a request in any phase (real sockets on loopback)."""

from __future__ import annotations

import http.client
import io
import os
import threading
import time
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPHeaderDict, HTTPResponse, HTTPSConnectionPool

from fetcher._config import FetcherConfig
from fetcher._errors import translate
from fetcher.transfer.download import new_session
from fetcher.transfer.hangup import HangUpAdapter, line_of
from tests import server as srv


def session(tmp_path: Path) -> requests.Session:
    return new_session(FetcherConfig(dest=tmp_path))


def open_descriptors() -> set[tuple[str, str]]:
    """This process's descriptors and what each is ("socket:[inode]"...): one that another thread closes
    meanwhile, or that a collected object of an earlier test closes, is not counted as one left open."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.add((fd, os.readlink(f"/proc/self/fd/{fd}")))
        except OSError:
            pass  # closed between the listing and the look (the listing's own descriptor among them)
    return found


def test_only_a_session_of_new_session_has_a_line(tmp_path: Path) -> None:
    with session(tmp_path) as ours, requests.Session() as theirs:
        assert line_of(ours, "https://files.example/f") is line_of(ours, "http://files.example/f") is not None
        assert line_of(theirs, "https://files.example/f") is None


def test_a_hang_up_ends_a_connect_at_once(tmp_path: Path) -> None:
    with srv.Silent(full=True) as silent, session(tmp_path) as ours:
        if silent.connects(0.2):
            pytest.skip("this system completes connects to a full listen queue")
        line = line_of(ours, silent.url("/f"))
        assert line is not None
        threading.Timer(0.3, line.open()).start()
        began = time.monotonic()
        with pytest.raises(requests.exceptions.ConnectionError):
            ours.get(silent.url("/f"), timeout=20)
        assert time.monotonic() - began < 2
        line.close()


def test_a_hang_up_ends_a_tls_handshake_at_once_and_leaves_no_descriptor(tmp_path: Path) -> None:
    with srv.Silent() as silent, session(tmp_path) as ours:
        line = line_of(ours, silent.url("/f", scheme="https"))
        assert line is not None
        before = open_descriptors()
        threading.Timer(0.3, line.open()).start()
        began = time.monotonic()
        with pytest.raises(requests.exceptions.SSLError):
            ours.get(silent.url("/f", scheme="https"), timeout=20)
        assert time.monotonic() - began < 2
        line.close()
        assert open_descriptors() - before == set()  # the stand-in for the handshake was closed with it


def test_a_connect_that_times_out_is_still_told_as_one(tmp_path: Path) -> None:
    with srv.Silent(full=True) as silent, session(tmp_path) as ours:
        if silent.connects(0.2):
            pytest.skip("this system completes connects to a full listen queue")
        url = silent.url("/f")
        with pytest.raises(requests.exceptions.ConnectTimeout) as raised:
            ours.get(url, timeout=0.2)
    assert str(translate(raised.value, url)) == "connection timed out"


def test_a_name_that_does_not_resolve_is_still_told_as_one(tmp_path: Path) -> None:
    with session(tmp_path) as ours, pytest.raises(requests.exceptions.ConnectionError) as raised:
        ours.get("http://no-such-host.invalid/f", timeout=5)
    assert str(translate(raised.value, "http://no-such-host.invalid/f")) == "could not resolve the host name"


# -- what the adapter leaves out of requests' per-request work: the same answers ----


def ca_bundles(tmp_path: Path) -> list[str]:
    """A CA bundle file, a folder of them, and a path that is not there."""
    (tmp_path / "ca.pem").write_text("not read here")
    (tmp_path / "certs").mkdir()
    return [str(tmp_path / "ca.pem"), str(tmp_path / "certs"), str(tmp_path / "missing.pem")]


@pytest.mark.parametrize("url", ["http://files.example/f", "https://files.example:8443/f"])
def test_the_pool_settings_for_a_ca_bundle_are_requests_own(tmp_path: Path, url: str) -> None:
    ours, theirs = HangUpAdapter(), HTTPAdapter()
    request = requests.Request("GET", url).prepare()
    verifies: list[bool | str] = [True, False, *ca_bundles(tmp_path)]
    for verify in verifies:
        expected = theirs.build_connection_pool_key_attributes(request, verify)
        assert ours.build_connection_pool_key_attributes(request, verify) == expected
        pool = ours.get_connection_with_tls_context(request, verify, proxies={})
        assert pool is ours.poolmanager.connection_from_host(**expected[0], pool_kwargs=expected[1])


def test_a_ca_bundle_never_shares_requests_default_tls_context(tmp_path: Path) -> None:
    # requests 2.32.3 and 2.32.4 give verify=True a preloaded context shared by every pool; a bundle loaded
    # into it would be trusted by every other pool of the process.
    request = requests.Request("GET", "https://files.example:8443/f").prepare()
    for bundle in ca_bundles(tmp_path):
        _, pool_kwargs = HangUpAdapter().build_connection_pool_key_attributes(request, bundle)
        assert "ssl_context" not in pool_kwargs


@pytest.mark.parametrize("url", ["http://files.example/f", "https://files.example:8443/f"])
def test_a_ca_bundle_is_checked_and_set_on_the_pool_as_requests_does(tmp_path: Path, url: str) -> None:
    verifies: list[bool | str] = [True, False, *ca_bundles(tmp_path)]
    for verify in verifies:
        pools = [HTTPSConnectionPool("files.example", 8443), HTTPSConnectionPool("files.example", 8443)]
        outcomes: list[object] = []
        for adapter, pool in zip([HangUpAdapter(), HTTPAdapter()], pools, strict=True):
            try:
                adapter.cert_verify(pool, url, verify, None)
                outcomes.append((pool.cert_reqs, pool.ca_certs, pool.ca_cert_dir))
            except OSError as exc:
                outcomes.append(str(exc))
        assert outcomes[0] == outcomes[1], verify


@pytest.mark.parametrize("proxies", [{}, {"http": "http://proxy.example:3128"}])
def test_the_request_target_is_requests_own(proxies: dict[str, str]) -> None:
    request = requests.Request("GET", "http://files.example/a%20b?q=1#part").prepare()
    assert HangUpAdapter().request_url(request, proxies) == HTTPAdapter().request_url(request, proxies)


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain; charset=latin-1", "Content-Length": "1"},
        {"Set-Cookie": "a=1; Path=/", "Content-Type": "application/json"},
        {"set-cookie2": "b=2", "Location": "/next"},
    ],
)
def test_the_response_is_built_as_requests_builds_it(headers: dict[str, str]) -> None:
    request = requests.Request("GET", "http://files.example/f").prepare()

    def raw() -> HTTPResponse:
        # What urllib3 hands the adapter; its original response is what the cookie jar reads.
        original = http.client.HTTPResponse(_FakeSocket(headers))  # type: ignore[arg-type]
        original.begin()
        headers_in = HTTPHeaderDict(original.msg.items())
        return HTTPResponse(body=io.BytesIO(b"x"), headers=headers_in, status=200, reason="OK",
                            preload_content=False, original_response=original)  # fmt: skip

    ours, theirs = HangUpAdapter(), HTTPAdapter()
    mine, expected = ours.build_response(request, raw()), theirs.build_response(request, raw())
    assert (mine.status_code, dict(mine.headers), mine.encoding, mine.reason, mine.url, mine.request) == (
        expected.status_code, dict(expected.headers), expected.encoding, expected.reason, expected.url,
        expected.request,
    )  # fmt: skip
    assert mine.cookies.get_dict() == expected.cookies.get_dict()
    assert mine.connection is ours


class _FakeSocket:
    """An HTTP/1.1 answer with *headers*, for http.client to parse."""

    def __init__(self, headers: dict[str, str]) -> None:
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._data = f"HTTP/1.1 200 OK\r\n{lines}\r\nx".encode("latin-1")

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self._data)
