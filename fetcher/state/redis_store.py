"""RedisStateStore: the state of a cluster's fetchers, kept in its Redis beside the queue.

What it is: the records a StateStore keeps in ``DEST/.fetcher-state.db`` (the
validators of each saved file, the partial files worth resuming, the file
name each URL was given), kept instead in five hashes of the cluster, so that
every fetcher of the cluster, on any machine, reads what any of them saved:

- ``fetcher:{NAME}:saved``: URL -> its Saved record as JSON (the URL aside);
- ``fetcher:{NAME}:partials``: URL -> its Partial record as JSON;
- ``fetcher:{NAME}:partial_at``: URL -> when its partial was recorded, in µs by the server's clock (a saved
  record forgets a partial recorded before it was made, the server's time less its age by the maker's clock,
  to within the round trip of its write: the machines' clocks are never compared);
- ``fetcher:{NAME}:names``: a name's ``casefold()`` -> the URL that owns it;
- ``fetcher:{NAME}:named``: URL -> ``{"name": ..., "folded": ...}``, its name.

A URL that lands tonight on another machine than last night is still asked
for with a conditional GET, and a partial file one worker left is resumed by
another, *when the workers share one DEST* (a shared folder): a path under
DEST is kept relative to it (the machines may mount the folder at different
places) and made absolute again, under this fetcher's DEST, when read; a
path elsewhere is kept as it is.  A worker whose own DEST lacks the file
(DESTs of their own) finds no file at the recorded place and downloads the
URL in full, as a run does after the file was deleted; its name is still the
cluster's.  At start, a fetcher forgets no partial file on record that its
DEST lacks (another's DEST may have it): one gone for good is forgotten
when its URL is next saved.  URLs are keys as the state database keeps
them: without their password.

The keys carry the cluster's name only (no run, no night): the records
outlive the queue's rounds, so the next night's run of the same cluster asks
with last night's validators.  Nothing expires them; ``DEL`` the five keys to
start afresh.

Costs, in round trips to Redis (what makes a cluster's small download slow):

- the saved records and the partial files of the next URLs are read ahead
  in one pipeline (``saved_many``: an HMGET on each hash), so ``partial``
  is answered from memory for those;
- ``record_saved`` hands its record to a writer thread, which writes what
  has gathered (at least every ``WRITE_EVERY_S``, and at ``flush``/``close``)
  with one script per ``BATCH`` records, which also forgets each URL's older
  partial; until written, a record is answered from memory.  Killed by
  SIGKILL, a fetcher loses the records of its last fraction of a second, and
  the next run downloads those few files in full;
- a file name is one script: the URL's name on record, or else its name
  claimed for it if no other URL has it, at once (not written behind), so two
  fetchers never give one name to two URLs.  On a re-run that is the one
  round trip naming costs; a collision costs a few more;
- ``record_partial`` and ``forget_partial`` (rare: a download of 1 MiB or
  more cut short) are one command each; a URL this fetcher knows no partial
  of is not asked about.

When Redis fails: a read (a saved record, a partial file) answers "none" (the
URL is downloaded in full, or not resumed) and says once that Redis is
unreachable (``Link.unreachable``, shared with the slots, which stop new
downloads meanwhile).  A batch of saved records that cannot be written is
dropped (the next run downloads those files in full).  A file name that
cannot be looked up or claimed raises StateError, on which the run's feeder
waits for Redis (no download starts meanwhile anyway) up to --timeout, and
then gives the URL a name of its own (its name with the suffix of its own
hash, which no other URL gets), unrecorded.  ``record_partial``, the listing
of the partials at start, and records Redis holds that are not valid
records raise StateError or are skipped; every StateError is one line that
names Redis without its password.

What it is not: not a cache of files (the files stay in each DEST), not
bound to a DEST (every fetcher of the cluster shares one set of records and
one set of names, whatever its DEST), not durable beyond what the Redis
server's own persistence keeps (a Redis restarted without its data forgets
the validators: the next run downloads everything once more).  The store
does not own the Link: closing it flushes and stops its thread, and leaves
the connection to the gate.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from .._errors import ConfigError, StateError
from ..limits.redis_link import Link
from .behind import MAX_PENDING, Behind
from .records import Partial, Saved

log = logging.getLogger("fetcher")

#: Saved records written by one script.
BATCH = 500

_R = TypeVar("_R")

#: Partial-file lookups read ahead and not yet asked for, at most (oldest dropped first: asked for one by one).
AHEAD_MAX = 10_000

#: The longest ``flush`` waits for the writer (two socket timeouts and a batch).
FLUSH_WAIT_S = 11.0

# KEYS: saved, partials, partial_at.  ARGV: per record its URL, its JSON and its age (µs since it was made,
# by the maker's clock).  A saved record forgets only a partial recorded before it was made: one recorded since
# (another fetcher, another fetch of the URL) stays.  Both times are the server's (TIME), never two machines'.
_RECORD_SAVED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #ARGV, 3 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 1 then
    local recorded = tonumber(redis.call('HGET', KEYS[3], ARGV[i]) or '0')
    if recorded <= now - tonumber(ARGV[i + 2]) then
      redis.call('HDEL', KEYS[2], ARGV[i])
      redis.call('HDEL', KEYS[3], ARGV[i])
    end
  end
end
return #ARGV / 3
"""

# KEYS: partials, partial_at.  ARGV: the URL, its Partial as JSON.  Recorded with the server's time.
_RECORD_PARTIAL = """
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], t[1] .. string.format('%06d', tonumber(t[2])))
return 1
"""

# KEYS: names, named, saved, partials.  ARGV: the URL, a name's casefold(), the name as {"name", "folded"}
# JSON, and the URL as the state knows it ('' for none).  Returns {the name: the URL's name on record; else the
# name, claimed for the URL if no other URL owns it; else false, then its saved record and its partial file}.
_KNOWN_OR_CLAIM = """
local saved, partial = false, false
if ARGV[4] ~= '' then
  saved = redis.call('HGET', KEYS[3], ARGV[4])
  partial = redis.call('HGET', KEYS[4], ARGV[4])
end
local known = redis.call('HGET', KEYS[2], ARGV[1])
if known then return {known, saved, partial} end
local owner = redis.call('HGET', KEYS[1], ARGV[2])
if owner and owner ~= ARGV[1] then return {false, saved, partial} end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return {ARGV[3], saved, partial}
"""

# The same arguments.  Give the URL the name, in place of the name it had, unless another URL owns it: 1 if it
# is the URL's now, 0 if not.
_CLAIM = """
local owner = redis.call('HGET', KEYS[1], ARGV[2])
if owner and owner ~= ARGV[1] then return 0 end
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old then
  local ok, was = pcall(cjson.decode, old)
  if ok and type(was) == 'table' and type(was.folded) == 'string' and was.folded ~= ARGV[2]
      and redis.call('HGET', KEYS[1], was.folded) == ARGV[1] then
    redis.call('HDEL', KEYS[1], was.folded)
  end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
"""

_SAVED_FIELDS = tuple(f.name for f in fields(Saved) if f.name != "url")
_PARTIAL_FIELDS = tuple(f.name for f in fields(Partial) if f.name != "url")


class RedisStateStore:
    """The state of the cluster that *link* reaches, for a fetcher whose files go to *dest* (see the module docs).

    Safe to call from any number of threads.  Opening it asks Redis nothing.
    """

    def __init__(self, link: Link, dest: str | Path, *, clock: Callable[[], float] = time.time,
                 max_pending: int = MAX_PENDING) -> None:  # fmt: skip
        self.link = link
        self.dest = Path(os.path.abspath(dest))
        self._records = _Records(self.dest, link.where)
        self._clock = clock
        keys = link.keys
        self._saved_key, self._partials_key = keys["saved"], keys["partials"]
        self._names_keys = [keys["names"], keys["named"]]
        self._record = link.client.register_script(_RECORD_SAVED)
        self._record_partial = link.client.register_script(_RECORD_PARTIAL)
        self._partial_at_key = keys["partial_at"]
        self._known_or_claim = link.client.register_script(_KNOWN_OR_CLAIM)
        self._claim = link.client.register_script(_CLAIM)
        self._lock = threading.Lock()
        # Read ahead by saved_many: URL -> its partial file on record (None: none), until partial() asks.
        self._ahead: OrderedDict[str, Partial | None] = OrderedDict()
        # Read with its name (RedisNames): URL -> its saved record (None: none), until saved_many asks.
        self._named_ahead: OrderedDict[str, Saved | None] = OrderedDict()
        # URLs whose partial file this fetcher has seen on record: forget_partial asks Redis about no other.
        self._partial_urls: set[str] = set()
        self._writer = _Writer(self._write, max_pending=max_pending)
        self._closed = False

    # -- saved files ----------------------------------------------------------------------------

    def now(self) -> float:
        """The store's clock (this machine's): what callers put in ``saved_at`` and ``updated_at``."""
        return self._clock()

    def saved(self, url: str) -> Saved | None:
        found = self._writer.pending(url)  # not written yet
        if found is None and (raw := self._read(lambda: self.link.client.hget(self._saved_key, url))) is not None:
            found = self._records.saved(url, raw)
        return found

    def saved_many(self, urls: list[str]) -> dict[str, Saved]:
        """The saved records of those *urls* that have one, and their partial files (for ``partial``): one round
        trip."""
        found = {url: saved for url in urls if (saved := self._writer.pending(url)) is not None}
        rest = []
        with self._lock:
            for url in urls:
                if url in found:
                    continue
                if url in self._named_ahead:  # read with its name
                    if (saved := self._named_ahead.pop(url)) is not None:
                        found[url] = saved
                else:
                    rest.append(url)
        if not rest:
            return found

        def both() -> list[list[bytes | None]]:
            pipe = self.link.client.pipeline(transaction=False)
            pipe.hmget(self._saved_key, rest)
            pipe.hmget(self._partials_key, rest)
            return pipe.execute()  # type: ignore[no-any-return]

        answer = self._read(both)
        if answer is None:
            return found
        saved_raw, partial_raw = answer
        for url, raw in zip(rest, saved_raw, strict=True):
            if raw is not None and (saved := self._records.saved(url, raw)) is not None:
                found[url] = saved
        ahead: dict[str, Partial | None] = {}
        for url, raw in zip(rest, partial_raw, strict=True):
            ahead[url] = None if raw is None else self._partial(url, raw)
        with self._lock:
            for url, partial in ahead.items():
                _keep_ahead(self._ahead, url, partial)
        return found

    def _read_ahead(self, url: str, saved: bytes | None, partial: bytes | None) -> None:
        """Keep *url*'s saved record and partial file, read with its name, for ``saved_many`` and ``partial``."""
        record = None if saved is None else self._records.saved(url, saved)
        kept = None if partial is None else self._partial(url, partial)
        with self._lock:
            _keep_ahead(self._named_ahead, url, record)
            _keep_ahead(self._ahead, url, kept)

    def record_saved(self, saved: Saved) -> None:
        """Remember *saved* in place of the URL's old record, and forget its older partial file: written behind."""
        if self._closed:
            raise StateError(f"could not record a saved file: the state in Redis at {self.link.where} is closed")
        with self._lock:
            self._ahead.pop(saved.url, None)
            self._named_ahead.pop(saved.url, None)
            self._partial_urls.discard(saved.url)
        self._writer.put(saved, self._records.encode(saved, _SAVED_FIELDS))

    # -- partial files --------------------------------------------------------------------------

    def partial(self, url: str) -> Partial | None:
        with self._lock:
            if url in self._ahead:
                return self._ahead.pop(url)
        raw = self._read(lambda: self.link.client.hget(self._partials_key, url))
        return None if raw is None else self._partial(url, raw)

    def record_partial(self, partial: Partial) -> None:
        keys = [self._partials_key, self._partial_at_key]
        args = [partial.url, self._records.encode(partial, _PARTIAL_FIELDS)]
        self._write_now("record a partial download", lambda: self._record_partial(keys=keys, args=args))
        with self._lock:
            self._ahead.pop(partial.url, None)
            self._partial_urls.add(partial.url)

    def forget_partial(self, url: str) -> None:
        with self._lock:
            self._ahead.pop(url, None)
            if url not in self._partial_urls:
                return  # none on record, as far as this fetcher knows: no round trip
        def forget() -> None:
            pipe = self.link.client.pipeline(transaction=False)
            pipe.hdel(self._partials_key, url)
            pipe.hdel(self._partial_at_key, url)
            pipe.execute()

        self._write_now("forget a partial download", forget)
        with self._lock:
            self._partial_urls.discard(url)

    def partials(self) -> list[Partial]:
        """Every partial download on record in the cluster, by URL (saved records written first)."""
        self._writer.flush()
        everything = self._write_now("list partial downloads", lambda: self.link.client.hgetall(self._partials_key))
        found = []
        for url, raw in sorted(everything.items()):
            partial = self._partial(_text(url), raw)
            if partial is not None:
                found.append(partial)
        return found

    # -- the rest -------------------------------------------------------------------------------

    def names(self, folder: str | Path) -> RedisNames:
        """The names given to URLs: the cluster's, whatever *folder* (DEST) is."""
        return RedisNames(self)

    def flush(self) -> None:
        """Write every record handed to ``record_saved`` so far (close() does this too)."""
        self._writer.flush()

    def close(self) -> None:
        """Write what waits and stop the writer; the Link stays open (the gate's)."""
        self._closed = True
        self._writer.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<RedisStateStore {state} {self.link.cluster!r} at {self.link.where} dest={str(self.dest)!r}>"

    def _partial(self, url: str, raw: bytes) -> Partial | None:
        """The partial file recorded as *raw*; then ``forget_partial`` knows to ask Redis about *url*."""
        partial = self._records.partial(url, raw)
        if partial is not None:
            with self._lock:
                self._partial_urls.add(url)
        return partial

    # -- talking to Redis -----------------------------------------------------------------------

    def _read(self, call: Callable[[], Any]) -> Any:
        """*call*'s answer; None if Redis fails (said once): the URL is then downloaded as if nothing were on record."""
        try:
            answer = call()
        except self.link.errors as exc:
            self.link.unreachable(exc)
            return None
        except ValueError as exc:  # text redis-py cannot send (a URL with a lone surrogate)
            log.debug("state in Redis at %s: %s", self.link.where, exc)
            return None
        self.link.reachable()
        return answer

    def _write_now(self, doing: str, call: Callable[[], Any]) -> Any:
        if self._closed:
            raise StateError(f"could not {doing}: the state in Redis at {self.link.where} is closed")
        try:
            answer = call()
        except (self.link.errors, ValueError) as exc:
            raise StateError(f"could not {doing}: the state in Redis at {self.link.where}: {_one_line(exc)}") from None
        self.link.reachable()
        return answer

    def _write(self, batch: list[tuple[Saved, str, float]]) -> None:
        """The writer thread's: write *batch*, a script per BATCH records; a batch Redis refuses is dropped."""
        for start in range(0, len(batch), BATCH):
            chunk = batch[start : start + BATCH]
            now = time.monotonic()
            args = [value for saved, text, made in chunk for value in (saved.url, text, int((now - made) * 1e6))]
            try:
                self._record(keys=[self._saved_key, self._partials_key, self._partial_at_key], args=args)
            except self.link.errors as exc:
                self.link.unreachable(exc)
                log.debug("%d saved files not recorded in Redis at %s: the next run downloads them in full",
                          len(chunk), self.link.where)  # fmt: skip
                continue
            except ValueError as exc:
                log.warning("could not record %d saved files in Redis at %s: %s", len(chunk), self.link.where, exc)
                continue
            self.link.reachable()


_Record = TypeVar("_Record", Saved, Partial)


class _Records:
    """Saved and partial records as the cluster keeps them: JSON, with a path in DEST kept relative to it."""

    def __init__(self, dest: Path, where: str) -> None:
        self._dest = str(dest)
        self._prefix = os.path.join(self._dest, "")
        self._where = where  # for the log

    def encode(self, record: Saved | Partial, names: tuple[str, ...]) -> str:
        values = {name: getattr(record, name) for name in names}
        if values["path"].startswith(self._prefix):
            values["path"] = values["path"][len(self._prefix) :]
        return json.dumps(values, separators=(",", ":"))

    def saved(self, url: str, raw: bytes) -> Saved | None:
        return self._decode(Saved, url, raw, _SAVED_FIELDS)

    def partial(self, url: str, raw: bytes) -> Partial | None:
        return self._decode(Partial, url, raw, _PARTIAL_FIELDS)

    def _decode(self, kind: type[_Record], url: str, raw: bytes, names: tuple[str, ...]) -> _Record | None:
        """The *kind* of record *raw* holds for *url*; None for anything else."""
        try:
            values = json.loads(raw)
            values = {name: values[name] for name in names}
            values["path"] = os.path.join(self._dest, values["path"])  # a path kept absolute stays so
        except (ValueError, TypeError, KeyError):
            log.debug("not a record of the state in Redis at %s, for %s: %r", self._where, url, raw[:200])
            return None
        values["url"] = url
        try:
            return kind(**values)
        except ConfigError:
            return None


class RedisNames:
    """The file names of a cluster's URLs, as ``fetcher._naming.Namer`` asks for them.

    *url* is the Namer's key for a URL (the normal form without a password).
    Every answer comes from Redis; a claim is written at once, atomically.  A
    call that fails raises StateError (and says once that Redis is unreachable):
    see the module docs for what the run does then.
    """

    def __init__(self, store: RedisStateStore) -> None:
        self._store = store
        self._link = store.link
        self._keys = store._names_keys

    def name_of(self, url: str) -> str | None:
        raw = self._ask(lambda: self._link.client.hget(self._keys[1], url))
        return None if raw is None else _name(raw)

    def owner_of(self, name_folded: str) -> str | None:
        raw = self._ask(lambda: self._link.client.hget(self._keys[0], name_folded))
        return None if raw is None else _text(raw)

    def claim(self, name: str, url: str) -> bool:
        """Give *url* the name *name*, in place of any name it had; False if another URL has it."""
        return bool(self._ask(lambda: self._store._claim(keys=self._keys, args=_claim_args(name, url))))

    def known_or_claim(self, name: str, url: str, *, state_key: str | None = None) -> str | None:
        """*url*'s name on record; else *name*, now claimed for it, if no other URL has it; else None.

        With *state_key*, the URL's saved record and partial file come in the same round trip, kept for
        the run's look-ahead (``saved_many``), which then asks Redis nothing for it.
        """
        store = self._store
        keys = [*self._keys, store._saved_key, store._partials_key]
        args = [*_claim_args(name, url), state_key or ""]
        raw, saved, partial = self._ask(lambda: store._known_or_claim(keys=keys, args=args))
        if state_key:
            store._read_ahead(state_key, saved or None, partial or None)
        return None if not raw else _name(raw)

    def _ask(self, call: Callable[[], Any]) -> Any:
        try:
            answer = call()
        except (self._link.errors, ValueError) as exc:
            if not isinstance(exc, ValueError):
                self._link.unreachable(exc)
            where = self._link.where
            raise StateError(f"could not look up a file name in Redis at {where}: {_one_line(exc)}") from None
        self._link.reachable()
        return answer

    def __repr__(self) -> str:
        return f"<RedisNames of {self._store!r}>"


def _keep_ahead(ahead: OrderedDict[str, _R], url: str, value: _R) -> None:
    """Keep *url*'s *value* read ahead, the oldest dropped past ``AHEAD_MAX`` (then asked for one by one)."""
    ahead[url] = value
    ahead.move_to_end(url)
    while len(ahead) > AHEAD_MAX:
        ahead.popitem(last=False)


def _claim_args(name: str, url: str) -> list[str]:
    folded = name.casefold()
    return [url, folded, json.dumps({"name": name, "folded": folded}, separators=(",", ":"))]


def _name(raw: bytes) -> str | None:
    try:
        name = json.loads(raw)["name"]
    except (ValueError, TypeError, KeyError):
        return None
    return name if isinstance(name, str) and name else None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class _Writer(Behind):
    """A thread that writes the saved records handed to it, in batches (``write`` is the store's)."""

    def __init__(self, write: Callable[[list[tuple[Saved, str, float]]], None], *, max_pending: int) -> None:
        super().__init__(max_pending=max_pending, flush_wait_s=FLUSH_WAIT_S, close_wait_s=FLUSH_WAIT_S,
                         thread_name="fetcher-redis-state")  # fmt: skip
        self._write = write
        # Each record with its JSON and when it was made (monotonic): handed over, not yet being written,
        # and in the script under way.
        self._waiting: dict[str, tuple[Saved, str, float]] = {}
        self._writing: dict[str, tuple[Saved, str, float]] = {}

    def put(self, saved: Saved, text: str) -> None:
        """Hand *saved* over, with its JSON *text*."""
        with self._changed:
            # Started on first use, so after the Fetcher's worker processes are forked.
            self._make_room()
            self._waiting[saved.url] = (saved, text, time.monotonic())
            self._wake()

    def pending(self, url: str) -> Saved | None:
        with self._changed:
            found = self._waiting.get(url) or self._writing.get(url)
        return None if found is None else found[0]

    def _count(self) -> int:
        return len(self._waiting)

    def _busy(self) -> bool:
        return bool(self._waiting or self._writing)

    def _run(self) -> None:
        while True:
            with self._changed:
                if not self._gathered():
                    return  # closing, and everything is written
                self._writing, self._waiting = self._waiting, {}
                self._changed.notify_all()  # callers waiting for room
            try:
                self._write(list(self._writing.values()))
            finally:
                with self._changed:
                    self._writing = {}
                    self._changed.notify_all()
