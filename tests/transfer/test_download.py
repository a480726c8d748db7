"""One URL into one file: all or nothing."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import requests
import responses

from fetcher._config import FetcherConfig
from fetcher._errors import BodyError, Cancelled, HTTPStatusError, TransportError
from fetcher.transfer.download import Outcome, download, new_session
from fetcher.transfer.tempfiles import TEMP_PREFIX, TEMP_SUFFIX, TempFiles
from tests import server as srv

URL = "https://files.example/rfc791.txt"


def fetch(url: str, target: Path, **config: object) -> Outcome:
    settings = FetcherConfig(**{"dest": target.parent, "timeout": 5.0, **config})  # type: ignore[arg-type]
    with new_session(settings) as session:
        return download(session, url, target, config=settings, temp_files=TempFiles(), cancelled=threading.Event())


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX))


# -- HTTP-level behaviour (responses) -------------------------------------------


@responses.activate
def test_complete_body_is_saved_under_the_final_name(tmp_path: Path) -> None:
    responses.get(URL, body=b"x" * 5000)
    outcome = fetch(URL, tmp_path / "rfc791.txt")
    assert outcome.error is None
    assert (tmp_path / "rfc791.txt").read_bytes() == b"x" * 5000
    assert (outcome.http_status, outcome.bytes) == (200, 5000)


@responses.activate
def test_timings_are_measured(tmp_path: Path) -> None:
    responses.get(URL, body=b"abc")
    outcome = fetch(URL, tmp_path / "f")
    assert outcome.ttfb_s is not None and outcome.ttfb_s >= 0
    assert outcome.download_s is not None and outcome.download_s >= 0


@pytest.mark.parametrize("status", [403, 404, 500, 503])
@responses.activate
def test_error_status_never_becomes_a_file(tmp_path: Path, status: int) -> None:
    responses.get(URL, body=b"<html>error page</html>", status=status)
    outcome = fetch(URL, tmp_path / "rfc791.txt")
    assert isinstance(outcome.error, HTTPStatusError)
    assert str(outcome.error).startswith(f"HTTP {status}")
    assert outcome.http_status == status
    assert list(tmp_path.iterdir()) == []


@responses.activate
def test_failed_download_keeps_the_good_file_from_an_earlier_run(tmp_path: Path) -> None:
    target = tmp_path / "rfc791.txt"
    target.write_bytes(b"good copy")
    responses.get(URL, body=b"oops", status=500)
    assert fetch(URL, target).error is not None
    assert target.read_bytes() == b"good copy"


@responses.activate
def test_successful_download_replaces_an_older_copy(tmp_path: Path) -> None:
    target = tmp_path / "rfc791.txt"
    target.write_bytes(b"old")
    responses.get(URL, body=b"new")
    assert fetch(URL, target).error is None
    assert target.read_bytes() == b"new"


@responses.activate
def test_invalid_content_length_fails_without_a_file(tmp_path: Path) -> None:
    responses.get(URL, body=b"abc", headers={"Content-Length": "lots"}, auto_calculate_content_length=False)
    outcome = fetch(URL, tmp_path / "f")
    assert isinstance(outcome.error, BodyError)
    assert "Content-Length" in str(outcome.error)
    assert list(tmp_path.iterdir()) == []


@responses.activate
def test_absurd_content_length_fails_before_writing(tmp_path: Path) -> None:
    responses.get(URL, body=b"abc", headers={"Content-Length": str(10**18)}, auto_calculate_content_length=False)
    outcome = fetch(URL, tmp_path / "f")
    assert isinstance(outcome.error, BodyError)
    assert "free" in str(outcome.error)
    assert list(tmp_path.iterdir()) == []


@responses.activate
def test_user_agent_names_fetcher(tmp_path: Path) -> None:
    responses.get(URL, body=b"ok")
    fetch(URL, tmp_path / "f")
    assert responses.calls[0].request.headers["User-Agent"].startswith("fetcher/")


@responses.activate
def test_connection_error_is_a_transport_error(tmp_path: Path) -> None:
    responses.get(URL, body=requests.exceptions.ConnectionError("refused"))
    outcome = fetch(URL, tmp_path / "f")
    assert isinstance(outcome.error, TransportError)
    assert outcome.http_status is None


# -- faults on a real server (loopback) ------------------------------------------


def test_truncated_body_fails_and_leaves_no_file(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/cut", srv.truncated(b"x" * 1000, claimed=5000))
    outcome = fetch(url, tmp_path / "cut")
    assert isinstance(outcome.error, BodyError)
    assert "5000" in str(outcome.error)
    assert list(tmp_path.iterdir()) == []


def test_truncated_body_does_not_clobber_a_good_file(server: srv.LoopbackServer, tmp_path: Path) -> None:
    target = tmp_path / "cut"
    target.write_bytes(b"good copy")
    url = server.route("/cut", srv.truncated(b"x" * 1000, claimed=5000))
    assert fetch(url, target).error is not None
    assert target.read_bytes() == b"good copy"


def test_body_longer_than_content_length_fails(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/long", srv.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef"))
    outcome = fetch(url, tmp_path / "long")
    # http.client stops at Content-Length, so the extra bytes are never read:
    # the file holds exactly what the header promised, or the URL fails.
    assert outcome.error is None or isinstance(outcome.error, BodyError)
    if outcome.error is None:
        assert (tmp_path / "long").read_bytes() == b"abc"


def test_body_without_length_ending_cleanly_is_saved(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/eof", srv.raw(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-eof"))
    outcome = fetch(url, tmp_path / "eof")
    assert outcome.error is None
    assert (tmp_path / "eof").read_bytes() == b"until-eof"


def test_stall_mid_body_fails_within_about_the_timeout(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/stall", srv.stalled(b"x" * 100, claimed=1000, stall=8))
    outcome = fetch(url, tmp_path / "stall", timeout=0.5)
    assert isinstance(outcome.error, TransportError)
    assert "stalled" in str(outcome.error)
    assert outcome.download_s is not None and outcome.download_s < 5
    assert list(tmp_path.iterdir()) == []


def test_gzip_encoded_body_is_saved_decoded(server: srv.LoopbackServer, tmp_path: Path) -> None:
    text = b"Internet Protocol\n" * 2000
    url = server.route("/rfc.txt", srv.gzipped(text))
    outcome = fetch(url, tmp_path / "rfc.txt")
    assert outcome.error is None
    assert (tmp_path / "rfc.txt").read_bytes() == text
    assert outcome.bytes == len(text)


def test_redirect_is_followed(server: srv.LoopbackServer, tmp_path: Path) -> None:
    server.route("/new", srv.body(b"moved here"))
    url = server.route("/old", srv.redirect("/new"))
    assert fetch(url, tmp_path / "old").error is None
    assert (tmp_path / "old").read_bytes() == b"moved here"


@pytest.mark.parametrize("location", ["ftp://127.0.0.1/x", "file:///etc/passwd", "javascript:alert(1)"])
def test_redirect_to_a_non_http_scheme_fails(server: srv.LoopbackServer, tmp_path: Path, location: str) -> None:
    url = server.route("/evil", srv.redirect(location))
    outcome = fetch(url, tmp_path / "evil")
    assert isinstance(outcome.error, TransportError)
    assert "not http" in str(outcome.error)
    assert list(tmp_path.iterdir()) == []


def test_redirect_loop_fails_after_the_limit(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/loop", srv.redirect("/loop"))
    outcome = fetch(url, tmp_path / "loop", max_redirects=3)
    assert isinstance(outcome.error, TransportError)
    assert "redirects" in str(outcome.error)
    assert server.requests["/loop"] == 4


def test_refused_connection_fails_quickly(tmp_path: Path) -> None:
    probe = srv.LoopbackServer()
    url = probe.url("/gone")
    probe.stop()  # never started: the port is closed again
    outcome = fetch(url, tmp_path / "gone")
    assert isinstance(outcome.error, TransportError)
    assert "refused" in str(outcome.error)


def test_cancelled_download_removes_its_temporary_file(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/big", srv.body(b"x" * (4 << 20)))
    settings = FetcherConfig(dest=tmp_path, chunk_size=64 << 10)
    cancelled = threading.Event()
    cancelled.set()
    with new_session(settings) as session:
        outcome = download(session, url, tmp_path / "big", config=settings, temp_files=TempFiles(), cancelled=cancelled)
    assert isinstance(outcome.error, Cancelled)
    assert list(tmp_path.iterdir()) == []
