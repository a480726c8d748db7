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
    sooner (redis_leases.py renews them, the per-host leases of
    redis_hosts.py with them).  Giving a slot back is one script: two round
    trips per download at most.  Fewer on the fast path: a slot given back
    is kept ``HAND_ON_WAIT_S`` for this process's next download, which takes
    it with no round trip, up to ``HAND_ON_MAX`` downloads in a row; then it
    goes back to the cluster, where a waiter of another process may win it.
    One fetcher alone in its cluster so asks Redis about once per
    ``HAND_ON_MAX`` downloads.

    "The first fixes the limits": ``fetcher:{cluster}:limits`` holds the
    limits the cluster runs with (``--max`` and those of redis_hosts.py and
    redis_rate.py, as JSON) while the cluster lives (every take and renewal
    keeps it alive for a few leases); a gate that asks for other limits is
    refused, naming each that differs.

    A waiter blocks on a list (``BLPOP``) into which every release pushes a
    token, so a slot given back on one machine wakes a waiter on another at
    once; it also looks again every second, for the slots of dead holders.

What it is not:
    Not a queue: whoever a token wakes first takes the slot.  Not exact while
    Redis is unreachable: no new slot is given then (a waiter keeps waiting,
    within its acquire timeout), downloads in flight go on, and their leases
    may run out meanwhile, so the cap may be passed by those downloads until
    Redis is back.  Nor is a slot handed on unless Redis answered within
    ``HAND_ON_FRESH_S``: a lease nobody can renew may be gone (a restart
    without the data), so a Redis that died is found by a round trip within
    that time, not by downloads started on such leases.
    Not patient for ever: a gate given ``unreachable_s`` (the Fetcher gives
    its ``timeout``) raises RedisUnreachable from ``acquire`` once Redis has
    not answered it for that long, which ends the run.

redis-py (``pip install 'fetcher[redis]'``) is the client: its scripts,
connection pool and URL parsing, not a protocol of fetcher's own.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from .._errors import ConfigError
from .._urls import host_key
from .gate import Slot
from .redis_leases import Leases
from .redis_link import INSTALL_HINT, Link, cluster_keys, connect, import_redis, server_ms

__all__ = ["DEFAULT_LEASE_S", "INSTALL_HINT", "RedisGate", "cluster_keys", "connect", "import_redis"]

log = logging.getLogger("fetcher")

#: Seconds a slot's lease lasts without renewal: how soon a dead holder's slot comes back.
DEFAULT_LEASE_S = 10.0
#: The longest a waiter goes without looking again (a dead holder's lease runs out with no token).
LOOK_AGAIN_S = 1.0
#: How many downloads in a row one lease may serve in this process before it goes back to the cluster
#: (where a waiter of another process may win it), and how long it is kept for the next one.
HAND_ON_MAX = 4
HAND_ON_WAIT_S = 0.01
#: A slot is handed on only if Redis answered the gate this recently: a Redis that died since is
#: noticed by a round trip, not by a download that starts on a lease nobody can renew.
HAND_ON_FRESH_S = 0.25

# KEYS: slots, limits.  ARGV: capacity, lease ms, holder, the limits as JSON.
# {1, limits}: taken; {0, limits}: full; {-1, limits}: the cluster runs with other limits.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local keep = 3 * tonumber(ARGV[2])
local limits = redis.call('GET', KEYS[2])
if not limits then
  redis.call('SET', KEYS[2], ARGV[4], 'PX', keep)
  limits = ARGV[4]
elseif limits ~= ARGV[4] then
  return {-1, limits}
else
  redis.call('PEXPIRE', KEYS[2], keep)
end
if ARGV[3] == '' then
  return {0, limits}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  return {1, limits}
end
return {0, limits}
"""

# KEYS: slots, released, downloading.  ARGV: holder, capacity, lease ms.  One token per release wakes one
# waiter; at most capacity of them wait for nobody.
_RELEASE = """
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('LPUSH', KEYS[2], '1')
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
  redis.call('PEXPIRE', KEYS[2], 3 * tonumber(ARGV[3]))
end
return 1
"""


class RedisUnreachable(ConfigError):
    """The cluster's Redis has not answered for longer than the gate may wait: no slot can be given (as at
    the start, "cannot use Redis": a usage error, exit 2)."""


class RedisGate:
    """``capacity`` slots shared through Redis by every process of cluster *cluster* (see the module docs).

    ``limits``: the cluster's other limits, by name (JSON values); every
    fetcher of a cluster must give the same, as it must give the same
    ``capacity``.  ``unreachable_s``: how long ``acquire`` waits for a Redis
    that does not answer before it raises RedisUnreachable (None: for ever).
    """

    def __init__(self, url: str, cluster: str, capacity: int, *, lease_s: float = DEFAULT_LEASE_S,
                 limits: Mapping[str, Any] | None = None, unreachable_s: float | None = None) -> None:  # fmt: skip
        if lease_s < 0.1:
            raise ConfigError(f"the lease must be at least 0.1 s, not {lease_s!r}")
        self.link = link = Link(url, cluster)
        self.cluster = cluster
        self._capacity = capacity
        self._limits = {"max": capacity, **(limits or {})}
        self._limits_json = json.dumps(self._limits, sort_keys=True, separators=(",", ":"))
        self._keys = [link.keys["slots"], link.keys["limits"]]
        self._take = link.client.register_script(_TAKE)
        self._release = link.client.register_script(_RELEASE)
        #: Every lease this process holds, the gate's and redis_hosts.py's, renewed by one thread.
        self.leases = Leases(link, int(lease_s * 1000))
        self.leases.chore = (self._next_unwanted, self._give_back_unwanted)
        self._me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._numbers = itertools.count()
        self._freed = threading.Condition(threading.Lock())
        self._held: set[str] = set()
        self._slot_holders: dict[int, str] = {}
        self._handed: list[tuple[str, float]] = []  # leases kept for a next download of this process, since when
        self._served: dict[str, int] = {}  # downloads in a row each held lease served
        self._waiting = 0
        self._closed = threading.Event()
        self._unreachable_s = unreachable_s
        try:
            answer, fixed = self._take(keys=self._keys, args=[capacity, self.leases.lease_ms, "", self._limits_json])
        except link.errors as exc:
            link.close()
            raise ConfigError(f"cannot use Redis at {link.where}: {exc}") from None
        if answer == -1:
            link.close()
            raise ConfigError(_other_limits(cluster, fixed, self._limits))

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
        return int(self.link.client.zcount(self._keys[0], f"({server_ms(self.link.client)}", "+inf"))

    def new_holder(self) -> str:
        """A name for one lease of this process, unique in the cluster."""
        return f"{self._me}:{next(self._numbers)}"

    def describe(self, slot: Slot, url: str) -> None:
        """What *slot* downloads (its host is shown by ``fetcher cluster status``), told at the next renewal."""
        holder = self._slot_holders.get(id(slot))
        if holder is not None:
            self.leases.describe(holder, host_key(url))

    def acquire(self, timeout: float | None = None) -> Slot | None:
        slot = self._next_slot()
        if slot is None:
            self._give_up_if_lost()
        if slot is not None or (timeout is not None and timeout <= 0):
            return slot
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._freed:
            self._waiting += 1
        try:
            while not self._closed.is_set():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._wait_for_a_release(LOOK_AGAIN_S if left is None else min(LOOK_AGAIN_S, left))
                slot = self._next_slot()
                if slot is not None:
                    return slot
                self._give_up_if_lost()
            return None
        finally:
            with self._freed:
                self._waiting -= 1

    def _next_slot(self) -> Slot | None:
        """A slot kept from a download of this process, or one taken from the cluster, or None.

        Holding every slot ourselves, a take is sure to fail: None without asking.
        """
        if self._handed and not self.link.down:
            with self._freed:
                if self._handed:
                    return self._slot(self._handed.pop()[0])
        return None if len(self._held) >= self._capacity else self._try()

    def _wait_for_a_release(self, seconds: float) -> None:
        """Until a slot is given back anywhere in the cluster (each release pushes a token) or *seconds* pass.

        While this process holds every slot, only its own release can free one: it waits for that
        here, and asks Redis nothing.
        """
        with self._freed:
            if self._handed:
                return
            if len(self._held) >= self._capacity:
                self._freed.wait_for(lambda: self._handed or len(self._held) < self._capacity, seconds)
                return
        try:
            self.link.client.blpop([self.link.keys["released"]], timeout=max(0.01, seconds))
        except self.link.errors as exc:
            if not self._closed.is_set():
                self.link.unreachable(exc)
                self._closed.wait(seconds)

    def _try(self) -> Slot | None:
        holder = self.new_holder()
        try:
            answer, fixed = self._take(keys=self._keys, args=[self._capacity, self.leases.lease_ms, holder,
                                                              self._limits_json])  # fmt: skip
        except self.link.errors as exc:
            self.link.unreachable(exc)
            return None
        self.link.reachable()
        if answer == -1:
            log.error("%s: no new download starts", _other_limits(self.cluster, fixed, self._limits))
            return None
        if answer != 1:
            return None
        self.leases.hold(self._keys[0], holder)
        with self._freed:
            self._held.add(holder)
            self._served[holder] = 0
            return self._slot(holder)

    def _give_up_if_lost(self) -> None:
        """Raise RedisUnreachable if Redis has not answered for longer than ``unreachable_s`` (this process's
        calls: the gate's, its lease renewals, the other limits')."""
        down_s, error = self.link.down_for()
        if self._unreachable_s is None or error is None or down_s <= self._unreachable_s:
            return
        raise RedisUnreachable(f"Redis at {self.link.where} was unreachable for {self._unreachable_s:g}s: {error}")

    def _slot(self, holder: str) -> Slot:
        """The Slot of held lease *holder*, for one more download; under the lock."""
        slot = Slot(lambda: self._give_back(holder, id(slot)))
        self._slot_holders[id(slot)] = holder
        self._served[holder] += 1
        return slot

    def _give_back(self, holder: str, slot_id: int) -> None:
        """A download ended: keep its lease a moment for this process's next, or give it back to the cluster."""
        with self._freed:
            self._slot_holders.pop(slot_id, None)
            # Not while Redis does not answer: the lease is not renewed then, and may be gone (a restart
            # without the data), so no download starts on it until Redis answers again.
            kept = self._served.get(holder, HAND_ON_MAX) < HAND_ON_MAX and not self._closed.is_set()
            if kept and not self.link.down and time.monotonic() - self.link.answered_at < HAND_ON_FRESH_S:
                self._handed.append((holder, time.monotonic()))
                self._freed.notify()
                first = len(self._handed) == 1
            else:
                self._forget(holder)
                first = None
        if first is None:
            self._release_in_redis(holder)
        elif first:
            self.leases.wake()  # the chore that gives it back if it is not wanted

    def _forget(self, holder: str) -> None:
        """*holder*'s lease goes back to the cluster; under the lock."""
        self._held.discard(holder)
        self._served.pop(holder, None)
        self._freed.notify()

    def _release_in_redis(self, holder: str) -> None:
        self.leases.drop(holder)
        try:
            self._release(keys=[self._keys[0], self.link.keys["released"], self.link.keys["downloading"]],
                          args=[holder, self._capacity, self.leases.lease_ms])  # fmt: skip
        except self.link.errors as exc:
            log.warning("could not give a cluster slot back (its lease will run out): %s", exc)

    def _next_unwanted(self) -> float | None:
        """When the oldest lease kept for a next download is no longer kept (None: none is)."""
        handed = self._handed
        return handed[0][1] + HAND_ON_WAIT_S if handed else None

    def _give_back_unwanted(self) -> None:
        """Leases kept longer than ``HAND_ON_WAIT_S`` that no download took: back to the cluster."""
        before = time.monotonic() - HAND_ON_WAIT_S
        with self._freed:
            unwanted = [holder for holder, since in self._handed if since <= before]
            self._handed = [(holder, since) for holder, since in self._handed if since > before]
            for holder in unwanted:
                self._forget(holder)
        for holder in unwanted:
            self._release_in_redis(holder)

    def close(self) -> None:
        """Give back every slot still held, stop renewing, close the connection."""
        self._closed.set()
        with self._freed:
            held, self._held = list(self._held), set()
            self._handed.clear()
            self._freed.notify_all()
        self.leases.close()
        try:
            if held:
                self.link.client.zrem(self._keys[0], *held)
                self.link.client.hdel(self.link.keys["downloading"], *held)
        except self.link.errors:
            pass  # their leases run out
        self.link.close()

    def __repr__(self) -> str:
        return f"<RedisGate {self.cluster} in_use={self.in_use}/{self._capacity} at {self.link.where}>"


def _other_limits(cluster: str, fixed: bytes | str, mine: Mapping[str, Any]) -> str:
    """The error for a fetcher whose limits are not those cluster *cluster* runs with (*fixed*, as JSON)."""
    try:
        theirs = json.loads(fixed)
    except ValueError:
        theirs = {}
    names = sorted(name for name in {*mine, *theirs} if mine.get(name) != theirs.get(name))
    shown = ", ".join(f"{_option(name)} {_value(theirs.get(name))} (this fetcher: {_value(mine.get(name))})"
                      for name in names)  # fmt: skip
    return f"cluster {cluster!r} runs with {shown}; every fetcher of a cluster must give the same limits"


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _value(value: Any) -> str:
    if value is None or value is False:
        return "none"
    if value is True:
        return "on"
    return f"{value:g}" if isinstance(value, float) else str(value)
