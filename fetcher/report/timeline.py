"""A run on its clock: when each URL waited, held a slot and got its headers, and the counts those make over time.

Pure functions over the reader's URL records (dicts with the keys of FIELDS).
The record does not say everything: a URL that was retried records only its
last attempt (``ttfb_s``, ``download_s``), and "a URL waiting to retry holds
no slot", so a retried URL counts as holding a slot for its last attempt
only.  It knows nothing of files, runs or drawing (fetcher.report.summary and
fetcher.report.html use it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: Statuses that never asked a server for anything, so never held a slot, whatever an older record says.
_NOTHING_REQUESTED = frozenset({"skipped", "acquire-timeout", "invalid", "not-started", "duplicate"})

#: Times in a record are to the millisecond (and cut, not rounded): a count that lasts less than this
#: is an artefact of that (one URL's finish and the next one's start out of order), not a state of the run.
RESOLUTION = 0.002

#: A step function: (time, value from then on), times rising; the value before the first time is 0.
Series = list[tuple[float, int]]


@dataclass(frozen=True, kw_only=True, slots=True)
class Span:
    """One URL on the run's clock, in seconds since the epoch.

    ``ready`` <= ``waited`` <= ``attempt`` <= ``headers`` <= ``finished``, where present.
    ``waited`` ends the wait (a slot held, or given up).  ``attempt`` starts the
    last attempt (later than ``waited`` only for a retried URL) and ``headers``
    its response headers; both None when nothing was requested.
    """

    ready: float
    waited: float
    attempt: float | None
    headers: float | None
    finished: float
    status: str

    @property
    def in_slot(self) -> bool:
        """It held a download slot (from ``attempt`` to ``finished``)."""
        return self.attempt is not None


def timestamp(text: str) -> float:
    """Seconds since the epoch from a record's ISO 8601 time ("2024-05-01T12:00:00.123+00:00")."""
    return datetime.fromisoformat(text).timestamp()


def requested(record: dict[str, Any]) -> bool:
    """True if the URL was requested, so held a slot (records before 0.2 have no ``attempts``)."""
    if record["status"] in _NOTHING_REQUESTED:
        return False
    attempts = record.get("attempts")
    return attempts is None or attempts > 0


def span(record: dict[str, Any]) -> Span:
    """The URL of *record* on the run's clock.  Times out of order (a clock step) are clamped, not trusted."""
    ready = timestamp(record["started_at"])
    finished = max(ready, timestamp(record["finished_at"]))
    waited = min(finished, ready + (record.get("wait_s") or 0.0))
    if not requested(record):
        return Span(ready=ready, waited=waited, attempt=None, headers=None, finished=finished, status=record["status"])
    attempt = waited
    if (record.get("attempts") or 1) > 1:
        # Only the last attempt is timed, and it ended the URL: count back from the finish.
        last = (record.get("ttfb_s") or 0.0) + (record.get("download_s") or 0.0)
        attempt = max(waited, finished - last)
    ttfb = record.get("ttfb_s")
    headers = None if ttfb is None else min(finished, attempt + ttfb)
    status = record["status"]
    return Span(ready=ready, waited=waited, attempt=attempt, headers=headers, finished=finished, status=status)


def step_series(intervals: Iterable[tuple[float, float]]) -> Series:
    """How many of *intervals* (start, end) are open over time.

    An interval is open from its start up to, not including, its end: one that
    ends when another starts makes no overlap, and an empty one counts nowhere.
    """
    events: list[tuple[float, int]] = []
    for start, end in intervals:
        if end > start:
            events.append((start, 1))
            events.append((end, -1))
    events.sort()
    series: Series = []
    value = 0
    for time, delta in events:
        value += delta
        if series and series[-1][0] == time:
            series[-1] = (time, value)
        else:
            series.append((time, value))
    return series


def smoothed(series: Series, resolution: float = RESOLUTION) -> Series:
    """*series* without the values that lasted less than *resolution* (the last value always stays)."""
    kept: Series = []
    for index, (time, value) in enumerate(series):
        if index + 1 < len(series) and series[index + 1][0] - time < resolution:
            continue
        if kept and kept[-1][1] == value:
            continue
        kept.append((time, value))
    return kept


def slots_in_use(spans: Iterable[Span]) -> Series:
    """The download semaphore's value over time: +1 when a URL's (last) attempt starts, -1 when it finishes."""
    return smoothed(step_series((s.attempt, s.finished) for s in spans if s.attempt is not None))


def waiting(spans: Iterable[Span]) -> Series:
    """URLs waiting to start over time: from ready until a slot was held or the wait given up."""
    return smoothed(step_series((s.ready, s.waited) for s in spans))


def peak(series: Series) -> int:
    """The highest value of *series* (0 for an empty one)."""
    return max((value for _, value in series), default=0)


def time_at_least(series: Series, level: int) -> float:
    """Seconds during which *series* was at *level* or above."""
    total = 0.0
    for (time, value), (following, _) in zip(series, series[1:], strict=False):
        if value >= level:
            total += following - time
    return total


def bucket_peaks(series: Series, start: float, end: float, buckets: int) -> list[int]:
    """The highest value of *series* within each of *buckets* equal slices of [start, end]."""
    width = (end - start) / buckets if end > start else 1.0
    peaks = [0] * buckets
    value = 0
    index = 0
    for bucket in range(buckets):
        stop = start + (bucket + 1) * width
        highest = value  # what was in force when the bucket began
        while index < len(series) and series[index][0] < stop:
            value = series[index][1]
            highest = max(highest, value)
            index += 1
        peaks[bucket] = highest
    return peaks


def bounds(spans: Sequence[Span]) -> tuple[float, float]:
    """The first ready and the last finish of *spans*; (0, 0) for none."""
    if not spans:
        return 0.0, 0.0
    return min(s.ready for s in spans), max(s.finished for s in spans)
