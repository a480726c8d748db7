"""A token bucket kept in Redis: one rate shared by every fetcher of a cluster.

``RedisBucket(link, name, rate, burst=)`` has ``TokenBucket``'s methods and
keeps its promise (rate.py) for the whole cluster: over any t seconds, at
most ``burst + rate * t`` units are taken between all the processes, each
counted when its caller may use it.  Each call is one Lua script, one atomic
step on the server, on the server's clock (``TIME``): GCRA's theoretical
arrival time in one key, and the units taken per second in a small hash for
``recent_rate`` (``fetcher cluster status`` reads it too).

What it is not:
    Not free: each call is a round trip.  fetcher asks it once per request
    (``--rate``, ``--rate-per-host``) and once per read of a body
    (``--limit-rate``), never per URL otherwise.  While Redis is unreachable
    it lets nothing new start (``try_take`` says no, ``delay`` says wait) but
    does not hold back what is in flight (``reserve`` says go): a download
    that started finishes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from .rate import _positive_finite
from .redis_link import Link, server_ms

#: While Redis is unreachable, how long ``delay`` tells a caller to wait before asking again.
UNREACHABLE_WAIT_S = 0.5
#: Seconds of per-second counts kept for ``recent_rate``.
RECENT_KEPT_S = 10

#: Lua: one GCRA step on a bucket (its arrival time at tat_key, its counts by second at recent_key), at
#: *now* (ms, the server's), for *units* used from *start* (ms).  mode 'delay' takes nothing; 'try' takes
#: only with no wait; 'reserve' always takes.  Returns taken (true/false) and the ms to wait from now.
GCRA = """
local function gcra(tat_key, recent_key, per_s, burst, units, mode, start, now, kept)
  local per_ms = per_s / 1000
  local tat = tonumber(redis.call('GET', tat_key) or '0')
  local wait = math.max(0, tat - start - (burst - math.min(units, burst)) / per_ms)
  if mode == 'delay' or (mode == 'try' and wait > 0) then
    return false, start + wait - now
  end
  tat = math.max(tat, start) + units / per_ms
  redis.call('SET', tat_key, tostring(tat), 'PX', math.ceil(tat - now) + 1000)
  local used = start + wait
  redis.call('HINCRBYFLOAT', recent_key, tostring(math.floor(used / 1000)), units)
  redis.call('PEXPIRE', recent_key, (kept + 2) * 1000 + math.ceil(used - now))
  if redis.call('HLEN', recent_key) > kept + 2 then
    local oldest = math.floor(now / 1000) - kept
    for _, second in ipairs(redis.call('HKEYS', recent_key)) do
      if tonumber(second) < oldest then redis.call('HDEL', recent_key, second) end
    end
  end
  return true, used - now
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
"""

# KEYS: the arrival time, the counts by second.  ARGV: rate per s, burst, units, mode, ms from now to
# reserve from, seconds of counts kept.  Returns {taken (0/1), ms to wait (as text: a float)}.
_BUCKET = GCRA + """
local taken, wait = gcra(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4],
                         now + math.max(0, tonumber(ARGV[5])), now, tonumber(ARGV[6]))
return {taken and 1 or 0, tostring(wait)}
"""


class RedisBucket:
    """``rate`` units a second for the whole cluster, ``burst`` at once (see rate.py's ``TokenBucket``)."""

    def __init__(self, link: Link, name: str, rate: float, *, burst: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        if not (_positive_finite(rate) and _positive_finite(burst)):
            raise ValueError(f"rate and burst must be finite numbers above 0, not {rate!r} and {burst!r}")
        self._link = link
        self._name = name
        self._keys = bucket_keys(name)
        self._rate = float(rate)
        self._burst = float(burst)
        self._script = link.client.register_script(_BUCKET)
        self._clock = clock  # only to read a caller's not_before: the bucket's own time is the server's

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> float:
        return self._burst

    def delay(self, units: float = 1.0) -> float:
        """Seconds until *units* could be taken; 0.0 if they could be now.  Takes nothing."""
        answer = self._call(units, "delay", 0.0)
        return UNREACHABLE_WAIT_S if answer is None else answer[1]

    def try_take(self, units: float = 1.0) -> bool:
        """Take *units* if that needs no wait; otherwise take nothing and say False (also while unreachable)."""
        answer = self._call(units, "try", 0.0)
        return answer is not None and answer[0]

    def reserve(self, units: float = 1.0, *, not_before: float | None = None) -> float:
        """Take *units* now, whatever the level; the seconds to wait before using them.

        ``not_before``: the time (by the clock given) before which they are
        not used.  While Redis is unreachable: 0.0 (what is in flight goes on).
        """
        ahead = 0.0 if not_before is None else max(0.0, not_before - self._clock())
        answer = self._call(units, "reserve", ahead)
        return 0.0 if answer is None else answer[1]

    def recent_rate(self, window: float = 2.0) -> float:
        """Units per second the cluster took over the last *window* seconds (by whole seconds); 0.0 if unknown."""
        try:
            return recent_rate(self._link.client, self._name, window)
        except self._link.errors:
            return 0.0

    def _call(self, units: float, mode: str, ahead_s: float) -> tuple[bool, float] | None:
        link = self._link
        try:
            args = [repr(self._rate), repr(self._burst), repr(units), mode, repr(ahead_s * 1000), RECENT_KEPT_S]
            taken, wait_ms = self._script(keys=self._keys, args=args)
        except link.errors as exc:
            link.unreachable(exc)
            return None
        link.reachable()
        return bool(taken), max(0.0, float(wait_ms) / 1000)

    def __repr__(self) -> str:
        return f"<RedisBucket {self._keys[0]} rate={self._rate:g}/s burst={self._burst:g}>"


def bucket_keys(name: str) -> list[str]:
    """The keys of bucket *name*: its theoretical arrival time, and its units taken by second."""
    return [f"{name}:tat", f"{name}:recent"]


def recent_rate(client: Any, name: str, window: float = 2.0) -> float:
    """Units per second bucket *name* gave over the last *window* seconds, from its counts by second."""
    now, counts = server_ms(client) / 1000, client.hgetall(bucket_keys(name)[1])
    first = math.floor(now - window)
    units = sum(float(count) for second, count in counts.items() if first <= int(second) <= now)
    span = now - first
    return units / span if span > 0 else 0.0
