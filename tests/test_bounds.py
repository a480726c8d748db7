"""Every run ends and no server fills the disk: each bound end to end, against abusive loopback servers.

The bounds' logic is tested without waiting in tests/transfer/test_bounds.py;
here each bound gets one short run against a real server that misbehaves.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fetcher import Fetcher, Result, Status, Tally
from fetcher.state import seen
from fetcher.transfer.tempfiles import TEMP_PREFIX, TEMP_SUFFIX
from tests import server as srv

MiB = 1 << 20


def run(urls: list[str], dest: Path, *, deadline: float | None = None, quota: int | None = None,
        **options: object) -> list[Result]:  # fmt: skip
    with Fetcher(dest=dest, **options) as fetcher:  # type: ignore[arg-type]
        return list(fetcher.fetch(urls, deadline=deadline, quota=quota))


def partial_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX) and p.name.endswith(TEMP_SUFFIX)]


# -- time -----------------------------------------------------------------------------------


def test_max_time_stops_a_trickle_that_never_stalls(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/trickle", srv.trickle(100_000, every=0.1))
    began = time.monotonic()
    [result] = run([url], tmp_path, max_time=1.0, timeout=5.0)
    assert result.status is Status.FAILED
    assert result.error == "took longer than the --max-time of 1s"
    assert time.monotonic() - began < 3
    assert partial_files(tmp_path) == [] and not (tmp_path / "trickle").exists()


def test_max_time_stops_a_read_that_waits_for_nothing(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/stall", srv.stalled(b"x" * 100, claimed=10_000, stall=8))
    began = time.monotonic()
    [result] = run([url], tmp_path, max_time=0.5, timeout=30.0)
    assert result.error == "took longer than the --max-time of 0.5s"
    assert time.monotonic() - began < 3


def test_max_time_makes_no_retry_whose_wait_would_pass_it(server: srv.LoopbackServer, tmp_path: Path) -> None:
    later = srv.status(503, headers={"Retry-After": "5"})
    url = server.route("/busy", srv.faulty([later], then=srv.body(b"ok")))
    [result] = run([url], tmp_path, max_time=2.0)
    assert (result.status, result.attempts) == (Status.FAILED, 1)
    assert result.error is not None and "no time left for another attempt within the --max-time of 2s" in result.error


def test_a_download_under_the_speed_limit_is_cut_and_retried(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/slow", srv.trickle(100_000, every=0.05, piece=10))  # 200 B/s
    began = time.monotonic()
    [result] = run([url], tmp_path, speed_limit=1000, speed_time=0.5, retries=1, clock=lambda: time.monotonic() * 1000)
    assert (result.status, result.attempts) == (Status.FAILED, 2)
    assert result.error is not None and result.error.startswith("too slow: under 1000 B/s for 0.5s")
    assert time.monotonic() - began < 4


def test_a_deadline_cancels_what_runs_and_starts_nothing_more(server: srv.LoopbackServer, tmp_path: Path) -> None:
    slow = [server.route(f"/slow{n}", srv.body(b"x", delay=5)) for n in range(2)]
    rest = [server.route(f"/rest{n}", srv.body(b"x")) for n in range(3)]
    began = time.monotonic()
    results = run(slow + rest, tmp_path, max_concurrent=2, deadline=0.5)
    assert time.monotonic() - began < 3
    assert [r.status for r in results] == [Status.CANCELLED] * 2 + [Status.NOT_STARTED] * 3
    assert {r.error for r in results} == {"the --deadline of 0.5s passed"}
    assert sum(server.requests[f"/rest{n}"] for n in range(3)) == 0
    tally = Tally()
    for result in results:
        tally.add(result)
    assert (tally.exit_code, tally.cut_short) == (4, "the --deadline of 0.5s passed")


def test_a_deadline_keeps_a_resumable_partial_for_the_next_run(server: srv.LoopbackServer, tmp_path: Path) -> None:
    body = bytes(range(256)) * (12 << 10)  # 3 MiB at 2 MiB/s
    url = server.route("/big", srv.Resource(body, rate=2 * MiB))
    [cut] = run([url], tmp_path, deadline=1.0)
    assert cut.status is Status.CANCELLED and cut.bytes >= MiB
    assert len(partial_files(tmp_path)) == 1
    [done] = run([url], tmp_path)
    assert done.status is Status.OK and done.resumed_from is not None and done.resumed_from >= MiB
    assert (tmp_path / "big").read_bytes() == body


def test_a_deadline_does_not_wait_for_a_retry_due_after_it(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/busy", srv.status(503, headers={"Retry-After": "60"}))
    began = time.monotonic()
    [result] = run([url], tmp_path, deadline=0.5)
    assert time.monotonic() - began < 3
    assert result.status is Status.CANCELLED
    assert result.error == "the --deadline of 0.5s passed; the last attempt failed: HTTP 503 Service Unavailable"


# -- size -------------------------------------------------------------------------------------


def test_a_content_length_over_max_filesize_fails_without_reading_the_body(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    url = server.route("/huge", srv.huge_length(10 << 40, send=1000))
    [result] = run([url], tmp_path, max_filesize=MiB)
    assert result.status is Status.FAILED and result.attempts == 1
    assert result.error == "Content-Length of 10.0 TiB is over the --max-filesize of 1.0 MiB"
    assert server.wait_for_hangups("/huge")  # the connection was closed, not drained
    assert list(tmp_path.glob("huge*")) == [] and partial_files(tmp_path) == []


def test_a_content_length_over_the_free_disk_says_both_in_binary_units(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    url = server.route("/huge", srv.huge_length(1 << 60, send=1000))
    [result] = run([url], tmp_path, max_filesize=1 << 61)
    assert result.status is Status.FAILED
    free = r"[0-9.]+ [KMGT]iB free on disk"
    said = re.fullmatch(rf"Content-Length of 1048576\.0 TiB is more than the {free}", result.error or "")
    assert said, result.error


def test_a_body_without_length_stops_at_max_filesize(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/endless", srv.endless(rate=50 * MiB))
    [result] = run([url], tmp_path, max_filesize=2 * MiB)
    assert result.status is Status.FAILED
    assert result.error == "body passed the --max-filesize of 2.0 MiB"
    assert not (tmp_path / "endless").exists() and partial_files(tmp_path) == []


def test_a_decompression_bomb_is_stopped_by_default(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/bomb.txt", srv.gzip_bomb(1 << 30))  # 1 GiB from about 1 MiB
    [result] = run([url], tmp_path)
    assert result.status is Status.FAILED and result.attempts == 1
    assert result.error is not None and "decompression bomb" in result.error
    assert result.bytes < 200 * MiB
    assert not (tmp_path / "bomb.txt").exists() and partial_files(tmp_path) == []


def test_the_bomb_guard_lets_ordinary_compressed_text_through(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/rfc9110.txt", srv.zip_ratio_text(4 * MiB))
    [result] = run([url], tmp_path)
    assert result.status is Status.OK
    assert (tmp_path / "rfc9110.txt").read_bytes() == srv.ratio_text(4 * MiB)


def test_a_quota_lets_nothing_new_start_once_reached(server: srv.LoopbackServer, tmp_path: Path) -> None:
    urls = [server.route(f"/f{n}", srv.body(b"x" * 100_000)) for n in range(5)]
    results = run(urls, tmp_path, max_concurrent=1, quota=250_000)
    assert [r.status for r in results] == [Status.OK] * 3 + [Status.NOT_STARTED] * 2
    assert results[-1].error == "the --quota of 244.1 KiB was reached"
    assert sum(server.requests[f"/f{n}"] for n in range(5)) == 3


def test_a_deadline_still_stops_the_run_after_the_quota_was_reached(server: srv.LoopbackServer, tmp_path: Path) -> None:
    small = server.route("/small", srv.body(b"x" * 1000, delay=0.3))  # the endless one is under way by then
    endless = server.route("/endless", srv.endless(rate=1 << 20))
    began = time.monotonic()
    results = run([small, endless], tmp_path, max_concurrent=2, deadline=1.0, quota=500)
    assert time.monotonic() - began < 4
    assert results[1].status is Status.CANCELLED and results[1].error == "the --deadline of 1s passed"


def test_a_read_late_in_a_transfer_does_not_overrun_max_time(server: srv.LoopbackServer, tmp_path: Path) -> None:
    def data_then_silence(request: srv.Request) -> None:
        request.send_response(200)
        request.send_header("Content-Length", "100000")
        request.end_headers()
        for _ in range(15):  # 1.5 s of data, then nothing: the request's timeout was set at its start
            request.wfile.write(b"x" * 100)
            request.wfile.flush()
            request.server.owner.sleep(0.1)
        request.server.owner.sleep(8)

    url = server.route("/late", data_then_silence)
    began = time.monotonic()
    [result] = run([url], tmp_path, max_time=3.5, timeout=30.0)
    assert result.error == "took longer than the --max-time of 3.5s"
    assert time.monotonic() - began < 4.5  # not 1.5 s + 3.5 s


def test_a_deadline_ends_the_run_though_the_input_stays_open(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/f", srv.body(b"x"))
    stop_input = threading.Event()

    def input_that_stays_open() -> Iterator[str]:
        yield url
        stop_input.wait(8)  # a pipe whose writer went quiet
        yield server.url("/never")

    began = time.monotonic()
    try:
        results = list(_fetch(input_that_stays_open(), tmp_path, deadline=1.0))
    finally:
        stop_input.set()
    assert time.monotonic() - began < 4
    assert [r.status for r in results] == [Status.OK]


def test_a_deadline_waits_for_a_feeder_that_is_slow_for_another_reason_than_its_input(
    server: srv.LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past a million URLs, the set of those seen can take over a second to grow: every URL read
    # still gets its record, though no new one comes from the input meanwhile.
    urls = [server.route("/slow", srv.body(b"x", delay=1.0)), server.url("/b"), server.url("/c")]
    setdefault = seen.Seen.setdefault

    def slow_for_the_last(self: seen.Seen[int], key: str, value: int) -> int:
        if key.endswith("/c"):
            time.sleep(1.5)
        return setdefault(self, key, value)

    monkeypatch.setattr(seen.Seen, "setdefault", slow_for_the_last)
    results = list(_fetch(iter(urls), tmp_path, deadline=0.5))
    assert [r.url for r in results] == urls
    assert results[2].status is Status.NOT_STARTED


def _fetch(urls: Iterator[str], dest: Path, *, deadline: float) -> Iterator[Result]:
    with Fetcher(dest=dest) as fetcher:
        yield from fetcher.fetch(urls, deadline=deadline)


def test_a_retry_whose_max_time_runs_out_waiting_for_a_slot_takes_none(
    server: srv.LoopbackServer, server_b: srv.LoopbackServer, tmp_path: Path
) -> None:
    # Due in 1 s: meanwhile the second URL (on another host: the first's is paused) takes
    # the only slot, and holds it for 3 s.
    busy = srv.status(503, headers={"Retry-After": "1"})
    first = server.route("/first", srv.faulty([busy], then=srv.body(b"1")))
    second = server_b.route("/second", srv.body(b"2", delay=3))
    began = time.monotonic()
    results = run([first, second], tmp_path, max_concurrent=1, max_time=1.5)
    assert results[0].status is Status.FAILED and results[0].attempts == 1
    assert results[0].error == (
        "took longer than the --max-time of 1.5s; the last attempt failed: HTTP 503 Service Unavailable"
    )
    assert results[0].total_s < 2.5 and server.requests["/first"] == 1
    assert results[1].error == "took longer than the --max-time of 1.5s"  # the bound holds for it too
    assert time.monotonic() - began < 4


def test_a_server_that_goes_silent_is_cut_by_the_speed_limit(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/silent", srv.stalled(b"x" * 100, claimed=10_000, stall=8))
    began = time.monotonic()
    [result] = run([url], tmp_path, speed_limit=1000, speed_time=0.5, retries=0, timeout=30.0)
    assert result.error == "too slow: under 1000 B/s for 0.5s (--speed-limit, --speed-time)"
    assert time.monotonic() - began < 3
