"""The summary of one run in a report: what ``fetcher report`` prints, as numbers.

Pure functions over one run's records (fetcher.report.which_run picks the
run): what it did (counts, bytes, wall time, per-host spreads, the slowest
URLs, the ones that gave up waiting, how long every slot was busy).
It reads no file and prints nothing; the command does both.

Bytes are those of the URLs that succeeded, as the run record counts them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from .._result import Status
from .adaptive import HostLimit, host_limits
from .tally import GAVE_UP_NAMED as GAVE_UP_NAMED
from .tally import INVALID_HOST as INVALID_HOST
from .tally import SLOWEST as SLOWEST
from .tally import HostTally, Tally
from .timeline import Series, peak, slots_in_use, time_at_least
from .which_run import RunRecords, clock

#: What a summary says of a run that left no run record.
NO_RUN_RECORD = "no run record: the run was killed, or written by an older fetcher"


@dataclass(frozen=True, kw_only=True, slots=True)
class Spread:
    """The median and 95th percentile of some seconds (None where there were none), and how many there were."""

    count: int
    median: float | None
    p95: float | None


@dataclass(frozen=True, kw_only=True, slots=True)
class HostSummary:
    """One host's share of the run."""

    host: str
    urls: int
    bytes: int
    wait_s: Spread
    ttfb_s: Spread
    total_s: Spread
    #: Its adaptive limit over the run (``--adaptive``); None without one.
    limit: HostLimit | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class NamedURL:
    """A URL the summary names (a slow one, or one that gave up waiting)."""

    line: int | None
    url: str
    status: str
    wait_s: float | None
    total_s: float | None
    waited_on: str | None
    error: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Summary:
    """What one run did.  ``to_record()`` gives it as JSON (its keys are these fields).

    - ``run_id``; ``run_record``: whether the run wrote one (a killed run did
      not); ``ended``, ``reason``, ``version``: from it (None without one).
    - ``started_at``, ``finished_at``: ISO 8601, the run record's, else the
      first ready and the last finish of its URLs; ``wall_s`` between them.
    - ``urls``: URL records; ``statuses``: status -> count (statuses seen only);
      ``bytes``: bytes of the URLs that succeeded; ``retried``: URLs with more
      than one attempt; ``waited_on``: limit -> URLs it held back.
    - ``slots``: the number of download slots: the run's ``--max``, else
      (no run record) the peak in use; ``slots_from``: ``"max"`` or ``"peak"``;
      ``peak_in_use``: the most slots held at once; ``all_busy_s``: seconds
      during which ``slots`` were held at once.  Both count the moments each
      URL took its slot and gave it back (fetcher.report.timeline).
    - ``hosts``: per host (``name:port``, or ``(invalid)``), most URLs first:
      ``urls``, ``bytes``, and ``wait_s``, ``ttfb_s``, ``total_s`` each as
      ``{"count", "median", "p95"}``, and ``limit``: with ``--adaptive``, its
      limit over the run (``{"cap", "final", "lowest", "points"}``), else None.
    - ``slowest``: the slowest requested URLs by ``total_s``, slowest first;
      ``gave_up``: how many gave up waiting (``acquire-timeout``), and
      ``gave_up_urls`` the first of them by line (at most GAVE_UP_NAMED).
    - ``unusable``: this run's URL records that could not be read as one
      (no times, a number that is not one); ``skipped_lines``: lines of the
      whole report that were not whole records.
    """

    run_id: str
    run_record: bool
    ended: str | None
    reason: str | None
    version: str | None
    started_at: str | None
    finished_at: str | None
    wall_s: float
    urls: int
    statuses: Mapping[str, int]
    bytes: int
    retried: int
    waited_on: Mapping[str, int]
    slots: int | None
    slots_from: str
    peak_in_use: int
    all_busy_s: float
    hosts: tuple[HostSummary, ...]
    slowest: tuple[NamedURL, ...]
    gave_up: int
    gave_up_urls: tuple[NamedURL, ...]
    unusable: int = 0
    skipped_lines: int = 0

    def to_record(self) -> dict[str, Any]:
        """The summary as plain JSON-ready values."""
        record = asdict(self)
        record["statuses"] = dict(self.statuses)
        record["waited_on"] = dict(self.waited_on)
        return _rounded(record)  # type: ignore[no-any-return]


def summarise(run: RunRecords, *, skipped_lines: int = 0, in_use: Series | None = None) -> Summary:
    """What *run* did.  *skipped_lines*: the reader's count, passed through.  *in_use*: the run's
    ``slots_in_use(run.spans)`` where the caller has it already (the page needs it too, and on a run of
    millions of URLs it takes seconds and a sort of every slot)."""
    spans, tally = run.spans, run.tally
    record = run.run or {}
    start, end = clock(run)
    if in_use is None:
        in_use = slots_in_use(spans)
    highest = peak(in_use)
    cap = _max_option(record)
    slots = cap if cap is not None else (highest or None)
    return Summary(
        run_id=run.run_id,
        run_record=run.run is not None,
        ended=record.get("ended"),
        reason=record.get("reason"),
        version=record.get("version"),
        started_at=_iso(start) if spans or run.run else None,
        finished_at=_iso(end) if spans or run.run else None,
        wall_s=end - start,
        urls=tally.urls,
        statuses=_by_status(tally.statuses),
        bytes=tally.bytes,
        retried=tally.retried,
        waited_on=dict(tally.waited_on.most_common()),
        slots=slots,
        slots_from="max" if cap is not None else "peak",
        peak_in_use=highest,
        all_busy_s=time_at_least(in_use, slots) if slots else 0.0,
        hosts=hosts(tally, host_limits(run.run)),
        slowest=tuple(_named(r) for r in tally.slowest()),
        gave_up=tally.gave_up,
        gave_up_urls=tuple(_named(r) for r in tally.first_gave_up()),
        unusable=run.unusable,
        skipped_lines=skipped_lines,
    )


def hosts(tally: Tally, limits: Mapping[str, HostLimit] | None = None) -> tuple[HostSummary, ...]:
    """Per host, the most URLs first (then by name), and INVALID_HOST last; with their adaptive *limits*."""
    limits = limits or {}
    return tuple(
        HostSummary(
            host=name,
            urls=host.urls,
            bytes=host.bytes,
            wait_s=spread(host.wait_s),
            ttfb_s=spread(host.ttfb_s),
            total_s=spread(host.total_s),
            limit=limits.get(name),
        )
        for name, host in sorted(tally.hosts.items(), key=_host_order)
    )


def _host_order(item: tuple[str, HostTally]) -> tuple[bool, int, str]:
    name, host = item
    return name == INVALID_HOST, -host.urls, name


def spread(values: Iterable[float | None]) -> Spread:
    """The median and 95th percentile of the values that are not None."""
    known = sorted(v for v in values if v is not None)
    return Spread(count=len(known), median=percentile(known, 0.5), p95=percentile(known, 0.95))


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """The *fraction* quantile of sorted *ordered*, interpolated between the nearest two (None if empty)."""
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def busy_text(summary: Summary) -> str:
    """How long every slot was in use: "all busy for 5.27s (80% of the run)"."""
    share = f" ({summary.all_busy_s / summary.wall_s:.0%} of the run)" if summary.wall_s > 0 else ""
    return f"all busy for {seconds_text(summary.all_busy_s)}{share}"


def seconds_text(seconds: float | None) -> str:
    """Seconds as the summary shows them: "-" for none, "0.042s", "3.21s", "42.5s", "3m12s"."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.3g}s" if seconds >= 0.001 else "0s"
    if seconds < 59.95:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (rest, "s")) if n) or "0s"


def period_text(summary: Summary) -> str:
    """When the run ran, as "2024-05-01 12:00:00 to 12:03:12 UTC, 3m12s"."""
    if summary.started_at is None or summary.finished_at is None:
        return "no URL records"
    start, end = (datetime.fromisoformat(t).astimezone(timezone.utc) for t in (summary.started_at, summary.finished_at))
    end_text = end.strftime("%H:%M:%S" if end.date() == start.date() else "%Y-%m-%d %H:%M:%S")
    return f"{start:%Y-%m-%d %H:%M:%S} to {end_text} UTC, {seconds_text(summary.wall_s)}"


def _iso(time: float) -> str:
    return datetime.fromtimestamp(time, timezone.utc).isoformat(timespec="milliseconds")


def _rounded(value: Any) -> Any:
    """*value* with its floats to the microsecond, as the records have them."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(item) for item in value]
    return value


def _by_status(counts: Counter[str]) -> dict[str, int]:
    """The counts in Status order (ok first), statuses of a later version last."""
    known = [status.value for status in Status if status.value in counts]
    return {status: counts[status] for status in known + sorted(set(counts) - set(known))}


def _max_option(record: Mapping[str, Any]) -> int | None:
    options = record.get("options")
    value = options.get("max") if isinstance(options, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _named(record: Mapping[str, Any]) -> NamedURL:
    return NamedURL(
        line=record["line"],
        url=record["url"] or "",
        status=record["status"],
        wait_s=record["wait_s"],
        total_s=record["total_s"],
        waited_on=record["waited_on"],
        error=record["error"],
    )
