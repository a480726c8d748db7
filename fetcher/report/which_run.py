"""Which run of a report to summarise, and its records: the runs in the order they started, and the one chosen.

A report grows by a run each time fetcher writes to it (a cron job's, each
night), and a run may have millions of URLs, so the command does not keep
every record: ``read_run`` keeps, as it reads, only the run that appeared
last (or the one asked for), and of it what its URL records add up to
(fetcher.report.tally), each one's place on the clock, and the records
themselves (cut to the fields the page reads) only up to RECORDS_KEPT, for
the page's bar per URL.  Where that is not the run to summarise (a run that
started later appeared earlier in the file, or two runs wrote to it in
turns), it says so, and a second read with ``only`` keeps that one.
``runs_in`` keeps every run, records and all.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigError
from .columns import SpanColumns
from .reader import is_run
from .tally import Tally
from .timeline import Span, bounds, span, timestamp

#: The run ids an unknown --run lists.
RUNS_LISTED = 5

_NUMBERS = ("line", "bytes", "wait_s", "ttfb_s", "download_s", "total_s", "attempts")

#: URL records of a run that ``read_run`` keeps, for the page's bar per URL; past that it keeps their
#: places on the clock and their tally only.
RECORDS_KEPT = 2000

#: What the summary and the page read of a URL record (``read_run`` keeps these only).
USED_FIELDS = ("line", "url", "status", "bytes", "attempts", "waited_on", "error", "wait_s", "ttfb_s", "download_s",
               "total_s")  # fmt: skip


@dataclass(frozen=True, kw_only=True, slots=True)
class RunRecords:
    """One run's records in a report: what its URL records add up to (``tally``), each one's place on the
    clock (``spans``, file order), the records themselves where kept (``urls``, the same order: all of them
    from ``runs_in``, none past RECORDS_KEPT from ``read_run``), and its run record, if it wrote one."""

    run_id: str
    tally: Tally
    spans: Sequence[Span]
    urls: list[dict[str, Any]]
    run: dict[str, Any] | None = None
    unusable: int = 0  # URL records that could not be placed on the clock (see runs_in)


@dataclass(frozen=True, kw_only=True, slots=True)
class RunRead:
    """What one read of a report found: the ids of its runs, the earliest started first, and the run chosen.

    ``run`` is None when that read could not keep all of the chosen run's records: read again with
    ``read_run(report, only=chosen)``; and when there was no record at all (``ids`` empty, ``chosen`` None).
    """

    ids: list[str]
    chosen: str | None
    run: RunRecords | None


def runs_in(records: Iterable[dict[str, Any]]) -> list[RunRecords]:
    """Each run in *records* (URL and run records, as the reader gives them), the earliest started first.

    A run starts at its run record's ``started_at``, else at its first URL's;
    runs that started together keep their order in the file.  A URL record
    that cannot be placed on the clock (no status or times, a number that is
    not one: hand-edited, or garbage that parsed) is counted in ``unusable``.
    """
    urls: dict[str, list[dict[str, Any]]] = {}
    spans: dict[str, list[Span]] = {}
    tallies: dict[str, Tally] = {}
    unusable: Counter[str] = Counter()
    run_records: dict[str, dict[str, Any]] = {}
    for record in records:
        run_id, placed = _sorted(record, run_records, unusable)
        urls.setdefault(run_id, [])
        spans.setdefault(run_id, [])
        tally = tallies.setdefault(run_id, Tally())
        if placed is not None:
            urls[run_id].append(record)
            spans[run_id].append(placed)
            tally.add(record)
    runs = [
        RunRecords(
            run_id=run_id,
            tally=tallies[run_id],
            spans=spans[run_id],
            urls=urls[run_id],
            run=run_records.get(run_id),
            unusable=unusable[run_id],
        )
        for run_id in urls
    ]
    return sorted(runs, key=_start)


def pick_run(runs: Sequence[RunRecords], run_id: str | None = None) -> RunRecords:
    """The run *run_id* of *runs* (from ``runs_in``), or the last to start.

    Raises ConfigError when there is none, or no run *run_id* (naming the last few ids).
    """
    if not runs:
        raise ConfigError("the report has no records")
    chosen = _chosen([run.run_id for run in runs], run_id)
    return next(run for run in runs if run.run_id == chosen)


def read_run(records: Iterable[dict[str, Any]], run_id: str | None = None, *, only: str | None = None) -> RunRead:
    """The runs in *records* and the run *run_id* (else the last to start), keeping one run's records at most.

    *only*: keep that run's records and no other's (the second read).  Raises ConfigError as ``pick_run``
    does for no run *run_id*; with no records at all, ``ids`` is empty.  The run given back is what
    ``pick_run(runs_in(records))`` gives, its URL records cut to USED_FIELDS.
    """
    first_ready: dict[str, float] = {}  # each run's first ready (inf: none placed), in the order runs appear
    run_records: dict[str, dict[str, Any]] = {}
    unusable: Counter[str] = Counter()
    kept: str | None = None  # the run whose placed records are being kept (tallied, placed, RECORDS_KEPT kept)
    tally = Tally()
    spans = SpanColumns()  # 64 bytes a URL: a list of Span objects takes about 400
    urls: list[dict[str, Any]] = []
    dropped: set[str] = set()  # runs with a placed record that was not kept, or no longer is
    wanted = only if only is not None else run_id
    for record in records:
        key, placed = _sorted(record, run_records, unusable)
        first_ready.setdefault(key, math.inf)
        if placed is None:
            continue
        first_ready[key] = min(first_ready[key], placed.ready)
        if wanted is not None and key != wanted:
            dropped.add(key)
            continue
        if key != kept:
            if kept is not None:
                dropped.add(kept)  # another run wrote in between: the records kept so far go
                tally, spans, urls = Tally(), SpanColumns(), []
            kept = key
        slim = _slim(record)
        tally.add(slim)
        spans.append(placed)
        if len(spans) <= RECORDS_KEPT:
            urls.append(slim)
        elif urls:
            urls = []  # more than the page draws one by one: the tally and the places on the clock will do
    ids = sorted(first_ready, key=lambda key: _start_of(run_records.get(key), first_ready[key]))
    if not ids:
        return RunRead(ids=ids, chosen=None, run=None)
    chosen = _chosen(ids, wanted)
    if first_ready[chosen] != math.inf and (chosen != kept or chosen in dropped):
        return RunRead(ids=ids, chosen=chosen, run=None)  # some of its records were not kept
    whole = chosen == kept
    run = RunRecords(run_id=chosen, tally=tally if whole else Tally(), spans=spans if whole else [],
                     urls=urls if whole else [], run=run_records.get(chosen), unusable=unusable[chosen])  # fmt: skip
    return RunRead(ids=ids, chosen=chosen, run=run)


def clock(run: RunRecords) -> tuple[float, float]:
    """When *run* started and finished: its run record's times, else its first ready and last finish."""
    return _recorded_times(run.run) or bounds(run.spans)


def _start(run: RunRecords) -> float:
    return _start_of(run.run, min((s.ready for s in run.spans), default=math.inf))


def _sorted(
    record: dict[str, Any], run_records: dict[str, dict[str, Any]], unusable: Counter[str]
) -> tuple[str, Span | None]:
    """*record*'s run, and its place on the clock if it is a URL record that has one; a run record is kept in
    *run_records* (the last of a run), a URL record that cannot be placed is counted in *unusable*."""
    run_id = str(record.get("run_id") or "")
    if is_run(record):
        run_records[run_id] = record
        return run_id, None
    placed = _placed(record)
    if placed is None:
        unusable[run_id] += 1
    return run_id, placed


def _start_of(run_record: dict[str, Any] | None, first_ready: float) -> float:
    """When a run started (for its order among the runs), from its run record, else from the first ready of its
    URL records (inf: none placed): ``clock``'s start, and inf for a run with no record of either kind."""
    times = _recorded_times(run_record)
    if times is not None:
        return times[0]
    if run_record is not None and first_ready == math.inf:
        return 0.0  # as bounds() of no spans: a run record whose times do not read, and no URL
    return first_ready


def _recorded_times(run_record: dict[str, Any] | None) -> tuple[float, float] | None:
    """When the run record says its run started and finished; None without one, or where they do not read."""
    if run_record is None:
        return None
    try:
        start, end = timestamp(run_record["started_at"]), timestamp(run_record["finished_at"])
    except (KeyError, TypeError, ValueError):
        return None  # a run record a person edited: the URLs still tell
    return start, max(start, end)


def _chosen(ids: Sequence[str], run_id: str | None) -> str:
    """*run_id* if *ids* has it, else ConfigError naming the last few; the last to start without one."""
    if run_id is None:
        return ids[-1]
    if run_id in ids:
        return run_id
    latest = ", ".join(ids[-RUNS_LISTED:])
    raise ConfigError(f"no run {run_id!r} in the report; its last runs: {latest}")


def _slim(record: dict[str, Any]) -> dict[str, Any]:
    """*record* with only USED_FIELDS, its repeated texts shared: a million URL records are a million dicts."""
    slim = {name: record.get(name) for name in USED_FIELDS}
    for name in ("status", "waited_on"):
        value = slim[name]
        if isinstance(value, str):
            slim[name] = sys.intern(value)
    return slim


def _placed(record: dict[str, Any]) -> Span | None:
    """The record on the clock, or None if it is not one the summary can use."""
    if not isinstance(record.get("status"), str):
        return None
    for name in _NUMBERS:
        value = record.get(name)
        if value is not None and (type(value) not in (int, float) or value < 0):
            return None
    try:
        return span(record)
    except (TypeError, ValueError):  # no time, or one that is not ISO 8601
        return None
