"""Limits per host: a cap on downloads in flight, a request rate, and pauses.

A host here is any string the caller uses as a key (fetcher passes a URL's
host name and port).  Whoever wants to start a download of a host asks
``try_start``; the answer is a ``HostPermit`` (given back when the download
ends) or a ``Closed`` that says which limit holds the host and until when.

What it is:
    The per-host half of the limits, answered at once and never by waiting:
    the scheduler asks for the next host in line and skips the closed ones,
    so a host at its cap never holds up the URLs of another host.  A pause
    (a server's 429 or 503 with Retry-After) closes a host for every URL of
    it, not only for the URL that got the answer.

What it is not:
    Not shared between processes (``--shared-slots`` shares the overall cap,
    not these).  Not a queue: it keeps no order among callers.  It does not
    count redirect hops to other hosts against their caps, only against their
    rates (``reserve_request``).

Memory stays flat however many hosts a list names: a host is kept only while
it has downloads in flight, a pause to wait out, or a rate to keep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .kinds import ADAPTIVE, HOST_CAP, HOST_RATE, PAUSED
from .paces import HostPace, HostPaces
from .rate import TokenBucket

# A sweep for hosts that need no memory any more runs after this many starts.
_PRUNE_EVERY = 1024


@dataclass(frozen=True, slots=True)
class Closed:
    """Why a host cannot start a download now."""

    limit: str  # kinds.HOST_CAP, ADAPTIVE, HOST_RATE or PAUSED
    #: Monotonic time it may open; None when it opens as one of its downloads ends.
    until: float | None


class HostPermit:
    """One download of a host in flight.  ``release()`` once it ends; again does nothing.

    With adaptive limits, tell it what the download's requests brought
    (``answered`` or ``overloaded``) before releasing it: the release moves
    the host's limit.
    """

    __slots__ = ("_full", "_host", "_latency_s", "_limits", "_overloaded", "_started")

    def __init__(self, limits: HostLimits | None, host: str, started: float = 0.0, full: bool = False) -> None:
        self._limits, self._host = limits, host
        self._started, self._full = started, full
        self._latency_s: float | None = None
        self._overloaded = False

    def answered(self, latency_s: float) -> None:
        """The server answered, *latency_s* seconds after the request was sent."""
        self._latency_s = latency_s

    def overloaded(self) -> None:
        """The server said it is overloaded (a 429, a 503), or refused, reset or timed out."""
        self._overloaded = True

    def release(self) -> None:
        limits, self._limits = self._limits, None
        if limits is not None:
            limits._release(self._host, self)

    def __enter__(self) -> HostPermit:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class HostLimits:
    """Per-host caps, rates and pauses for the downloads of one Fetcher.

    ``max_per_host``: downloads of one host in flight at once (None: no cap).
    ``rate_per_host``: requests started per second to one host (None: no
    limit), evenly spaced: at most one more than the rate in any second.
    ``adaptive``: the cap of each host's adaptive limit (``--adaptive``:
    ``max_per_host``, else ``--max``; see adaptive.py), or None: no adaptive
    limit.
    """

    def __init__(
        self,
        *,
        max_per_host: int | None = None,
        rate_per_host: float | None = None,
        adaptive: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_per_host is not None and max_per_host < 1:
            raise ValueError(f"max_per_host must be at least 1, not {max_per_host!r}")
        self.max_per_host = max_per_host
        self.rate_per_host = rate_per_host
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._paused: dict[str, float] = {}
        self._starts = 0
        self._listeners: list[Callable[[str], None]] = []
        self._paces = None if adaptive is None else HostPaces(min(adaptive, max_per_host or adaptive), clock)
        # Counting in flight costs a dict update per download: only when a cap needs it.
        self._counting = max_per_host is not None or adaptive is not None

    def try_start(self, host: str) -> HostPermit | Closed:
        """A permit to start a download of *host* now (one request of its rate), or why not."""
        with self._lock:
            now = self._clock()
            closed = self._closed(host, now)
            if closed is not None:
                return closed
            if self.rate_per_host is not None:
                self._bucket(host).try_take()  # its turn, free under this lock a moment ago
            return self._started(host, now)

    def _started(self, host: str, now: float) -> HostPermit:
        """Count a download of *host* as started, and its permit; under the lock."""
        self._paused.pop(host, None)  # a pause that is over: any_paused need not stay on for it
        if self._counting:
            self._in_flight[host] = in_flight = self._in_flight.get(host, 0) + 1
        self._starts += 1
        if self._starts % _PRUNE_EVERY == 0:
            self._prune(now)
        if self._paces is not None:
            return HostPermit(self, host, now, in_flight >= self._paces.law(host).allowed)
        return HostPermit(self if self._counting else None, host)

    def check(self, host: str) -> Closed | None:
        """Why *host* could not start a download now, or None if it could; takes nothing."""
        with self._lock:
            return self._closed(host, self._clock())

    def _closed(self, host: str, now: float) -> Closed | None:
        """Why *host* could not start now (a pause, its cap, its rate), or None; under the lock."""
        until = self._paused.get(host)
        if until is not None and until > now:
            return Closed(PAUSED, until)
        if self._counting:
            in_flight = self._in_flight.get(host, 0)
            if self.max_per_host is not None and in_flight >= self.max_per_host:
                return Closed(HOST_CAP, None)
            if self._paces is not None and in_flight >= self._paces.allowed(host):
                return Closed(ADAPTIVE, None)
        bucket = self._buckets.get(host) if self.rate_per_host is not None else None
        delay = 0.0 if bucket is None else bucket.delay()
        return Closed(HOST_RATE, now + delay) if delay > 0.0 else None

    def reserve_request(self, host: str) -> float:
        """Count one more request to *host* (a redirect hop); the seconds to wait before sending it.

        Waits out a pause and the host's rate; never refused, and never
        counted against the host's cap (the download already holds a slot).
        """
        with self._lock:
            now = self._clock()
            until = self._paused.get(host, now)
            wait = max(0.0, until - now)
            if self.rate_per_host is not None:
                # Reserved from the end of the pause, so that the rate holds after it too.
                wait = max(wait, self._bucket(host).reserve(not_before=until))
            return wait

    def pause(self, host: str, seconds: float) -> None:
        """Start no download of *host* for *seconds* from now (a longer pause already set stands)."""
        if seconds <= 0:
            return
        with self._lock:
            until = self._clock() + seconds
            if until > self._paused.get(host, 0.0):
                self._paused[host] = until

    def paused(self) -> dict[str, float]:
        """The hosts paused now, and the seconds left of each pause."""
        with self._lock:
            now = self._clock()
            return {host: until - now for host, until in self._paused.items() if until > now}

    @property
    def any_paused(self) -> bool:
        """Whether a host may be paused now (cheap: no clock, no lock; an expired pause may still count)."""
        return bool(self._paused)

    def in_flight(self, host: str) -> int:
        """Downloads of *host* in flight (counted only when there is a cap)."""
        with self._lock:
            return self._in_flight.get(host, 0)

    def add_listener(self, listener: Callable[[str], None]) -> None:
        """Call *listener(host)* whenever a download of a host ends (it may start another)."""
        with self._lock:
            self._listeners = [*self._listeners, listener]

    def remove_listener(self, listener: Callable[[str], None]) -> None:
        with self._lock:
            # ==, not is: each access to a bound method (schedule.reopen) makes a new object.
            self._listeners = [each for each in self._listeners if each != listener]

    def adaptive_limits(self) -> dict[str, tuple[int, int]]:
        """The hosts whose adaptive limit is below its cap now: host -> (limit, cap)."""
        with self._lock:
            return {} if self._paces is None else self._paces.below_cap()

    def adaptive_history(self) -> list[HostPace]:
        """Each host's adaptive limit over the run so far (empty without adaptive limits)."""
        with self._lock:
            return [] if self._paces is None else self._paces.history()

    def close(self) -> None:
        """Stop what these limits run in the background: nothing here (a cluster's listen for pauses)."""

    def _release(self, host: str, permit: HostPermit) -> None:
        with self._lock:
            if self._paces is not None:
                self._tell(host, permit)
            left = self._in_flight.get(host, 0) - 1
            if left > 0:
                self._in_flight[host] = left
            else:
                self._in_flight.pop(host, None)
            listeners = self._listeners
        # Outside the lock: a listener takes its own (the scheduler's) lock.
        for listener in listeners:
            listener(host)

    def _tell(self, host: str, permit: HostPermit) -> None:
        """Move *host*'s adaptive limit by what *permit*'s download brought; under the lock."""
        assert self._paces is not None
        law = self._paces.law(host)
        if permit._overloaded:
            law = law.overloaded(started_at=permit._started, now=self._clock())
        elif permit._latency_s is not None:
            law = law.answered(permit._latency_s, started_at=permit._started, now=self._clock(), full=permit._full)
        else:
            return  # nothing learned (a disk error, a stop)
        self._paces.set(host, law)

    def _bucket(self, host: str) -> TokenBucket:
        bucket = self._buckets.get(host)
        if bucket is None:
            assert self.rate_per_host is not None
            bucket = self._buckets[host] = TokenBucket(self.rate_per_host, clock=self._clock)
        return bucket

    def _prune(self, now: float) -> None:
        """Forget the hosts whose rate is back to full and whose pause is over."""
        for host in [host for host, bucket in self._buckets.items() if bucket.delay() == 0.0]:
            del self._buckets[host]
        for host in [host for host, until in self._paused.items() if until <= now]:
            del self._paused[host]
        if self._paces is not None:
            self._paces.prune(self._in_flight)
