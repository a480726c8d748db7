"""Reading a report back: its URL records and run records, as plain dicts.

Reads what fetcher.report.writer writes, JSON Lines or CSV (and a CSV's side
file of run records), from any version: a line that does not parse (a record
cut by a kill or a full disk, or garbage) is skipped with a warning and counted,
never raised.  It does not summarise or judge the records (``fetcher report``
does); it only gives them back typed.

A URL record has every key of ``FIELDS`` (None where the file had nothing:
an empty CSV cell, a key an older version did not write), numbers as numbers.
CSV cells are given back as written: control characters stay escaped
(``\\x1b``).  A run record is the JSON object as written (see
fetcher.report.runs), ``"record": "run"`` included.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._result import FIELDS
from .._text import escape
from .writer import report_format, runs_path

_log = logging.getLogger("fetcher")

_INTEGERS = frozenset({"line", "http_status", "bytes", "attempts", "resumed_from"})
_FLOATS = frozenset({"wait_s", "ttfb_s", "download_s", "total_s"})

#: Skipped lines logged one by one, per read; past this they are only counted (a binary file
#: given by mistake would otherwise log a warning per line).
MAX_WARNINGS = 20


def read_report(path: str | Path) -> Report:
    """The report at *path*.  Nothing is read until it is iterated."""
    return Report(path)


def is_run(record: dict[str, Any]) -> bool:
    """True for a run record, False for a URL record."""
    return record.get("record") == "run"


class Report:
    """A report file, read afresh on each iteration.

    Iterating gives every record: in JSON Lines in file order, in CSV the rows
    and then the run records of the side file.  ``urls()`` and ``runs()`` give
    one kind; iterate once and sort with ``is_run`` to read the file only once.
    A missing report raises OSError (FileNotFoundError); a CSV report without a
    side file has no run records.  ``skipped`` counts the lines the latest read
    skipped.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.format = report_format(self.path)
        self.runs_path = runs_path(self.path)
        self.skipped = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._read(urls=True, runs=True)

    def urls(self) -> Iterator[dict[str, Any]]:
        """The URL records."""
        return self._read(urls=True, runs=False)

    def runs(self) -> Iterator[dict[str, Any]]:
        """The run records."""
        return self._read(urls=False, runs=True)

    def _read(self, *, urls: bool, runs: bool) -> Iterator[dict[str, Any]]:
        self.skipped = 0
        if self.format == "jsonl":
            yield from self._jsonl(self.path, urls=urls, runs=runs)
            return
        if urls:
            yield from self._csv(self.path)
        if runs and self.runs_path.exists():
            yield from self._jsonl(self.runs_path, urls=False, runs=True)

    def _jsonl(self, path: Path, *, urls: bool, runs: bool) -> Iterator[dict[str, Any]]:
        for number, line in _lines(path):
            try:
                record = json.loads(line)
            except ValueError:  # a cut line, garbage, bytes that are not UTF-8
                record = None
            if not isinstance(record, dict):
                self._skip(path, number)
            elif "record" not in record:
                if urls:
                    yield _with_every_field(record)
            elif is_run(record):
                if runs:
                    yield record
            # Any other "record" is a kind a later version writes: not an error, not ours.

    def _csv(self, path: Path) -> Iterator[dict[str, Any]]:
        header = FIELDS  # until the file's own header says otherwise
        for number, line in _lines(path):
            try:
                # One physical line at a time: the writer never puts a line break in a cell,
                # so a cut row cannot swallow the rows after it through an open quote.
                cells = next(csv.reader([line.decode("utf-8").rstrip("\r\n")]))
            except (UnicodeDecodeError, csv.Error, StopIteration):
                cells = []
            if cells and cells[0] == FIELDS[0]:
                header = tuple(cells)  # overlapping runs that both found the file empty both wrote one
                continue
            record = _csv_record(cells, header)
            if record is None:
                self._skip(path, number)
            else:
                yield record

    def _skip(self, path: Path, number: int) -> None:
        self.skipped += 1
        if self.skipped < MAX_WARNINGS:
            _log.warning("%s line %d is not a whole record; skipped", escape(str(path)), number)
        elif self.skipped == MAX_WARNINGS:
            _log.warning(
                "%s line %d is not a whole record; skipped (further such lines are counted, not logged)",
                escape(str(path)),
                number,
            )


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line) for each line that is not blank (a repaired cut line may leave one)."""
    with open(path, "rb") as stream:
        for number, line in enumerate(stream, 1):
            if line.strip():
                yield number, line


_EVERY_FIELD = frozenset(FIELDS)


def _with_every_field(record: dict[str, Any]) -> dict[str, Any]:
    """*record* with each field it lacks (an older version's, a hand-made one) as None."""
    if _EVERY_FIELD <= record.keys():  # as this version writes them: the copy cost 6 % of a report's read
        return record
    return {name: record.get(name) for name in FIELDS} | record


def _csv_record(cells: list[str], header: tuple[str, ...]) -> dict[str, Any] | None:
    """The row as a URL record, or None if it is not a whole one.

    A row may have more cells than the header: a report started by an older
    version, with rows appended by a newer one.  The extra cells are the fields
    the header lacks, in FIELDS order.
    """
    names = header + tuple(name for name in FIELDS if name not in header)
    if not len(header) <= len(cells) <= len(names):
        return None
    try:
        return _with_every_field({name: _typed(name, cell) for name, cell in zip(names, cells, strict=False)})
    except ValueError:
        return None


def _typed(name: str, cell: str) -> Any:
    if cell == "":
        return None
    if name in _INTEGERS:
        return int(cell)
    if name in _FLOATS:
        return float(cell)
    return cell
