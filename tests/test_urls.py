"""fetcher._urls: reading the URL list lazily, counting it, and check_url()."""

from __future__ import annotations

import gc
import io
import sys
from pathlib import Path

import pytest

from fetcher._errors import URLListError
from fetcher._urls import MAX_URL_LENGTH, Entry, check_url, count_entries, open_url_list


def _write(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "urls.txt"
    path.write_bytes(data)
    return str(path)


def _read(source: str) -> list[tuple[str, int]]:
    return [(entry.url, entry.line) for entry in open_url_list(source)]


def test_blank_lines_and_comments_are_skipped_and_lines_keep_their_numbers(tmp_path: Path) -> None:
    source = _write(tmp_path, b"# header\n\nhttp://a.example/\n   \n  # indented comment\n\t\nhttp://b.example/\n")
    assert _read(source) == [("http://a.example/", 3), ("http://b.example/", 7)]


def test_surrounding_white_space_is_stripped(tmp_path: Path) -> None:
    source = _write(tmp_path, b"  \thttp://a.example/x  \t\n")
    assert _read(source) == [("http://a.example/x", 1)]


def test_a_utf8_bom_is_not_part_of_the_first_url(tmp_path: Path) -> None:
    source = _write(tmp_path, b"\xef\xbb\xbfhttp://a.example/\n")
    assert _read(source) == [("http://a.example/", 1)]


def test_a_comment_after_a_utf8_bom_is_skipped(tmp_path: Path) -> None:
    source = _write(tmp_path, b"\xef\xbb\xbf# comment\nhttp://a.example/\n")
    assert _read(source) == [("http://a.example/", 2)]


def test_crlf_line_endings_are_handled(tmp_path: Path) -> None:
    source = _write(tmp_path, b"http://a.example/\r\n\r\nhttp://b.example/\r\n")
    assert _read(source) == [("http://a.example/", 1), ("http://b.example/", 3)]


def test_invalid_utf8_does_not_stop_the_list(tmp_path: Path) -> None:
    source = _write(tmp_path, b"http://a.example/\xff\xfe\nhttp://b.example/\n")
    entries = _read(source)
    assert len(entries) == 2
    assert entries[0][0].startswith("http://a.example/")
    assert entries[1] == ("http://b.example/", 2)


def test_the_list_is_read_lazily(tmp_path: Path) -> None:
    source = _write(tmp_path, b"".join(b"http://example.com/%d\n" % i for i in range(100_000)))
    entries = open_url_list(source)
    try:
        assert next(entries) == Entry(url="http://example.com/0", line=1)
    finally:
        entries.close()  # type: ignore[attr-defined]


def test_a_missing_list_raises_url_list_error_naming_the_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.txt")
    with pytest.raises(URLListError, match="nope.txt"):
        open_url_list(missing)


def test_a_directory_given_as_the_list_raises_url_list_error_naming_the_path(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(URLListError, match="a-folder"):
        open_url_list(str(folder))


def test_dash_reads_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b"\xef\xbb\xbf# list\nhttp://a.example/\n\nhttp://b.example/\n"))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert _read("-") == [("http://a.example/", 2), ("http://b.example/", 4)]


def test_reading_standard_input_leaves_it_open(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.BytesIO(b"http://a.example/\n")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(buffer))
    assert _read("-") == [("http://a.example/", 1)]
    gc.collect()
    assert not buffer.closed


def test_count_entries_counts_url_lines(tmp_path: Path) -> None:
    source = _write(tmp_path, b"# c\nhttp://a.example/\n\n  \nhttp://a.example/\n  # c\nhttp://b.example/\n")
    assert count_entries(source) == 3


def test_count_entries_is_none_for_standard_input() -> None:
    assert count_entries("-") is None


def test_count_entries_is_none_for_a_missing_file(tmp_path: Path) -> None:
    assert count_entries(str(tmp_path / "nope.txt")) is None


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"http://a.example/\r\n\r\nhttp://b.example/\r\n", id="crlf"),
        pytest.param(b"http://a.example/\xff\n# \xfe\n", id="invalid-utf8"),
        pytest.param(b"http://a.example/", id="no-final-newline"),
        pytest.param(
            b"\xef\xbb\xbf# comment\nhttp://a.example/\n",
            id="bom-then-comment",
        ),
        pytest.param(
            b"http://a.example/\rhttp://b.example/\r",
            id="cr-only",
        ),
    ],
)
def test_count_entries_agrees_with_open_url_list(tmp_path: Path, data: bytes) -> None:
    source = _write(tmp_path, data)
    assert count_entries(source) == len(_read(source))


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
