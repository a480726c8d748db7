"""The leases one process holds in a cluster, kept alive by one thread.

A lease is a member of a sorted set (the cluster's slots, or a host's
slots), scored by the moment it runs out on the server's clock.  ``Leases``
renews every lease the process holds, all in one script, every third of a
lease, so a download that runs for an hour keeps its slot, and a process
that dies (SIGKILL, a lost machine) stops renewing: its leases run out and
the slots come back, never sooner.  The renewal also says what each slot
is downloading (its host), for ``fetcher cluster status``.

The same thread runs the holder's other chores that must happen on time
while nothing else happens (``chore``): the gate gives back a slot it kept
for a next download that did not come.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .redis_link import Link

log = logging.getLogger("fetcher")

# KEYS: limits, downloading, then the sorted set of each lease.  ARGV: lease ms, then per lease its holder
# and what it downloads ('' if not told).  Returns how many were still held (and renewed).
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
redis.call('PEXPIRE', KEYS[1], 3 * lease)
local renewed = 0
for i = 3, #KEYS do
  local holder = ARGV[2 * (i - 2)]
  local score = redis.call('ZSCORE', KEYS[i], holder)
  if score and tonumber(score) > now then
    redis.call('ZADD', KEYS[i], 'XX', now + lease, holder)
    redis.call('PEXPIRE', KEYS[i], 3 * lease)
    renewed = renewed + 1
    local what = ARGV[2 * (i - 2) + 1]
    if what ~= '' then
      redis.call('HSET', KEYS[2], holder, what)
    end
  end
end
redis.call('PEXPIRE', KEYS[2], 3 * lease)
return renewed
"""


class Leases:
    """The leases of one process in cluster *link*, renewed every third of *lease_ms* until dropped."""

    def __init__(self, link: Link, lease_ms: int) -> None:
        self._link = link
        self._lease_ms = lease_ms
        self._renew = link.client.register_script(_RENEW)
        self._changed = threading.Condition(threading.Lock())
        self._held: dict[str, tuple[str, str]] = {}  # holder -> (its sorted set, what it downloads)
        self._closed = False
        self._thread: threading.Thread | None = None
        #: Called by the renewing thread at the monotonic time it returns (None: no need), and then.
        self.chore: tuple[Callable[[], float | None], Callable[[], None]] | None = None

    @property
    def lease_ms(self) -> int:
        return self._lease_ms

    def hold(self, key: str, holder: str) -> None:
        """Renew *holder*'s lease in the sorted set *key* until ``drop``."""
        with self._changed:
            self._held[holder] = (key, "")
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._loop, name="fetcher-lease", daemon=True)
                self._thread.start()

    def drop(self, holder: str) -> None:
        with self._changed:
            self._held.pop(holder, None)

    def describe(self, holder: str, what: str) -> None:
        """What *holder*'s slot downloads, told at the next renewal."""
        with self._changed:
            held = self._held.get(holder)
            if held is not None:
                self._held[holder] = (held[0], what)

    def wake(self) -> None:
        """The chore's time may have moved closer."""
        with self._changed:
            self._changed.notify()

    def close(self) -> list[str]:
        """Stop renewing; the holders still held."""
        with self._changed:
            self._closed = True
            held, self._held = list(self._held), {}
            self._changed.notify()
        return held

    def _loop(self) -> None:
        every = self._lease_ms / 3000
        renew_at = time.monotonic() + every
        while True:
            with self._changed:
                # Read under the lock that wake() takes: a change made before its wake() is seen here.
                chore_at = None if self.chore is None else self.chore[0]()
                if self._closed:
                    return
                wake_at = renew_at if chore_at is None else min(renew_at, chore_at)
                self._changed.wait(max(0.0, wake_at - time.monotonic()))
                if self._closed:
                    return
            now = time.monotonic()
            if self.chore is not None and chore_at is not None and now >= chore_at:
                self.chore[1]()
            if now >= renew_at:
                renew_at = now + every
                self._renew_all()

    def _renew_all(self) -> None:
        with self._changed:
            held = list(self._held.items())
        if not held:
            return
        link = self._link
        args: list[Any] = [self._lease_ms]
        for holder, (_, what) in held:
            args += [holder, what]
        try:
            renewed = self._renew(keys=[link.keys["limits"], link.keys["downloading"], *(key for _, (key, _) in held)],
                                  args=args)  # fmt: skip
        except link.errors as exc:
            link.unreachable(exc)
            return
        link.reachable()
        if renewed < len(held):
            log.warning("%d cluster lease(s) ran out before renewal (Redis was unreachable for too long?)",
                        len(held) - renewed)  # fmt: skip
