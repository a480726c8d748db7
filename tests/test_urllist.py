"""fetcher._urllist: reading the URL list lazily (with aria2-style option lines), Entry, counting."""

from __future__ import annotations

import bz2
import dataclasses
import gc
import gzip
import io
import lzma
import os
import pty
import random
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
from hypothesis import strategies as st

from fetcher._errors import ConfigError, URLListError
from fetcher._urllist import (
    ORPHAN_OPTION,
    Entry,
    count_entries,
    count_lines,
    open_url_list,
    parse_url_list,
    reopen_url_list,
)
from fetcher.transfer.checksum import Checksum

SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


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
        entries.close()


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


@hypothesis.settings(max_examples=300, deadline=None, database=None)
@hypothesis.given(
    st.lists(
        st.sampled_from([
            "http://a.example/x\n", "\ufeffhttp://b.example/\n", "# note\n", "\n", "   \n", "  out=f.txt\n",
            "\tchecksum=sha-256=00\n", "  bogus=1\n", "  not an option\n", " # indented note\n", "out=f\n",
            "  =x\n", "junk line\n", "\ufeff  out=a\n",
        ]),  # fmt: skip
        max_size=12,
    )
)
def test_counting_the_lines_gives_as_many_entries_as_parsing_them(lines: list[str]) -> None:
    assert count_lines(lines) == len(list(parse_url_list(lines)))


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


def _parse(text: str) -> list[Entry]:
    return list(parse_url_list(text.splitlines(keepends=True)))


def test_option_lines_give_their_url_a_checksum_and_a_name() -> None:
    entries = _parse(f"http://a.example/x\n  checksum=sha-256={SHA256_ABC}\n  out=x.bin\nhttp://b.example/\n")
    assert entries == [
        Entry(url="http://a.example/x", line=1, checksum=Checksum.parse(f"sha-256={SHA256_ABC}"), out="x.bin"),
        Entry(url="http://b.example/", line=4),
    ]


def test_an_option_line_may_be_indented_with_a_tab() -> None:
    assert _parse("http://a.example/\n\tout=a.txt\n")[0].out == "a.txt"


def test_blank_and_comment_lines_may_come_between_a_url_and_its_options() -> None:
    entries = _parse("http://a.example/\n\n# about a\n  # indented comment\n   \n  out=a.txt\n")
    assert entries == [Entry(url="http://a.example/", line=1, out="a.txt")]


def test_white_space_around_the_equals_sign_is_allowed_as_in_aria2() -> None:
    entries = _parse(f"http://a.example/\n  checksum = SHA-256={SHA256_ABC.upper()}\n  out =  a b.txt  \n")
    assert entries[0].checksum == Checksum(algorithm="sha-256", hexdigest=SHA256_ABC)
    assert entries[0].out == "a b.txt"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("  https://x.example/a?b=c\n", id="first-line"),
        pytest.param("http://a.example/\n  https://x.example/a?b=c\n", id="after-a-url"),
    ],
)
def test_an_indented_url_is_still_a_url(text: str) -> None:
    entries = _parse(text)
    assert entries[-1] == Entry(url="https://x.example/a?b=c", line=len(entries))


def test_an_indented_line_that_is_not_name_equals_value_is_read_as_before() -> None:
    entries = _parse("http://a.example/\n  not an option\n")
    assert entries == [Entry(url="http://a.example/", line=1), Entry(url="not an option", line=2)]


@pytest.mark.parametrize("option", ["foo=1", "OUT=a.txt", "dir=/tmp", "checksum-type=md5"])
def test_an_unknown_option_makes_its_url_invalid_and_says_which(option: str) -> None:
    name = option.partition("=")[0]
    entries = _parse(f"# list\nhttp://a.example/\n  out=a.txt\n\n  {option}\nhttp://b.example/\n")
    assert entries[0].url == "http://a.example/"
    assert entries[0].line == 2
    assert entries[0].problem == f"line 5: unknown option '{name}=' (fetcher knows checksum= and out=)"
    assert entries[1] == Entry(url="http://b.example/", line=6)


def test_a_huge_unknown_option_name_is_cut_short_in_the_problem() -> None:
    problem = _parse("http://a.example/\n  " + "a" * 100_000 + "=1\n")[0].problem
    assert problem is not None
    assert len(problem) < 200


def test_a_bad_checksum_makes_its_url_invalid_with_the_reason() -> None:
    entry = _parse(f"http://a.example/\n  checksum=sha-256={SHA256_ABC[:-1]}\n")[0]
    assert entry.problem == "line 2: bad checksum: sha-256 checksum must be 64 hex digits, not 63"
    assert entry.checksum is None


def test_an_empty_out_makes_its_url_invalid() -> None:
    assert _parse("http://a.example/\n  out=\n")[0].problem == "line 2: out= needs a file name"


def test_the_same_option_twice_makes_its_url_invalid() -> None:
    entry = _parse("http://a.example/\n  out=a.txt\n  out=b.txt\n")[0]
    assert entry.problem == "line 3: out= given twice (first on line 2)"


def test_only_the_first_problem_is_reported() -> None:
    entry = _parse("http://a.example/\n  foo=1\n  out=\n  bar=2\n")[0]
    assert entry.problem == "line 2: unknown option 'foo=' (fetcher knows checksum= and out=)"


def test_an_option_line_before_any_url_is_an_entry_of_its_own() -> None:
    entries = _parse("# list\n  out=a.txt\n\tfoo=1\nhttp://a.example/\n  out=b.txt\n")
    assert entries == [
        Entry(url="out=a.txt", line=2, problem=ORPHAN_OPTION),
        Entry(url="foo=1", line=3, problem=ORPHAN_OPTION),
        Entry(url="http://a.example/", line=4, out="b.txt"),
    ]


def test_options_work_with_crlf_line_endings(tmp_path: Path) -> None:
    source = _write(tmp_path, b"http://a.example/\r\n  out=a.txt\r\n\r\nhttp://b.example/\r\n")
    assert list(open_url_list(source)) == [
        Entry(url="http://a.example/", line=1, out="a.txt"),
        Entry(url="http://b.example/", line=4),
    ]


def test_options_work_after_a_utf8_bom(tmp_path: Path) -> None:
    source = _write(tmp_path, b"\xef\xbb\xbfhttp://a.example/\n  out=a.txt\n")
    assert list(open_url_list(source)) == [Entry(url="http://a.example/", line=1, out="a.txt")]


def test_an_option_line_right_after_a_utf8_bom_has_no_url_before_it(tmp_path: Path) -> None:
    source = _write(tmp_path, b"\xef\xbb\xbf  out=a.txt\nhttp://a.example/\n")
    assert list(open_url_list(source))[0] == Entry(url="out=a.txt", line=1, problem=ORPHAN_OPTION)


def test_parse_url_list_ignores_a_byte_order_mark_in_given_lines() -> None:
    assert _parse("\ufeffhttp://a.example/\n  out=a.txt\n") == [Entry(url="http://a.example/", line=1, out="a.txt")]


def test_standard_input_may_carry_options(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b"http://a.example/\n  out=a.txt\n"))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert list(open_url_list("-")) == [Entry(url="http://a.example/", line=1, out="a.txt")]


def test_count_entries_does_not_count_option_lines(tmp_path: Path) -> None:
    data = b"  out=orphan\nhttp://a.example/\n  out=a\n\n  checksum=md5=00\nhttp://b.example/\n  foo=1\n"
    source = _write(tmp_path, data)
    assert count_entries(source) == 3
    assert count_entries(source) == len(list(open_url_list(source)))


class _CountingLines:
    """Lines handed out one at a time, counting how many were taken."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.taken = 0

    def __iter__(self) -> Iterator[str]:
        for line in self.lines:
            self.taken += 1
            yield line


def test_the_first_entry_of_a_plain_list_takes_one_line_beyond_it() -> None:
    lines = _CountingLines([f"http://example.com/{i}\n" for i in range(1000)])
    entries = parse_url_list(lines)
    assert next(entries) == Entry(url="http://example.com/0", line=1)
    assert lines.taken == 2


def test_the_first_entry_with_options_takes_only_the_next_url_line_beyond_them() -> None:
    lines = _CountingLines(["http://a.example/\n", "  out=a\n", "\n", "http://b.example/\n", "http://c.example/\n"])
    entries = parse_url_list(lines)
    assert next(entries) == Entry(url="http://a.example/", line=1, out="a")
    assert lines.taken == 4


def test_an_orphan_option_line_is_handed_on_without_reading_further() -> None:
    lines = _CountingLines(["  out=a\n", "http://b.example/\n"])
    assert next(parse_url_list(lines)).problem == ORPHAN_OPTION
    assert lines.taken == 1


def test_entry_line_defaults_to_zero_and_options_to_none() -> None:
    entry = Entry(url="http://a.example/")
    assert (entry.line, entry.checksum, entry.out, entry.problem) == (0, None, None, None)


def test_entry_parses_a_checksum_given_as_text() -> None:
    entry = Entry(url="http://a.example/", checksum=f"SHA-256={SHA256_ABC.upper()}")
    assert entry.checksum == Checksum(algorithm="sha-256", hexdigest=SHA256_ABC)


def test_entry_can_be_copied_with_dataclasses_replace() -> None:
    entry = Entry(url="http://a.example/", checksum=f"sha-256={SHA256_ABC}", out="a.txt")
    assert dataclasses.replace(entry, line=7) == Entry(
        url="http://a.example/", line=7, checksum=f"sha-256={SHA256_ABC}", out="a.txt"
    )


def test_entry_rejects_a_bad_checksum_with_config_error() -> None:
    with pytest.raises(ConfigError, match="sha-256 checksum must be 64 hex digits"):
        Entry(url="http://a.example/", checksum="sha-256=abc")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        pytest.param({"out": ""}, "out", id="empty-out"),
        pytest.param({"out": "  "}, "out", id="blank-out"),
        pytest.param({"out": 3}, "out", id="out-not-text"),
        pytest.param({"line": -1}, "line", id="negative-line"),
        pytest.param({"line": True}, "line", id="bool-line"),
        pytest.param({"checksum": 5}, "checksum", id="checksum-not-text"),
        pytest.param({"problem": ""}, "problem", id="empty-problem"),
    ],
)
def test_entry_rejects_bad_fields_naming_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field} "):
        Entry(url="http://a.example/", **fields)  # type: ignore[arg-type]


def test_entry_rejects_a_url_that_is_not_text() -> None:
    with pytest.raises(ConfigError, match="^url "):
        Entry(url=b"http://a.example/")  # type: ignore[arg-type]


# -- a list that is not text ------------------------------------------------------------------

LINE = b"http://a.example/\n"


@pytest.mark.parametrize(
    ("data", "looks", "step"),
    [
        (gzip.compress(LINE), "gzip-compressed data", "decompress it first: gunzip -c {f} | fetcher -"),
        (bz2.compress(LINE), "bzip2-compressed data", "decompress it first: bunzip2 -c {f} | fetcher -"),
        (lzma.compress(LINE), "xz-compressed data", "decompress it first: xz -dc {f} | fetcher -"),
        (b"PK\x03\x04" + bytes(40), "a zip archive", "extract the list first: unzip -p {f} | fetcher -"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "a PDF document", "a URL list is plain text, one URL per line"),
        ("http://a.example/\n".encode("utf-16"), "UTF-16 text",
         "convert it first: iconv -f UTF-16 -t UTF-8 {f} | fetcher -"),
        ("http://a.example/\n".encode("utf-16-le"), "UTF-16 text",
         "convert it first: iconv -f UTF-16 -t UTF-8 {f} | fetcher -"),
        ("http://a.example/\n".encode("utf-32"), "UTF-32 text",
         "convert it first: iconv -f UTF-32 -t UTF-8 {f} | fetcher -"),
        (random.Random(7).randbytes(6000), "binary data", "a URL list is plain text, one URL per line"),
        ("http://пример.example/страница\n".encode("cp1251") * 50, "text in an encoding other than UTF-8",
         "convert it first: iconv -f ENCODING -t UTF-8 {f} | fetcher -"),
    ],
    ids=["gzip", "bzip2", "xz", "zip", "pdf", "utf-16", "utf-16-no-bom", "utf-32", "random", "cp1251"],
)  # fmt: skip
def test_a_list_that_is_not_text_is_refused_with_what_it_looks_like(
    tmp_path: Path, data: bytes, looks: str, step: str
) -> None:
    source = _write(tmp_path, data)
    with pytest.raises(URLListError) as raised:
        open_url_list(source)
    expected = "" if "UTF-8" in looks else ", not UTF-8" if looks.endswith(" text") else ", not text"
    assert str(raised.value) == f"the URL list '{source}' looks like {looks}{expected} ({step.format(f=source)})"


def test_a_list_name_in_the_advice_is_quoted_for_the_shell(tmp_path: Path) -> None:
    source = str(tmp_path / "my urls.gz")
    Path(source).write_bytes(gzip.compress(b"x"))
    with pytest.raises(URLListError, match=re.escape(f"gunzip -c '{source}' | fetcher -")):
        open_url_list(source)


def test_standard_input_that_is_not_text_is_refused_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(gzip.compress(b"http://a.example/\n"))))
    with pytest.raises(URLListError) as raised:
        open_url_list("-")
    assert str(raised.value) == (
        "the URL list on standard input looks like gzip-compressed data, not text "
        "(decompress it first: ... | gunzip -c | fetcher -)"
    )


def test_a_text_list_with_a_few_bad_bytes_is_read_as_before(tmp_path: Path) -> None:
    source = _write(
        tmp_path, b"http://a.example/\n\xff\xfe junk\x01\nhttp://b.example/\n" + b"http://c.example/\n" * 20
    )
    assert [url for url, _ in _read(source)][:3] == ["http://a.example/", "\ufffd\ufffd junk\x01", "http://b.example/"]


def test_only_the_first_block_is_looked_at(tmp_path: Path) -> None:
    source = _write(tmp_path, b"http://a.example/\n" * 1000 + bytes(100_000))
    assert _read(source)[0] == ("http://a.example/", 1)


# -- is the list empty? ------------------------------------------------------------------------


def test_a_list_of_comments_and_blank_lines_is_empty(tmp_path: Path) -> None:
    assert open_url_list(_write(tmp_path, b"# nothing\n\n   \n  # still nothing\n")).empty()


def test_looking_ahead_for_a_url_loses_no_line(tmp_path: Path) -> None:
    entries = open_url_list(_write(tmp_path, b"# head\n\nhttp://a.example/\n  out=a.txt\nhttp://b.example/\n"))
    assert not entries.empty()
    assert [(e.url, e.line, e.out) for e in entries] == [
        ("http://a.example/", 3, "a.txt"),
        ("http://b.example/", 5, None),
    ]


def test_held_tells_the_url_read_but_not_handed_on_yet() -> None:
    entries = parse_url_list(iter(["http://a.example/1\n", "http://a.example/2\n", "  out=two.txt\n"]))
    assert entries.held() is None
    assert next(entries).url == "http://a.example/1"
    held = entries.held()  # its option line is not read yet: that takes the next entry
    assert held is not None and (held.url, held.line) == ("http://a.example/2", 2)
    assert next(entries).out == "two.txt"
    assert entries.held() is None


def test_one_ctrl_d_ends_a_list_typed_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    controller, terminal = pty.openpty()
    typed = open(terminal, "rb", buffering=0, closefd=True)  # a real tty: Ctrl-D is one empty read
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(typed)))
    read: list[str] = []
    reader = threading.Thread(target=lambda: read.extend(entry.url for entry in open_url_list("-")), daemon=True)
    reader.start()
    try:
        os.write(controller, b"http://a.example/x\nhttp://b.example/y\n")
        os.write(controller, b"\x04")  # Ctrl-D, once
        reader.join(timeout=5)
        assert not reader.is_alive(), "the list waited for a second Ctrl-D"
        assert read == ["http://a.example/x", "http://b.example/y"]
    finally:
        os.write(controller, b"\x04")  # let a reader stuck on the old behaviour go
        reader.join(timeout=5)
        os.close(controller)


def test_a_list_that_cannot_be_read_is_named_without_a_password() -> None:
    with pytest.raises(URLListError) as error:
        open_url_list("ftp://bob:hunter2@example.org/x")
    assert "hunter2" not in str(error.value) and "example.org/x" in str(error.value)


def test_a_list_file_not_read_yet_tells_its_descriptor_for_another_process_to_read_again(tmp_path: Path) -> None:
    entries = open_url_list(_write(tmp_path, b"http://a.example/1\nhttp://a.example/2\n"))
    assert entries.empty() is False  # looking ahead for a URL reads no entry
    fd = entries.regular_file()
    assert fd is not None
    again = reopen_url_list(f"/proc/self/fd/{fd}", entries.source)
    assert [(e.url, e.line) for e in again] == [("http://a.example/1", 1), ("http://a.example/2", 2)]
    assert [(e.url, e.line) for e in entries] == [("http://a.example/1", 1), ("http://a.example/2", 2)]


def test_a_list_read_from_already_tells_no_descriptor(tmp_path: Path) -> None:
    entries = open_url_list(_write(tmp_path, b"http://a.example/1\nhttp://a.example/2\n"))
    next(entries)
    assert entries.regular_file() is None


def test_a_list_from_a_pipe_tells_no_descriptor(monkeypatch: pytest.MonkeyPatch) -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"http://a.example/1\n")
    os.close(write_end)
    with open(read_end, "rb") as piped:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(piped))
        entries = open_url_list("-")
        assert entries.regular_file() is None


def test_a_list_opened_again_names_its_source_in_messages(tmp_path: Path) -> None:
    with pytest.raises(URLListError, match="cannot read URL list 'urls.txt'"):
        reopen_url_list(str(tmp_path / "gone.txt"), "urls.txt")
