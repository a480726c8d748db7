"""Per-host limits shared by a cluster: caps, rates, pauses and adaptive limits, on Redis.

``ClusterHostLimits`` is a ``HostLimits`` (hosts.py) whose limits hold for
every fetcher of the cluster together:

- **Pauses** (a 429, or a 503 with Retry-After, closes a host): the pause is
  written to the cluster's ``pauses`` hash (host -> until, on the server's
  clock) and published; every fetcher of the cluster listens and closes the
  host at once.  This costs nothing per URL: no round trip unless a server
  asks for a pause.
- **Caps** (``--max-per-host``, and ``--adaptive``'s limits) count the
  host's downloads of the whole cluster: a sorted set of leases per host,
  renewed with the gate's (redis.py), so a dead holder's come back after
  the lease.
- **Rates** (``--rate-per-host``): a GCRA bucket per host (redis_rate.py).

A start that needs Redis (a cap or a rate) is one script: the pause, the cap
and the rate are checked, and the lease and the turn taken, in one atomic
step.  Its release is one more round trip.  Without a per-host cap or rate,
a start asks Redis nothing.

With ``--adaptive``, each fetcher runs the law (adaptive.py) on its own
downloads' answers; the limit it last set for a host is written to the
cluster's ``adaptive`` hash, and a start counts the cluster's downloads of the
host against it.  So the cluster holds a host to one limit, the one the
most recent change set.

What it is not:
    Not exact while Redis is unreachable: pauses published then are missed
    (the script still sees them once Redis is back), and no start that needs
    Redis is allowed.

A host held at the cluster's cap (or adaptive limit) by other fetchers opens
again when one of them gives a slot of it back: a release that frees a slot
of a full host publishes it, and every fetcher reopens the host at once.
``RECHECK_S`` is the fallback for the slots of a holder that died (no one
releases those: their leases run out) and for a message lost while Redis was
away.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .adaptive import START
from .hosts import Closed, HostLimits, HostPermit
from .kinds import ADAPTIVE, CLUSTER, HOST_CAP, HOST_RATE, PAUSED
from .redis import RedisGate
from .redis_link import server_ms
from .redis_rate import GCRA, RECENT_KEPT_S, RedisBucket, bucket_keys

log = logging.getLogger("fetcher")

#: How soon a host closed by the cluster's cap is asked again, if no release of it is heard first.
RECHECK_S = 1.0
#: A message on the channel that says a slot of a full host was given back: this, then the host.
FREED = "+"
#: How long the listener for pauses waits before it subscribes again after Redis failed.
RESUBSCRIBE_S = 1.0

# KEYS: pauses, the host's leases, its arrival time, its counts by second, the adaptive limits.
# ARGV: host, cap ('' for none), lease ms, holder, rate per s ('' for none), seconds of counts kept, the
# adaptive limit of a host none has set ('' for no adaptive limits).  Returns {1, 0}: started; {2, ms}:
# paused for ms; {3, 0}: at the cap; {4, ms}: the rate's turn in ms; {5, 0}: at the adaptive limit.
_START = GCRA + """
local paused = redis.call('HGET', KEYS[1], ARGV[1])
if paused and tonumber(paused) > now then
  return {2, tostring(tonumber(paused) - now)}
end
local cap = tonumber(ARGV[2])
local count = 0
if cap then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  count = redis.call('ZCARD', KEYS[2])
  if count >= cap then
    return {3, '0'}
  end
end
if ARGV[7] ~= '' and count >= tonumber(redis.call('HGET', KEYS[5], ARGV[1]) or ARGV[7]) then
  return {5, '0'}
end
local rate = tonumber(ARGV[5])
if rate then
  local taken, wait = gcra(KEYS[3], KEYS[4], rate, 1, 1, 'try', now, now, tonumber(ARGV[6]))
  if not taken then
    return {4, tostring(wait)}
  end
end
if cap then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[4])
  redis.call('PEXPIRE', KEYS[2], 3 * tonumber(ARGV[3]))
end
return {1, '0'}
"""

# KEYS: pauses.  ARGV: host, ms, the channel.  A longer pause already set stands.  Returns the ms set.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local until_ms = now + tonumber(ARGV[2])
local before = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if before >= until_ms then
  return tostring(before - now)
end
redis.call('HSET', KEYS[1], ARGV[1], tostring(until_ms))
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) + 1000 then
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 1000)
end
if redis.call('HLEN', KEYS[1]) > 1000 then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if tonumber(all[i + 1]) <= now then redis.call('HDEL', KEYS[1], all[i]) end
  end
end
redis.call('PUBLISH', ARGV[3], ARGV[1] .. ' ' .. ARGV[2])
return ARGV[2]
"""


# KEYS: the host's leases, the adaptive limits.  ARGV: holder, host, cap ('' for none), the adaptive limit of a
# host none has set ('' for no adaptive limits), the channel.  Gives the lease back; if the host was full, says
# so to every fetcher of the cluster.
_FREE = """
local before = redis.call('ZCARD', KEYS[1])
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local limit = tonumber(ARGV[3]) or math.huge
if ARGV[4] ~= '' then
  limit = math.min(limit, tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or ARGV[4]))
end
if before >= limit then
  redis.call('PUBLISH', ARGV[5], '+' .. ARGV[2])
end
return 1
"""


class ClusterHostLimits(HostLimits):
    """``HostLimits`` whose caps, rates, pauses and adaptive limits are the cluster's (see the module docs)."""

    def __init__(
        self,
        gate: RedisGate,
        *,
        max_per_host: int | None = None,
        rate_per_host: float | None = None,
        adaptive: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # The rates are the cluster's (one script per start), not the base class's buckets.
        super().__init__(max_per_host=max_per_host, adaptive=adaptive, clock=clock)
        self.rate_per_host = rate_per_host
        self._gate = gate
        self._link = link = gate.link
        self._start = link.client.register_script(_START)
        self._pause = link.client.register_script(_PAUSE)
        self._free = link.client.register_script(_FREE)
        self._remote = max_per_host is not None or rate_per_host is not None or adaptive is not None
        self._cap = max_per_host if max_per_host is not None else adaptive
        # The adaptive limit of a host no fetcher has set one for yet, as the scripts take it ('' for none).
        self._first_limit = "" if adaptive is None or self._cap is None else str(min(self._cap, START))
        self._leases: dict[int, tuple[str, str]] = {}  # id(permit) -> (key, holder)
        self._said: dict[str, int] = {}  # the adaptive limit last written, by host
        self._closing = threading.Event()
        # Started at the first start, not here: a Fetcher starts its threads after its worker processes.
        self._listener: threading.Thread | None = None

    def try_start(self, host: str) -> HostPermit | Closed:
        if self._listener is None:
            self._listen_for_pauses()
        with self._lock:
            closed = self._closed(host, self._clock())
        if closed is not None:
            return closed
        lease = None
        if self._remote:
            answer = self._start_in_cluster(host)
            if isinstance(answer, Closed):
                return answer
            lease = answer
        with self._lock:
            permit = self._started(host, self._clock())
            if lease is not None:
                self._leases[id(permit)] = lease
        return permit

    def _start_in_cluster(self, host: str) -> tuple[str, str] | Closed:
        """The cluster's permission to start a download of *host* (its lease), or why not."""
        link = self._link
        key = link.key("hostslots", host)
        holder = self._gate.new_holder() if self._cap is not None else ""
        rate = "" if self.rate_per_host is None else repr(self.rate_per_host)
        try:
            code, ms = self._start(
                keys=[link.keys["pauses"], key, *bucket_keys(link.key("hostrate", host)), link.keys["adaptive"]],
                args=[host, "" if self._cap is None else self._cap, self._gate.leases.lease_ms, holder, rate,
                      RECENT_KEPT_S, self._first_limit],
            )  # fmt: skip
        except link.errors as exc:
            link.unreachable(exc)
            return Closed(CLUSTER, self._clock() + RECHECK_S)
        link.reachable()
        now, wait = self._clock(), float(ms) / 1000
        if code == 2:
            HostLimits.pause(self, host, wait)
            return Closed(PAUSED, now + wait)
        if code in (3, 5):
            return Closed(HOST_CAP if code == 3 else ADAPTIVE, now + RECHECK_S)
        if code == 4:
            return Closed(HOST_RATE, now + wait)
        if holder:
            self._gate.leases.hold(key, holder)
        return key, holder

    def reserve_request(self, host: str) -> float:
        wait = super().reserve_request(host)
        if self.rate_per_host is None:
            return wait
        bucket = RedisBucket(self._link, self._link.key("hostrate", host), self.rate_per_host, clock=self._clock)
        return max(wait, bucket.reserve(not_before=self._clock() + wait))

    def pause(self, host: str, seconds: float) -> None:
        """Pause *host* here at once, and in every fetcher of the cluster."""
        super().pause(host, seconds)
        if seconds <= 0:
            return
        link = self._link
        try:
            self._pause(keys=[link.keys["pauses"]], args=[host, repr(seconds * 1000), link.keys["paused"]])
        except link.errors as exc:
            link.unreachable(exc)

    def _release(self, host: str, permit: HostPermit) -> None:
        with self._lock:
            lease = self._leases.pop(id(permit), None)
            before = None if self._paces is None else self._paces.allowed(host)
        if lease is not None:
            key, holder = lease
            self._gate.leases.drop(holder)
            try:
                self._free(keys=[key, self._link.keys["adaptive"]],
                           args=[holder, host, "" if self._cap is None else self._cap, self._first_limit,
                                 self._link.keys["paused"]])  # fmt: skip
            except self._link.errors as exc:
                log.warning("could not give a cluster host slot back (its lease will run out): %s", exc)
        super()._release(host, permit)
        if self._paces is not None:
            self._say_limit(host, before)

    def _say_limit(self, host: str, before: int | None) -> None:
        """Write *host*'s adaptive limit for the cluster, if this process's law moved it."""
        assert self._paces is not None
        with self._lock:
            allowed = self._paces.allowed(host)
        if allowed == before and self._said.get(host) == allowed:
            return
        try:
            self._link.client.hset(self._link.keys["adaptive"], host, allowed)
        except self._link.errors as exc:
            self._link.unreachable(exc)
            return
        self._said[host] = allowed
        if len(self._said) > 10_000:
            self._said.clear()

    def _listen_for_pauses(self) -> None:
        """At the first start: the pauses set so far hold from now, and those set later as they come."""
        try:
            self._catch_up()
        except self._link.errors as exc:
            self._link.unreachable(exc)
        with self._lock:
            if self._listener is None and not self._closing.is_set():
                self._listener = threading.Thread(target=self._listen, name="fetcher-pauses", daemon=True)
                self._listener.start()

    def _listen(self) -> None:
        """Apply the pauses other fetchers of the cluster publish, and those set before this one started."""
        link = self._link
        while not self._closing.is_set():
            pubsub = link.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(link.keys["paused"])
                self._catch_up()  # what was set while it was not subscribed
                while not self._closing.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is not None:
                        self._apply(message["data"])
            except Exception as exc:  # noqa: BLE001 - this thread must outlive any failure; redis-py may
                # raise other errors than its own when its connection is closed under it (at close)
                if self._closing.is_set():
                    return
                link.unreachable(exc)
                self._closing.wait(RESUBSCRIBE_S)
            finally:
                try:
                    pubsub.close()
                except Exception:  # noqa: BLE001 - as above
                    pass

    def _catch_up(self) -> None:
        """The pauses set before this listener subscribed."""
        link = self._link
        now_ms, pauses = server_ms(link.client), link.client.hgetall(link.keys["pauses"])
        for host, until in pauses.items():
            if float(until) > now_ms:
                HostLimits.pause(self, host.decode(), (float(until) - now_ms) / 1000)

    def _apply(self, data: bytes) -> None:
        """A message of another fetcher: a host paused (``host ms``), or a slot of a full host freed (``+host``)."""
        try:
            text = data.decode()
            if text.startswith(FREED):
                with self._lock:
                    listeners = self._listeners
                for listener in listeners:  # outside the lock, as _release calls them
                    listener(text[len(FREED):])
                return
            host, ms = text.rsplit(" ", 1)
            HostLimits.pause(self, host, float(ms) / 1000)
        except (UnicodeDecodeError, ValueError):
            log.debug("ignored a malformed message: %r", data)

    def close(self) -> None:
        # Not joined: the listener ends within its half-second read, and a run's end need not wait for it.
        self._closing.set()
