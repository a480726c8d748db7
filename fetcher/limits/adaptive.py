"""The adaptive per-host limit (``--adaptive``): how many downloads of one host may run at once.

``AdaptiveLimit`` is the control law, an immutable value with pure methods:
it is told what each request to the host brought (``answered`` with the
time to its response's headers, or ``overloaded``) and returns the law's
next state.  ``HostLimits`` keeps one per host and asks ``allowed`` before
it lets another download of that host start.

The law, in a few sentences (the README says the same to users):

- It starts at 2 and, while the host answers as fast as it did unloaded,
  adds one for every answer, so it doubles every round trip (TCP's slow
  start).  After the first sign of load it adds one per round trip
  (``1 / limit`` an answer), as TCP and Netflix's AIMD limiter do.
- "Unloaded" is the fastest answer seen from the host (its no-load time).
  When a moving average of recent answers rises above 1.5 times that (and
  by at least 20 ms), the server is queueing fetcher's requests: the limit
  comes down in proportion, as Netflix's gradient limiter does, by at most
  half at a time.
- A 429, a 503, a refused or reset connection or a timeout cuts it by a
  quarter, and growth near the limit where that happened is four times
  slower, so the limit dwells just under the server's capacity instead of
  probing past it every few answers (TCP CUBIC's idea, in one line).  A
  probe that overloads the server again at that same level only steps back
  to one below it; an overload below it is a new one, and cuts a quarter.
- It grows only while the host uses its whole limit, so an idle limit does
  not creep up to the cap unproven; it never goes below 1 or above the
  host's cap (``--max-per-host``, else ``--max``).
- Answers to requests that started before the last cut are not held
  against the new limit: they tell of the load before it, so one overload
  cuts once, not once per request that was in flight (TCP does the same
  with a window's losses).
- The no-load time is the fastest answer seen, but answers taken with the
  limit at 1 (no other request of fetcher's in flight there) pull it up
  slowly: a server that became slower for everyone is not held to its
  best hour.

What it is not: not a rate (``--rate-per-host`` spaces requests), not a
pause (a ``Retry-After`` still pauses the host), and not shared between
processes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

#: The limit a host starts at (or its cap, if lower).
START = 2
#: Recent answers slower than this many times the no-load time mean the server is queueing.
TOLERANCE = 1.5
#: ... and slower by at least this much: a few milliseconds of jitter on a fast server is no queue.
MIN_EXCESS_S = 0.02
#: The weight of each new answer in the moving average of recent answers.
SMOOTHING = 0.3
#: The limit after an overload (429, 503, refused, reset, timeout), as a share of the limit before.
BACKOFF = 0.75
#: The floor of a cut for latency, as a share of the limit before.
LATENCY_BACKOFF = 0.5
#: Near the limit of the last overload, growth is this many times slower.
PROBE = 4
#: How far an answer taken at a limit of 1 pulls the no-load time up towards it.
DRIFT = 0.2


@dataclass(frozen=True, kw_only=True, slots=True)
class AdaptiveLimit:
    """One host's adaptive limit: its state, and the law that moves it."""

    cap: int
    limit: float
    #: The lowest ``allowed`` so far.
    lowest: int
    #: The no-load time to the headers, in seconds; None until the first answer.
    no_load_s: float | None = None
    #: A moving average of the answers to requests started since the last cut.
    recent_s: float | None = None
    #: True until the first sign of load: the limit grows by one an answer.
    slow_start: bool = True
    #: When the limit was last cut (the clock of ``HostLimits``).
    cut_at: float = float("-inf")
    #: The limit at the last overload: growth slows within one of it.
    ceiling: float | None = None

    def __post_init__(self) -> None:
        if self.cap < 1:
            raise ValueError(f"cap must be at least 1, not {self.cap!r}")

    @classmethod
    def starting(cls, cap: int) -> AdaptiveLimit:
        first = min(START, cap)
        return cls(cap=cap, limit=float(first), lowest=first)

    @property
    def allowed(self) -> int:
        """Downloads of the host that may be in flight now: 1 to ``cap``."""
        return max(1, min(self.cap, int(self.limit)))

    def answered(self, latency_s: float, *, started_at: float, now: float, full: bool) -> AdaptiveLimit:
        """The law after an answer that came *latency_s* after its request was sent.

        *started_at*: when that download started; *full*: whether the host
        was using its whole limit then (the limit grows only if it was).
        """
        latency_s = max(0.0, latency_s)
        no_load = latency_s if self.no_load_s is None else min(self.no_load_s, latency_s)
        if self.allowed == 1 and self.no_load_s is not None and latency_s > self.no_load_s:
            no_load = self.no_load_s + DRIFT * (latency_s - self.no_load_s)
        if started_at < self.cut_at:
            return replace(self, no_load_s=no_load)  # it tells of the load before the cut
        recent = latency_s if self.recent_s is None else self.recent_s + SMOOTHING * (latency_s - self.recent_s)
        threshold = max(TOLERANCE * no_load, no_load + MIN_EXCESS_S)
        if recent > threshold:
            return self._cut(max(LATENCY_BACKOFF, threshold / recent), now, no_load_s=no_load)
        limit = self.limit
        if full:
            if self.slow_start:
                step = 1.0
            elif self.ceiling is not None and self.ceiling - 1.0 <= limit < self.ceiling + 1.0:
                step = 1.0 / (PROBE * limit)  # where it broke last time: probe gently
            else:
                step = 1.0 / limit
            limit = min(float(self.cap), limit + step)
        return replace(self, limit=limit, no_load_s=no_load, recent_s=recent)

    def overloaded(self, *, started_at: float, now: float) -> AdaptiveLimit:
        """The law after a 429, a 503, a refused or reset connection or a timeout."""
        if started_at < self.cut_at:
            return self  # the cut for the overload it was part of is made already
        allowed = self.allowed
        if self.ceiling is not None and allowed >= int(self.ceiling) and allowed > 1:
            # A probe past the level that overloaded last time failed again: back to one below it.
            factor = (allowed - 1) / self.limit
        else:
            factor = BACKOFF
        return replace(self._cut(factor, now, no_load_s=self.no_load_s), ceiling=float(allowed))

    def _cut(self, factor: float, now: float, *, no_load_s: float | None) -> AdaptiveLimit:
        limit = max(1.0, self.limit * factor)
        allowed = max(1, min(self.cap, int(limit)))
        return replace(self, limit=limit, lowest=min(self.lowest, allowed), no_load_s=no_load_s, recent_s=None,
                       slow_start=False, cut_at=now)  # fmt: skip
