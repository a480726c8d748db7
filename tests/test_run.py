"""One run, end to end on loopback: retries, re-runs through the state database, resume, entries, politeness."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

from fetcher import Entry, Fetcher, Result, Status
from fetcher.state import DEFAULT_STATE_NAME, StateStore
from fetcher.transfer.tempfiles import TEMP_PREFIX, TEMP_SUFFIX
from tests import server as srv

MiB = 1 << 20


def run(items: list[str | Entry], dest: Path, **options: object) -> list[Result]:
    with Fetcher(dest=dest, **options) as fetcher:  # type: ignore[arg-type]
        return list(fetcher.fetch(items))


def fast_clock() -> float:
    """Retry waits pass a thousand times faster than real time."""
    return time.monotonic() * 1000


def partial_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX) and p.name.endswith(TEMP_SUFFIX)]


def data(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + bytes(size % 256)


# -- retries ------------------------------------------------------------------------


def test_a_transient_failure_is_retried_until_it_works(server: srv.LoopbackServer, tmp_path: Path) -> None:
    busy = srv.status(503, headers={"Retry-After": "0"})
    url = server.route("/f", srv.faulty([busy, busy], then=srv.body(b"fine")))
    [result] = run([url], tmp_path)
    assert (result.status, result.attempts, result.http_status) == (Status.OK, 3, 200)
    assert (tmp_path / "f").read_bytes() == b"fine"


def test_a_permanent_failure_is_not_retried(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/gone", srv.body(b"", status=404))
    [result] = run([url], tmp_path, clock=fast_clock)
    assert (result.status, result.attempts) == (Status.FAILED, 1)
    assert server.requests["/gone"] == 1


def test_retries_stop_when_the_budget_is_spent(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/busy", srv.body(b"", status=503))
    [result] = run([url], tmp_path, retries=2, clock=fast_clock)
    assert (result.status, result.attempts, result.error) == (Status.FAILED, 3, "HTTP 503 Service Unavailable")
    assert server.requests["/busy"] == 3


def test_backoff_waits_run_on_the_injected_clock(server: srv.LoopbackServer, tmp_path: Path) -> None:
    # Without Retry-After the waits are backoff: up to 1 + 2 + 4 s of the clock's time.
    url = server.route("/f", srv.faulty([srv.status(502)] * 3, then=srv.body(b"ok")))
    began = time.monotonic()
    [result] = run([url], tmp_path, clock=fast_clock)
    assert (result.status, result.attempts) == (Status.OK, 4)
    assert time.monotonic() - began < 3


def test_a_url_waiting_to_retry_holds_no_slot(
    server: srv.LoopbackServer, server_b: srv.LoopbackServer, tmp_path: Path
) -> None:
    later = srv.status(503, headers={"Retry-After": "1"})
    first = server.route("/first", srv.faulty([later], then=srv.body(b"1")))
    # On another host: the Retry-After pauses the first URL's host for every URL of it.
    second = server_b.route("/second", srv.body(b"2", delay=0.2))
    results = run([first, second], tmp_path, max_concurrent=1)
    by_url = {r.url: r for r in results}
    assert by_url[second].status is Status.OK
    second_wait = by_url[second].wait_s
    assert second_wait is not None and second_wait < 0.6  # it got the slot during the wait
    assert (by_url[first].status, by_url[first].attempts) == (Status.OK, 2)
    assert by_url[first].total_s >= 0.9


def test_a_retry_after_over_the_limit_fails_with_a_reason(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/later", srv.status(503, headers={"Retry-After": "3600"}))
    [result] = run([url], tmp_path, retry_after_max=300)
    assert (result.status, result.attempts) == (Status.FAILED, 1)
    assert result.error is not None and "3600s" in result.error and "300s" in result.error


def test_the_acquire_timeout_applies_to_the_first_slot_only(server: srv.LoopbackServer, tmp_path: Path) -> None:
    later = srv.status(503, headers={"Retry-After": "1"})
    url = server.route("/f", srv.faulty([later], then=srv.body(b"ok")))
    [result] = run([url], tmp_path, acquire_timeout=0.5)
    assert (result.status, result.attempts) == (Status.OK, 2)


# -- re-runs --------------------------------------------------------------------------


def test_a_second_run_asks_conditionally_and_leaves_the_file_alone(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/rfc791.txt", srv.Resource(b"internet protocol"))
    [first] = run([url], tmp_path)
    before = os.stat(tmp_path / "rfc791.txt")
    [second] = run([url], tmp_path)
    assert (first.status, second.status, second.http_status) == (Status.OK, Status.UNCHANGED, 304)
    asked = server.headers_seen["/rfc791.txt"][-1]
    assert asked["If-None-Match"] == '"v1"' and "If-Modified-Since" in asked
    after = os.stat(tmp_path / "rfc791.txt")
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert second.path == tmp_path.resolve() / "rfc791.txt" and second.bytes == 0


def test_a_changed_resource_replaces_the_file_on_the_next_run(server: srv.LoopbackServer, tmp_path: Path) -> None:
    resource = srv.Resource(b"old")
    url = server.route("/f", resource)
    run([url], tmp_path)
    resource.update(b"new!", etag='"v2"', last_modified=srv.http_date(time.time() - 60))
    [result] = run([url], tmp_path)
    assert result.status is Status.OK
    assert (tmp_path / "f").read_bytes() == b"new!"


def test_the_file_gets_the_servers_last_modified_time(server: srv.LoopbackServer, tmp_path: Path) -> None:
    modified = 1_700_000_000
    url = server.route("/f", srv.Resource(b"x", last_modified=srv.http_date(modified)))
    run([url], tmp_path)
    assert os.stat(tmp_path / "f").st_mtime == modified


def test_no_remote_time_keeps_the_local_time(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/f", srv.Resource(b"x", last_modified=srv.http_date(1_700_000_000)))
    run([url], tmp_path, remote_time=False)
    assert abs(os.stat(tmp_path / "f").st_mtime - time.time()) < 60


def test_a_file_edited_since_is_downloaded_plainly(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/f", srv.Resource(b"server copy"))
    run([url], tmp_path)
    (tmp_path / "f").write_bytes(b"edited by hand")
    [result] = run([url], tmp_path)
    assert result.status is Status.OK
    assert "If-None-Match" not in server.headers_seen["/f"][-1]
    assert (tmp_path / "f").read_bytes() == b"server copy"


def test_a_deleted_file_is_downloaded_again(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/f", srv.Resource(b"server copy"))
    run([url], tmp_path)
    (tmp_path / "f").unlink()
    [result] = run([url], tmp_path)
    assert result.status is Status.OK and (tmp_path / "f").read_bytes() == b"server copy"


def test_force_downloads_in_full_whatever_the_state_says(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/f", srv.Resource(b"x"))
    run([url], tmp_path)
    [result] = run([url], tmp_path, force=True)
    assert (result.status, result.http_status) == (Status.OK, 200)
    assert "If-None-Match" not in server.headers_seen["/f"][-1]


def test_skip_existing_requests_nothing_for_a_file_that_exists(server: srv.LoopbackServer, tmp_path: Path) -> None:
    there = server.route("/there", srv.body(b"new"))
    missing = server.route("/missing", srv.body(b"new"))
    (tmp_path / "there").write_bytes(b"old")
    results = run([there, missing], tmp_path, skip_existing=True)
    assert [(r.status, r.attempts) for r in results] == [(Status.SKIPPED, 0), (Status.OK, 1)]
    assert server.requests["/there"] == 0
    assert (tmp_path / "there").read_bytes() == b"old"


def test_without_state_every_run_downloads_in_full(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/f", srv.Resource(b"x"))
    run([url], tmp_path, state=False)
    [result] = run([url], tmp_path, state=False)
    assert result.http_status == 200
    assert not (tmp_path / DEFAULT_STATE_NAME).exists()


def test_the_state_can_live_outside_dest(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/f", srv.Resource(b"x"))
    state = tmp_path / "elsewhere" / "state.db"
    run([url], tmp_path / "dest", state=state)
    [result] = run([url], tmp_path / "dest", state=state)
    assert result.status is Status.UNCHANGED
    assert state.exists() and not (tmp_path / "dest" / DEFAULT_STATE_NAME).exists()


def test_a_new_checksum_in_the_list_is_not_answered_from_the_state(server: srv.LoopbackServer, tmp_path: Path) -> None:
    body = b"checked"
    url = server.route("/f", srv.Resource(body))
    run([url], tmp_path)
    checksum = "sha-256=" + hashlib.sha256(body).hexdigest()
    [result] = run([Entry(url=url, checksum=checksum)], tmp_path)
    assert (result.status, result.http_status) == (Status.OK, 200)


# -- resume ------------------------------------------------------------------------------


def test_a_body_cut_short_is_resumed_by_the_retry(server: srv.LoopbackServer, tmp_path: Path) -> None:
    body = data(2 * MiB)
    url = server.route("/big", srv.Resource(body, cut_after=MiB + 3, cuts=1))
    [result] = run([url], tmp_path, clock=fast_clock)
    assert (result.status, result.attempts, result.resumed_from) == (Status.OK, 2, MiB + 3)
    assert (tmp_path / "big").read_bytes() == body
    assert server.wait_idle()  # the server's count of bytes sent can lag the client's read
    assert server.bytes_sent["/big"] == len(body)
    assert server.headers_seen["/big"][-1]["Range"] == f"bytes={MiB + 3}-"


def test_a_partial_file_is_kept_and_resumed_by_the_next_run(server: srv.LoopbackServer, tmp_path: Path) -> None:
    body = data(3 * MiB)
    url = server.route("/big", srv.Resource(body, cut_after=2 * MiB, cuts=1))
    [first] = run([url], tmp_path, retries=0)
    assert first.status is Status.FAILED
    [kept] = partial_files(tmp_path)
    assert kept.stat().st_size == 2 * MiB
    [second] = run([url], tmp_path)
    assert (second.status, second.resumed_from, second.bytes) == (Status.OK, 2 * MiB, len(body))
    assert (tmp_path / "big").read_bytes() == body
    assert partial_files(tmp_path) == []
    with StateStore(tmp_path / DEFAULT_STATE_NAME) as store:
        assert store.partials() == []


def test_a_partial_file_of_a_changed_resource_is_not_joined_to_the_new_one(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    resource = srv.Resource(data(3 * MiB), cut_after=2 * MiB, cuts=1)
    url = server.route("/big", resource)
    run([url], tmp_path, retries=0)
    new = bytes(reversed(data(3 * MiB)))
    resource.update(new, etag='"v2"')
    [result] = run([url], tmp_path)
    assert (result.status, result.resumed_from) == (Status.OK, None)
    assert (tmp_path / "big").read_bytes() == new


def test_a_small_partial_file_is_not_kept_for_a_later_run(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/small", srv.Resource(data(100_000), cut_after=50_000, cuts=1))
    [result] = run([url], tmp_path, retries=0)
    assert result.status is Status.FAILED
    assert partial_files(tmp_path) == []


# -- entries ---------------------------------------------------------------------------------


def test_a_checksum_mismatch_fails_and_leaves_no_file(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/f", srv.body(b"tampered"))
    wrong = "sha-256=" + hashlib.sha256(b"original").hexdigest()
    [result] = run([Entry(url=url, checksum=wrong)], tmp_path)
    assert (result.status, result.attempts) == (Status.FAILED, 1)
    assert result.error is not None and result.error.startswith("checksum mismatch")
    assert not (tmp_path / "f").exists() and partial_files(tmp_path) == []


def test_a_matching_checksum_saves_the_file(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/f", srv.body(b"original"))
    [result] = run([Entry(url=url, checksum="md5=" + hashlib.md5(b"original").hexdigest())], tmp_path)
    assert result.status is Status.OK


def test_out_names_the_file_made_safe(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/download", srv.body(b"x")) + "?id=7"
    [result] = run([Entry(url=url, out="../report.pdf")], tmp_path)
    assert result.path == tmp_path.resolve() / "_._report.pdf"


def test_an_entry_with_a_problem_is_invalid_and_not_requested(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/f", srv.body(b"x"))
    [result] = run([Entry(url=url, line=4, problem="line 5: unknown option 'foo='")], tmp_path)
    assert (result.status, result.line, result.error) == (Status.INVALID, 4, "line 5: unknown option 'foo='")
    assert server.requests["/f"] == 0


def test_an_entry_without_a_line_gets_its_position(server: srv.LoopbackServer, tmp_path: Path) -> None:
    urls = [server.route(f"/{n}", srv.body(b"x")) for n in range(3)]
    results = run([urls[0], Entry(url=urls[1]), urls[2]], tmp_path)
    assert [r.line for r in results] == [1, 2, 3]


def test_a_line_that_is_no_url_says_so_before_its_option_problems(tmp_path: Path) -> None:
    [result] = run([Entry(url="junk", line=1, problem="line 2: bad checksum: ...")], tmp_path)
    assert (result.status, result.error) == (Status.INVALID, "not a URL (expected http:// or https://)")


def test_the_state_database_never_records_a_password(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/f", srv.Resource(b"x")).replace("http://", "http://user:s3cret@")
    run([url], tmp_path)
    [second] = run([url], tmp_path)
    assert second.status is Status.UNCHANGED  # found again under the redacted URL
    with StateStore(tmp_path / DEFAULT_STATE_NAME):
        pass  # closed: everything written
    assert not any(b"s3cret" in p.read_bytes() for p in tmp_path.glob(DEFAULT_STATE_NAME + "*"))


def test_a_state_file_in_dest_is_never_a_downloads_name(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/state.db", srv.body(b"not sqlite"))
    [result] = run([url], tmp_path, state=tmp_path / "state.db")
    assert result.path is not None and result.path.name != "state.db"
    assert (tmp_path / "state.db").read_bytes().startswith(b"SQLite format 3")


def test_a_resumed_partial_that_breaks_a_limit_is_dropped_with_its_record(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    url = server.route("/big", srv.Resource(data(3 * MiB), cut_after=2 * MiB, cuts=1))
    run([url], tmp_path, retries=0)
    assert len(partial_files(tmp_path)) == 1
    [result] = run([url], tmp_path, max_filesize=MiB)
    assert result.status is Status.FAILED and "--max-filesize" in (result.error or "")
    assert partial_files(tmp_path) == []
    with StateStore(tmp_path / DEFAULT_STATE_NAME) as store:
        assert store.partials() == []


# -- politeness: per-host caps, rates, bandwidth and pauses, on real loopback hosts ------------------


def polite(items: Sequence[str | Entry], dest: Path, **options: object) -> tuple[list[Result], float]:
    """The results of one run without state, and how long it took in seconds."""
    began = time.monotonic()
    results = run(list(items), dest, state=False, **options)
    return results, time.monotonic() - began


def routes(server: srv.LoopbackServer, prefix: str, count: int, handler: srv.Handler) -> list[str]:
    return [server.route(f"/{prefix}{n}", handler) for n in range(count)]


def starts(*servers: srv.LoopbackServer) -> list[float]:
    return sorted(hit.started for server in servers for hit in server.log)


def host_of(server: srv.LoopbackServer) -> str:
    return server.base.removeprefix("http://")


def test_the_per_host_cap_holds_and_is_reached(server: srv.LoopbackServer, tmp_path: Path) -> None:
    overlap = srv.Overlap(0.05)
    urls = routes(server, "f", 12, overlap)
    results, _ = polite(urls, tmp_path, max_concurrent=4, max_per_host=2)
    assert all(r.ok for r in results)
    assert overlap.most == 2


def test_a_host_at_its_cap_does_not_hold_up_another_host(
    server: srv.LoopbackServer, server_b: srv.LoopbackServer, tmp_path: Path
) -> None:
    on_a, on_b = srv.Overlap(0.1), srv.Overlap(0.1)
    a, b = routes(server, "a", 10, on_a), routes(server_b, "b", 10, on_b)
    results, _ = polite(a + b, tmp_path, max_concurrent=4, max_per_host=1)
    assert all(r.ok for r in results)
    assert server_b.log[0].started - server.log[0].started < 0.3  # not after A's ten
    assert (on_a.most, on_b.most) == (1, 1)
    assert [server.url(hit.path) for hit in server.log] == a
    assert [server_b.url(hit.path) for hit in server_b.log] == b


def test_the_request_rate_holds_over_all_hosts(server: srv.LoopbackServer, tmp_path: Path) -> None:
    urls = routes(server, "f", 25, srv.body(b"x"))
    results, elapsed = polite(urls, tmp_path, max_concurrent=4, rate=10)
    assert all(r.ok for r in results)
    assert server.max_in_any_window(1.0) <= 11  # evenly spaced: at most one more than the rate
    assert elapsed >= 2.0


def test_the_rate_per_host_holds_for_each_host_on_its_own(
    server: srv.LoopbackServer, server_b: srv.LoopbackServer, tmp_path: Path
) -> None:
    urls = routes(server, "a", 7, srv.body(b"a")) + routes(server_b, "b", 7, srv.body(b"b"))
    results, _ = polite(urls, tmp_path, max_concurrent=4, rate_per_host=5)
    assert all(r.ok for r in results)
    assert server.max_in_any_window(1.0) <= 6 and server_b.max_in_any_window(1.0) <= 6
    both = starts(server, server_b)
    assert len([t for t in both if t <= both[0] + 1.0]) > 6  # each host had its own turns


def test_the_rate_per_host_holds_when_slots_come_free_together(
    server: srv.LoopbackServer, server_b: srv.LoopbackServer, tmp_path: Path
) -> None:
    server_c = srv.LoopbackServer(host="127.0.0.3").start()
    try:
        busy = [server_b.route("/b", srv.body(b"b", delay=0.5)), server_c.route("/c", srv.body(b"c", delay=0.5))]
        results, _ = polite([*busy, *routes(server, "a", 2, srv.body(b"a"))], tmp_path, max_concurrent=2,
                            rate_per_host=5)  # fmt: skip
    finally:
        server_c.stop()
    assert all(r.ok for r in results)
    first, second = starts(server)
    assert second - first >= 0.15


def test_redirect_hops_wait_their_turn_under_the_rate(server: srv.LoopbackServer, tmp_path: Path) -> None:
    server.route("/hop2", srv.body(b"landed"))
    server.route("/hop1", srv.redirect("/hop2"))
    url = server.route("/start", srv.redirect("/hop1"))
    [result], _ = polite([url], tmp_path, rate=5)
    assert result.ok
    times = starts(server)
    assert len(times) == 3
    assert min(later - earlier for earlier, later in pairwise(times)) >= 0.15


def test_the_bandwidth_cap_holds_over_all_downloads_and_starves_none(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    # 4 x 250,000 B at 400,000 B/s: 2.5 s.  The cap's burst (a tenth of a second's worth) goes at
    # once, so 2.4 s is the least it may take.
    urls = routes(server, "f", 4, srv.body(data(250_000)))
    results, elapsed = polite(urls, tmp_path, max_concurrent=4, limit_rate=400_000)
    assert all(r.ok and r.bytes == 250_000 for r in results)
    assert 0.95 * 2.5 <= elapsed <= 1.10 * 2.5
    totals = [r.total_s for r in results]
    assert min(totals) >= 0.75 * max(totals)


def answered_at(server: srv.LoopbackServer, path: str) -> float:
    """When *path*'s first request was answered."""
    finished = next(hit.finished for hit in server.log if hit.path == path)
    assert finished is not None
    return finished


def test_a_429_pauses_its_host_while_other_hosts_go_on(
    server: srv.LoopbackServer, server_b: srv.LoopbackServer, tmp_path: Path
) -> None:
    # The 429 comes a moment late and a1 is slower, so that a1 starts before the 429 even on a busy
    # machine, and the two slots are busy when the dispatcher looks at a2.
    later = srv.body(b"slow down\n", status=429, headers={"Retry-After": "2"}, delay=0.3)
    a = [
        server.route("/a0", srv.faulty([later], then=srv.body(b"a0"))),
        server.route("/a1", srv.body(b"a1", delay=0.5)),
    ]
    a += routes(server, "a-rest", 3, srv.body(b"a"))
    b = routes(server_b, "b", 4, srv.body(b"b", delay=0.05))
    results, _ = polite(a + b, tmp_path, max_concurrent=2)
    assert all(r.ok for r in results)
    paused_from = answered_at(server, "/a0")
    assert not [hit for hit in server.log if paused_from <= hit.started < paused_from + 1.9]
    assert all(hit.started < paused_from + 1.9 for hit in server_b.log)  # B went on meanwhile
    assert [r.waited_on for r in results[2:5]] == ["paused"] * 3


def test_a_429_after_a_redirect_pauses_the_host_that_answered_not_the_listed_one(
    server: srv.LoopbackServer, server_b: srv.LoopbackServer, tmp_path: Path
) -> None:
    busy = server_b.route("/busy", srv.faulty([srv.too_many("2")], then=srv.body(b"b")))
    listed = server.route("/moved", srv.redirect(busy))
    then_a = server.route("/a", srv.body(b"a"))
    then_b = server_b.route("/b", srv.body(b"b"))
    with Fetcher(dest=tmp_path, state=False, max_concurrent=1, retries=0) as fetcher:
        [moved] = list(fetcher.fetch([listed]))
        assert moved.http_status == 429
        assert set(fetcher.stats().paused) == {host_of(server_b)}
        [b, a] = list(fetcher.fetch([then_b, then_a]))
    assert a.waited_on is None and b.waited_on == "paused"


def test_a_429_pauses_the_next_url_of_its_host_while_other_hosts_go_on(
    server: srv.LoopbackServer, server_b: srv.LoopbackServer, tmp_path: Path
) -> None:
    a = [server.route("/a0", srv.faulty([srv.too_many("1")], then=srv.body(b"a0")))]
    a += routes(server, "a-rest", 4, srv.body(b"a"))
    b = routes(server_b, "b", 4, srv.body(b"b", delay=0.05))
    results, _ = polite(a + b, tmp_path, max_concurrent=2, max_per_host=1)
    assert all(r.ok for r in results)
    paused_from = answered_at(server, "/a0")
    assert not [hit for hit in server.log if paused_from <= hit.started < paused_from + 0.9]
    assert all(hit.started < paused_from + 0.9 for hit in server_b.log)  # B went on meanwhile
    assert results[0].attempts == 2


def test_a_503_with_retry_after_pauses_its_host(server: srv.LoopbackServer, tmp_path: Path) -> None:
    busy = srv.status(503, headers={"Retry-After": "1"})
    first = server.route("/first", srv.faulty([busy], then=srv.body(b"1")))
    second = server.route("/second", srv.body(b"2"))
    results, _ = polite([first, second], tmp_path, max_per_host=1)
    assert all(r.ok for r in results)
    assert answered_at(server, "/second") - answered_at(server, "/first") >= 0.9


def test_a_503_without_retry_after_pauses_nothing(server: srv.LoopbackServer, tmp_path: Path) -> None:
    first = server.route("/first", srv.faulty([srv.status(503)], then=srv.body(b"1")))
    second = server.route("/second", srv.body(b"2"))
    results, _ = polite([first, second], tmp_path, max_per_host=1, retries=0)
    assert [r.status for r in results] == [Status.FAILED, Status.OK]
    assert answered_at(server, "/second") - answered_at(server, "/first") < 0.5


def test_stats_show_a_paused_host(server: srv.LoopbackServer, server_b: srv.LoopbackServer, tmp_path: Path) -> None:
    a = server.route("/a", srv.faulty([srv.too_many("1")], then=srv.body(b"a")))
    b = server_b.route("/b", srv.body(b"b", delay=0.2))
    with Fetcher(dest=tmp_path, state=False, max_concurrent=2) as fetcher:
        results = fetcher.as_completed([a, b])
        first = next(results)
        paused = fetcher.stats().paused
        rest = list(results)
    assert first.url == b and [r.url for r in rest] == [a]
    assert list(paused) == [host_of(server)]
    assert 0 < paused[host_of(server)] <= 1.0


# -- waited_on: which limit held a URL back ---------------------------------------------------------------


def test_a_url_held_back_by_its_hosts_cap_waited_on_host(server: srv.LoopbackServer, tmp_path: Path) -> None:
    urls = routes(server, "f", 2, srv.body(b"x", delay=0.2))
    results, _ = polite(urls, tmp_path, max_concurrent=4, max_per_host=1)
    assert [r.waited_on for r in results] == [None, "host"]


def test_a_url_held_back_by_the_slots_waited_on_slots(server: srv.LoopbackServer, tmp_path: Path) -> None:
    urls = routes(server, "f", 2, srv.body(b"x", delay=0.2))
    results, _ = polite(urls, tmp_path, max_concurrent=1)
    assert [r.waited_on for r in results] == [None, "slots"]


def test_a_url_held_back_by_the_rate_waited_on_rate(server: srv.LoopbackServer, tmp_path: Path) -> None:
    urls = routes(server, "f", 2, srv.body(b"x"))
    results, _ = polite(urls, tmp_path, max_concurrent=4, rate=5)
    assert [r.waited_on for r in results] == [None, "rate"]


def test_the_acquire_timeout_bounds_a_wait_on_a_hosts_cap(
    server: srv.LoopbackServer, server_b: srv.LoopbackServer, tmp_path: Path
) -> None:
    a = [server.route("/slow", srv.body(b"slow", delay=1.0)), *routes(server, "a", 2, srv.body(b"a"))]
    b = routes(server_b, "b", 2, srv.body(b"b", delay=0.1))
    results, _ = polite(a + b, tmp_path, max_concurrent=4, max_per_host=1, acquire_timeout=0.3)
    assert [r.status for r in results] == [Status.OK, Status.ACQUIRE_TIMEOUT, Status.ACQUIRE_TIMEOUT,
                                           Status.OK, Status.OK]  # fmt: skip
    for gave_up in results[1:3]:
        assert gave_up.wait_s is not None and 0.25 <= gave_up.wait_s <= 1.0
        assert gave_up.waited_on == "host"
        assert gave_up.error is not None and "--max-per-host" in gave_up.error
    assert server.requests["/a0"] == server.requests["/a1"] == 0


def test_a_retry_that_runs_out_of_time_waiting_for_a_slot_leaves_the_waiting_count_alone(
    server: srv.LoopbackServer, server_b: srv.LoopbackServer, tmp_path: Path
) -> None:
    # a's retry is due after 1 s (its host paused meanwhile), but b holds the only slot until
    # the --max-time of 1.3 s stops it: a's retry runs out of time in its lane.  It was not
    # counted as waiting when it went back for its retry, so it must not be uncounted either.
    a = server.route("/a", srv.faulty([srv.status(503, headers={"Retry-After": "1"})], then=srv.body(b"a")))
    b = server_b.route("/b", srv.body(b"b", delay=2.0))
    seen: list[tuple[str, Status, int]] = []
    with Fetcher(dest=tmp_path, state=False, max_concurrent=1, max_time=1.3) as fetcher:
        for result in fetcher.as_completed([a, b]):
            seen.append((result.url, result.status, fetcher.stats().waiting))
    assert sorted(seen) == [(a, Status.FAILED, 0), (b, Status.FAILED, 0)]
    assert server.requests["/a"] == 1


# -- stopping ------------------------------------------------------------------------


def test_a_deadline_hangs_up_a_request_waiting_for_its_headers(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/held", srv.held_headers())
    began = time.monotonic()
    with Fetcher(dest=tmp_path, timeout=20) as fetcher:
        [result] = fetcher.fetch([url], deadline=0.5)
    assert (result.status, result.error) == (Status.CANCELLED, "the --deadline of 0.5s passed")
    assert time.monotonic() - began < 2.5  # not the --timeout of 20 s
    assert server.wait_for_hangups("/held")
