"""The URL list: reading it lazily, line by line, into Entries.

Format (a subset of aria2's ``-i`` input file):

- One URL per line; surrounding white space is stripped; blank lines and
  lines starting with ``#`` (after any indentation) are skipped.
- A URL line may be followed by option lines.  An option line starts with a
  space or a tab and then reads ``name=value``, where the name matches
  ``[A-Za-z][A-Za-z0-9_-]*`` (white space around the ``=`` is allowed, as in
  aria2).  It belongs to the nearest URL line above it; blank and comment
  lines may come between.  Any other indented line is read as before, so an
  indented URL still works: ``  https://x/a?b=c`` is a URL, because
  ``https://x/a?b`` is not an option name.
- Known options: ``checksum=ALGORITHM=HEX`` (``sha-1``, ``sha-224``,
  ``sha-256``, ``sha-384``, ``sha-512`` or ``md5``; see
  ``fetcher.transfer.checksum``) and ``out=NAME`` (the file name for that URL,
  made safe later by the same rules as any name).
- An unknown option name, a bad checksum, an empty ``out=`` or the same option
  twice gives that URL's entry a ``problem`` (the first one found), such as
  ``line 5: unknown option 'foo=' (fetcher knows checksum= and out=)``; the run
  records the URL as ``invalid`` with it and requests nothing.  The entry keeps
  the URL's own line number.
- An option line with no URL line above it is an entry of its own: the
  stripped line as its ``url``, with the problem ``option line with no URL
  before it``.

Reading is lazy: a list of a million lines is read one line at a time as the
downloads need more.  Only the first block (8 KiB) is looked at when the list
is opened: a list that is not text (compressed, an archive, UTF-16, binary) is
refused then, with what it looks like and how to get text from it.  To see a
URL's options, the reader looks one URL line ahead, so a URL is handed on when
the next URL line (or the end) is read.

Not here: checking that a URL can be downloaded is ``_urls.check_url``;
making ``out=`` names safe is the namer's job.
"""

from __future__ import annotations

import codecs
import collections
import io
import os
import re
import shlex
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO, cast

from ._errors import ConfigError, FetcherError, URLListError
from ._text import redact
from .transfer.checksum import Checksum

#: An option line once stripped; the line itself must start with a space or a tab.
_OPTION = re.compile(r"([A-Za-z][A-Za-z0-9_-]*)[ \t]*=[ \t]*(.*)", re.DOTALL)

_KNOWN_OPTIONS = ("checksum", "out")

#: Option names in problems are cut to this length: a list line can be any length.
_SHOWN_NAME = 40

ORPHAN_OPTION = "option line with no URL before it"


@dataclass(frozen=True, kw_only=True, slots=True, init=False)
class Entry:
    """One URL to download, and what the list (or the caller) says about it.

    ``line`` is the 1-based line of the list; 0 means "its position in the
    input", which the run fills in.  ``checksum`` may be given as text such as
    ``"sha-256=ba78..."``; it is parsed here.  ``out`` is a file name for this
    URL, made safe later by the namer.  ``problem``, set by the list reader
    when the URL's option lines are bad, makes the run record the URL as
    ``invalid`` with that reason and request nothing.
    """

    url: str
    line: int = 0
    checksum: Checksum | None = None
    out: str | None = None
    problem: str | None = None

    # Written by hand, not generated, only so that type checkers accept a str
    # checksum; the fields and their defaults are the dataclass's.
    def __init__(
        self,
        *,
        url: str,
        line: int = 0,
        checksum: Checksum | str | None = None,
        out: str | None = None,
        problem: str | None = None,
    ) -> None:
        object.__setattr__(self, "url", url)
        object.__setattr__(self, "line", line)
        object.__setattr__(self, "checksum", checksum)
        object.__setattr__(self, "out", out)
        object.__setattr__(self, "problem", problem)
        self.__post_init__()

    def __post_init__(self) -> None:
        if not isinstance(self.url, str):
            raise ConfigError(f"url must be text, not {self.url!r}")
        if isinstance(self.line, bool) or not isinstance(self.line, int) or self.line < 0:
            raise ConfigError(f"line must be a whole number from 0 up, not {self.line!r}")
        checksum: object = self.checksum
        if isinstance(checksum, str):
            object.__setattr__(self, "checksum", Checksum.parse(checksum))
        elif checksum is not None and not isinstance(checksum, Checksum):
            raise ConfigError(f"checksum must be a Checksum or text like sha-256=HEX, not {checksum!r}")
        if self.out is not None and (not isinstance(self.out, str) or not self.out.strip()):
            raise ConfigError(f"out must be a non-empty file name, not {self.out!r}")
        if self.problem is not None and (not isinstance(self.problem, str) or not self.problem):
            raise ConfigError(f"problem must be a non-empty reason, not {self.problem!r}")


def open_url_list(source: str) -> URLList:
    """Open the list at *source* (a path, or ``-`` for standard input).

    The file is opened now, and its first block is looked at, so a missing or
    unreadable list, or one that is not text (compressed, UTF-16, binary),
    fails here with URLListError; its lines are read later, as the returned
    iterator is used.
    """
    if source == "-":
        if hasattr(sys.stdin.buffer, "peek"):
            return URLList(cast(io.BufferedReader, sys.stdin.buffer), "-", close=False)
        # A stream that cannot peek (a test's BytesIO): a reader of our own, let go of (not closed) at the end.
        return URLList(io.BufferedReader(cast(io.RawIOBase, sys.stdin.buffer)), "-", close=False, own_reader=True)
    return reopen_url_list(source, source)


def reopen_url_list(path: str, source: str) -> URLList:
    """The list file at *path* opened from its start, its messages naming *source*: ``open_url_list(source)``
    where *path* is *source*, or ``/proc/PID/fd/N`` for a list file another process has open.  Raises
    URLListError."""
    try:
        stream = open(path, "rb", buffering=_HEAD)  # noqa: SIM115 - closed by URLList
    except OSError as exc:
        # A mistyped URL argument (ftp://user:password@...) is taken for a file name: say it without its password.
        raise URLListError(f"cannot read URL list '{redact(source)}': {exc.strerror or exc}") from exc
    try:
        return URLList(cast(io.BufferedReader, stream), source, close=True)
    except BaseException:
        stream.close()
        raise


class URLList(Iterator[Entry]):
    """The entries of an open list, read lazily; ``empty()`` looks ahead for a first URL."""

    def __init__(self, buffer: io.BufferedReader, source: str, *, close: bool, own_reader: bool = False) -> None:
        self.source = source  # as given: a path, or "-"
        self.name = "standard input" if source == "-" else source  # as messages name it
        try:
            head = buffer.peek(_HEAD)[:_HEAD]
        except OSError as exc:
            raise URLListError(f"cannot read URL list '{self.name}': {exc.strerror or exc}") from exc
        problem = not_text(head, source)
        if problem is not None:
            raise URLListError(problem)
        self._stream = io.TextIOWrapper(buffer, encoding="utf-8-sig", errors="replace")
        self._close = close
        self._own_reader = own_reader
        self._closed = False
        self._lines = _Lookahead(self._stream)
        self._entries = parse_url_list(self._lines)
        #: How many entries the list holds, where its reader counted them (``operator.length_hint``).
        self.length_hint = 0

    def __length_hint__(self) -> int:
        return self.length_hint

    def regular_file(self) -> int | None:
        """The descriptor of the list's file, if it is a regular file not read past its head yet (another
        process can then read it all again, from its start: ``reopen_url_list``); else None."""
        if self._closed or self._entries.started:
            return None
        try:
            fd = self._stream.buffer.fileno()
            return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
        except (OSError, ValueError, io.UnsupportedOperation):
            return None

    def __next__(self) -> Entry:
        if self._closed:
            raise StopIteration
        try:
            return next(self._entries)
        except OSError as exc:
            self.close()
            raise URLListError(f"cannot read URL list '{self.name}': {exc.strerror or exc}") from exc
        except StopIteration:
            self.close()
            raise

    def held(self) -> Entry | None:
        """The URL read but not handed on yet (see ``EntryParser.held``)."""
        return self._entries.held()

    def empty(self) -> bool:
        """Whether the list holds no URL: reads on (waits, for a pipe) to its first URL line or its end."""
        try:
            return not self._lines.content_ahead()
        except OSError as exc:
            raise URLListError(f"cannot read URL list '{self.name}': {exc.strerror or exc}") from exc

    def close(self) -> None:
        """Close a list file; standard input is left open."""
        if self._closed:
            return
        self._closed = True
        if self._close:
            self._stream.close()
        else:
            reader = self._stream.detach()  # so collecting the wrapper does not close stdin
            if self._own_reader:
                reader.detach()


class _Lookahead(Iterator[str]):
    """Lines of a stream, with the ones read ahead by ``content_ahead()`` given back first."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._ahead: collections.deque[str] = collections.deque()
        self._ended = False

    def __next__(self) -> str:
        if self._ahead:
            return self._ahead.popleft()
        line = self._readline()
        if not line:
            raise StopIteration
        return line

    def content_ahead(self) -> bool:
        """Read on until a line that is not blank or a comment, keeping what was read."""
        if any(_content(line) for line in self._ahead):
            return True
        while line := self._readline():
            self._ahead.append(line)
            if _content(line):
                return True
        return False

    def _readline(self) -> str:
        # A terminal's end of input (Ctrl-D) is one empty read, not a lasting state:
        # reading again would wait for a second Ctrl-D.  The end is remembered instead.
        if self._ended:
            return ""
        line = self._stream.readline()
        self._ended = not line
        return line


def _content(line: str) -> bool:
    text = line.strip().removeprefix("\ufeff").strip()
    return bool(text) and not text.startswith("#")


#: Bytes looked at to tell text from what is not.
_HEAD = 8192

#: (magic bytes, what they look like, how to get text from a FILE); the first that matches wins.
_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed data", "decompress it first: gunzip -c {file} | fetcher -"),
    (b"BZh", "bzip2-compressed data", "decompress it first: bunzip2 -c {file} | fetcher -"),
    (b"\xfd7zXZ\x00", "xz-compressed data", "decompress it first: xz -dc {file} | fetcher -"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data", "decompress it first: zstd -dc {file} | fetcher -"),
    (b"PK\x03\x04", "a zip archive", "extract the list first: unzip -p {file} | fetcher -"),
    (b"%PDF-", "a PDF document", "a URL list is plain text, one URL per line"),
    (b"\xff\xfe\x00\x00", "UTF-32 text", "convert it first: iconv -f UTF-32 -t UTF-8 {file} | fetcher -"),
    (b"\x00\x00\xfe\xff", "UTF-32 text", "convert it first: iconv -f UTF-32 -t UTF-8 {file} | fetcher -"),
    (b"\xff\xfe", "UTF-16 text", "convert it first: iconv -f UTF-16 -t UTF-8 {file} | fetcher -"),
    (b"\xfe\xff", "UTF-16 text", "convert it first: iconv -f UTF-16 -t UTF-8 {file} | fetcher -"),
)

_BINARY = ("binary data", "a URL list is plain text, one URL per line")
_UTF16 = ("UTF-16 text", "convert it first: iconv -f UTF-16 -t UTF-8 {file} | fetcher -")
_LEGACY = ("text in an encoding other than UTF-8", "convert it first: iconv -f ENCODING -t UTF-8 {file} | fetcher -")

#: White space and the like that text may hold; any other control character is a sign of binary data.
_TEXT_CONTROLS = frozenset("\t\n\r\f\v\x1b")


def not_text(head: bytes, source: str) -> str | None:
    """What is wrong with a list whose first bytes are *head*, or None when it reads as text.

    A text list with a few bad bytes is text: those lines become ``invalid``
    entries as before.  Only a start that is mostly not text is refused.
    """
    looks = _looks_like(head)
    if looks is None:
        return None
    what, step = looks
    if source == "-":
        shown = "on standard input"
        if "{file}" in step:  # the command reads what fetcher was given: put it in the pipe before
            step = step.replace(" {file} |", " |").replace(": ", ": ... | ", 1)
    else:
        shown, step = f"'{source}'", step.replace("{file}", shlex.quote(source))
    return f"the URL list {shown} looks like {what}{_not(what)} ({step})"


def _not(what: str) -> str:
    """What the list should have been, after what it looks like ("UTF-16 text, not text" reads oddly)."""
    if "UTF-8" in what:
        return ""
    return ", not UTF-8" if what.endswith(" text") else ", not text"


def _looks_like(head: bytes) -> tuple[str, str] | None:
    for magic, what, step in _MAGIC:
        if head.startswith(magic):
            return what, step
    if not head:
        return None
    nuls = head.count(0)
    if nuls * 8 > len(head):  # text has no NUL; UTF-16 has one in every two bytes, UTF-32 three in four
        odd, even = head[1::2].count(0), head[0::2].count(0)
        if nuls * 4 > len(head) * 3 - 8:
            return "UTF-32 text", _UTF16[1].replace("UTF-16", "UTF-32")
        if max(odd, even) >= nuls * 0.9:
            return _UTF16
        return _BINARY
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(head, final=False)
    controls = sum(1 for char in text if (char < " " or "\x7f" <= char < "\xa0") and char not in _TEXT_CONTROLS)
    replaced = text.count("\ufffd")
    if (controls + replaced) * 4 <= len(text):  # at most a quarter bad: text, with some bad lines
        return None
    return _BINARY if controls * 20 > len(text) else _LEGACY


def parse_url_list(lines: Iterable[str]) -> EntryParser:
    """The entries of a URL list given as its lines, in the format above.

    Reads *lines* lazily, never more than one URL line ahead of the entry it
    hands on.  A UTF-8 byte order mark at the start is ignored.
    """
    return EntryParser(lines)


class EntryParser(Iterator[Entry]):
    """``parse_url_list``'s iterator; ``held()`` tells the URL read but not handed on yet."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self._number = 0
        self._pending: _Pending | None = None

    @property
    def started(self) -> bool:
        """Whether an entry was asked for yet."""
        return self._number > 0

    def __next__(self) -> Entry:
        for raw in self._lines:
            self._number += 1
            line = _read_line(raw, self._number)
            if line is None:
                continue
            text, option = line
            if option is None:
                pending, self._pending = self._pending, _Pending(text, self._number)
                if pending is not None:
                    return pending.entry()
            elif self._pending is None:
                return Entry(url=text, line=self._number, problem=ORPHAN_OPTION)
            else:
                self._pending.add(self._number, option[1], option[2])
        pending, self._pending = self._pending, None
        if pending is None:
            raise StopIteration
        return pending.entry()

    def held(self) -> Entry | None:
        """The last URL read, still waiting for the next URL line (its option lines may come first).

        From a pipe that stays open it can wait for ever: a run that stops
        records it from here.  Safe to call from another thread.
        """
        pending = self._pending
        return None if pending is None else pending.entry()


class _Pending:
    """A URL line and what its option lines said so far."""

    __slots__ = ("url", "line", "checksum", "out", "problem", "seen")

    def __init__(self, url: str, line: int) -> None:
        self.url = url
        self.line = line
        self.checksum: Checksum | None = None
        self.out: str | None = None
        self.problem: str | None = None
        self.seen: dict[str, int] = {}

    def add(self, number: int, name: str, value: str) -> None:
        if self.problem is not None:
            return  # the first problem is the one reported
        if name not in _KNOWN_OPTIONS:
            shown = name if len(name) <= _SHOWN_NAME else name[:_SHOWN_NAME] + "..."
            self.problem = f"line {number}: unknown option '{shown}=' (fetcher knows checksum= and out=)"
        elif name in self.seen:
            self.problem = f"line {number}: {name}= given twice (first on line {self.seen[name]})"
        elif name == "checksum":
            try:
                self.checksum = Checksum.parse(value)
            except ConfigError as exc:
                self.problem = f"line {number}: bad checksum: {exc}"
        elif not value:
            self.problem = f"line {number}: out= needs a file name"
        else:
            self.out = value
        self.seen.setdefault(name, number)

    def entry(self) -> Entry:
        return Entry(url=self.url, line=self.line, checksum=self.checksum, out=self.out, problem=self.problem)


def count_entries(source: str) -> int | None:
    """How many entries a list file holds (duplicates included), or None.

    Option lines are not counted: they belong to their URL's entry.

    Only for regular files: standard input can be read only once.
    """
    if source == "-":
        return None
    try:
        urls = open_url_list(source)
    except FetcherError:
        return None
    try:
        return count_lines(urls._lines)  # the list's own lines, read as its entries would be
    except OSError:
        return None
    finally:
        urls.close()


def count_lines(lines: Iterable[str]) -> int:
    """How many entries ``parse_url_list`` gives for *lines*, counted without making them.

    The CLI counts a list file before its run (for the bar and to start the
    worker processes at once): on a long list, parsing each entry twice
    would hold up the run's start by about 1.5 µs a line.
    """
    count = 0
    after_url = False
    for number, raw in enumerate(lines, start=1):
        line = _read_line(raw, number)
        if line is None:
            continue
        if line[1] is not None:  # an option line
            if not after_url:
                count += 1  # before any URL, it is an entry of its own (ORPHAN_OPTION)
            continue
        count += 1
        after_url = True
    return count


def _read_line(raw: str, number: int) -> tuple[str, re.Match[str] | None] | None:
    """Line *number* of a list as the parser and the counter read it: None for a blank line or a comment,
    else its text and, for an indented ``name=value`` line, the option's match."""
    if number == 1:
        raw = raw.removeprefix("\ufeff")
    text = raw.strip()
    if not text or text.startswith("#"):
        return None
    return text, _OPTION.fullmatch(text) if raw.startswith((" ", "\t")) else None
