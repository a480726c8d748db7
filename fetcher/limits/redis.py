"""Slots shared by every fetcher of a cluster, on Redis: a gate whose slots are leases.

``RedisGate(url, cluster, capacity)`` is a ``Gate`` whose ``capacity`` slots
are shared by every process, on any machine, that names the same Redis
server and cluster: ten machines that each say ``--max 4 --redis URL
--cluster mirror`` never run more than four downloads at once between them.

How it works:
    The slots are one sorted set, ``fetcher:{cluster}:slots``: a member per
    held slot (who holds it), scored by the moment its lease runs out.  Taking
    a slot is one Lua script, one atomic step on the server: drop the expired
    leases, and if fewer than ``capacity`` remain add ours.  Every time in it
    comes from the server's ``TIME``, so the clocks of the machines are never
    compared.  A thread of the gate renews the leases it holds every third of
    a lease (one script for all of them), so a download that runs for an hour
    keeps its slot; a holder that dies (SIGKILL, a lost machine) stops
    renewing, and its slots come back when their leases run out, never
    sooner.  Giving a slot back is one ``ZREM``: two round trips per download
    on the fast path.

    "The first fixes the count": ``fetcher:{cluster}:capacity`` holds the
    count while the cluster lives (every take and renewal keeps it alive for
    a few leases); a gate that asks for another count is refused with both
    numbers.

    A waiter blocks on a list (``BLPOP``) into which every release pushes a
    token, so a slot given back on one machine wakes a waiter on another at
    once; it also looks again every second, for the slots of dead holders.

What it is not:
    Not a queue: whoever a token wakes first takes the slot.  Not exact while
    Redis is unreachable: no new slot is given then (a waiter keeps waiting,
    within its acquire timeout), downloads in flight go on, and their leases
    may run out meanwhile, so the cap may be passed by those downloads until
    Redis is back.

redis-py (``pip install 'fetcher[redis]'``) is the client: its scripts,
connection pool and URL parsing, not a protocol of fetcher's own.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from .._text import redact
from .gate import Slot

if TYPE_CHECKING:
    import redis as redis_module

log = logging.getLogger("fetcher")

#: Seconds a slot's lease lasts without renewal: how soon a dead holder's slot comes back.
DEFAULT_LEASE_S = 10.0
#: The longest a waiter goes without looking again (a dead holder's lease runs out with no token).
LOOK_AGAIN_S = 1.0
#: What to install for the cluster options.
INSTALL_HINT = "the cluster options need redis-py: pip install 'fetcher[redis]'"

# KEYS: slots, capacity.  ARGV: capacity, lease ms, holder.  {1, cap}: taken; {0, cap}: full; {-1, cap}: another count.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local keep = 3 * tonumber(ARGV[2])
local cap = redis.call('GET', KEYS[2])
if not cap then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', keep)
  cap = ARGV[1]
elseif cap ~= ARGV[1] then
  return {-1, tonumber(cap)}
else
  redis.call('PEXPIRE', KEYS[2], keep)
end
if ARGV[3] == '' then
  return {0, tonumber(cap)}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(cap) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  return {1, tonumber(cap)}
end
return {0, tonumber(cap)}
"""

# KEYS: slots, capacity.  ARGV: lease ms, then the holders.  Returns how many were still held (and renewed).
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('PEXPIRE', KEYS[2], 3 * tonumber(ARGV[1]))
local renewed = 0
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) > now then
    redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i])
    renewed = renewed + 1
  end
end
return renewed
"""


# KEYS: slots, capacity, released.  ARGV: holder, capacity, lease ms.  One token per release wakes one waiter;
# at most capacity of them wait for nobody.
_RELEASE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('LPUSH', KEYS[3], '1')
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[2]) - 1)
  redis.call('PEXPIRE', KEYS[3], 3 * tonumber(ARGV[3]))
end
return 1
"""


def cluster_keys(cluster: str) -> dict[str, str]:
    """Every Redis key of cluster *cluster*, by what it holds: all in one hash slot (``{cluster}``), so that
    a script may use them together, on a Redis Cluster too.  The slots and the count are this module's; the
    queue, the URLs ever queued, the final records, their counts by status and the workers seen are
    fetcher/cluster/queue.py's."""
    base = f"fetcher:{{{cluster}}}"
    names = ("slots", "capacity", "released", "queue", "seen", "records", "totals", "workers")
    return {name: f"{base}:{name}" for name in names}


def import_redis() -> Any:
    """redis-py, or a ConfigError that says what to install."""
    try:
        import redis
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return redis


def connect(url: str) -> redis_module.Redis:
    """A client for *url* (``redis://``, ``rediss://``, ``unix://``); a ConfigError for a URL it cannot use."""
    redis = import_redis()
    try:
        return redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)  # type: ignore[no-any-return]
    except ValueError as exc:
        raise ConfigError(f"--redis {redact(url)}: {exc}") from None


class RedisGate:
    """``capacity`` slots shared through Redis by every process of cluster *cluster* (see the module docs)."""

    def __init__(self, url: str, cluster: str, capacity: int, *, lease_s: float = DEFAULT_LEASE_S) -> None:
        if not cluster or not cluster.isprintable():
            raise ConfigError(f"the cluster name must be printable text, not {cluster!r}")
        if lease_s < 0.1:
            raise ConfigError(f"the lease must be at least 0.1 s, not {lease_s!r}")
        self._redis = redis = import_redis()
        self._client = connect(url)
        self._where = redact(url)
        self.cluster = cluster
        self._capacity = capacity
        self._lease_ms = int(lease_s * 1000)
        names = cluster_keys(cluster)
        self._keys = [names["slots"], names["capacity"]]
        self._wake = names["released"]
        self._take = self._client.register_script(_TAKE)
        self._renew = self._client.register_script(_RENEW)
        self._release = self._client.register_script(_RELEASE)
        self._me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._numbers = itertools.count()
        self._lock = threading.Lock()
        self._held: set[str] = set()
        self._waiting = 0
        self._closed = threading.Event()
        self._renewer: threading.Thread | None = None
        self._unreachable_since: float | None = None
        try:
            answer, cap = self._take(keys=self._keys, args=[capacity, self._lease_ms, ""])
        except redis.exceptions.RedisError as exc:
            raise ConfigError(f"cannot use Redis at {self._where}: {exc}") from None
        if answer == -1:
            raise ConfigError(f"cluster {cluster!r} runs with --max {cap}; this fetcher asks for --max {capacity} "
                              "(every fetcher of a cluster must give the same)")  # fmt: skip

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def in_use(self) -> int:
        """Slots held by this process."""
        return len(self._held)

    @property
    def waiting(self) -> int:
        """Threads of this process waiting in ``acquire``."""
        return self._waiting

    def in_use_by_all(self) -> int:
        """Slots held now by the whole cluster (one round trip)."""
        now_s, now_us = self._client.time()
        return int(self._client.zcount(self._keys[0], f"({now_s * 1000 + now_us // 1000}", "+inf"))

    def acquire(self, timeout: float | None = None) -> Slot | None:
        # Holding every slot ourselves, a take is sure to fail: wait for a release instead of asking.
        slot = None if len(self._held) >= self._capacity else self._try()
        if slot is not None or (timeout is not None and timeout <= 0):
            return slot
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._waiting += 1
        try:
            while not self._closed.is_set():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._wait_for_a_release(LOOK_AGAIN_S if left is None else min(LOOK_AGAIN_S, left))
                slot = self._try()
                if slot is not None:
                    return slot
            return None
        finally:
            with self._lock:
                self._waiting -= 1

    def _wait_for_a_release(self, seconds: float) -> None:
        """Until a slot is given back anywhere in the cluster (each release pushes a token) or *seconds* pass."""
        try:
            self._client.blpop([self._wake], timeout=max(0.01, seconds))
        except self._redis.exceptions.RedisError as exc:
            if not self._closed.is_set():
                self._unreachable(exc)
                self._closed.wait(seconds)

    def _try(self) -> Slot | None:
        holder = f"{self._me}:{next(self._numbers)}"
        try:
            answer, cap = self._take(keys=self._keys, args=[self._capacity, self._lease_ms, holder])
        except self._redis.exceptions.RedisError as exc:
            self._unreachable(exc)
            return None
        self._reachable()
        if answer == -1:
            log.error("cluster %s now runs with --max %s, not %d: no new download starts", self.cluster, cap,
                      self._capacity)  # fmt: skip
            return None
        if answer != 1:
            return None
        with self._lock:
            self._held.add(holder)
            if self._renewer is None:
                self._renewer = threading.Thread(target=self._renew_loop, name="fetcher-lease", daemon=True)
                self._renewer.start()
        return Slot(lambda: self._give_back(holder))

    def _give_back(self, holder: str) -> None:
        with self._lock:
            self._held.discard(holder)
        try:
            self._release(keys=[*self._keys, self._wake], args=[holder, self._capacity, self._lease_ms])
        except self._redis.exceptions.RedisError as exc:
            log.warning("could not give a cluster slot back (its lease will run out): %s", exc)

    def _renew_loop(self) -> None:
        every = self._lease_ms / 3000
        while not self._closed.wait(every):
            with self._lock:
                held = list(self._held)
            if not held:
                continue
            try:
                renewed = self._renew(keys=self._keys, args=[self._lease_ms, *held])
            except self._redis.exceptions.RedisError as exc:
                self._unreachable(exc)
                continue
            self._reachable()
            if renewed < len(held):
                log.warning("%d cluster slot lease(s) ran out before renewal (Redis was unreachable for too long?)",
                            len(held) - renewed)  # fmt: skip

    def _unreachable(self, exc: Exception) -> None:
        if self._unreachable_since is None:
            self._unreachable_since = time.monotonic()
            log.warning("Redis at %s is unreachable (%s): no new download starts until it is back", self._where, exc)

    def _reachable(self) -> None:
        if self._unreachable_since is not None:
            log.warning("Redis at %s is back after %.1fs", self._where, time.monotonic() - self._unreachable_since)
            self._unreachable_since = None

    def close(self) -> None:
        """Give back every slot still held, stop renewing, close the connection."""
        self._closed.set()
        with self._lock:
            held, self._held = list(self._held), set()
        try:
            if held:
                self._client.zrem(self._keys[0], *held)
        except self._redis.exceptions.RedisError:
            pass  # their leases run out
        self._client.close()

    def __repr__(self) -> str:
        return f"<RedisGate {self.cluster} in_use={self.in_use}/{self._capacity} at {self._where}>"
