"""Result: what happened to one URL.  Tally: what happened to a whole run."""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any

from ._frozen import quick_init


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


@quick_init
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
            "started_at": _milliseconds(self.started_at),
            "finished_at": _milliseconds(self.finished_at),
            "error": self.error,
            "attempts": self.attempts,
            "resumed_from": self.resumed_from,
            "waited_on": self.waited_on,
            "slot_taken_at": _precise(self.slot_taken_at),
            "slot_released_at": _precise(self.slot_released_at),
        }

    def to_json(self) -> str:
        """``to_record()`` as ``json.dumps(record, ensure_ascii=True)`` writes it, at about half the cost.

        The report writes one per URL on the thread that takes the results, so
        it skips the dict and the encoder's walk over it.  The keys are FIELDS,
        in order; tests hold it to json.dumps on every kind of value.
        """
        try:
            path = self.path
            return (
                f'{{"run_id": {_text(self.run_id)}, "line": {int.__repr__(self.line)}, "url": {_text(self.url)}, '
                f'"status": {_text(self.status.value)}, "path": {"null" if path is None else _text(str(path))}, '
                f'"http_status": {_whole(self.http_status)}, "bytes": {int.__repr__(self.bytes)}, '
                f'"wait_s": {_seconds(self.wait_s)}, "ttfb_s": {_seconds(self.ttfb_s)}, '
                f'"download_s": {_seconds(self.download_s)}, "total_s": {_seconds(self.total_s)}, '
                f'"started_at": "{_milliseconds(self.started_at)}", '
                f'"finished_at": "{_milliseconds(self.finished_at)}", '
                f'"error": {_optional_text(self.error)}, "attempts": {int.__repr__(self.attempts)}, '
                f'"resumed_from": {_whole(self.resumed_from)}, "waited_on": {_optional_text(self.waited_on)}, '
                f'"slot_taken_at": {_moment(self.slot_taken_at)}, '
                f'"slot_released_at": {_moment(self.slot_released_at)}}}'
            )
        except (TypeError, AttributeError):  # a field of an unexpected type (a Result built by hand)
            return json.dumps(self.to_record(), ensure_ascii=True)


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
    if moment is None:
        return None
    minute = _minute(moment)
    if minute is None:
        return moment.isoformat(timespec="microseconds")
    return f"{minute}{_SECONDS[moment.second]}.{moment.microsecond:06d}+00:00"


def _milliseconds(moment: datetime) -> str:
    """``moment.isoformat(timespec="milliseconds")``, in a third of the time for a UTC moment."""
    minute = _minute(moment)
    if minute is None:
        return moment.isoformat(timespec="milliseconds")
    return minute + _SECONDS[moment.second] + _MILLISECONDS[moment.microsecond // 1000]


#: The text of the minutes seen lately ("2024-05-01T12:07:"): isoformat costs more than
#: a look-up, and four datetimes of each record share their minute with the records around them.
_MINUTES: dict[tuple[int, int, int, int, int], str] = {}
_SECONDS = [f"{second:02d}" for second in range(60)]
_MILLISECONDS = [f".{ms:03d}+00:00" for ms in range(1000)]


def _minute(moment: datetime) -> str | None:
    """The ISO text of *moment* up to its minute's colon, if *moment* is a plain datetime in UTC."""
    if moment.tzinfo is not timezone.utc or type(moment) is not datetime:
        return None
    key = (moment.year, moment.month, moment.day, moment.hour, moment.minute)
    text = _MINUTES.get(key)
    if text is None:
        if len(_MINUTES) >= 64:
            _MINUTES.clear()
        text = _MINUTES[key] = moment.isoformat(timespec="minutes")[:-6] + ":"
    return text


# -- the pieces of to_json: each value as json.dumps writes it ------------------------------------

_text = encode_basestring_ascii


def _optional_text(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


def _whole(value: int | None) -> str:
    return "null" if value is None else int.__repr__(value)


def _seconds(value: float | None) -> str:
    """``round(value, 6)`` as json writes it."""
    if value is None:
        return "null"
    if type(value) is float and 1e-4 <= value < 1e6:
        # The same text for a third of the cost: round() and the "f" format both take the correctly rounded
        # 6-place decimal, and in this range repr gives back just its digits: no exponent, and doubles lie
        # so close together that no shorter decimal names the same one.
        text = f"{value:.6f}".rstrip("0")
        return text + "0" if text[-1] == "." else text
    value = round(value, 6)
    if not isinstance(value, float):
        return int.__repr__(value)
    # float.__repr__, as json calls it for a float subclass too; json spells NaN and Infinity its own way.
    return float.__repr__(value) if math.isfinite(value) else json.dumps(value)


def _moment(value: datetime | None) -> str:
    return "null" if value is None else f'"{_precise(value)}"'


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
