"""Tally: what one run's URL records add up to, taken a record at a time as they are read.

Everything the summary counts from the records themselves: statuses, bytes,
retries, the limits that held URLs back, and per host its URLs, bytes and the
seconds whose median and 95th percentile it gives; and which URLs it names,
the slowest and the first that gave up waiting.  So a run need not keep its
records to be summarised: the tally keeps three numbers a URL (in arrays of
floats) and the few records it names, and the run keeps each URL's place on
the clock (fetcher.report.timeline) for its slots over time.
"""

from __future__ import annotations

import heapq
from array import array
from collections import Counter
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .._result import Status
from .._urls import host_key
from .timeline import requested

#: The slowest URLs a summary names.
SLOWEST = 5
#: The URLs that gave up waiting a summary names (it counts them all).
GAVE_UP_NAMED = 20
#: The host of records whose URL has none (status invalid, or not parseable).
INVALID_HOST = "(invalid)"

_SUCCEEDED = frozenset(status.value for status in Status if status.succeeded)
_GAVE_UP = Status.ACQUIRE_TIMEOUT.value

Record = Mapping[str, Any]


class HostTally:
    """One host's URLs, the bytes of those that succeeded, and their seconds (the ones a record has)."""

    __slots__ = ("urls", "bytes", "wait_s", "ttfb_s", "total_s")

    def __init__(self) -> None:
        self.urls = 0
        self.bytes = 0
        self.wait_s = array("d")
        self.ttfb_s = array("d")
        self.total_s = array("d")  # of the URLs that were requested: one never requested took no time worth a median


class Tally:
    """The sums of one run's URL records, added with ``add`` in file order."""

    def __init__(self) -> None:
        self.urls = 0
        self.statuses: Counter[str] = Counter()
        self.bytes = 0  # of the URLs that succeeded
        self.retried = 0  # URLs with more than one attempt
        self.waited_on: Counter[str] = Counter()
        self.gave_up = 0
        self.hosts: dict[str, HostTally] = {}
        self._known: dict[tuple[str, str], str] = {}  # (status, the URL up to its path) -> host: parse each site once
        # The SLOWEST requested URLs by total_s so far: a min-heap of (total_s, -order, record), so that of
        # equal times the first in the file stays (as a stable sort would keep it).
        self._slowest: list[tuple[float, int, Record]] = []
        # The first GAVE_UP_NAMED by line that gave up: a heap of (-line, -order, record).
        self._first_gave_up: list[tuple[int, int, Record]] = []

    def add(self, record: Record) -> None:
        """Count *record*, a URL record the summary can use (its numbers numbers, its status text)."""
        order = self.urls
        self.urls += 1
        status = record["status"]
        self.statuses[status] += 1
        succeeded = status in _SUCCEEDED
        size = (record["bytes"] or 0) if succeeded else 0
        self.bytes += size
        if (record["attempts"] or 0) > 1:
            self.retried += 1
        if record["waited_on"]:
            self.waited_on[record["waited_on"]] += 1
        host = self._tally_of(record)
        host.urls += 1
        host.bytes += size
        if record["wait_s"] is not None:
            host.wait_s.append(record["wait_s"])
        if record["ttfb_s"] is not None:
            host.ttfb_s.append(record["ttfb_s"])
        took = record["total_s"]
        if requested(record):
            if took is not None:
                host.total_s.append(took)
                _keep_largest(self._slowest, (took, -order, record), SLOWEST)
        if status == _GAVE_UP:
            self.gave_up += 1
            _keep_largest(self._first_gave_up, (-(record["line"] or 0), -order, record), GAVE_UP_NAMED)

    def slowest(self) -> list[Record]:
        """The SLOWEST requested URLs by ``total_s``, slowest first (of equal times, the first in the file first)."""
        return [record for _, _, record in sorted(self._slowest, reverse=True)]

    def first_gave_up(self) -> list[Record]:
        """The first GAVE_UP_NAMED URLs by line that gave up waiting (``acquire-timeout``)."""
        return [record for _, _, record in sorted(self._first_gave_up, reverse=True)]

    def _tally_of(self, record: Record) -> HostTally:
        site = (record["status"], _site(record.get("url") or ""))
        name = self._known.get(site)
        if name is None:
            name = self._known[site] = host_of({"status": site[0], "url": site[1]})
        host = self.hosts.get(name)
        if host is None:
            host = self.hosts[name] = HostTally()
        return host


def host_of(record: Record) -> str:
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


def _keep_largest(heap: list[tuple[Any, int, Record]], item: tuple[Any, int, Record], count: int) -> None:
    """Add *item* to the min-heap *heap*, which keeps the *count* largest (the records never compared: the
    middle of each tuple differs)."""
    if len(heap) < count:
        heapq.heappush(heap, item)
    elif item[:2] > heap[0][:2]:
        heapq.heapreplace(heap, item)
