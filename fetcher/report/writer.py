"""The report writer: one record per URL, and one per run, appended to a JSON Lines or CSV file.

Records are written as their URLs finish, in batches: those of the last
FLUSH_S (half a second), or BATCH_BYTES of them, go in one ``write``, and
``flush``, ``write_run`` and ``close`` write what is waiting at once.  So a
run that is killed, at any instant, still leaves a record of everything it
finished up to half a second or so before, and a long list costs a system call
per batch rather than per URL.  Runs append: a cron job builds up its history
in one file, each record tagged with its run id.

What a reader can rely on, whatever happened before (a kill, a full disk):

- Each record is one line.  A batch of lines is written with one ``write`` to
  a file opened for appending, so overlapping runs do not interleave within a
  line.
- A line is on disk whole or not at all, as far as the OS allows: when a write
  fails after part of a batch went to disk, that part is cut off again, unless
  something was appended after it (then it stays, and the next record starts on
  a new line); then the batch's lines are written one by one, so that those
  that fit are kept.
- A record never continues a cut line: when the file does not end in a newline
  (a run killed mid-write), the next record starts with one.  A line that does
  not parse is a cut record; readers skip it (fetcher.report.reader does).

Formats.  The name decides: CSV if it ends in ``.csv`` (any case), else JSON Lines.

- JSON Lines: a URL record is an object with the keys of ``FIELDS``
  (fetcher._result) and no ``"record"`` key.  A run record (RunRecord, in
  fetcher.report.runs) is an object whose first key is ``"record": "run"``,
  in the same file.  Readers must skip objects that have a ``"record"`` key
  they do not know: more kinds may come.
- CSV: a header row of ``FIELDS`` starts the file, then one row per URL
  record; an empty cell is a missing value (JSON ``null``).  Run records go,
  as JSON Lines, to the side file ``<report path>.runs.jsonl``
  (``report.csv.runs.jsonl``), created on the first run record.

Files and folders are created on the first record written, so a run that
records nothing leaves no report.  A write that fails (ENOSPC, EIO) does not
stop the run: the writer counts the records in ``lost``, logs one warning for
the first failure, and tries again with the next batch.
"""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from .._result import FIELDS, Result
from .._text import escape
from .runs import RunRecord

#: The report's file name in DEST when no --report is given.
DEFAULT_REPORT_NAME = "fetcher-report.jsonl"

#: Appended to a CSV report's path to name the file of its run records.
RUNS_SUFFIX = ".runs.jsonl"

#: The longest a record waits in memory before it is written: what a kill may lose (README: the report).
FLUSH_S = 0.5
#: Records waiting are written at once when they reach this size (a few hundred), which bounds the memory
#: they take when URLs finish faster than FLUSH_S can gather them.
BATCH_BYTES = 64 << 10

_log = logging.getLogger("fetcher")


def report_format(path: str | Path) -> str:
    """``"csv"`` if *path* ends in ``.csv`` (any case), else ``"jsonl"``."""
    return "csv" if Path(path).suffix.lower() == ".csv" else "jsonl"


def runs_path(path: str | Path) -> Path:
    """Where the run records of the report at *path* go: the report itself, or a CSV's side file."""
    path = Path(path)
    return path.with_name(path.name + RUNS_SUFFIX) if report_format(path) == "csv" else path


class ReportWriter:
    """Appends Results (and RunRecords) to the report at *path*, in batches (see the module).  Thread-safe.

    Construction raises OSError if *path* cannot be written: it is a folder,
    an existing file that is not writable, below a file, or below a folder that
    is not writable.  It creates nothing; the first record written does.

    A record waits at most *flush_s* seconds (or until BATCH_BYTES of them
    wait) before a thread of the writer's own writes it; ``flush()`` writes
    what waits at once, and ``close()`` does too.  ``lost`` counts the records
    that could not be written; ``first_error`` is the OSError of the first of
    them (None while none was lost).
    """

    def __init__(self, path: str | Path, *, flush_s: float = FLUSH_S) -> None:
        self.path = Path(path)
        self.format = report_format(self.path)
        self.runs_path = runs_path(self.path)
        self.lost = 0
        self.first_error: OSError | None = None
        _check_writable(self.path)
        if self.runs_path != self.path:
            _check_writable(self.runs_path)
        self._flush_s = flush_s
        # Two locks, always taken in this order: the files (one batch written at a time, in order), then
        # the batch.  The thread that hands in records takes only the second, and never waits for a disk.
        self._io = threading.Lock()
        self._waiting = threading.Condition(threading.Lock())
        self._batch: list[bytes] = []
        self._batch_bytes = 0
        self._batch_since = 0.0  # when the oldest record waiting came
        self._flusher: threading.Thread | None = None
        self._files: dict[Path, int] = {}  # path -> descriptor, opened on the first record
        self._whole: set[Path] = set()  # files whose last write from here went whole: they end in a newline
        self._made: set[Path] = set()  # files this writer created (removed on close if still empty)
        self._closed = False

    def write(self, result: Result) -> None:
        """Add *result*'s record to the batch; it is written within ``flush_s`` (failures: see ``lost``)."""
        if self.format == "csv":
            line = _csv_line(_csv_value(value) for value in result.to_record().values())
        else:
            line = (result.to_json() + "\n").encode()
        with self._waiting:
            if self._closed:
                raise ValueError(f"the report {self.path} is closed")
            if not self._batch:
                self._batch_since = time.monotonic()
                if self._flusher is None:
                    self._flusher = threading.Thread(target=self._flush_when_due, name="fetcher-report", daemon=True)
                    self._flusher.start()
                else:
                    self._waiting.notify()
            self._batch.append(line)
            self._batch_bytes += len(line)
            full = self._batch_bytes >= BATCH_BYTES
        if full:
            self.flush()

    def write_run(self, record: RunRecord) -> bool:
        """Append a run record (to the report, or to a CSV report's side file), after the records waiting.

        Written at once.  False if it was lost.
        """
        line = _json_line(record.to_record())
        with self._io:
            self._flush()
            if self._closed:
                raise ValueError(f"the report {self.path} is closed")
            return self._append(self.runs_path, [line])

    def flush(self) -> bool:
        """Write the records waiting now.  False if any of them was lost (counted in ``lost``)."""
        with self._io:
            return self._flush()

    def close(self) -> None:
        """Write the records waiting, then close the files.  Closing twice does nothing."""
        with self._io:
            self._flush()
            with self._waiting:
                self._closed = True
                self._waiting.notify()
            for path, fd in self._files.items():
                try:
                    # A report made for records that were all lost (a full disk) would only mislead.
                    if path in self._made and os.fstat(fd).st_size == 0:
                        path.unlink()
                except OSError:
                    pass
                os.close(fd)
            self._files.clear()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(timeout=1.0)

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _flush_when_due(self) -> None:
        """The writer's thread: write each batch once its oldest record has waited ``flush_s``."""
        while True:
            with self._waiting:
                while True:
                    if self._closed:
                        return
                    if not self._batch:
                        self._waiting.wait()
                        continue
                    left = self._batch_since + self._flush_s - time.monotonic()
                    if left <= 0:
                        break
                    self._waiting.wait(left)
            self.flush()

    def _flush(self) -> bool:
        """Write the batch; the caller holds ``_io``."""
        with self._waiting:
            lines, self._batch, self._batch_bytes = self._batch, [], 0
        return self._append(self.path, lines) if lines else True

    def _append(self, path: Path, lines: list[bytes]) -> bool:
        """Append *lines* with one write; if that fails, one by one (those that fit stay).  The caller holds ``_io``."""
        try:
            fd = self._files.get(path)
            if fd is None:
                if not path.exists():
                    self._made.add(path)
                fd = self._files[path] = _open(path)
            header = _csv_line(FIELDS) if path == self.path and self.format == "csv" else b""
            ends_whole = path in self._whole
            self._whole.discard(path)  # until this write is known whole (a second Ctrl-C may cut it short)
            _append_whole(fd, b"".join(lines), header, ends_whole=ends_whole)
            self._whole.add(path)
        except OSError as exc:
            self._whole.discard(path)
            if len(lines) > 1:
                # A full disk may still take the shorter lines, as it did when each went on its own.
                return all([self._append(path, [line]) for line in lines])
            self.lost += 1
            if self.first_error is None:
                self.first_error = exc
                _log.warning(
                    "cannot write the report %s: %s; records are being lost", escape(str(path)), exc.strerror or exc
                )
            return False
        return True


def _check_writable(path: Path) -> None:
    """Raise the OSError that opening *path* for appending would raise, without creating anything.

    os.access is lenient for root (it says yes to a read-only file); opening then fails
    at the first record instead, and that record is counted as lost.
    """
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if path.exists():
        if not os.access(path, os.W_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(folder))


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Read as well as append: each record first looks at the last byte (see _append_whole).
    return os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)


def _append_whole(fd: int, line: bytes, header: bytes, *, ends_whole: bool = False) -> None:
    """Append *line* (whole lines, after *header* if the file is empty) as one write, or leave the file as it was.

    The file's last byte is looked at unless *ends_whole* (this writer's last write to
    it went whole): a killed run, or a failed write that could not be undone, may have
    left a cut line.  Another run appending meanwhile writes whole lines too.  Not
    looking saves a read per batch, which costs more than its own time: each system
    call gives up the GIL among all the run's threads.
    """
    start = os.fstat(fd).st_size
    if start == 0:
        data = header + line
    elif not ends_whole and os.pread(fd, 1, start - 1) != b"\n":
        data = b"\n" + line
    else:
        data = line
    written = 0
    try:
        while written < len(data):
            # A short write to a regular file means the disk filled up (or a quota): the
            # next write of the rest then raises the real error (ENOSPC) and the part is undone.
            count = os.write(fd, data[written:])
            if count <= 0:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            written += count
    except OSError:
        _undo(fd, start, written)
        raise


def _undo(fd: int, start: int, written: int) -> None:
    """Cut off what a failed write left after *start*, if it is ours and the last thing in the file.

    An O_APPEND descriptor's offset is the end of its own last write.  The file must end
    exactly there (no other run appended after it) and hold exactly our bytes after *start*
    (*written*, or, when the failing call raised after writing, whatever lies between).
    """
    try:
        end = os.lseek(fd, 0, os.SEEK_CUR)
        if end > start and os.fstat(fd).st_size == end and (written == 0 or end - start == written):
            os.ftruncate(fd, start)
    except OSError:
        pass  # the part stays; the next record starts on a new line and readers skip the cut one


def _json_line(record: dict[str, Any]) -> bytes:
    # ensure_ascii: a record shown with `cat` cannot carry raw control characters.
    return (json.dumps(record, ensure_ascii=True) + "\n").encode()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    return escape(str(value))


class _Echo:
    """A file whose ``write`` gives back its text: the row that ``csv.writer(_Echo()).writerow`` returns."""

    @staticmethod
    def write(text: str) -> str:
        return text


# One for every writer and thread: writerow builds its row without letting another thread in (no
# Python code runs until it hands the finished row to _Echo.write), and keeps no other state.
_CSV_ROWS = csv.writer(_Echo(), lineterminator="\n")


def _csv_line(values: Iterable[str]) -> bytes:
    row: str = _CSV_ROWS.writerow(values)
    return row.encode()
