"""The schedule: URLs waiting to start, one lane per host, none blocking another.

    new URL ──▶ its host's lane (input order) ──┐
    retry ──▶ later, by due time ──▶ due: ahead │ of the lane's new URLs
                                                ▼
            take(): the lane whose first URL came first (due retries before
            new URLs), skipping lanes their host's limits keep closed

A lane that a limit closes stays aside until the limit opens: at a time (a
rate, a pause) or when a download of its host ends (``reopen``).  So a host
at its cap or paused never holds up another host's URLs, and within a host
the input order holds.

``take`` asks the caller's ``try_start(lane)`` for a permit under the
schedule's lock, so deciding and taking are one step.  It never waits;
``wait`` does, until something may have changed.  Times are monotonic
seconds from the clock given.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from .limits.hosts import Closed

J = TypeVar("J")
P = TypeVar("P")

# A lane's rank is that of its first item: due retries (0, due order) before new URLs (1, input order).
_Rank = tuple[int, int]


class _Item(Generic[J]):
    __slots__ = ("arrived", "expires", "gone", "job", "lane", "rank")

    def __init__(self, job: J, lane: str, rank: _Rank, expires: float | None, arrived: float) -> None:
        self.job, self.lane, self.rank, self.expires, self.arrived = job, lane, rank, expires, arrived
        self.gone = False  # taken or expired: the arrivals queue drops it lazily


class _Lane(Generic[J]):
    __slots__ = ("closed", "due", "held_by", "new", "opened_at")

    def __init__(self) -> None:
        self.due: collections.deque[_Item[J]] = collections.deque()
        self.new: collections.deque[_Item[J]] = collections.deque()
        self.closed = False
        self.held_by: str | None = None  # the limit that closed it last
        self.opened_at = 0.0  # when it last opened again: every item that arrived before waited on held_by

    def held_back(self, item: _Item[J]) -> str | None:
        """The limit that held *item* back in this lane, if one did."""
        return self.held_by if self.held_by is not None and (self.closed or item.arrived <= self.opened_at) else None

    def first(self) -> _Item[J] | None:
        return self.due[0] if self.due else self.new[0] if self.new else None


@dataclass(frozen=True, slots=True)
class Taken(Generic[J, P]):
    job: J
    permit: P
    #: The host limit that closed its lane while it waited there, the last one if several did.
    held_by: str | None


class Schedule(Generic[J, P]):
    """Jobs waiting for permission to start, in lanes; thread-safe."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._changed = threading.Condition(threading.Lock())
        self._lanes: dict[str, _Lane[J]] = {}
        self._open: list[tuple[_Rank, str]] = []  # a heap; an entry whose rank is no longer its lane's is stale
        self._timed: list[tuple[float, str]] = []  # a heap of lanes closed until a time
        self._later: list[tuple[float, int, _Item[J]]] = []  # retries, a heap by due time
        self._arrivals: collections.deque[_Item[J]] = collections.deque()  # new jobs in input order
        self._due_lanes: set[str] = set()  # lanes that may hold due retries
        self._changes = 0  # jobs put, lanes opened: wait() does not sleep through one since ready()
        self._seen = 0
        self._order = itertools.count()  # due order of retries; ties in due time keep their order

    @property
    def retrying(self) -> int:
        """Jobs waiting out a retry pause."""
        return len(self._later)

    def put(self, job: J, lane: str, *, seq: int, expires: float | None) -> None:
        """A new job at the back of *lane*; ``expired()`` hands it back once *expires* passes unstarted."""
        self.put_many([(job, lane, seq, expires)])

    def put_many(self, jobs: Sequence[tuple[J, str, int, float | None]]) -> None:
        """``put`` for each of *jobs* (job, lane, seq, expires), in order, under one taking of the lock."""
        arrived = self._clock()
        with self._changed:
            for job, lane, seq, expires in jobs:
                item = _Item(job, lane, (1, seq), expires, arrived)
                self._arrivals.append(item)
                self._join(item, due=False)

    def put_later(self, job: J, lane: str, *, due: float, expires: float | None = None) -> None:
        """A retry: into *lane* once *due*, ahead of the lane's new jobs; ``expired()`` hands
        it back if *expires* passes while it waits in the lane."""
        with self._changed:
            order = next(self._order)
            heapq.heappush(self._later, (due, order, _Item(job, lane, (0, order), expires, due)))
            self._notify()

    def reopen(self, lane: str) -> None:
        """A download of *lane*'s host ended: ask its limits again."""
        with self._changed:
            found = self._lanes.get(lane)
            if found is not None and found.closed:
                self._open_lane(lane, found)

    def ready(self, check: Callable[[str], Closed | None]) -> bool:
        """Whether a job could start now, as *check* judges each lane's host; takes nothing.

        So that the caller takes a slot only when a job could use it, then
        takes the job with ``take`` (which asks the limits again, for real).
        """
        with self._changed:
            self._seen = self._changes
            self._catch_up(self._clock())
            while self._open:
                rank, name = self._open[0]
                if self._closes(rank, name, check(name) if self._fresh(rank, name) else None):
                    continue
                return True
            return False

    def take(self, try_start: Callable[[str], P | Closed]) -> Taken[J, P] | None:
        """The first job of the open lane that ranks first and that *try_start* lets start; None if none."""
        with self._changed:
            self._catch_up(self._clock())
            while self._open:
                rank, name = self._open[0]
                if not self._fresh(rank, name):
                    heapq.heappop(self._open)
                    continue
                answer = try_start(name)
                if isinstance(answer, Closed):
                    self._closes(rank, name, answer)
                    continue
                heapq.heappop(self._open)
                lane = self._lanes[name]
                first = lane.first()
                assert first is not None
                (lane.due if first.rank[0] == 0 else lane.new).popleft()
                first.gone = True
                self._settle(name, lane)
                return Taken(first.job, answer, lane.held_back(first))
            return None

    def expired(self) -> list[tuple[J, str | None]]:
        """Jobs whose time to start ran out, taken out; each with the host limit holding its lane, if one was."""
        out: list[tuple[J, str | None]] = []
        with self._changed:
            now = self._clock()
            for name in list(self._due_lanes):
                self._expire_due(name, now, out)
            arrivals = self._arrivals
            while arrivals and (arrivals[0].gone or (arrivals[0].expires is not None and arrivals[0].expires <= now)):
                item = arrivals.popleft()
                if item.gone:
                    continue
                # Input order is expiry order, and a lane starts its jobs in input
                # order: an unstarted job expiring now is its lane's first new job.
                lane = self._lanes[item.lane]
                lane.new.popleft()
                item.gone = True
                out.append((item.job, lane.held_back(item)))
                self._settle(item.lane, lane)
        return out

    def peek_new(self, count: int) -> list[J]:
        """Up to *count* new jobs not yet started, in input order, left in place."""
        with self._changed:
            ahead = (item.job for item in self._arrivals if not item.gone)
            return list(itertools.islice(ahead, count))

    def drain_new(self) -> list[J]:
        """Every new job not yet started, taken out (the run takes no new downloads)."""
        with self._changed:
            jobs = [item.job for item in self._arrivals if not item.gone]
            for item in self._arrivals:
                item.gone = True
            self._arrivals.clear()
            for name, lane in list(self._lanes.items()):
                lane.new.clear()
                self._settle(name, lane)
            return jobs

    def drain_retries(self) -> list[J]:
        """Every retry, due or not, taken out (the run is stopping)."""
        with self._changed:
            jobs = [item.job for _, _, item in sorted(self._later)]
            self._later.clear()
            for name, lane in list(self._lanes.items()):
                jobs.extend(item.job for item in lane.due)
                lane.due.clear()
                self._settle(name, lane)
            return jobs

    def next_change(self) -> float | None:
        """The earliest time a closed lane opens, a retry falls due or a new job expires."""
        with self._changed:
            times = [heap[0][0] for heap in (self._timed, self._later) if heap]
            for name in self._due_lanes:
                lane = self._lanes.get(name)
                times.extend(item.expires for item in (lane.due if lane else ()) if item.expires is not None)
            for item in self._arrivals:
                if not item.gone:
                    if item.expires is not None:
                        times.append(item.expires)
                    break
            return min(times, default=None)

    def wake(self) -> None:
        """End a ``wait`` now (the run is stopping)."""
        with self._changed:
            self._notify()

    def wait(self, seconds: float) -> None:
        """Wait up to *seconds* for a new job, a retry or a reopened lane since the last ``ready()``.

        A change between ``ready()`` and this call is not missed: the wait
        then ends at once.
        """
        with self._changed:
            if self._changes == self._seen:
                self._changed.wait(max(0.0, seconds))

    # -- under the lock ---------------------------------------------------------

    def _notify(self) -> None:
        self._changes += 1
        self._changed.notify()

    def _expire_due(self, name: str, now: float, out: list[tuple[J, str | None]]) -> None:
        """Take the due retries of lane *name* whose time ran out (few: retries are rare) into *out*."""
        lane = self._lanes.get(name)
        if lane is None or not lane.due:
            self._due_lanes.discard(name)
            return
        late = [item for item in lane.due if item.expires is not None and item.expires <= now]
        if not late:
            return
        first = lane.first()
        lane.due = collections.deque(item for item in lane.due if item not in late)
        out.extend((item.job, lane.held_back(item)) for item in late)
        if lane.first() is not first:
            self._settle(name, lane)

    def _fresh(self, rank: _Rank, name: str) -> bool:
        """Whether an entry of the open heap still stands for its lane's first job."""
        lane = self._lanes.get(name)
        first = None if lane is None or lane.closed else lane.first()
        return first is not None and first.rank == rank

    def _closes(self, rank: _Rank, name: str, closed: Closed | None) -> bool:
        """Drop the open heap's first entry if it is stale or its lane is *closed*; True if dropped."""
        if closed is None and self._fresh(rank, name):
            return False
        heapq.heappop(self._open)
        if closed is not None:
            lane = self._lanes[name]
            lane.closed, lane.held_by = True, closed.limit
            if closed.until is not None:
                heapq.heappush(self._timed, (closed.until, name))
        return True

    def _catch_up(self, now: float) -> None:
        """Open the lanes whose time has come; move due retries into their lanes."""
        while self._timed and self._timed[0][0] <= now:
            _, name = heapq.heappop(self._timed)
            lane = self._lanes.get(name)
            if lane is not None and lane.closed:
                self._open_lane(name, lane)
        while self._later and self._later[0][0] <= now:
            item = heapq.heappop(self._later)[2]
            item.rank = (0, next(self._order))  # ranked in due order, among the lanes too
            self._join(item, due=True)
            if item.expires is not None:
                self._due_lanes.add(item.lane)

    def _join(self, item: _Item[J], *, due: bool) -> None:
        lane = self._lanes.get(item.lane)
        if lane is None:
            lane = self._lanes[item.lane] = _Lane()
        was_first = lane.first()
        (lane.due if due else lane.new).append(item)
        if not lane.closed and lane.first() is not was_first:
            heapq.heappush(self._open, (item.rank, item.lane))
        self._notify()

    def _open_lane(self, name: str, lane: _Lane[J]) -> None:
        lane.closed, lane.opened_at = False, self._clock()
        first = lane.first()
        if first is not None:
            heapq.heappush(self._open, (first.rank, name))
        self._notify()

    def _settle(self, name: str, lane: _Lane[J]) -> None:
        """After the lane's first item left: rank the lane by its new first item, or drop it if empty."""
        first = lane.first()
        if first is None:
            del self._lanes[name]  # a closed lane's timed entry, if any, finds no lane and is dropped
        elif not lane.closed:
            heapq.heappush(self._open, (first.rank, name))
