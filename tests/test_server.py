"""The loopback test server's own behaviour: validators, ranges, faults and counters, seen through requests."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable

import pytest
import requests

from tests import server as srv
from tests.server import LoopbackServer, Resource

DATA = bytes(range(256)) * 40  # 10,240 bytes
TIMEOUT = 5


def get(url: str, **headers: str) -> requests.Response:
    return requests.get(url, headers=headers, timeout=TIMEOUT)


def test_a_200_carries_the_validators_accept_ranges_and_date(server: LoopbackServer) -> None:
    resource = Resource(DATA)
    response = get(server.route("/f", resource))
    assert response.status_code == 200 and response.content == DATA
    assert response.headers["ETag"] == '"v1"'
    assert response.headers["Last-Modified"] == resource.last_modified
    assert response.headers["Accept-Ranges"] == "bytes"
    assert "Date" in response.headers


def test_if_none_match_with_the_etag_gets_a_304_with_validators_and_no_body(server: LoopbackServer) -> None:
    url = server.route("/f", Resource(DATA))
    response = get(url, **{"If-None-Match": '"v1"'})
    assert response.status_code == 304 and response.content == b""
    assert response.headers["ETag"] == '"v1"' and "Last-Modified" in response.headers


def test_if_none_match_compares_weakly(server: LoopbackServer) -> None:
    url = server.route("/f", Resource(DATA))
    assert get(url, **{"If-None-Match": '"v0", W/"v1"'}).status_code == 304


def test_if_none_match_star_matches(server: LoopbackServer) -> None:
    url = server.route("/f", Resource(DATA))
    assert get(url, **{"If-None-Match": "*"}).status_code == 304


def test_a_failed_if_none_match_wins_over_a_matching_if_modified_since(server: LoopbackServer) -> None:
    resource = Resource(DATA)
    url = server.route("/f", resource)
    response = get(url, **{"If-None-Match": '"v0"', "If-Modified-Since": resource.last_modified or ""})
    assert response.status_code == 200


def test_if_modified_since_compares_dates(server: LoopbackServer) -> None:
    url = server.route("/f", Resource(DATA, last_modified="Sun, 06 Nov 1994 08:49:37 GMT"))
    assert get(url, **{"If-Modified-Since": "Sun, 06 Nov 1994 08:49:38 GMT"}).status_code == 304
    assert get(url, **{"If-Modified-Since": "Sun, 06 Nov 1994 08:49:36 GMT"}).status_code == 200


def test_ims_exact_needs_the_very_last_modified_string(server: LoopbackServer) -> None:
    url = server.route("/f", Resource(DATA, last_modified="Sun, 06 Nov 1994 08:49:37 GMT", ims_exact=True))
    assert get(url, **{"If-Modified-Since": "Sun, 06 Nov 1994 08:49:38 GMT"}).status_code == 200
    assert get(url, **{"If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}).status_code == 304


def test_an_open_range_gets_a_206_with_content_range(server: LoopbackServer) -> None:
    url = server.route("/f", Resource(DATA))
    response = get(url, Range="bytes=10000-", **{"If-Range": '"v1"'})
    assert response.status_code == 206 and response.content == DATA[10000:]
    assert response.headers["Content-Range"] == f"bytes 10000-{len(DATA) - 1}/{len(DATA)}"


def test_a_closed_range_gets_exactly_those_bytes(server: LoopbackServer) -> None:
    url = server.route("/f", Resource(DATA))
    response = get(url, Range="bytes=5-9")
    assert response.status_code == 206 and response.content == DATA[5:10]
    assert response.headers["Content-Range"] == f"bytes 5-9/{len(DATA)}"


def test_if_range_with_the_exact_last_modified_gets_a_206(server: LoopbackServer) -> None:
    resource = Resource(DATA, etag=None)
    url = server.route("/f", resource)
    assert get(url, Range="bytes=100-", **{"If-Range": resource.last_modified or ""}).status_code == 206


def test_if_range_with_an_old_etag_gets_the_whole_new_representation(server: LoopbackServer) -> None:
    resource = Resource(DATA)
    url = server.route("/f", resource)
    resource.update(DATA[::-1])
    response = get(url, Range="bytes=100-", **{"If-Range": '"v1"'})
    assert response.status_code == 200 and response.content == DATA[::-1]
    assert response.headers["ETag"] == '"v2"' and "Content-Range" not in response.headers


def test_a_weak_etag_in_if_range_never_matches(server: LoopbackServer) -> None:
    url = server.route("/f", Resource(DATA))
    assert get(url, Range="bytes=100-", **{"If-Range": 'W/"v1"'}).status_code == 200


def test_a_range_past_the_end_gets_416(server: LoopbackServer) -> None:
    url = server.route("/f", Resource(DATA))
    response = get(url, Range=f"bytes={len(DATA)}-")
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(DATA)}"


def test_ranges_false_ignores_range_like_http_server(server: LoopbackServer) -> None:
    url = server.route("/f", Resource(DATA, ranges=False))
    response = get(url, Range="bytes=100-")
    assert response.status_code == 200 and response.content == DATA


def test_ranges_of_a_gzip_resource_count_encoded_bytes(server: LoopbackServer) -> None:
    url = server.route("/f", Resource(DATA, content_encoding="gzip"))
    encoded = gzip.compress(DATA, mtime=0)
    response = requests.get(url, headers={"Range": "bytes=10-"}, timeout=TIMEOUT, stream=True)
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Range"] == f"bytes 10-{len(encoded) - 1}/{len(encoded)}"
    assert response.raw.read(decode_content=False) == encoded[10:]


def test_update_moves_both_validators_on(server: LoopbackServer) -> None:
    resource = Resource(DATA)
    url = server.route("/f", resource)
    old_date = resource.last_modified or ""
    resource.update(b"new")
    response = get(url, **{"If-None-Match": '"v1"'})
    assert (response.status_code, response.content) == (200, b"new")
    assert get(url, **{"If-Modified-Since": old_date}).status_code == 200


def test_faulty_answers_the_first_requests_with_faults_then_normally(server: LoopbackServer) -> None:
    fault = srv.status(503, headers={"Retry-After": "0"})
    url = server.route("/f", srv.faulty([fault, fault], Resource(DATA)))
    codes = [get(url).status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    assert server.statuses["/f"] == [503, 503, 200]


def test_cut_after_cuts_the_first_bodies_then_sends_whole_ones(server: LoopbackServer) -> None:
    url = server.route("/f", Resource(DATA, cut_after=1000, cuts=1))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(url)
    assert server.bytes_sent["/f"] == 1000
    assert get(url).content == DATA


def test_a_cut_206_counts_from_the_start_of_the_range(server: LoopbackServer) -> None:
    url = server.route("/f", Resource(DATA, cut_after=100, cuts=1))
    response = requests.get(url, headers={"Range": "bytes=5000-"}, timeout=TIMEOUT, stream=True)
    assert response.status_code == 206
    assert response.raw.read(200, decode_content=False) == DATA[5000:5100]


def test_bytes_sent_counts_body_bytes_only(server: LoopbackServer) -> None:
    url = server.route("/f", Resource(DATA))
    get(url, Range="bytes=10000-")
    get(url, **{"If-None-Match": '"v1"'})
    assert server.wait_idle()  # the client can have the whole body before the handler counts its last write
    assert server.bytes_sent["/f"] == len(DATA) - 10000
    assert server.statuses["/f"] == [206, 304]


def test_headers_seen_keeps_each_requests_headers_in_order(server: LoopbackServer) -> None:
    url = server.route("/f", Resource(DATA))
    get(url, **{"X-Probe": "1"})
    get(url, **{"X-Probe": "2"})
    assert [h["X-Probe"] for h in server.headers_seen["/f"]] == ["1", "2"]


def test_rate_paces_the_body(server: LoopbackServer) -> None:
    url = server.route("/f", Resource(DATA, rate=50_000))  # 10 KiB: about 0.2 s
    started = time.monotonic()
    assert get(url).content == DATA
    assert time.monotonic() - started >= 0.15  # a busy machine is slower, never faster


def test_rate_paces_a_resumed_range_too(server: LoopbackServer) -> None:
    url = server.route("/f", Resource(DATA, rate=50_000))
    started = time.monotonic()
    assert get(url, Range="bytes=5120-").content == DATA[5120:]  # 5 KiB: about 0.1 s
    assert time.monotonic() - started >= 0.07


def test_stopping_the_server_does_not_wait_for_a_paced_body() -> None:
    loopback = LoopbackServer().start()
    url = loopback.route("/slow", Resource(DATA, rate=100))  # would take 100 s
    reader = threading.Thread(target=lambda: requests.get(url, timeout=TIMEOUT, stream=True).raw.read(10), daemon=True)
    reader.start()
    reader.join(TIMEOUT)
    started = time.monotonic()
    loopback.stop()
    assert time.monotonic() - started < 2


# -- abusive servers -------------------------------------------------------------


def stream(url: str) -> requests.Response:
    return requests.get(url, timeout=TIMEOUT, stream=True)


def idle(loopback: LoopbackServer) -> bool:
    """Whether every handler of *loopback* has returned, waiting up to 2 s."""
    for _ in range(200):
        if loopback.in_flight == 0:
            return True
        time.sleep(0.01)
    return False


def test_trickle_claims_the_total_and_sends_a_piece_every_interval(server: LoopbackServer) -> None:
    url = server.route("/t", srv.trickle(100, every=0.1, piece=2))
    started = time.monotonic()
    with stream(url) as response:
        assert response.headers["Content-Length"] == "100"
        assert response.raw.read(6) == bytes(6)  # pieces at 0, 0.1 and 0.2 s
        assert time.monotonic() - started >= 0.15
    assert server.wait_for_hangups("/t")


def test_trickle_without_length_is_close_delimited_and_ends_with_the_total(server: LoopbackServer) -> None:
    url = server.route("/t", srv.trickle(10, every=0.01, piece=3, length=False))
    response = get(url)
    assert response.content == bytes(10) and "Content-Length" not in response.headers
    assert server.bytes_sent["/t"] == 10 and server.hangups["/t"] == 0


def test_a_client_hanging_up_mid_trickle_is_seen_before_the_next_piece(server: LoopbackServer) -> None:
    url = server.route("/t", srv.trickle(100, every=5))
    with stream(url) as response:
        assert response.raw.read(1) == b"\0"
    assert server.wait_for_hangups("/t", timeout=2)  # the next piece was due in 5 s
    assert server.bytes_sent["/t"] == 1


def test_endless_streams_without_a_length_until_the_client_hangs_up(server: LoopbackServer) -> None:
    url = server.route("/e", srv.endless())
    with stream(url) as response:
        assert "Content-Length" not in response.headers
        assert len(response.raw.read(4 << 20)) == 4 << 20
    assert server.wait_for_hangups("/e")
    assert server.bytes_sent["/e"] >= 4 << 20


def test_endless_with_a_rate_is_paced(server: LoopbackServer) -> None:
    url = server.route("/e", srv.endless(rate=20_000))  # pieces of 400 bytes, 50 a second
    started = time.monotonic()
    with stream(url) as response:
        assert len(response.raw.read(4000)) == 4000  # about 0.2 s
    assert time.monotonic() - started >= 0.15
    assert server.wait_for_hangups("/e")


def test_a_gzip_bomb_decodes_to_zeros_a_thousand_times_its_length(server: LoopbackServer) -> None:
    decoded = (3 << 20) + 17  # three whole chunks and a remainder
    response = get(server.route("/b", srv.gzip_bomb(decoded)))
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.content == bytes(decoded)  # zlib checks the CRC and length of the trailer
    sent = int(response.headers["Content-Length"])
    assert server.wait_idle()  # the client can have the whole body before the handler counts its last write
    assert server.bytes_sent["/b"] == sent and decoded / sent > 900


def test_a_huge_gzip_bomb_costs_only_what_the_client_reads(server: LoopbackServer) -> None:
    url = server.route("/b", srv.gzip_bomb(1 << 40))  # 1 TiB decoded: ready at once, never built
    with stream(url) as response:
        assert int(response.headers["Content-Length"]) > 1 << 30
        # urllib3 reads this many encoded bytes: a mebibyte decoded.
        assert next(response.iter_content(1024)) == bytes(1024)
    assert server.wait_for_hangups("/b")
    assert server.bytes_sent["/b"] < 8 << 20  # what the socket buffers held, of 1 GiB


def test_a_close_delimited_gzip_bomb_decodes_whole(server: LoopbackServer) -> None:
    response = get(server.route("/b", srv.gzip_bomb(5000, chunk=1000, length=False)))
    assert "Content-Length" not in response.headers and response.content == bytes(5000)


def test_zip_ratio_text_is_english_like_text_at_about_four_to_one(server: LoopbackServer) -> None:
    size = 300_000
    response = get(server.route("/r", srv.zip_ratio_text(size)))
    assert response.content == srv.ratio_text(size) and response.content.startswith(b"The")
    assert 3 < size / int(response.headers["Content-Length"]) < 5


def test_huge_length_counts_a_client_that_hangs_up_without_draining(server: LoopbackServer) -> None:
    url = server.route("/h", srv.huge_length(10 << 40, send=100))
    with stream(url) as response:
        assert response.headers["Content-Length"] == str(10 << 40)
        assert response.raw.read(100) == bytes(100)
    assert server.wait_for_hangups("/h", timeout=2)
    assert server.bytes_sent["/h"] == 100


def test_stopping_the_server_ends_an_abusive_answer_at_once() -> None:
    loopback = LoopbackServer().start()
    url = loopback.route("/h", srv.huge_length(10 << 40))
    with stream(url):
        loopback.stop()
        assert idle(loopback) and loopback.hangups["/h"] == 0


def test_an_abusive_answer_cuts_its_body_after_max_stall_s(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(srv, "MAX_STALL_S", 0.3)
    url = server.route("/t", srv.trickle(1000, every=0.01))  # would take 10 s
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(url)
    assert 0 < server.bytes_sent["/t"] < 1000 and server.hangups["/t"] == 0


def test_an_abusive_answer_gives_up_on_a_client_that_stops_reading(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(srv, "MAX_STALL_S", 0.3)
    url = server.route("/e", srv.endless())
    with stream(url):  # reads the head only, so the server's writes block once the buffers are full
        assert idle(server) and server.hangups["/e"] == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: srv.trickle(10, every=1, piece=0),
        lambda: srv.endless(rate=0),
        lambda: srv.gzip_bomb(-1),
        lambda: srv.huge_length(10, send=11),
    ],
)
def test_abusive_handlers_refuse_impossible_arguments(make: Callable[[], srv.Handler]) -> None:
    with pytest.raises(ValueError):
        make()


# -- hosts, the request log and 429s ---------------------------------------------


def test_the_default_host_is_127_0_0_1(server: LoopbackServer) -> None:
    assert server.base.startswith("http://127.0.0.1:")


def test_servers_on_three_loopback_addresses_are_three_hosts_each_seeing_only_its_own_requests() -> None:
    servers = [LoopbackServer(f"127.0.0.{n}").start() for n in (1, 2, 3)]
    try:
        for index, loopback in enumerate(servers):
            url = loopback.route("/f", srv.body(b"x"))
            for _ in range(index + 1):
                assert get(url).content == b"x"
        assert [loopback.requests["/f"] for loopback in servers] == [1, 2, 3]
        assert [{hit.host for hit in loopback.log} for loopback in servers] == [
            {loopback.base.removeprefix("http://")} for loopback in servers
        ]
    finally:
        for loopback in servers:
            loopback.stop()


def test_the_log_records_each_requests_path_host_and_times_in_order(server: LoopbackServer) -> None:
    server.route("/a", srv.body(b"a"))
    server.route("/b", srv.body(b"b", delay=0.1))
    before = time.monotonic()
    get(server.url("/a"))
    get(server.url("/b?q=1"))
    assert idle(server)  # a client has the whole answer a moment before its handler returns
    assert [hit.path for hit in server.log] == ["/a", "/b"]
    assert {hit.host for hit in server.log} == {server.base.removeprefix("http://")}
    first, second = server.log
    assert first.finished is not None and second.finished is not None
    assert before <= first.started <= first.finished <= second.started
    assert second.finished - second.started >= 0.08  # the handler's delay: finished is when it returned


def test_a_request_in_flight_has_no_finish_time_yet(server: LoopbackServer) -> None:
    url = server.route("/slow", srv.trickle(2, every=5))  # the second byte is due in 5 s
    with stream(url) as response:
        assert response.raw.read(1) == b"\0"
        assert [hit.finished for hit in server.log] == [None]
    assert server.wait_for_hangups("/slow") and idle(server)
    assert server.log[0].finished is not None


def test_the_log_keeps_only_the_latest_log_cap_requests(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(srv, "LOG_CAP", 3)
    server.route("/f", srv.body(b""))
    for index in range(5):
        get(server.url(f"/f?{index}"))
    assert len(server.log) == 3 and server.requests["/f"] == 5


def test_max_in_any_window_counts_the_most_starts_within_that_many_seconds(server: LoopbackServer) -> None:
    server.log.extend(srv.Hit(path="/f", started=t, finished=t, host="h") for t in (10.0, 10.5, 11.0, 11.6, 13.0))
    assert server.max_in_any_window(1.0) == 3  # 10.0, 10.5 and 11.0: both ends count
    assert server.max_in_any_window(0.4) == 1
    assert server.max_in_any_window(10) == 5


def test_max_in_any_window_of_an_empty_log_is_zero(server: LoopbackServer) -> None:
    assert server.max_in_any_window(1.0) == 0


def test_too_many_answers_429_with_the_retry_after_given(server: LoopbackServer) -> None:
    response = get(server.route("/f", srv.too_many("2")))
    assert response.status_code == 429 and response.headers["Retry-After"] == "2" and response.content
    assert server.statuses["/f"] == [429]


def test_too_many_without_retry_after_sends_no_such_header(server: LoopbackServer) -> None:
    response = get(server.route("/f", srv.too_many(None)))
    assert response.status_code == 429 and "Retry-After" not in response.headers


def test_too_many_can_answer_503(server: LoopbackServer) -> None:
    response = get(server.route("/f", srv.too_many("Wed, 21 Oct 2015 07:28:00 GMT", status=503)))
    assert response.status_code == 503 and response.headers["Retry-After"] == "Wed, 21 Oct 2015 07:28:00 GMT"
