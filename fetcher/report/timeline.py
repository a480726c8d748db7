"""A run on its clock: when each URL waited, held a slot and got its headers, and the counts those make over time.

Pure functions over the reader's URL records (dicts with the keys of FIELDS).
The slots in use are the moments each URL's slot was taken and given back
(``slot_taken_at``, ``slot_released_at``), stamped by the run on one clock,
to the microsecond, while the slot is held: counted as they are, they never
make more than ``--max``, however short the downloads.  A slot that changes
hands to a URL waiting for it counts as held through the hand-over
(``handed_over``).  Records of fetcher
0.2.0 and older lack them: for those the slots are rebuilt from
``started_at`` + ``wait_s`` to ``finished_at``, times to the millisecond, and
what lasted less than that is dropped as the rounding's (so downloads of a
millisecond or two may not show at all).

The record does not say everything: a URL that was retried records only its
last attempt (``ttfb_s``, ``download_s``, its slot), and "a URL waiting to
retry holds no slot", so a retried URL counts as holding a slot for its last
attempt only.  It knows nothing of files, runs or drawing
(fetcher.report.summary and fetcher.report.html use it).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from .steps import StepSeries

#: Statuses that never asked a server for anything, so never held a slot, whatever an older record says.
_NOTHING_REQUESTED = frozenset({"skipped", "acquire-timeout", "invalid", "not-started", "duplicate"})

#: ``started_at`` and ``finished_at`` are to the millisecond (and cut, not rounded): a count rebuilt from them
#: that lasts less than this is an artefact of that (one URL's finish and the next one's start out of order),
#: not a state of the run.
RESOLUTION = 0.002

#: A step function: (time, value from then on), times rising; the value before the first time is 0.
Series = Sequence[tuple[float, int]]


class Span(NamedTuple):
    """One URL on the run's clock, in seconds since the epoch.

    ``ready`` <= ``waited`` <= ``attempt`` <= ``headers`` <= ``finished``, where present.
    ``waited`` ends the wait (a slot held, or given up).  ``attempt`` starts the
    last attempt (later than ``waited`` only for a retried URL) and ``headers``
    its response headers; both None when nothing was requested.  ``slot``: when
    the last attempt took its slot and gave it back, as recorded; None for a
    record without them (of 0.2.0 or older, or of a URL that held no slot).

    A named tuple, not a frozen dataclass: a long run's spans are kept as columns
    and made again at each reading (fetcher.report.columns), 0.1 µs a Span against 1.2.
    """

    ready: float
    waited: float
    attempt: float | None
    headers: float | None
    finished: float
    status: str
    slot: tuple[float, float] | None = None
    waited_on: str | None = None

    @property
    def in_slot(self) -> bool:
        """It held a download slot: ``slot`` where recorded, else (rebuilt) from ``attempt`` to ``finished``."""
        return self.attempt is not None


def timestamp(text: str) -> float:
    """Seconds since the epoch from a record's ISO 8601 time ("2024-05-01T12:00:00.123+00:00")."""
    return datetime.fromisoformat(text).timestamp()


def requested(record: Mapping[str, Any]) -> bool:
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
    slot = held(record)
    retried = (record.get("attempts") or 1) > 1
    if slot is not None:
        # The slot's own times are to the microsecond: the wait (of a URL tried once) and the attempt start there.
        finished = max(finished, slot[1])
        waited = max(ready, min(waited, slot[0]) if retried else slot[0])
        attempt = max(waited, slot[0])
    elif retried:
        # Only the last attempt is timed, and it ended the URL: count back from the finish.
        last = (record.get("ttfb_s") or 0.0) + (record.get("download_s") or 0.0)
        attempt = max(waited, finished - last)
    else:
        attempt = waited
    ttfb = record.get("ttfb_s")
    headers = None if ttfb is None else min(finished, attempt + ttfb)
    status = record["status"]
    return Span(
        ready=ready, waited=waited, attempt=attempt, headers=headers, finished=finished, status=status, slot=slot,
        waited_on=record.get("waited_on"),
    )


def held(record: dict[str, Any]) -> tuple[float, float] | None:
    """When the record's URL took its slot and gave it back, as recorded (None where the record has no such times)."""
    taken, released = record.get("slot_taken_at"), record.get("slot_released_at")
    if not taken or not released:
        return None
    start, end = timestamp(taken), timestamp(released)
    return (start, end) if end >= start else None


def step_series(intervals: Iterable[tuple[float, float]]) -> Series:
    """How many of *intervals* (start, end) are open over time.

    An interval is open from its start up to, not including, its end: one that
    ends when another starts makes no overlap, and an empty one counts nowhere.
    """
    # Starts and ends sorted apart, in arrays, and merged: a run of millions of URLs would otherwise make
    # two (time, +-1) tuples of each, about 150 bytes a URL at once.
    starts, ends = array("d"), array("d")
    for start, end in intervals:
        if end > start:
            starts.append(start)
            ends.append(end)
    starts, ends = array("d", sorted(starts)), array("d", sorted(ends))
    times, values = array("d"), array("q")  # the series, as columns (StepSeries)
    value, opened, closed, count = 0, 0, 0, len(starts)
    while closed < count:
        if opened < count and starts[opened] < ends[closed]:  # at one instant, what ends goes first
            time = starts[opened]
            opened += 1
            value += 1
        else:
            time = ends[closed]
            closed += 1
            value -= 1
        if times and times[-1] == time:
            values[-1] = value
        else:
            times.append(time)
            values.append(value)
    return StepSeries(times, values)


def smoothed(series: Series, resolution: float = RESOLUTION) -> Series:
    """*series* without the values that lasted less than *resolution* (the last value always stays)."""
    kept: list[tuple[float, int]] = []
    for index, (time, value) in enumerate(series):
        if index + 1 < len(series) and series[index + 1][0] - time < resolution:
            continue
        if kept and kept[-1][1] == value:
            continue
        kept.append((time, value))
    return kept


def slots_in_use(spans: Sequence[Span]) -> Series:
    """The download semaphore's value over time: +1 when a URL's (last) attempt took its slot, -1 when it gave it back.

    Exactly as recorded, when the records have the slot's times; else (records
    of 0.2.0 and older) rebuilt from each attempt's start to the URL's finish,
    and smoothed.
    """
    if recorded(spans):
        return step_series(handed_over(spans))
    return smoothed(step_series((s.attempt, s.finished) for s in spans if s.attempt is not None))


#: The limits a URL can wait on that are the download slots themselves.
_SLOT_LIMITS = frozenset({"slots", "shared"})


def handed_over(spans: Sequence[Span]) -> Iterator[tuple[float, float]]:
    """Each recorded slot hold, kept open through its hand-over to a URL that was waiting for a slot.

    A slot given back while a URL waits for one is free only until the
    dispatcher's thread wakes and takes it for that URL (about half a
    millisecond): the slot is not idle then, it is changing hands.  Left out,
    those gaps make a run of 2 ms downloads, saturated from start to end, read
    as all busy half of the time.  Each give-back is paired with at most one
    take, the next by a URL that waited on the slots and was waiting when the
    slot came back, so the count still never exceeds ``--max``.
    """
    # Arrays and sorted indexes, not lists of tuples: a run may have millions of URLs (see step_series).
    starts, ends, taken_at, ready_at = array("d"), array("d"), array("d"), array("d")
    for s in spans:
        if s.slot is not None:
            starts.append(s.slot[0])
            ends.append(s.slot[1])
            if s.waited_on in _SLOT_LIMITS:
                taken_at.append(s.slot[0])
                ready_at.append(s.ready)
    # Give-backs and takes each in order of time (of equal times, as they came), merged: at one instant,
    # give-backs first.
    backs = sorted(range(len(ends)), key=ends.__getitem__)
    takes = sorted(range(len(taken_at)), key=taken_at.__getitem__)
    given_back: list[tuple[float, int]] = []  # (time, index into ends) not handed to anyone yet, latest last
    back = 0
    for take in takes:
        time = taken_at[take]
        while back < len(backs) and ends[backs[back]] <= time:
            given_back.append((ends[backs[back]], backs[back]))
            back += 1
        if given_back and given_back[-1][0] >= ready_at[take]:
            _, hold = given_back.pop()
            ends[hold] = time
    return zip(starts, ends, strict=True)


def waiting(spans: Sequence[Span]) -> Series:
    """URLs waiting to start over time: from ready until a slot was held or the wait given up."""
    series = step_series((s.ready, s.waited) for s in spans)
    # Records with the slot's times end each wait to the microsecond: only a start is to the millisecond.
    return series if recorded(spans) else smoothed(series)


def recorded(spans: Sequence[Span]) -> bool:
    """True if the records of *spans* have the times of their slots (those of fetcher after 0.2.0 do)."""
    return any(s.slot is not None for s in spans)


def peak(series: Series) -> int:
    """The highest value of *series* (0 for an empty one)."""
    return max((value for _, value in series), default=0)


def time_at_least(series: Series, level: int) -> float:
    """Seconds during which *series* was at *level* or above."""
    total = 0.0
    last: tuple[float, int] | None = None  # each step with the one before it, without a copy of the series
    for step in series:
        if last is not None and last[1] >= level:
            total += step[0] - last[0]
        last = step
    return total


def bucket_peaks(series: Series, start: float, end: float, buckets: int) -> list[int]:
    """The highest value of *series* within each of *buckets* equal slices of [start, end]."""
    width = (end - start) / buckets if end > start else 1.0
    peaks = [0] * buckets
    value = 0
    steps = iter(series)  # read once, in order: a StepSeries makes a pair at each read
    step = next(steps, None)
    for bucket in range(buckets):
        stop = start + (bucket + 1) * width
        highest = value  # what was in force when the bucket began
        while step is not None and step[0] < stop:
            value = step[1]
            highest = max(highest, value)
            step = next(steps, None)
        peaks[bucket] = highest
    return peaks


def bounds(spans: Sequence[Span]) -> tuple[float, float]:
    """The first ready and the last finish of *spans*; (0, 0) for none."""
    if not spans:
        return 0.0, 0.0
    return min(s.ready for s in spans), max(s.finished for s in spans)
