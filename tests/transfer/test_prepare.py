"""The plain request's preparation: what requests' own PreparedRequest.prepare makes (requests is the oracle)."""

from __future__ import annotations

import hypothesis
import pytest
import requests
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from fetcher.transfer.prepare import NORMAL_URL, PlainPreparer, is_normal

SESSION_HEADERS = CaseInsensitiveDict(
    {"User-Agent": "fetcher/0.2", "Accept-Encoding": "gzip, deflate", "Accept": "*/*", "Connection": "keep-alive"}
)

# Every character class a URL's parts can hold, with the awkward ones over-represented.
_URL_CHARS = st.sampled_from(list("aZ09-._~!$&'()*+,;=:@/?#%[] \"<>\\^`{|}\t\u00e9\u4e2d") + ["%41", "%2F", "%zz"])
_HOSTS = st.one_of(
    st.from_regex(r"[a-zA-Z0-9][-a-zA-Z0-9.]{0,20}", fullmatch=True),
    st.sampled_from(["127.0.0.1", "files.example", "a..b", "a.", "x-", "[::1]", "\u00e9.example", "*.x", ".x"]),
)
_PORTS = st.one_of(st.just(""), st.integers(0, 99999).map(lambda port: f":{port}"), st.sampled_from([":", ":080"]))
_URLS = st.builds(
    lambda scheme, host, port, path, query: f"{scheme}://{host}{port}{path}{query}",
    st.sampled_from(["http", "https", "HTTP", "Https"]),
    _HOSTS,
    _PORTS,
    st.lists(_URL_CHARS, max_size=12).map(lambda chars: "".join(chars)),
    st.one_of(st.just(""), st.lists(_URL_CHARS, max_size=6).map(lambda chars: "?" + "".join(chars))),
)


# URLs the pattern admits, as hypothesis reads the pattern (it has no other notion of "normal").
_ADMITTED = st.from_regex(NORMAL_URL, fullmatch=True)


def prepared_by_requests(url: str, headers: dict[str, str | None] | None = None) -> requests.PreparedRequest:
    session = requests.Session()
    session.headers = SESSION_HEADERS.copy()
    request = requests.Request("GET", url, headers=headers)  # type: ignore[arg-type]  # None removes a header
    return session.prepare_request(request)


@hypothesis.settings(max_examples=1500, deadline=None, database=None)
@hypothesis.given(st.one_of(_ADMITTED, _URLS))
def test_a_url_taken_as_it_is_is_one_requests_would_leave_unchanged(url: str) -> None:
    if is_normal(url):
        assert prepared_by_requests(url).url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/rfc/rfc9110.txt",
        "https://www.rfc-editor.org/rfc/rfc9110.txt",
        "https://files.example/a/b-c_d~e/f.tar.gz?version=2&arch=x86_64",
        "http://files.example/",
    ],
)
def test_a_url_in_requests_form_is_taken_as_it_is(url: str) -> None:
    assert NORMAL_URL.fullmatch(url) and is_normal(url)
    assert prepared_by_requests(url).url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://files.example",
        "HTTP://files.example/f",
        "http://Files.example/f",
        "http://files.example/a/../f",
        "http://files.example/./f",
        "http://files.example/a%41",
        "http://files.example/a b",
        "http://user:pw@files.example/f",
        "http://files.example/f#part",
        "http://files.example/f?",
        "http://files.example:080/f",
        "http://files.example:65536/f",
        "http://r\u00e9sum\u00e9.example/f",
    ],
)
def test_a_url_not_in_requests_form_is_prepared_by_requests(url: str) -> None:
    assert not is_normal(url)


@pytest.mark.parametrize(
    "url", ["http://files.example/f", "https://Files.Example/a b/r\u00e9sum\u00e9.pdf?q=1&r=%41#part"]
)
@pytest.mark.parametrize(
    "headers",
    [None, {"If-None-Match": '"abc"', "Range": "bytes=10-"}, {"accept-encoding": None}, {"accept": "text/plain"}],
)
def test_a_request_is_prepared_as_requests_prepares_it(url: str, headers: dict[str, str | None] | None) -> None:
    ours = PlainPreparer().prepare("get", url, SESSION_HEADERS, headers)
    theirs = prepared_by_requests(url, headers)
    assert (ours.method, ours.url, ours.body, ours.hooks) == (theirs.method, theirs.url, theirs.body, theirs.hooks)
    assert list(ours.headers.items()) == list(theirs.headers.items())


def test_a_change_to_the_session_headers_is_seen_by_the_next_request() -> None:
    preparer, session_headers = PlainPreparer(), SESSION_HEADERS.copy()
    preparer.prepare("GET", "http://files.example/f", session_headers, None)
    session_headers["User-Agent"] = "other/1"
    assert preparer.prepare("GET", "http://files.example/f", session_headers, None).headers["User-Agent"] == "other/1"


def test_a_request_cannot_change_the_remembered_session_headers() -> None:
    preparer = PlainPreparer()
    preparer.prepare("GET", "http://files.example/f", SESSION_HEADERS, None).headers["X-Once"] = "1"
    assert "X-Once" not in preparer.prepare("GET", "http://files.example/f", SESSION_HEADERS, None).headers


@pytest.mark.parametrize("header", [("X-Bad", "a\r\nInjected: 1"), ("X-Bad", " leading space")])
def test_an_invalid_header_is_refused_as_requests_refuses_it(header: tuple[str, str]) -> None:
    with pytest.raises(requests.exceptions.InvalidHeader):
        prepared_by_requests("http://files.example/f", dict([header]))
    with pytest.raises(requests.exceptions.InvalidHeader):
        PlainPreparer().prepare("GET", "http://files.example/f", SESSION_HEADERS, dict([header]))
