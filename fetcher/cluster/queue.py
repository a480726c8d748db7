"""One list shared by the fetchers of a cluster: a Redis Stream, a consumer group, one final record per URL.

``ClusterQueue(url, cluster)``:

- ``enqueue(entries)`` (``fetcher enqueue``) adds each URL once: a set of the
  URLs ever queued (in normal form) and the stream's entry are written by one
  script, so two lists enqueued at once never queue a URL twice.
- ``entries()`` (``fetcher work``) yields the URLs this worker takes, read
  with the consumer group ``workers``: each stream entry goes to one worker.
  An entry a worker took stays *pending* until it is acknowledged; a worker
  keeps its pending entries fresh every third of a lease (``XCLAIM`` with
  no wait, which resets their idle time), so a worker that dies (SIGKILL, a
  lost machine) leaves entries that go idle, and after the lease another
  worker takes them over (``XAUTOCLAIM``).  ``entries()`` ends when nothing
  is left to read and no other worker holds an entry.  An entry this worker
  holds already (its keeping fresh lapsed while Redis was unreachable, and
  it took it over from itself) is not yielded again.
- ``finished(result)``: a URL's final record, kept in the cluster's records
  (a hash by URL: the first record wins, so a URL that two workers ended
  still has exactly one) and counted by status, and its entry
  acknowledged, in one script.  A URL cut short (``cancelled``,
  ``not-started``) is not final: its entry stays pending, and another
  worker takes it over after the lease.  Such a URL also means the run was
  cut short (``--deadline``, ``--quota``, Ctrl-C): ``entries()`` then takes
  no more, so the queue is not drained into a run that starts nothing (a
  list's run reads to its end, to give every line a record; the queue's
  URLs are the other workers' to do).

While Redis is unreachable, downloads in flight go on and their final
records wait in this worker (their entries are kept fresh with the others
once it is back), to be kept when it is back: a URL done during an outage is
neither done again nor counted twice.  Past ``unreachable_s`` without
Redis, ``entries()`` ends the run (URLListError).  A Redis that comes back
without the queue (restarted without its data) ends it at once: what is
left to do is no longer known.

Nothing here downloads: ``fetcher work`` feeds ``entries()`` to a Fetcher
and hands each result to ``finished``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from .._errors import ConfigError, URLListError
from .._result import Result, Status
from .._text import redact
from .._urllist import Entry
from .._urls import check_url, normalize
from ..limits.redis import DEFAULT_LEASE_S
from ..limits.redis_link import Link, server_ms

log = logging.getLogger("fetcher")

GROUP = "workers"
#: Entries sent in one script by ``enqueue``.
BATCH = 500
#: Final records kept in Redis at once, and the longest one waits.
FLUSH_COUNT = 64
FLUSH_S = 0.5
#: Statuses that do not end a URL in a cluster: another worker takes it over.
NOT_FINAL = frozenset({Status.CANCELLED, Status.NOT_STARTED})

# KEYS: seen, stream.  ARGV: per URL, its normal form and its entry as JSON.  Returns how many were added.
_ENQUEUE = """
local added = 0
for i = 1, #ARGV, 2 do
  if redis.call('SADD', KEYS[1], ARGV[i]) == 1 then
    redis.call('XADD', KEYS[2], '*', 'entry', ARGV[i + 1])
    added = added + 1
  end
end
return added
"""

# KEYS: records, totals, stream.  ARGV: the group, then per URL: url, record JSON, status, entry id.
# A URL's first final record is kept (HSETNX) and counted; every entry is acknowledged.
_FINISH = """
local kept = 0
for i = 2, #ARGV, 4 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('HINCRBY', KEYS[2], ARGV[i + 2], 1)
    kept = kept + 1
  end
  redis.call('XACK', KEYS[3], ARGV[1], ARGV[i + 3])
end
return kept
"""


class ClusterQueue:
    """The shared list of cluster *cluster* on the Redis server at *url* (see the module docs)."""

    def __init__(self, url: str, cluster: str, *, lease_s: float = DEFAULT_LEASE_S, poll_s: float = 0.2,
                 batch: int = 16, unreachable_s: float = 30.0) -> None:  # fmt: skip
        link = Link(url, cluster)  # the name checked, redis-py, the client, the key names
        self._redis = link.redis
        self._client: Any = link.client
        self.where = link.where
        self.cluster = cluster
        self._keys = link.keys
        self._lease_ms = int(lease_s * 1000)
        self._poll_ms = int(poll_s * 1000)
        self._batch = batch
        self._unreachable_s = unreachable_s
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._enqueue = self._client.register_script(_ENQUEUE)
        self._finish = self._client.register_script(_FINISH)
        # The entries this worker holds: by URL as its Result gives it (no password), their ids, oldest first.
        self._taken: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._finished: list[tuple[str, str, str, str]] = []  # final records not yet kept in Redis
        self._first_finished: float | None = None
        self._unkept_since: float | None = None  # since when Redis has refused the final records (then: the keeper's)
        self._stopped = threading.Event()
        self._cut_short = threading.Event()  # a URL of the run was not final: the run takes no more
        self._keeper: threading.Thread | None = None
        try:
            self._client.xgroup_create(self._keys["queue"], GROUP, id="0", mkstream=True)
        except self._redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise ConfigError(f"cannot use Redis at {self.where}: {exc}") from None
        except self._redis.exceptions.RedisError as exc:
            raise ConfigError(f"cannot use Redis at {self.where}: {exc}") from None

    # -- enqueue --------------------------------------------------------------------------------

    def enqueue(self, entries: Iterable[Entry]) -> tuple[int, int]:
        """Queue each entry's URL unless the cluster has queued it before: (added, already there)."""
        added = seen = 0
        batch: list[str] = []
        for entry in entries:
            batch += [normalize(entry.url), json.dumps(_entry_fields(entry), separators=(",", ":"))]
            if len(batch) >= 2 * BATCH:
                now = int(self._enqueue(keys=[self._keys["seen"], self._keys["queue"]], args=batch))
                added, seen, batch = added + now, seen + len(batch) // 2 - now, []
        if batch:
            now = int(self._enqueue(keys=[self._keys["seen"], self._keys["queue"]], args=batch))
            added, seen = added + now, seen + len(batch) // 2 - now
        return added, seen

    # -- work -----------------------------------------------------------------------------------

    def entries(self) -> Iterator[Entry]:
        """The entries this worker takes, until the queue is drained (see the module docs).

        While Redis is unreachable it waits (downloads in flight go on); past ``unreachable_s`` it
        raises URLListError, which ends the run as a list that could not be read to its end.  A queue
        that is gone (Redis came back without its data) raises it at once.
        """
        self._start_keeper()
        lost_at: float | None = None
        while not self._stopped.is_set() and not self._cut_short.is_set():
            try:
                messages, drained = self._next_messages()
            except self._redis.exceptions.RedisError as exc:
                if str(exc).startswith("NOGROUP"):  # the stream or its group is no more
                    raise URLListError(f"the cluster's queue at {self.where} is gone (Redis restarted without its "
                                       "data?): the URLs left to do are not known") from None  # fmt: skip
                now = time.monotonic()
                if lost_at is None:
                    lost_at = now
                    log.warning("Redis at %s is unreachable (%s): no new URL until it is back", self.where, exc)
                if now - lost_at > self._unreachable_s:
                    raise URLListError(f"the cluster's queue at {self.where} was unreachable for "
                                       f"{self._unreachable_s:g}s: {exc}") from None  # fmt: skip
                self._stopped.wait(self._poll_ms / 1000)
                continue
            except Exception:
                if self._stopped.is_set():
                    return  # closed meanwhile, its connection with it (redis-py then fails as it may)
                raise
            lost_at = None
            if drained:
                return
            # Held from now on, and kept fresh, even those the run has not read yet (a batch is small).
            batch = [(_text(entry_id), _entry(fields)) for entry_id, fields in messages]
            with self._lock:
                held = set(self._held())
                batch = [(entry_id, entry) for entry_id, entry in batch if entry_id not in held]
                for entry_id, entry in batch:
                    self._taken.setdefault(redact(entry.url), []).append(entry_id)
            for _, entry in batch:
                if self._cut_short.is_set():
                    return  # the rest stay this worker's until it ends, then the others' after the lease
                yield entry

    def _next_messages(self) -> tuple[list[Any], bool]:
        """New entries for this worker, else those of a worker that stopped; True when the queue is drained."""
        stream = self._keys["queue"]
        answer = self._client.xreadgroup(GROUP, self.consumer, {stream: ">"}, count=self._batch, block=self._poll_ms)
        messages = answer[0][1] if answer else []
        if not messages:
            _, claimed, *_ = self._client.xautoclaim(stream, GROUP, self.consumer, self._lease_ms, "0-0",
                                                     count=self._batch)  # fmt: skip
            messages = [m for m in claimed if m[1]]  # an entry deleted meanwhile comes back empty
            if messages:
                log.info("took over %d URL(s) of a worker that stopped", len(messages))
            else:
                # Nothing left to take: what this worker finished goes now, not at its next batch, which may
                # never come; the others wait for exactly that (their drain is ours) before they end.
                self.flush()
        return messages, not messages and self._others_pending() == 0

    def finished(self, result: Result) -> None:
        """*result* is its URL's record in this run: keep it as the cluster's, unless it is not final.

        Kept in batches (FLUSH_COUNT records, or FLUSH_S seconds): a worker that dies loses at most a
        batch of acknowledgements, and those URLs are done again elsewhere, still with one record each.
        """
        if result.status in NOT_FINAL:
            self._cut_short.set()
            return  # left pending: another worker takes it over after the lease
        record = json.dumps(result.to_record(), default=str, separators=(",", ":"))
        with self._lock:
            ids = self._taken.get(result.url)
            if not ids:
                return  # not one of ours (it cannot be)
            entry_id = ids.pop(0)
            if not ids:
                del self._taken[result.url]
            self._finished.append((result.url, record, str(result.status), entry_id))
            if self._first_finished is None:
                self._first_finished = time.monotonic()
            # Soon (an entry finished here is kept fresh until its record is kept).  While Redis refuses
            # the records, only the keeper tries again: the run's loop never waits on Redis for them.
            waited = time.monotonic() - self._first_finished
            due = self._unkept_since is None and (len(self._finished) >= FLUSH_COUNT or
                                                  waited >= min(FLUSH_S, self._lease_ms / 6000))  # fmt: skip
        if due:
            self.flush()

    def flush(self) -> None:
        """Keep the final records waiting in this worker, now (one round trip); if Redis does not answer,
        they wait for the next flush."""
        with self._lock:
            batch, self._finished, self._first_finished = self._finished, [], None
        if not batch:
            return
        args = [GROUP, *(value for finished in batch for value in finished)]
        try:
            self._finish(keys=[self._keys["records"], self._keys["totals"], self._keys["queue"]], args=args)
        except self._redis.exceptions.RedisError as exc:
            with self._lock:
                self._finished[:0] = batch
                first, self._unkept_since = self._unkept_since is None, self._unkept_since or time.monotonic()
            if first:
                log.warning("could not keep %d final record(s) in Redis at %s (kept here until it is back): %s",
                            len(batch), self.where, exc)  # fmt: skip
            return
        with self._lock:
            self._unkept_since = None

    def _held(self) -> list[str]:
        """Under the lock: the ids of the entries this worker holds, taken or finished but not yet kept."""
        return [*(entry_id for ids in self._taken.values() for entry_id in ids), *(f[3] for f in self._finished)]

    def _others_pending(self) -> int:
        """Entries that other workers hold now."""
        summary = self._client.xpending(self._keys["queue"], GROUP)
        mine = sum(int(c["pending"]) for c in summary.get("consumers") or () if _text(c["name"]) == self.consumer)
        return int(summary.get("pending") or 0) - mine

    def _start_keeper(self) -> None:
        if self._keeper is None:
            self._keeper = threading.Thread(target=self._keep_fresh, name="fetcher-queue-lease", daemon=True)
            self._keeper.start()

    def _keep_fresh(self) -> None:
        """Now and every third of a lease: reset the idle time of the entries this worker holds, and say it is
        alive."""
        while True:
            with self._lock:
                held = self._held()
            try:
                self._client.zadd(self._keys["workers"], {self.consumer: int(server_ms(self._client))})
                for start in range(0, len(held), 500):
                    self._client.xclaim(self._keys["queue"], GROUP, self.consumer, 0, held[start:start + 500],
                                        justid=True)  # fmt: skip
            except self._redis.exceptions.RedisError as exc:
                log.warning("could not keep this worker's URLs (Redis at %s): %s", self.where, exc)
            self.flush()  # records that waited for a batch: no longer than a third of a lease
            if self._stopped.wait(self._lease_ms / 3000):
                return

    def close(self) -> None:
        """Keep the records waiting (those Redis refuses now are lost here: their URLs are done again elsewhere,
        still with one record each); stop keeping this worker's entries (any still held go to the others after
        the lease)."""
        self._stopped.set()
        self.flush()
        if self._finished:
            log.warning("%d final record(s) not kept in Redis at %s: their URLs will be done again elsewhere",
                        len(self._finished), self.where)  # fmt: skip
        try:
            self._client.zrem(self._keys["workers"], self.consumer)
        except self._redis.exceptions.RedisError:
            pass
        self._client.close()


def _entry_fields(entry: Entry) -> dict[str, Any]:
    fields: dict[str, Any] = {"url": entry.url, "line": entry.line}
    if entry.checksum is not None:
        fields["checksum"] = f"{entry.checksum.algorithm}={entry.checksum.hexdigest}"
    if entry.out is not None:
        fields["out"] = entry.out
    return fields


def _entry(fields: dict[Any, Any]) -> Entry:
    data = json.loads(_text(fields.get(b"entry") or fields.get("entry") or "{}"))
    return Entry(url=data["url"], line=data.get("line", 0), checksum=data.get("checksum"), out=data.get("out"))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def valid_entries(entries: Iterable[Entry], invalid: list[tuple[Entry, str]]) -> Iterator[Entry]:
    """The entries whose URL and options can be downloaded; the others go into *invalid* with why."""
    for entry in entries:
        why = entry.problem or check_url(entry.url)
        if why is None:
            yield entry
        else:
            invalid.append((entry, why))

