"""One URL into one file: all or nothing."""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
import responses

from fetcher._config import FetcherConfig
from fetcher._errors import BodyError, Cancelled, HTTPStatusError, TransportError
from fetcher.transfer.checksum import Checksum
from fetcher.transfer.download import KEEP_FROM, PLAIN, Ask, Outcome, download, new_session
from fetcher.transfer.tempfiles import TEMP_PREFIX, TempFiles
from fetcher.transfer.validators import PartialFile, Validators, last_modified_ns
from tests import server as srv

URL = "https://files.example/rfc791.txt"


def fetch(
    url: str, target: Path, *, ask: Ask = PLAIN, temp_files: TempFiles | None = None, **config: object
) -> Outcome:
    """One attempt at *url* into *target*, with its own session (and TempFiles unless given)."""
    settings = FetcherConfig(**{"dest": target.parent, "timeout": 5.0, **config})  # type: ignore[arg-type]
    temp_files = TempFiles() if temp_files is None else temp_files
    with new_session(settings) as session:
        return download(
            session, url, target, config=settings, temp_files=temp_files, cancelled=threading.Event(), ask=ask
        )


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
    user_agent = responses.calls[0].request.headers["User-Agent"]
    assert isinstance(user_agent, str) and user_agent.startswith("fetcher/")


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


# -- conditional GET: a re-run asks "has it changed?" -----------------------------

#: A body whose every byte depends on its position, so a misjoined file cannot pass for the right one.
DATA = random.Random(791).randbytes(200_000)
NEW_DATA = random.Random(792).randbytes(180_000)
#: Where a body is cut short: the first attempt gets this many bytes.
CUT = 75_000
#: A body that crosses KEEP_FROM, the least a partial file must hold to be offered for keeping.
BIG = random.Random(793).randbytes(KEEP_FROM + 100_000)
BIG_CUT = KEEP_FROM + 30_000
#: An mtime no download would give a file by chance (2001-09-09).
OLD_MTIME_NS = 1_000_000_000 * 1_000_000_000


def existing_file(target: Path, content: bytes) -> Path:
    """*content* under *target*, with an old mtime a test can tell from any new one."""
    target.write_bytes(content)
    os.utime(target, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    return target


def sha256(data: bytes) -> Checksum:
    return Checksum(algorithm="sha-256", hexdigest=hashlib.sha256(data).hexdigest())


def test_saved_validators_are_sent_exactly_as_given(server: srv.LoopbackServer, tmp_path: Path) -> None:
    resource = srv.Resource(DATA, etag='W/"abc-1"')
    url = server.route("/f", resource)
    saved = Validators(etag='W/"abc-1"', last_modified=resource.last_modified)
    fetch(url, existing_file(tmp_path / "f", DATA), ask=Ask(saved=saved))
    seen = server.headers_seen["/f"][-1]
    assert (seen.get("If-None-Match"), seen.get("If-Modified-Since")) == ('W/"abc-1"', resource.last_modified)


def test_a_304_leaves_the_file_untouched(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/f", srv.Resource(DATA))
    target = existing_file(tmp_path / "f", b"what an earlier run saved")
    outcome = fetch(url, target, ask=Ask(saved=Validators(etag='"v1"')))
    assert (outcome.unchanged, outcome.error, outcome.http_status) == (True, None, 304)
    assert target.read_bytes() == b"what an earlier run saved"
    assert target.stat().st_mtime_ns == OLD_MTIME_NS
    assert leftovers(tmp_path) == []


def test_a_200_to_a_conditional_request_replaces_the_file(server: srv.LoopbackServer, tmp_path: Path) -> None:
    resource = srv.Resource(DATA)
    url = server.route("/f", resource)
    saved = Validators(etag=resource.etag, last_modified=resource.last_modified)
    resource.update(NEW_DATA)
    target = existing_file(tmp_path / "f", DATA)
    outcome = fetch(url, target, ask=Ask(saved=saved))
    assert (outcome.unchanged, outcome.error, outcome.http_status) == (False, None, 200)
    assert target.read_bytes() == NEW_DATA
    assert leftovers(tmp_path) == []


def test_an_exact_last_modified_gets_a_304_from_an_nginx_like_server(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    resource = srv.Resource(DATA, etag=None, ims_exact=True)
    url = server.route("/f", resource)
    outcome = fetch(
        url, existing_file(tmp_path / "f", DATA), ask=Ask(saved=Validators(last_modified=resource.last_modified))
    )
    assert (outcome.unchanged, outcome.http_status) == (True, 304)


# -- remote time -------------------------------------------------------------------


def test_the_saved_file_gets_the_last_modified_time(server: srv.LoopbackServer, tmp_path: Path) -> None:
    resource = srv.Resource(DATA)
    url = server.route("/f", resource)
    outcome = fetch(url, tmp_path / "f")
    mtime_ns = (tmp_path / "f").stat().st_mtime_ns
    assert mtime_ns == last_modified_ns(resource.last_modified)
    assert outcome.mtime_ns == mtime_ns


def test_without_remote_time_the_file_keeps_the_local_time(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/f", srv.Resource(DATA))  # Last-Modified a day ago
    before = time.time_ns()
    outcome = fetch(url, tmp_path / "f", ask=Ask(remote_time=False))
    mtime_ns = (tmp_path / "f").stat().st_mtime_ns
    assert before - 2_000_000_000 <= mtime_ns <= time.time_ns() + 2_000_000_000  # file system clocks are coarse
    assert outcome.mtime_ns == mtime_ns


def test_the_outcome_carries_the_validators_of_the_saved_body(server: srv.LoopbackServer, tmp_path: Path) -> None:
    resource = srv.Resource(DATA, etag='"abc"')
    url = server.route("/f", resource)
    outcome = fetch(url, tmp_path / "f")
    assert outcome.validators == Validators(etag='"abc"', last_modified=resource.last_modified)


# -- resume: Range + If-Range ------------------------------------------------------


def cut_short(server: srv.LoopbackServer, resource: srv.Resource, target: Path, **ask: object) -> Outcome:
    """Serve *resource* at /f and make a first attempt, which the resource is expected to cut short."""
    url = server.route("/f", resource)
    outcome = fetch(url, target, ask=Ask(**ask))  # type: ignore[arg-type]
    assert isinstance(outcome.error, BodyError) and outcome.error.transient
    return outcome


def resume(server: srv.LoopbackServer, outcome: Outcome, target: Path, **ask: object) -> Outcome:
    """A second attempt at /f, continuing what *outcome* left."""
    return fetch(server.url("/f"), target, ask=Ask(resume=outcome.partial, **ask))  # type: ignore[arg-type]


def test_a_body_cut_short_leaves_a_partial_file_to_continue(server: srv.LoopbackServer, tmp_path: Path) -> None:
    outcome = cut_short(server, srv.Resource(DATA, cut_after=CUT, cuts=1), tmp_path / "f")
    assert outcome.partial is not None
    assert outcome.partial.path.read_bytes() == DATA[:CUT]
    assert (outcome.partial.if_range, outcome.partial.total) == ('"v1"', len(DATA))
    assert not (tmp_path / "f").exists()


def test_a_second_attempt_asks_for_the_rest_and_joins_it(server: srv.LoopbackServer, tmp_path: Path) -> None:
    first = cut_short(server, srv.Resource(DATA, cut_after=CUT, cuts=1), tmp_path / "f")
    outcome = resume(server, first, tmp_path / "f")
    seen = server.headers_seen["/f"][-1]
    assert (seen.get("Range"), seen.get("If-Range"), seen.get("Accept-Encoding")) == (
        f"bytes={CUT}-",
        '"v1"',
        "identity",
    )
    assert outcome.error is None and server.statuses["/f"] == [200, 206]
    assert (tmp_path / "f").read_bytes() == DATA
    assert (outcome.resumed_from, outcome.bytes) == (CUT, len(DATA))
    assert server.wait_idle()  # the server's count of bytes sent can lag the client's read
    assert server.bytes_sent["/f"] == len(DATA)  # the head once, then only the rest
    assert leftovers(tmp_path) == []


def test_a_changed_resource_fails_if_range_and_is_downloaded_whole(server: srv.LoopbackServer, tmp_path: Path) -> None:
    resource = srv.Resource(DATA, cut_after=CUT, cuts=1)
    first = cut_short(server, resource, tmp_path / "f")
    resource.update(NEW_DATA)
    outcome = resume(server, first, tmp_path / "f")
    assert outcome.error is None and server.statuses["/f"] == [200, 200]
    assert (tmp_path / "f").read_bytes() == NEW_DATA
    assert (outcome.resumed_from, outcome.bytes) == (None, len(NEW_DATA))
    assert leftovers(tmp_path) == []


def test_a_weak_etag_resumes_on_a_strong_last_modified(server: srv.LoopbackServer, tmp_path: Path) -> None:
    # Taken before the request, so the response's Date is at least a second later.
    modified = srv.http_date(time.time() - 1)
    resource = srv.Resource(DATA, etag='W/"v1"', last_modified=modified, cut_after=CUT, cuts=1)
    first = cut_short(server, resource, tmp_path / "f")
    assert first.partial is not None and first.partial.if_range == modified
    outcome = resume(server, first, tmp_path / "f")
    assert server.headers_seen["/f"][-1].get("If-Range") == modified
    assert outcome.error is None and outcome.resumed_from == CUT
    assert (tmp_path / "f").read_bytes() == DATA


def test_a_weak_etag_without_a_strong_date_is_not_resumable(server: srv.LoopbackServer, tmp_path: Path) -> None:
    # Modified "later" than the response's Date: a clock that cannot vouch for the date.
    resource = srv.Resource(DATA, etag='W/"v1"', last_modified=srv.http_date(time.time() + 3600), cut_after=CUT, cuts=1)
    outcome = cut_short(server, resource, tmp_path / "f")
    assert outcome.partial is None
    assert leftovers(tmp_path) == []


def test_a_server_that_ignores_range_makes_the_attempt_start_over(server: srv.LoopbackServer, tmp_path: Path) -> None:
    first = cut_short(server, srv.Resource(DATA, ranges=False, cut_after=CUT, cuts=1), tmp_path / "f")
    outcome = resume(server, first, tmp_path / "f")
    assert server.headers_seen["/f"][-1].get("Range") == f"bytes={CUT}-"
    assert outcome.error is None and server.statuses["/f"] == [200, 200]
    assert (tmp_path / "f").read_bytes() == DATA
    assert outcome.resumed_from is None
    assert leftovers(tmp_path) == []


def test_a_416_starts_over_within_the_same_attempt(server: srv.LoopbackServer, tmp_path: Path) -> None:
    resource = srv.Resource(DATA, cut_after=CUT, cuts=1)
    first = cut_short(server, resource, tmp_path / "f")
    # A server that shortened the file and kept its validators: the range is now past the end.
    resource.update(DATA[: CUT // 2], etag=resource.etag, last_modified=resource.last_modified)
    outcome = resume(server, first, tmp_path / "f")
    assert outcome.error is None and server.statuses["/f"] == [200, 416, 200]
    assert (tmp_path / "f").read_bytes() == DATA[: CUT // 2]
    assert leftovers(tmp_path) == []


def test_a_206_at_another_offset_starts_over(server: srv.LoopbackServer, tmp_path: Path) -> None:
    resource = srv.Resource(DATA, cut_after=CUT, cuts=1)
    first = cut_short(server, resource, tmp_path / "f")
    wrong = srv.body(DATA[:1000], status=206, headers={"Content-Range": f"bytes 0-999/{len(DATA)}"})
    server.route("/f", srv.faulty([wrong], resource))
    outcome = resume(server, first, tmp_path / "f")
    assert outcome.error is None and server.statuses["/f"] == [200, 206, 200]
    assert (tmp_path / "f").read_bytes() == DATA


def test_a_gzip_encoded_body_is_never_resumable(server: srv.LoopbackServer, tmp_path: Path) -> None:
    resource = srv.Resource(DATA, content_encoding="gzip", cut_after=CUT, cuts=1)
    outcome = cut_short(server, resource, tmp_path / "f")
    assert outcome.partial is None
    assert leftovers(tmp_path) == []


def test_without_accept_ranges_a_body_is_not_resumable(server: srv.LoopbackServer, tmp_path: Path) -> None:
    outcome = cut_short(server, srv.Resource(DATA, accept_ranges=False, cut_after=CUT, cuts=1), tmp_path / "f")
    assert outcome.partial is None
    assert leftovers(tmp_path) == []


def test_a_failed_resume_request_keeps_the_partial_file(server: srv.LoopbackServer, tmp_path: Path) -> None:
    resource = srv.Resource(DATA, cut_after=CUT, cuts=1)
    first = cut_short(server, resource, tmp_path / "f")
    server.route("/f", srv.faulty([srv.status(503)], resource))
    second = resume(server, first, tmp_path / "f")
    assert isinstance(second.error, HTTPStatusError) and second.error.transient
    assert second.partial == first.partial and first.partial is not None
    assert first.partial.path.read_bytes() == DATA[:CUT]
    third = resume(server, second, tmp_path / "f")
    assert third.error is None and third.resumed_from == CUT
    assert (tmp_path / "f").read_bytes() == DATA


def test_a_partial_file_locked_by_another_run_is_left_alone(server: srv.LoopbackServer, tmp_path: Path) -> None:
    first = cut_short(server, srv.Resource(DATA, cut_after=CUT, cuts=1), tmp_path / "f")
    assert first.partial is not None
    before = first.partial.path.stat()
    other_run = TempFiles()
    fd = other_run.reopen(first.partial.path)
    assert fd is not None
    try:
        outcome = resume(server, first, tmp_path / "f")
        assert "Range" not in server.headers_seen["/f"][-1]
        assert outcome.error is None and outcome.resumed_from is None
        assert (tmp_path / "f").read_bytes() == DATA
        after = first.partial.path.stat()
        assert first.partial.path.read_bytes() == DATA[:CUT]
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        assert leftovers(tmp_path) == [first.partial.path.name]
    finally:
        os.close(fd)


# -- checksums -------------------------------------------------------------------


def test_a_matching_checksum_saves_the_file(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/f", srv.Resource(DATA))
    outcome = fetch(url, tmp_path / "f", ask=Ask(checksum=sha256(DATA)))
    assert outcome.error is None
    assert (tmp_path / "f").read_bytes() == DATA


def test_a_checksum_mismatch_never_reaches_the_final_name(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/f", srv.Resource(DATA))
    outcome = fetch(url, tmp_path / "f", ask=Ask(checksum=sha256(NEW_DATA)))
    assert isinstance(outcome.error, BodyError) and not outcome.error.transient
    assert "checksum mismatch" in str(outcome.error)
    assert outcome.partial is None
    assert list(tmp_path.iterdir()) == []


def test_a_checksum_covers_the_bytes_of_earlier_attempts(server: srv.LoopbackServer, tmp_path: Path) -> None:
    first = cut_short(server, srv.Resource(DATA, cut_after=CUT, cuts=1), tmp_path / "f")
    outcome = resume(server, first, tmp_path / "f", checksum=sha256(DATA))
    assert outcome.error is None and outcome.resumed_from == CUT
    assert (tmp_path / "f").read_bytes() == DATA


def test_a_damaged_partial_file_fails_the_checksum_after_a_resume(server: srv.LoopbackServer, tmp_path: Path) -> None:
    first = cut_short(server, srv.Resource(DATA, cut_after=CUT, cuts=1), tmp_path / "f")
    assert first.partial is not None
    with first.partial.path.open("r+b") as head:
        head.write(bytes([DATA[0] ^ 0xFF]))
    outcome = resume(server, first, tmp_path / "f", checksum=sha256(DATA))
    assert isinstance(outcome.error, BodyError) and "checksum mismatch" in str(outcome.error)
    assert outcome.partial is None  # resuming it again could only fail again
    assert list(tmp_path.iterdir()) == []


# -- keeping a partial file for a later run ---------------------------------------------


class Recorder:
    """An on_resumable callback that records its calls and answers *answer*."""

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.calls: list[PartialFile] = []

    def __call__(self, partial: PartialFile) -> bool:
        self.calls.append(partial)
        return self.answer


def test_a_partial_file_past_keep_from_is_offered_once_and_kept(server: srv.LoopbackServer, tmp_path: Path) -> None:
    temp_files, recorder = TempFiles(), Recorder()
    url = server.route("/f", srv.Resource(BIG, cut_after=BIG_CUT, cuts=1))
    outcome = fetch(url, tmp_path / "f", ask=Ask(on_resumable=recorder), temp_files=temp_files)
    assert outcome.partial is not None
    assert recorder.calls == [outcome.partial]
    assert temp_files.is_kept(outcome.partial.path)
    temp_files.remove_all()
    assert outcome.partial.path.read_bytes() == BIG[:BIG_CUT]


@pytest.mark.parametrize("callback", [None, Recorder(answer=False)])
def test_a_partial_file_not_on_record_is_not_kept(
    server: srv.LoopbackServer, tmp_path: Path, callback: Recorder | None
) -> None:
    temp_files = TempFiles()
    url = server.route("/f", srv.Resource(BIG, cut_after=BIG_CUT, cuts=1))
    outcome = fetch(url, tmp_path / "f", ask=Ask(on_resumable=callback), temp_files=temp_files)
    assert outcome.partial is not None and not temp_files.is_kept(outcome.partial.path)
    temp_files.remove_all()
    assert leftovers(tmp_path) == []


def test_a_partial_file_below_keep_from_is_not_offered(server: srv.LoopbackServer, tmp_path: Path) -> None:
    recorder = Recorder()
    cut_short(server, srv.Resource(DATA, cut_after=CUT, cuts=1), tmp_path / "f", on_resumable=recorder)
    assert recorder.calls == []


def test_a_resumed_body_that_crosses_keep_from_is_offered(server: srv.LoopbackServer, tmp_path: Path) -> None:
    temp_files, recorder = TempFiles(), Recorder()
    half = KEEP_FROM // 2 + 10_000
    url = server.route("/f", srv.Resource(BIG, cut_after=half, cuts=2))
    first = fetch(url, tmp_path / "f", ask=Ask(on_resumable=recorder), temp_files=temp_files)
    assert first.partial is not None and recorder.calls == []
    second = fetch(url, tmp_path / "f", ask=Ask(resume=first.partial, on_resumable=recorder), temp_files=temp_files)
    assert second.partial is not None and second.partial.path.stat().st_size == 2 * half
    assert recorder.calls == [first.partial]
    assert temp_files.is_kept(first.partial.path)


def test_a_partial_file_from_an_earlier_run_stays_kept_when_the_resume_fails(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    resource = srv.Resource(BIG, cut_after=BIG_CUT, cuts=1)
    url = server.route("/f", resource)
    first = fetch(url, tmp_path / "f", ask=Ask(on_resumable=Recorder()))
    assert first.partial is not None
    server.route("/f", srv.faulty([srv.status(503)], resource))
    this_run, recorder = TempFiles(), Recorder()
    ask = Ask(resume=first.partial, on_resumable=recorder)
    second = fetch(url, tmp_path / "f", ask=ask, temp_files=this_run)
    assert second.partial == first.partial
    assert recorder.calls == [first.partial]
    assert this_run.is_kept(first.partial.path)
    this_run.remove_all()
    assert first.partial.path.read_bytes() == BIG[:BIG_CUT]


def test_a_body_that_starts_over_is_offered_with_its_new_validator(server: srv.LoopbackServer, tmp_path: Path) -> None:
    temp_files, recorder = TempFiles(), Recorder()
    resource = srv.Resource(BIG, cut_after=BIG_CUT, cuts=2)
    url = server.route("/f", resource)
    first = fetch(url, tmp_path / "f", ask=Ask(on_resumable=recorder), temp_files=temp_files)
    resource.update(BIG[::-1])
    second = fetch(url, tmp_path / "f", ask=Ask(resume=first.partial, on_resumable=recorder), temp_files=temp_files)
    assert second.partial is not None and second.partial.if_range == '"v2"'
    assert [call.if_range for call in recorder.calls] == ['"v1"', '"v2"']
    assert second.partial.path.read_bytes() == BIG[::-1][:BIG_CUT]


def test_a_206_that_stops_short_of_the_end_starts_over(server: srv.LoopbackServer, tmp_path: Path) -> None:
    resource = srv.Resource(DATA, cut_after=CUT, cuts=1)
    first = cut_short(server, resource, tmp_path / "f")
    capped = srv.status(206, headers={"Content-Range": f"bytes {CUT}-{CUT + 9}/{len(DATA)}"}, body=DATA[CUT : CUT + 10])
    server.route("/f", srv.faulty([capped], then=resource))
    outcome = resume(server, first, tmp_path / "f")
    assert outcome.error is None and outcome.resumed_from is None
    assert (tmp_path / "f").read_bytes() == DATA
    assert leftovers(tmp_path) == []


def test_a_304_keeps_the_connection_for_the_next_request(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/f", srv.Resource(b"x" * 100))
    settings = FetcherConfig(dest=tmp_path, timeout=5.0)
    ask = Ask(saved=Validators(etag='"v1"'))
    with new_session(settings) as session:
        for _ in range(3):
            outcome = download(session, url, tmp_path / "f", config=settings, temp_files=TempFiles(),
                               cancelled=threading.Event(), ask=ask)  # fmt: skip
            assert outcome.unchanged
    assert server.connections == 1


def test_plain_bodies_of_known_length_keep_the_connection_for_the_next_file(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    url = server.route("/f", srv.Resource(b"x" * 100))
    settings = FetcherConfig(dest=tmp_path, timeout=5.0)
    with new_session(settings) as session:
        for n in range(3):
            outcome = download(session, url, tmp_path / f"f{n}", config=settings, temp_files=TempFiles(),
                               cancelled=threading.Event())  # fmt: skip
            assert outcome.error is None and (tmp_path / f"f{n}").read_bytes() == b"x" * 100
    assert server.connections == 1


def test_a_small_error_page_keeps_the_connection_for_the_retry(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/busy", srv.body(b"try again later", status=503))
    settings = FetcherConfig(dest=tmp_path, timeout=5.0)
    with new_session(settings) as session:
        for _ in range(3):
            download(session, url, tmp_path / "busy", config=settings, temp_files=TempFiles(),
                     cancelled=threading.Event())  # fmt: skip
    assert server.connections == 1


# -- a stop hangs up the attempt, whatever it waits for -------------------------------------


class Stopper:
    """The run's side of ``Ask.on_stop``: keeps each hang-up it is given, and calls them all on ``stop()``."""

    def __init__(self, *, stopped: bool = False) -> None:
        self.cancelled = threading.Event()
        self.hang_ups: list[Callable[[], None]] = []
        if stopped:
            self.cancelled.set()

    def on_stop(self, hang_up: Callable[[], None]) -> Callable[[], None]:
        self.hang_ups.append(hang_up)  # kept after the attempt, to call late
        if self.cancelled.is_set():
            hang_up()
        return lambda: None

    def stop(self) -> None:
        self.cancelled.set()
        for hang_up in self.hang_ups:
            hang_up()


def stoppable(
    session: requests.Session, url: str, target: Path, stopper: Stopper, *, stop_in: float | None = None, **ask: object
) -> tuple[Outcome, float]:
    """One attempt that *stopper* may stop (*stop_in* seconds after it starts); its outcome and its seconds."""
    settings = FetcherConfig(dest=target.parent, timeout=20.0)
    timer = None if stop_in is None else threading.Timer(stop_in, stopper.stop)
    began = time.monotonic()
    if timer is not None:
        timer.start()
    outcome = download(session, url, target, config=settings, temp_files=TempFiles(), cancelled=stopper.cancelled,
                       ask=Ask(on_stop=stopper.on_stop, **ask))  # type: ignore[arg-type]  # fmt: skip
    took = time.monotonic() - began
    if timer is not None:
        timer.join()
    return outcome, took


def test_a_stop_hangs_up_a_request_still_waiting_for_its_headers(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/held", srv.held_headers())
    with new_session(FetcherConfig(dest=tmp_path)) as session:
        outcome, took = stoppable(session, url, tmp_path / "held", Stopper(), stop_in=0.3)
    assert isinstance(outcome.error, Cancelled) and outcome.http_status is None
    assert took < 2  # not the --timeout of 20 s
    assert server.wait_for_hangups("/held")


def test_an_attempt_stopped_before_it_starts_sends_nothing(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/f", srv.body(b"x"))
    with new_session(FetcherConfig(dest=tmp_path)) as session:
        outcome, _ = stoppable(session, url, tmp_path / "f", Stopper(stopped=True))
    assert isinstance(outcome.error, Cancelled)
    assert server.connections == 0 and not (tmp_path / "f").exists()


def test_a_stop_while_waiting_for_headers_keeps_the_partial_file(server: srv.LoopbackServer, tmp_path: Path) -> None:
    first = cut_short(server, srv.Resource(DATA, cut_after=CUT, cuts=1), tmp_path / "f")
    server.route("/f", srv.held_headers())
    with new_session(FetcherConfig(dest=tmp_path)) as session:
        outcome, _ = stoppable(session, server.url("/f"), tmp_path / "f", Stopper(), stop_in=0.3, resume=first.partial)
    assert isinstance(outcome.error, Cancelled)
    assert outcome.partial == first.partial and first.partial is not None
    assert first.partial.path.read_bytes() == DATA[:CUT]


def test_a_hang_up_that_comes_after_its_attempt_does_not_cut_the_next(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    quick = server.route("/quick", srv.body(b"x"))
    slow = server.route("/slow", srv.body(b"y" * 100, delay=0.5))
    late = Stopper()
    with new_session(FetcherConfig(dest=tmp_path)) as session:
        stoppable(session, quick, tmp_path / "quick", late)
        threading.Timer(0.2, late.stop).start()  # mid-way through the next attempt, on the same connection
        outcome, _ = stoppable(session, slow, tmp_path / "slow", Stopper())
    assert outcome.error is None and (tmp_path / "slow").read_bytes() == b"y" * 100
    assert server.connections == 1


def test_a_session_not_made_by_new_session_is_still_hung_up_mid_body(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    url = server.route("/stalled", srv.stalled(b"x" * 100, claimed=100_000, stall=8))
    with requests.Session() as session:
        outcome, took = stoppable(session, url, tmp_path / "stalled", Stopper(), stop_in=0.5)
    assert isinstance(outcome.error, Cancelled) and outcome.http_status == 200
    assert took < 2.5


def test_a_hang_up_in_a_body_without_a_length_is_not_taken_for_its_end(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    url = server.route("/endless", srv.endless(rate=1 << 20))  # close-delimited: its end is the connection's
    with new_session(FetcherConfig(dest=tmp_path)) as session:
        outcome, _ = stoppable(session, url, tmp_path / "endless", Stopper(), stop_in=0.3)
    assert isinstance(outcome.error, Cancelled) and outcome.bytes > 0
    assert not (tmp_path / "endless").exists()
