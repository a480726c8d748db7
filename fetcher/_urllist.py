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
downloads need more.  To see a URL's options, the reader looks one URL line
ahead, so a URL is handed on when the next URL line (or the end) is read.

Not here: checking that a URL can be downloaded is ``_urls.check_url``;
making ``out=`` names safe is the namer's job.
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

from ._errors import ConfigError, FetcherError, URLListError
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


def open_url_list(source: str) -> Iterator[Entry]:
    """Open the list at *source* (a path, or ``-`` for standard input).

    The file is opened now, so a missing or unreadable list fails here with
    URLListError; its lines are read later, as the returned iterator is used.
    """
    if source == "-":
        stream: TextIO = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", errors="replace")
        return _entries(stream, "standard input", close=False)
    try:
        stream = open(source, encoding="utf-8-sig", errors="replace")  # noqa: SIM115 - closed by _entries
    except OSError as exc:
        raise URLListError(f"cannot read URL list '{source}': {exc.strerror or exc}") from exc
    return _entries(stream, source, close=True)


def _entries(stream: TextIO, name: str, *, close: bool) -> Iterator[Entry]:
    try:
        yield from parse_url_list(stream)
    except OSError as exc:
        raise URLListError(f"cannot read URL list '{name}': {exc.strerror or exc}") from exc
    finally:
        if close:
            stream.close()
        elif isinstance(stream, io.TextIOWrapper):
            stream.detach()  # so collecting the wrapper does not close stdin


def parse_url_list(lines: Iterable[str]) -> Iterator[Entry]:
    """The entries of a URL list given as its lines, in the format above.

    Reads *lines* lazily, never more than one URL line ahead of the entry it
    hands on.  A UTF-8 byte order mark at the start is ignored.
    """
    pending: _Pending | None = None
    for number, raw in enumerate(lines, start=1):
        if number == 1:
            raw = raw.removeprefix("\ufeff")
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        option = _OPTION.fullmatch(text) if raw.startswith((" ", "\t")) else None
        if option is None:
            if pending is not None:
                yield pending.entry()
            pending = _Pending(text, number)
        elif pending is None:
            yield Entry(url=text, line=number, problem=ORPHAN_OPTION)
        else:
            pending.add(number, option[1], option[2])
    if pending is not None:
        yield pending.entry()


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
        return sum(1 for _ in open_url_list(source))
    except FetcherError:
        return None
