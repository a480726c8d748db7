"""Result: what happened to one URL.  Tally: what happened to a whole run."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


class Status(str, enum.Enum):
    """How one URL ended."""

    OK = "ok"
    UNCHANGED = "unchanged"  # the server said 304: the file from an earlier run is current
    SKIPPED = "skipped"  # --skip-existing and the file exists; nothing was requested
    FAILED = "failed"  # HTTP error, network error, bad body, disk error
    ACQUIRE_TIMEOUT = "acquire-timeout"  # it could not start in time (a slot, its host); nothing was requested
    INVALID = "invalid"  # the line is not a usable http(s) URL; nothing was requested
    CANCELLED = "cancelled"  # the run was cut short (--deadline) while it was downloading or waiting to retry
    NOT_STARTED = "not-started"  # the run was cut short (--deadline, --quota) before it started
    #: The URL (in normal form, see _urls.normalize) was listed before; nothing was requested.  Its
    #: record's ``error`` names the line that was kept: "same as line 3".  A success: the file is there.
    DUPLICATE = "duplicate"

    def __str__(self) -> str:
        return self.value

    @property
    def succeeded(self) -> bool:
        return self in _SUCCESSES


_SUCCESSES = frozenset({Status.OK, Status.UNCHANGED, Status.SKIPPED, Status.DUPLICATE})


def duplicate_error(kept_line: int) -> str:
    """The ``error`` of a duplicate's record: which line of the list was kept for it."""
    return f"same as line {kept_line}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Result:
    """One URL's outcome.  The fields are the report's columns, in order."""

    run_id: str
    line: int  # line number in the list (or 1-based position in the iterable)
    url: str  # with any user:password@ removed
    status: Status
    path: Path | None = None  # the file written; None unless status is ok
    http_status: int | None = None  # the final response's status, after redirects
    bytes: int = 0  # bytes written (decoded), or received before a failure
    wait_s: float | None = None  # from ready to start until a slot was held (or given up)
    ttfb_s: float | None = None  # from sending the request until the response headers
    download_s: float | None = None  # from the headers until the body was complete
    total_s: float = 0.0  # from ready to start until finished
    started_at: datetime  # when the URL was ready to start (UTC)
    finished_at: datetime  # when it finished (UTC)
    error: str | None = None  # a short reason when status is not ok (the last attempt's)
    attempts: int = 1  # requests made for it, retries included; 0 when nothing was requested
    resumed_from: int | None = None  # bytes already on disk when the last attempt continued them
    #: The limit that held it back before its first attempt (slots, shared, host, host-rate, rate,
    #: paused); None if it did not wait for one.  How long: wait_s.
    waited_on: str | None = None
    #: When its last attempt took its download slot and gave it back (UTC, on one clock for all URLs,
    #: to the microsecond): what the report counts as slots in use.  None when it held none.
    slot_taken_at: datetime | None = None
    slot_released_at: datetime | None = None

    @property
    def ok(self) -> bool:
        """It succeeded: downloaded, unchanged since last time, skipped as asked, or listed before."""
        return self.status.succeeded

    def to_record(self) -> dict[str, Any]:
        """The result as plain JSON-ready values, in report column order."""
        return {
            "run_id": self.run_id,
            "line": self.line,
            "url": self.url,
            "status": self.status.value,
            "path": None if self.path is None else str(self.path),
            "http_status": self.http_status,
            "bytes": self.bytes,
            "wait_s": _rounded(self.wait_s),
            "ttfb_s": _rounded(self.ttfb_s),
            "download_s": _rounded(self.download_s),
            "total_s": _rounded(self.total_s),
            "started_at": self.started_at.isoformat(timespec="milliseconds"),
            "finished_at": self.finished_at.isoformat(timespec="milliseconds"),
            "error": self.error,
            "attempts": self.attempts,
            "resumed_from": self.resumed_from,
            "waited_on": self.waited_on,
            "slot_taken_at": _precise(self.slot_taken_at),
            "slot_released_at": _precise(self.slot_released_at),
        }


#: The report's columns, in order.
FIELDS: tuple[str, ...] = (
    "run_id", "line", "url", "status", "path", "http_status", "bytes", "wait_s",
    "ttfb_s", "download_s", "total_s", "started_at", "finished_at", "error", "attempts", "resumed_from",
    "waited_on", "slot_taken_at", "slot_released_at",
)  # fmt: skip


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 6)


def _precise(moment: datetime | None) -> str | None:
    # To the microsecond: a slot can be given back and taken again within the same millisecond.
    return None if moment is None else moment.isoformat(timespec="microseconds")


@dataclass
class Tally:
    """Counts of a run's results, and the exit status they call for."""

    counts: dict[Status, int] = field(default_factory=lambda: dict.fromkeys(Status, 0))
    bytes: int = 0
    retried: int = 0  # URLs that succeeded after one or more retries
    resumed: int = 0  # URLs that succeeded by continuing a partial file (of this run or an earlier one)
    cut_short: str | None = None  # why the run stopped early (a --deadline or --quota), if it did

    def add(self, result: Result) -> None:
        self.counts[result.status] += 1
        if result.status in (Status.CANCELLED, Status.NOT_STARTED) and self.cut_short is None and result.error:
            # A retry the deadline cancelled adds "; the last attempt failed: ..." to the reason.
            self.cut_short = result.error.split("; ", 1)[0]
        if result.ok:
            self.bytes += result.bytes
            if result.attempts > 1:
                self.retried += 1
            if result.resumed_from:
                self.resumed += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def exit_code(self) -> int:
        """0 all succeeded (ok, unchanged, skipped, duplicate); 1 any failed or invalid; else 4 the run was
        cut short (cancelled or not started); else 3 any acquire-timeout."""
        if self.counts[Status.FAILED] or self.counts[Status.INVALID]:
            return 1
        if self.counts[Status.CANCELLED] or self.counts[Status.NOT_STARTED]:
            return 4
        if self.counts[Status.ACQUIRE_TIMEOUT]:
            return 3
        return 0
