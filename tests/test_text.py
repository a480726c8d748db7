"""fetcher._text: redact() and redact_message() hide credentials, escape() makes text safe for a terminal."""

from __future__ import annotations

import pytest

from fetcher._text import escape, redact, redact_message, shown


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://user:secret@example.com/x", "http://example.com/x"),
        ("https://user:secret@example.com:8443/a?q=1#f", "https://example.com:8443/a?q=1#f"),
        ("https://user:secret@example.com", "https://example.com"),
        ("HTTPS://user:secret@example.com/", "HTTPS://example.com/"),
        ("https://user@example.com/x", "https://example.com/x"),
    ],
)
def test_redact_removes_userinfo_from_http_urls(url: str, expected: str) -> None:
    assert redact(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://user:p@ss@example.com/x",
        "https://user:pa:ss@example.com/x",
        "https://user:p@s:s@w@example.com/x",
    ],
)
def test_redact_removes_a_password_containing_at_or_colon(url: str) -> None:
    assert redact(url) == "https://example.com/x"


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/",
        "https://example.com:8080/a/b.txt?x=1",
        "https://example.com/users/a@b",
        "https://example.com/?mail=a@b.c",
        "https://example.com/#x@y",
        "not a url",
        "",
    ],
)
def test_redact_leaves_text_without_credentials_unchanged(url: str) -> None:
    assert redact(url) == url


def test_redact_masks_the_part_before_at_in_schemeless_junk() -> None:
    redacted = redact("user:secret@example.com/x")
    assert "secret" not in redacted
    assert redacted == "***@example.com/x"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Max retries exceeded with url: 'http://user:s3cret@example.com/x' (refused)",
            "Max retries exceeded with url: 'http://example.com/x' (refused)",
        ),
        ("Failed to parse: http://user:s3/cret@example.com/x", "Failed to parse: http://@example.com/x"),
        # urllib quotes what stands where the port should: here, the password up to its raw "/".
        ("Port could not be cast to integer value as 's3'", "port is not a number"),
        ("netloc 'user:s3\uff03' contains invalid characters under NFKC normalization",
         "host has characters that change under NFKC normalization"),
        ("Invalid percent-escape sequence: 's3'", "invalid percent-escape sequence"),
    ],
)  # fmt: skip
def test_redact_message_hides_credentials_in_a_librarys_words(message: str, expected: str) -> None:
    assert redact_message(message) == expected


def test_redact_message_leaves_other_words_as_they_are() -> None:
    assert redact_message("Port out of range 0-65535") == "Port out of range 0-65535"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\x1b[2J", "\\x1b[2J"),
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
        ("a\rb", "a\\x0db"),
        ("a\nb", "a\\x0ab"),
        ("a\0b", "a\\x00b"),
        ("a\x7fb", "a\\x7fb"),
        ("a\x9b31m", "a\\x9b31m"),
        ("evil\u202etxt.exe", "evil\\u202etxt.exe"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("join\u200dme", "join\\u200dme"),
        ("bom\ufeff", "bom\\ufeff"),
        ("tag\U000e0041", "tag\\U000e0041"),
    ],
)
def test_escape_writes_unprintable_characters_as_visible_escapes(text: str, expected: str) -> None:
    assert escape(text) == expected


@pytest.mark.parametrize("text", ["plain ascii", "café", "日本", "emoji 🙂", "http://example.com/a?b=c#d", ""])
def test_escape_leaves_printable_text_unchanged(text: str) -> None:
    assert escape(text) == text


def test_escape_result_is_always_printable() -> None:
    hostile = "".join(chr(code) for code in range(0x00, 0x200)) + "\u200b\u200e\u202a\u202e\u2028\u2029\ufeff"
    assert escape(hostile).isprintable()


def test_shown_redacts_then_escapes() -> None:
    assert shown("https://user:secret@example.com/a\x1b[2Jb") == "https://example.com/a\\x1b[2Jb"
