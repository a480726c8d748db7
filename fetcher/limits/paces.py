"""The adaptive limits of every host of a run, and their history for the report.

``HostPaces`` holds one ``AdaptiveLimit`` per host and records each change
of a host's limit, so that the run record can say where each host's limit
ended, the lowest it went, and how it moved (``HostPace``).  It takes no
lock of its own: ``HostLimits`` calls it under its lock.

Memory stays bounded however many hosts a list names: the laws of idle
hosts are dropped past ``MAX_LAWS`` (such a host starts again from the
start), the history of at most ``MAX_LISTED`` hosts is kept, and a host's
history is thinned to every other point whenever it reaches ``MAX_POINTS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from .adaptive import START, AdaptiveLimit

MAX_LAWS = 10_000
MAX_LISTED = 1_000
MAX_POINTS = 2_000


@dataclass(frozen=True, kw_only=True, slots=True)
class HostPace:
    """One host's adaptive limit over a run, as the run record lists it."""

    host: str
    cap: int
    final: int
    lowest: int
    #: (when, as seconds since the epoch; the limit from then on), one point per change.
    limits: tuple[tuple[float, int], ...]

    def to_record(self, since: float) -> dict[str, object]:
        """As the run record keeps it: the times as seconds after *since* (the run's start, epoch seconds)."""
        return {"cap": self.cap, "final": self.final, "lowest": self.lowest,
                "limits": [[round(max(0.0, t - since), 3), limit] for t, limit in self.limits]}  # fmt: skip


class HostPaces:
    """Per-host adaptive limits, each host capped at ``cap``."""

    def __init__(self, cap: int, clock: Callable[[], float], wall: Callable[[], float] = time.time) -> None:
        self.cap = cap
        self._clock, self._wall = clock, wall
        self._laws: dict[str, AdaptiveLimit] = {}
        self._began: tuple[float, float] | None = None  # (clock, wall) at the first change: *clock* to epoch
        self._history: dict[str, tuple[int, int, list[tuple[float, int]]]] = {}  # host: (final, lowest, points)
        self.unlisted = 0  # hosts past MAX_LISTED, whose history was not kept

    def law(self, host: str) -> AdaptiveLimit:
        law = self._laws.get(host)
        if law is None:
            law = self._laws[host] = AdaptiveLimit.starting(self.cap)
            self._note(host, law.allowed, new=True)
        return law

    def allowed(self, host: str) -> int:
        law = self._laws.get(host)
        return min(self.cap, START) if law is None else law.allowed

    def set(self, host: str, law: AdaptiveLimit) -> None:
        before = self._laws.get(host)
        self._laws[host] = law
        if before is None or before.allowed != law.allowed:
            self._note(host, law.allowed, new=before is None)

    def below_cap(self) -> dict[str, tuple[int, int]]:
        """The hosts whose limit is below their cap now: host -> (limit, cap)."""
        return {host: (law.allowed, law.cap) for host, law in self._laws.items() if law.allowed < law.cap}

    def prune(self, busy: Collection[str]) -> None:
        """Forget the laws of idle hosts (none in *busy*) once there are more than MAX_LAWS."""
        if len(self._laws) > MAX_LAWS:
            for host in [host for host in self._laws if host not in busy]:
                del self._laws[host]

    def history(self) -> list[HostPace]:
        return [HostPace(host=host, cap=self.cap, final=final, lowest=lowest, limits=tuple(points))
                for host, (final, lowest, points) in self._history.items()]  # fmt: skip

    def _note(self, host: str, allowed: int, *, new: bool = False) -> None:
        now = self._clock()
        if self._began is None:
            self._began = (now, self._wall())
        kept = self._history.get(host)
        if kept is None:
            if len(self._history) >= MAX_LISTED:
                self.unlisted += new
                return
            kept = (allowed, allowed, [])
        _, lowest, points = kept
        if len(points) >= MAX_POINTS:
            del points[1::2]
        points.append((now - self._began[0] + self._began[1], allowed))
        self._history[host] = (allowed, min(lowest, allowed), points)
