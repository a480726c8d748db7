"""The loopback test server's own behaviour: validators, ranges, faults and counters, seen through requests."""

from __future__ import annotations

import gzip
import threading
import time

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
