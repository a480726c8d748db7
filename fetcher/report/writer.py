"""The report: one record per URL, appended to a JSON Lines or CSV file.

Each record is written and flushed as its URL finishes, so a run that is
killed still leaves a record of everything it finished.  Runs append: a cron
job builds up its history in one file, each record tagged with its run id.
Each JSON Lines record is one ``write`` to a file opened for appending, so two
overlapping runs writing to the same report do not interleave within a line.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from .._result import FIELDS, Result
from .._text import escape

#: The report's file name in DEST when no --report is given.
DEFAULT_REPORT_NAME = "fetcher-report.jsonl"


class ReportWriter:
    """Appends Results to *path*: CSV if its name ends in ``.csv``, else JSON Lines.

    Opening creates missing parent folders and raises OSError if the file
    cannot be opened for appending.  Thread-safe.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.format = "csv" if self.path.suffix.lower() == ".csv" else "jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # Binary append: one os-level write per record, newline as written.
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        if self.format == "csv" and self._file.tell() == 0:
            self._file.write(_csv_line(FIELDS))

    def write(self, result: Result) -> None:
        record = result.to_record()
        if self.format == "csv":
            data = _csv_line(_csv_value(record[name]) for name in FIELDS)
        else:
            # ensure_ascii: a record shown with `cat` cannot carry raw control characters.
            data = (json.dumps(record, ensure_ascii=True) + "\n").encode()
        with self._lock:
            self._file.write(data)

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    return escape(str(value))


def _csv_line(values: Any) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(list(values))
    return buffer.getvalue().encode()
