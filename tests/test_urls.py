"""fetcher._urls: one URL, whether it can be downloaded (check_url) and its host (host_key)."""

from __future__ import annotations

import pytest

from fetcher._urls import MAX_URL_LENGTH, check_url, host_key


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
