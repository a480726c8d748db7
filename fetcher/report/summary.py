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
from urllib.parse import urlsplit

from .._result import Status
from .._urls import host_key
from .adaptive import HostLimit, host_limits
from .timeline import peak, requested, slots_in_use, time_at_least
from .which_run import RunRecords, clock

#: The slowest URLs a summary names.
SLOWEST = 5
#: The URLs that gave up waiting a summary names (it counts them all).
GAVE_UP_NAMED = 20
#: The host of records whose URL has none (status invalid, or not parseable).
INVALID_HOST = "(invalid)"
#: What a summary says of a run that left no run record.
NO_RUN_RECORD = "no run record: the run was killed, or written by an older fetcher"

_SUCCEEDED = frozenset(status.value for status in Status if status.succeeded)


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


def summarise(run: RunRecords, *, skipped_lines: int = 0) -> Summary:
    """What *run* did.  *skipped_lines*: the reader's count, passed through."""
    spans = run.spans
    record = run.run or {}
    start, end = clock(run)
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
        urls=len(run.urls),
        statuses=_by_status(Counter(r["status"] for r in run.urls)),
        bytes=sum(r["bytes"] or 0 for r in run.urls if r["status"] in _SUCCEEDED),
        retried=sum(1 for r in run.urls if (r["attempts"] or 0) > 1),
        waited_on=dict(Counter(r["waited_on"] for r in run.urls if r["waited_on"]).most_common()),
        slots=slots,
        slots_from="max" if cap is not None else "peak",
        peak_in_use=highest,
        all_busy_s=time_at_least(in_use, slots) if slots else 0.0,
        hosts=hosts(run.urls, host_limits(run.run)),
        slowest=tuple(_named(r) for r in slowest(run.urls, SLOWEST)),
        gave_up=sum(1 for r in run.urls if r["status"] == Status.ACQUIRE_TIMEOUT.value),
        gave_up_urls=tuple(_named(r) for r in gave_up(run.urls)[:GAVE_UP_NAMED]),
        unusable=run.unusable,
        skipped_lines=skipped_lines,
    )


def hosts(urls: Iterable[dict[str, Any]], limits: Mapping[str, HostLimit] | None = None) -> tuple[HostSummary, ...]:
    """Per host, the most URLs first (then by name), and INVALID_HOST last; with their adaptive *limits*."""
    limits = limits or {}
    groups: dict[str, list[dict[str, Any]]] = {}
    known: dict[tuple[str, str], str] = {}  # (status, the URL up to its path) -> host: parse each site once
    for record in urls:
        site = (record["status"], _site(record.get("url") or ""))
        host = known.get(site)
        if host is None:
            host = known[site] = host_of({"status": site[0], "url": site[1]})
        groups.setdefault(host, []).append(record)
    return tuple(
        HostSummary(
            host=host,
            urls=len(records),
            bytes=sum(r["bytes"] or 0 for r in records if r["status"] in _SUCCEEDED),
            wait_s=spread(r["wait_s"] for r in records),
            ttfb_s=spread(r["ttfb_s"] for r in records),
            # A URL never requested (a duplicate, an invalid line) took no time worth a median.
            total_s=spread(r["total_s"] for r in records if requested(r)),
            limit=limits.get(host),
        )
        for host, records in sorted(groups.items(), key=lambda item: (item[0] == INVALID_HOST, -len(item[1]), item[0]))
    )


def host_of(record: dict[str, Any]) -> str:
    """The host the record's URL counted against, or INVALID_HOST for a URL without a usable one."""
    url = record.get("url") or ""
    if record["status"] == Status.INVALID.value:
        return INVALID_HOST
    try:
        if not urlsplit(url).hostname:
            return INVALID_HOST
        return host_key(url)
    except ValueError:  # a port out of range, a bad IPv6 literal
        return INVALID_HOST


def _site(url: str) -> str:
    """*url* up to its path, query or fragment: all host_of looks at."""
    scheme, sep, rest = url.partition("://")
    for stop in "/?#":
        rest = rest.split(stop, 1)[0]
    return scheme + sep + rest


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


def slowest(urls: Iterable[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The *count* requested URLs with the longest ``total_s``, slowest first (those that gave up are apart)."""
    timed = (r for r in urls if r["total_s"] is not None and requested(r))
    return sorted(timed, key=lambda r: -r["total_s"])[:count]


def gave_up(urls: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The URLs that gave up waiting to start (``acquire-timeout``), by line."""
    return sorted((r for r in urls if r["status"] == Status.ACQUIRE_TIMEOUT.value), key=lambda r: r["line"] or 0)


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


def _named(record: dict[str, Any]) -> NamedURL:
    return NamedURL(
        line=record["line"],
        url=record["url"] or "",
        status=record["status"],
        wait_s=record["wait_s"],
        total_s=record["total_s"],
        waited_on=record["waited_on"],
        error=record["error"],
    )
