"""fetcher._urls: one URL, whether it can be downloaded (check_url), its host (host_key), its normal form."""

from __future__ import annotations

import hypothesis
import pytest
import requests
from hypothesis import strategies as st

from fetcher._urls import MAX_URL_LENGTH, _check_url_fully, check_url, host_key, normalize


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/",
        "https://example.com/a/b.txt?x=1#f",
        "HTTPS://EXAMPLE.COM/x",
        "HtTp://example.com/x",
        "https://example.com:8443/x",
        "http://127.0.0.1:8080/x",
        "http://[::1]/x",
        "https://bücher.example/x",
        "https://xn--bcher-kva.example/x",
        "https://user:secret@example.com/x",
    ],
)
def test_check_url_accepts_http_and_https_urls(url: str) -> None:
    assert check_url(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "example.com/x",
        "ftp://example.com/x",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "data:text/plain,hi",
        "mailto:a@b",
        "http://",
        "http:///path",
        "http://:80/",
        "http://host:99999/",
        "http://host:port/",
        "http://exa mple.com/",
        "http://example.com/\x1b[2J",
        "http://example.com/a\nb",
        "http://example.com/\u202e",
        "http://example.com/" + "a" * MAX_URL_LENGTH,
        "http:/example.com/",
        "not a url",
        "%%%",
        "",
    ],
)
def test_check_url_rejects_what_cannot_be_downloaded_with_a_reason(url: str) -> None:
    reason = check_url(url)
    assert isinstance(reason, str)
    assert reason.strip()
    assert reason.isprintable()


@pytest.mark.parametrize("url", ["http://user:s3cret/x@example.com/", "http://user:s3cret#x@example.com/"])
def test_check_url_gives_no_piece_of_a_password_with_a_raw_slash_or_hash(url: str) -> None:
    assert check_url(url) == "not a valid URL (port is not a number)"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com", "HTTPS://Example.COM:8443/a?b#c", "http://h:0/", "http://h:65535/", "http://h:65536/",
        "http://h:99999/", "http://h:000080/", "http://h:/x", "http://h:8a/x", "http://*.h/x", "http://.h/x",
        "http://h*/x", "http://user:pw@h/x", "http://@h/x", "http://[::1]:80/x", "http://[bad/x", "http:///x",
        "http://h x/", "http://h/x y", "http://h/\tx", "http://h/\x7fx", "http://h\u00e9/x", "http://h/\u00e9",
        "ftp://h/x", "http:/h/x", "http//h/x", "http://h\\b/x", "http://h%20b/x", "http://" + "a" * 8200,
    ],
)  # fmt: skip
def test_the_quick_check_agrees_with_the_full_one(url: str) -> None:
    assert check_url(url) == _check_url_fully(url)


@hypothesis.settings(max_examples=300, deadline=None, database=None)
@hypothesis.given(
    st.tuples(
        st.sampled_from(["http://", "HTTPS://", "http:/", "ftp://", ""]),
        st.text(alphabet="aZ09:/?#@[]%.*-_ \t\x7f\u00e9", max_size=16),
    ).map("".join)
)
def test_the_quick_check_agrees_with_the_full_one_on_generated_urls(url: str) -> None:
    assert check_url(url) == _check_url_fully(url)


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://Example.ORG/a", "example.org:80"),
        ("https://example.org/a", "example.org:443"),
        ("https://example.org:443/a", "example.org:443"),
        ("http://example.org:8080/a", "example.org:8080"),
        ("http://user:secret@127.0.0.2:81/", "127.0.0.2:81"),
    ],
)
def test_host_key_is_the_host_name_and_port(url: str, key: str) -> None:
    assert host_key(url) == key


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("HTTP://Example.COM/A.txt", "http://example.com/A.txt"),
        ("http://bücher.test/q.txt", "http://xn--bcher-kva.test/q.txt"),
        ("http://BÜCHER.test/q.txt", "http://xn--bcher-kva.test/q.txt"),
        ("http://XN--BCHER-KVA.test/q.txt", "http://xn--bcher-kva.test/q.txt"),
        ("http://faß.test/", "http://xn--fa-hia.test/"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:443/a", "http://example.com:443/a"),
        ("http://example.com:0080/a", "http://example.com/a"),
        ("http://example.com:/a", "http://example.com/a"),
        ("http://[::1]:80/a", "http://[::1]/a"),
        ("http://example.com/%7E%41%2d", "http://example.com/~A-"),
        ("http://example.com/%c3%bc%2f", "http://example.com/%C3%BC%2F"),
        ("http://example.com/ünïcode.txt", "http://example.com/%C3%BCn%C3%AFcode.txt"),
        ("http://example.com/a?q=ü&r=%7e", "http://example.com/a?q=%C3%BC&r=~"),
        ('http://example.com/a"b{c}', "http://example.com/a%22b%7Bc%7D"),
        ("http://example.com/100%", "http://example.com/100%25"),
        ("http://example.com/%zz%41", "http://example.com/%25zzA"),
        ("http://example.com", "http://example.com/"),
        ("http://example.com?q", "http://example.com/?q"),
        ("http://example.com/a?", "http://example.com/a"),
        ("http://example.com/a#part", "http://example.com/a"),
        ("http://example.com/a/./b/../c", "http://example.com/a/c"),
        ("http://example.com/a/b/..", "http://example.com/a/"),
        ("http://example.com/..", "http://example.com/"),
        ("http://example.com/a/%2E%2E/b", "http://example.com/b"),
        ("http://User:Pa%73s@Example.com/a", "http://User:Pass@example.com/a"),
        ("http://example.com/a;p=1/b+c", "http://example.com/a;p=1/b+c"),
    ],
)
def test_normalize_gives_the_normal_form(url: str, normal: str) -> None:
    assert check_url(url) is None
    assert normalize(url) == normal


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("http://bücher.test/q.txt", "http://xn--bcher-kva.test/q.txt"),
        ("http://example.com/ünïcode.txt", "http://example.com/%C3%BCn%C3%AFcode.txt"),
        ("http://example.com/ünïcode.txt", "http://example.com/%c3%bcn%c3%afcode.txt"),
        ("HTTPS://EXAMPLE.COM:443", "https://example.com/"),
        ("http://example.com/~user/", "http://example.com/%7Euser/"),
    ],
)
def test_the_issues_equivalent_urls_have_one_normal_form(one: str, other: str) -> None:
    assert normalize(one) == normalize(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("http://example.com/a", "https://example.com/a"),
        ("http://example.com/a", "http://example.com:8080/a"),
        ("http://example.com/A", "http://example.com/a"),
        ("http://example.com/a%2Fb", "http://example.com/a/b"),
        ("http://example.com/a?x=1&y=2", "http://example.com/a?y=2&x=1"),
        ("http://example.com/a/", "http://example.com/a"),
    ],
)
def test_urls_that_may_differ_keep_distinct_normal_forms(one: str, other: str) -> None:
    assert normalize(one) != normalize(other)


_HOSTS = st.sampled_from(
    ["example.com", "EXAMPLE.com", "bücher.test", "Bücher.Test", "xn--bcher-kva.test", "127.0.0.1", "[::1]", "faß.de"]
)
_PORTS = st.sampled_from(["", ":", ":80", ":443", ":8080", ":00080"])
_WELL_FORMED = ["a", "Z", "ü", "é", "%7e", "%7E", "%41", "%c3%bc", "%2F", "/", ".", "..", "~", "+", ";", "=", "&",
                '"', "{", "^", "|", "\\", "'", "@", ":", "!", "$"]  # fmt: skip


def _urls(pieces: list[str]) -> st.SearchStrategy[str]:
    part = st.lists(st.sampled_from(pieces), max_size=12).map("".join)
    return st.builds(
        "{}://{}{}{}{}{}{}".format,
        st.sampled_from(["http", "https", "HTTP", "Https"]),
        st.sampled_from(["", "user:pw@", "User:P%41ss@"]),
        _HOSTS,
        _PORTS,
        st.one_of(st.just(""), part.map(lambda p: "/" + p)),
        st.one_of(st.just(""), part.map(lambda p: "?" + p)),
        st.one_of(st.just(""), part.map(lambda p: "#" + p)),
    )


#: Malformed escapes too ("%" alone, "%zz"): requests sends those its own way, but normal forms stay normal.
_ANY_URLS = _urls([*_WELL_FORMED, "%", "%zz", "%%41"])
_URLS = _urls(_WELL_FORMED)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(_ANY_URLS)
def test_normalize_is_idempotent_and_total_on_valid_urls(url: str) -> None:
    hypothesis.assume(check_url(url) is None)
    normal = normalize(url)
    assert normalize(normal) == normal
    assert check_url(normal) is None


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(_URLS)
def test_the_url_requests_sends_has_the_same_normal_form(url: str) -> None:
    hypothesis.assume(check_url(url) is None)
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)
    assert prepared.url is not None
    assert normalize(prepared.url) == normalize(url)
