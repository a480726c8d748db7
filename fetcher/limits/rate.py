"""A token bucket: how long a caller must wait before it may send so many requests or bytes.

One ``TokenBucket`` is one rate (requests per second, or bytes per second),
shared by the threads of one process.  It keeps its state as GCRA does (the
"virtual scheduling" form: one float, the theoretical arrival time), with
floats throughout, so byte rates are as exact as request rates.

What it is not:
    Not a sleeper: it only says how long to wait, and the caller sleeps, so a
    deadline, a cancel or a stop can cut the wait short.  Not shared between
    processes.  Not a cap on how many run at once (that is the gate).

fetcher has its own bucket rather than a library's because none measured
fitted: pyrate-limiter rounds a weighted take's emission interval to whole
microseconds (so a byte rate came out 13 to 49 % low) and its blocking path
does not read the clock again after a sleep; ``limits`` and ``token-bucket``
have no blocking acquire to build a fair queue on.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

# recent_rate looks back at most this many seconds; older per-second counts are dropped.
RECENT_MAX_S = 10.0


class Bucket(Protocol):
    """What fetcher asks of a rate: a ``TokenBucket``, or a cluster's (redis_rate.py)."""

    @property
    def rate(self) -> float: ...

    @property
    def burst(self) -> float: ...

    def delay(self, units: float = 1.0) -> float: ...

    def try_take(self, units: float = 1.0) -> bool: ...

    def reserve(self, units: float = 1.0, *, not_before: float | None = None) -> float: ...

    def recent_rate(self, window: float = 2.0) -> float: ...


class TokenBucket:
    """``rate`` units per second; up to ``burst`` units may go at once (burst >= the largest single take).

    The promise: over any t seconds, at most ``burst + rate * t`` units are
    taken, counting each take at the moment its caller may use it (now for
    ``try_take``, after the returned wait for ``reserve``).  With ``burst=1``
    and takes of 1, requests are evenly spaced, ``1 / rate`` seconds apart.

    A take larger than ``burst`` cannot fit that promise; it is allowed all
    the same, once the bucket is full, and the takes after it wait until it
    is paid for: over any t seconds ending with such a take of u units, at
    most ``u + rate * t`` are taken.  ``reserve`` always takes and may put the
    bucket into debt; later callers queue behind it, first come first served.

    Thread-safe.  ``clock`` must never go backwards (``time.monotonic``, or a
    fake clock in tests).
    """

    __slots__ = ("_burst", "_clock", "_created", "_lock", "_rate", "_recent", "_tat")

    def __init__(self, rate: float, *, burst: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not _positive_finite(rate):
            raise ValueError(f"rate must be a finite number above 0, not {rate!r}")
        if not _positive_finite(burst):
            raise ValueError(f"burst must be a finite number above 0, not {burst!r}")
        self._rate = float(rate)
        self._burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        # The theoretical arrival time: when the bucket will be full again.  A
        # level in tokens would need a refill step on every call; this is one
        # float, and the level is burst - (tat - now) * rate.
        self._tat = now
        self._created = now
        # Units by the whole second in which they may be used (a reserve's may lie ahead).
        self._recent: dict[int, float] = {}

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> float:
        return self._burst

    def delay(self, units: float = 1.0) -> float:
        """Seconds until *units* could be taken; 0.0 if they could be now.  Takes nothing."""
        _check_units(units)
        with self._lock:
            return self._delay(units, self._clock())

    def try_take(self, units: float = 1.0) -> bool:
        """Take *units* if that needs no wait (``delay(units) == 0``); otherwise take nothing and say False."""
        _check_units(units)
        with self._lock:
            now = self._clock()
            if self._delay(units, now) > 0.0:
                return False
            self._take(units, now, now)
            return True

    def reserve(self, units: float = 1.0, *, not_before: float | None = None) -> float:
        """Take *units* now, whatever the level; return the seconds to wait before using them (0.0 if none).

        The caller must wait that long before it sends.  If it gives up
        instead, the units stay taken: the rate errs on the polite side.
        ``not_before`` (by the bucket's clock) reserves them for no earlier
        than that time, as if taken then: the wait includes the time until it.
        """
        _check_units(units)
        with self._lock:
            now = self._clock()
            start = now if not_before is None else max(now, not_before)
            used_at = start + self._delay(units, start)
            self._take(units, start, used_at)
            return used_at - now

    def recent_rate(self, window: float = 2.0) -> float:
        """Units per second taken over the last *window* seconds (at most ``RECENT_MAX_S``), for a display.

        Counted by whole seconds, so it is approximate within a second; a
        reserved take counts from when it may be used.
        """
        if not (0.0 < window <= RECENT_MAX_S):
            raise ValueError(f"window must be above 0 and at most {RECENT_MAX_S:g} seconds, not {window!r}")
        with self._lock:
            now = self._clock()
            first = math.floor(now - window)
            last = math.floor(now)
            units = sum(count for second, count in self._recent.items() if first <= second <= last)
        # Whole seconds are counted, so divide by the span they cover, not by the window.
        span = now - max(float(first), self._created)
        return units / span if span > 0.0 else 0.0

    def _delay(self, units: float, now: float) -> float:
        # A take may go when the level is at least units; a take larger than
        # burst, when the bucket is full.  Level >= need  <=>  tat - now <= (burst - need) / rate.
        need = min(units, self._burst)
        return max(0.0, self._tat - now - (self._burst - need) / self._rate)

    def _take(self, units: float, now: float, used_at: float) -> None:
        self._tat = max(self._tat, now) + units / self._rate
        second = math.floor(used_at)
        self._recent[second] = self._recent.get(second, 0.0) + units
        oldest = math.floor(now - RECENT_MAX_S)
        if min(self._recent) < oldest:
            for stale in [s for s in self._recent if s < oldest]:
                del self._recent[stale]

    def __repr__(self) -> str:
        return f"<TokenBucket rate={self._rate:g}/s burst={self._burst:g}>"


def _positive_finite(value: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _check_units(units: float) -> None:
    if isinstance(units, bool) or not isinstance(units, (int, float)) or not math.isfinite(units) or units < 0:
        raise ValueError(f"units must be a finite number >= 0, not {units!r}")
