"""One ``fetch()`` call: its threads, its queues, and the path of each URL.

    input ──feeder──▶ schedule ──dispatcher──▶ worker pool ──▶ results ──▶ caller
             reads,     ▲        takes a slot     one attempt,               in input order,
             checks,    │        from the gate    releases the slot          or as completed
             names      │        (or gives up)         │
                        └──── a retry, due later ◀─────┘

The feeder and the dispatcher are two threads of their own so that a slow
input (a pipe) never stops URLs already read from being started, and a URL
waiting for a slot never stops the input from being read.  A URL is "ready"
when the feeder has read it; its acquire timeout counts from then, and only
for its first slot.  The feeder reads at most ``read_ahead`` URLs ahead of
the caller, which bounds memory whatever the length of the list.

A failed attempt that the retry policy says to try again goes back into the
schedule with a due time, and gives its slot up meanwhile: other URLs use it
through the wait.  When due, a retry goes ahead of new URLs.

The state database is read before a URL's first attempt (the validators of the
file already saved, read ahead in batches by the dispatcher; a partial file to
resume) and written after its last (by the store's writer thread, in batches);
the download itself never opens it.

``--deadline`` sets ``_halt``: downloads in flight stop, retries waiting for
their turn are cancelled, nothing new starts.  ``--quota`` only stops new
starts.  Either way the URLs read but not started are recorded ``not-started``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

from ._config import NO_RUN_LIMITS, FetcherConfig, RunLimits
from ._errors import ClosedError, HTTPStatusError, StateError, translate
from ._naming import Namer, name_key
from ._pool import WorkerPool
from ._result import Result, Status, duplicate_error
from ._schedule import Schedule
from ._text import redact
from ._units import format_duration, format_size
from ._urllist import Entry
from ._urls import check_url, host_key
from .limits import HOST_CAP, HOST_RATE, PAUSED, RATE, SHARED, SLOTS, Gate, HostLimits, HostPermit, Slot, TokenBucket
from .state import Partial, Saved, StateStore
from .transfer.download import Ask, Outcome, WatchStart, download
from .transfer.retry import RetryPolicy
from .transfer.tempfiles import TempFiles
from .transfer.validators import PartialFile, Validators

log = logging.getLogger("fetcher")

#: What ``fetch()`` accepts: URLs, or Entries that carry their list line number.
Item = str | Entry

# How often a blocked feeder or dispatcher looks up to see if its run was cancelled.
_POLL_S = 0.1

# After the deadline, an input that has given nothing for this long is not waited for.
_INPUT_GRACE_S = 1.0

# Saved records read from the state database in one query, ahead of the downloads.
_LOOKUP_BATCH = 255

# Why a URL could not start in time, by the limit it waited on (its acquire-timeout record's error),
# and what to change.
_HELD_BACK = {
    SLOTS: ("no download slot came free", "raise --max or --acquire-timeout"),
    SHARED: ("no shared slot came free", "raise --acquire-timeout, or see 'fetcher slots NAME'"),
    HOST_CAP: ("its host stayed at its --max-per-host", "raise --max-per-host or --acquire-timeout"),
    HOST_RATE: ("--rate-per-host gave its host no turn", "raise --rate-per-host or --acquire-timeout"),
    RATE: ("--rate gave it no turn", "raise --rate or --acquire-timeout"),
    PAUSED: ("its host stayed paused, as the server asked", "raise --acquire-timeout"),
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Shared:
    """What every run of one Fetcher shares."""

    config: FetcherConfig
    dest: Path
    gate: Gate
    pool: WorkerPool
    namer: Namer
    temp_files: TempFiles
    watch: WatchStart | None
    state: StateStore | None
    #: Monotonic seconds, for everything the run waits for: retry due times,
    #: acquire timeouts, pauses and rates (tests pass a faster one).
    clock: Callable[[], float]
    retry: RetryPolicy
    hosts: HostLimits
    #: --rate: requests started per second, over all hosts.
    request_rate: TokenBucket | None = None
    #: --limit-rate: bytes per second, over all downloads.
    byte_rate: TokenBucket | None = None
    #: What a URL that waited for a slot of ``gate`` waited on (the report's ``waited_on``).
    gate_limit: str = SLOTS
    #: Records which URL holds a slot, where others can see it (``fetcher slots``).
    describe_slot: Callable[[Slot, str], None] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class _Job:
    seq: int
    entry: Entry
    target: Path
    host: str  # what its per-host limits count against
    ready: float  # monotonic
    ready_at: datetime
    expires: float | None = None  # by the run's clock: when it gives up waiting to start (the acquire timeout)
    waited_on: str | None = None  # the limit that held up its first start
    attempts: int = 0  # made so far
    wait_s: float | None = None  # for the first slot, once it came
    partial: PartialFile | None = None  # what the last attempt left to continue
    began: float | None = None  # monotonic, when the first attempt started (--max-time counts from it)
    last_error: str | None = None
    slot_taken_at: datetime | None = None  # when its latest attempt took its slot (as ready_at: the wall clock)


@dataclass(frozen=True, slots=True)
class _End:
    count: int  # results the run will produce


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException  # the input iterable raised


@dataclass(frozen=True, slots=True)
class _Cancelled:
    """Wakes a caller still waiting for results when the Fetcher is closed."""


@dataclass(frozen=True, slots=True)
class _Halted:
    """Wakes a caller waiting for results when the deadline stops the run."""


class _Window:
    """How many URLs the feeder may have read that the caller has not received.

    A full window makes the feeder wait until it is half empty, not just
    until one place is free: otherwise, on a long list, every result the
    caller takes would wake the feeder for a single line, two thread
    switches per URL.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._low_water = size // 2
        self._used = 0
        self._changed = threading.Condition(threading.Lock())

    def take(self, cancelled: threading.Event) -> bool:
        """Take a place; False if *cancelled* was set first."""
        with self._changed:
            if self._used >= self._size:
                while self._used > self._low_water and not cancelled.is_set():
                    self._changed.wait(_POLL_S)
            if cancelled.is_set():
                return False
            self._used += 1
            return True

    def give_back(self) -> None:
        with self._changed:
            self._used -= 1
            if self._used == self._low_water:
                self._changed.notify()


class Run:
    """The threads and queues of one ``fetch()`` call."""

    def __init__(self, shared: Shared, urls: Iterable[Item], run_id: str, limits: RunLimits = NO_RUN_LIMITS) -> None:
        self.shared = shared
        self.config = shared.config
        self.run_id = run_id
        self.limits = limits
        self.waiting = 0  # read, not yet holding a slot
        self._urls = urls
        self._schedule: Schedule[_Job, HostPermit] = Schedule(shared.clock)
        # The limit the dispatcher last waited on itself, and since when: what held up
        # the URLs queued behind the one it waited for.
        self._held_by: tuple[str, float] | None = None
        self._results: queue.SimpleQueue[tuple[int, Result] | _End | _Failed | _Cancelled | _Halted] = (
            queue.SimpleQueue()
        )
        self._window = _Window(self.config.read_ahead)
        self._cancelled = threading.Event()  # the caller is gone: nobody reads results any more
        self._halt = threading.Event()  # downloads in flight stop: cancelled, or the deadline passed
        self._cut: str | None = None  # why no new download starts: the deadline passed, the quota was reached
        self._halted_by: str | None = None  # why downloads in flight were stopped: the deadline
        self._deadline_at: float | None = None
        self._saved_bytes = 0
        self._fed = 0  # URLs the feeder has taken from the input so far
        self._fed_at = time.monotonic()
        self._looked_up: dict[int, Saved | None] = {}  # by job seq: saved records read ahead in batches
        self._hang_ups: dict[object, Callable[[], None]] = {}  # what cuts each attempt in flight
        self._count_lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._feed, name=f"fetcher-feed-{run_id}", daemon=True),
            threading.Thread(target=self._dispatch, name=f"fetcher-dispatch-{run_id}", daemon=True),
        ]

    @property
    def retrying(self) -> int:
        """URLs waiting out a pause before their next attempt."""
        return self._schedule.retrying

    def start(self) -> None:
        if self.limits.deadline is not None:
            self._deadline_at = time.monotonic() + self.limits.deadline
        for thread in self._threads:
            thread.start()

    def cancel(self) -> None:
        if not self._cancelled.is_set():
            self._cancelled.set()
            self._halt.set()
            self._schedule.wake()  # the dispatcher ends now, not at its next look
            self._hang_up_all()
            self._results.put(_Cancelled())

    def stop(self, reason: str) -> None:
        """Stop the run as --deadline does, for *reason* (an interrupt): downloads in flight end as
        ``cancelled``, and every URL not started, to the end of the input, as ``not-started``."""
        self._stop(reason, halt=True)
        self._schedule.wake()

    def results(self, ordered: bool) -> Iterator[Result]:
        done: dict[int, Result] = {}
        next_seq = 0
        expected: int | None = None
        received = 0
        while expected is None or next_seq < expected:
            try:
                # Once the deadline has passed, the input may be a pipe that never closes:
                # look up now and then instead of waiting for its end.
                message = self._results.get(timeout=_POLL_S if self._halt.is_set() else None)
            except queue.Empty:
                if self._input_stalled(received):
                    log.info("the run stopped; the rest of the input is not read")
                    yield from self._held_back()
                    return
                continue
            if isinstance(message, _Halted):
                continue
            if isinstance(message, _End):
                expected = message.count
                continue
            if isinstance(message, _Failed):
                raise message.error
            if isinstance(message, _Cancelled):
                raise ClosedError("the Fetcher was closed while this fetch was running")
            seq, result = message
            received += 1
            if not ordered:
                next_seq += 1
                self._window.give_back()
                yield result
                continue
            done[seq] = result
            while next_seq in done:
                ready = done.pop(next_seq)
                next_seq += 1
                self._window.give_back()
                yield ready

    def _held_back(self) -> Iterator[Result]:
        """The record of the URL a list reader holds back for its option lines, if it holds one.

        A pipe that stays open keeps the last URL read there for ever: without
        this, a stopped run would leave that one URL of the list unrecorded.
        """
        held = getattr(self._urls, "held", None)
        entry = held() if callable(held) else None
        if isinstance(entry, Entry):
            yield self._result(entry, Status.NOT_STARTED, time.monotonic(), _now(), error=self._cut, attempts=0)

    def _input_stalled(self, received: int) -> bool:
        """After the deadline: every URL read has its result, and the input has given nothing for a while."""
        return received >= self._fed and time.monotonic() - self._fed_at > _INPUT_GRACE_S

    # -- feeder: input → pending ---------------------------------------------

    def _feed(self) -> None:
        seq = 0
        kept: dict[str, int] = {}  # each URL in normal form: the line kept for it
        try:
            for position, item in enumerate(self._urls, start=1):
                entry = _as_entry(item, position)
                unusable = check_url(entry.url)
                # Equivalent URLs are one (case, default port, escapes...); a line that is
                # no URL can only be the same line again.
                key = entry.url if unusable else name_key(entry.url)
                first = kept.setdefault(key, entry.line)
                if not self._window.take(self._cancelled):
                    return
                if first != entry.line:
                    self._duplicate(seq, entry, first)
                else:
                    self._take(seq, entry, unusable or entry.problem, key)  # a line that is no URL says so first
                seq += 1
                self._fed, self._fed_at = seq, time.monotonic()
        except BaseException as exc:  # the input's own error goes to the caller
            self._results.put(_Failed(exc))
        finally:
            self._results.put(_End(seq))

    def _duplicate(self, seq: int, entry: Entry, first: int) -> None:
        log.debug("line %d: the same URL as line %d, skipped", entry.line, first)
        self._emit(seq, self._result(entry, Status.DUPLICATE, time.monotonic(), _now(), error=duplicate_error(first),
                                     attempts=0))  # fmt: skip

    def _take(self, seq: int, entry: Entry, reason: str | None, key: str) -> None:
        ready, ready_at = time.monotonic(), _now()
        if reason is not None:
            self._emit(seq, self._result(entry, Status.INVALID, ready, ready_at, error=reason, attempts=0))
            return
        target = self.shared.dest / self.shared.namer.name_for(entry.url, preferred=entry.out, key=key)
        if self._stopped():
            self._emit(seq, self._result(entry, Status.NOT_STARTED, ready, ready_at, error=self._cut, attempts=0))
            return
        if self.config.skip_existing and os.path.lexists(target):
            self._emit(seq, self._result(entry, Status.SKIPPED, ready, ready_at, path=target, attempts=0))
            return
        with self._count_lock:
            self.waiting += 1
        timeout = self.config.acquire_timeout
        expires = None if timeout is None else self.shared.clock() + timeout
        job = _Job(seq=seq, entry=entry, target=target, host=host_key(entry.url), ready=ready, ready_at=ready_at,
                   expires=expires)  # fmt: skip
        self._schedule.put(job, job.host, seq=seq, expires=expires)

    # -- dispatcher: pending → a slot → the pool ------------------------------

    def _dispatch(self) -> None:
        # Runs until the run is cancelled, which the caller does once it has
        # every result: retries can come back at any time before that.
        schedule, hosts = self._schedule, self.shared.hosts
        hosts.add_listener(schedule.reopen)
        try:
            while not self._cancelled.is_set():
                self._drop_unstartable()
                # A slot first, and only when some URL's host would let it start: then the
                # host's limits are asked for real with the slot in hand, so a pause or a
                # rate turn never goes stale while the dispatcher waits for a slot.
                if not schedule.ready(hosts.check):
                    schedule.wait(self._until_next_change())
                    continue
                if not self._rate_allows():
                    continue
                slot = self._slot()
                if slot is None:
                    continue
                # The --rate turn and the host's turn are taken together, just before the
                # start: the host's spacing is then the spacing of its requests.
                if self.shared.request_rate is not None and not self.shared.request_rate.try_take():
                    slot.release()  # another run of this Fetcher took the turn
                    continue
                taken = schedule.take(hosts.try_start)
                if taken is None:
                    slot.release()  # what was ready went (expired, taken by a retry's host...)
                    continue
                self._start(taken.job, slot, taken.permit, taken.held_by)
        finally:
            hosts.remove_listener(schedule.reopen)

    def _start(self, job: _Job, slot: Slot, permit: HostPermit, held_by: str | None) -> None:
        """Hand *job* to a worker, or record why it does not start after all."""
        # The slot is held from here: the wait for it ends now, and the report counts it in use from now.
        taken, taken_at = time.monotonic(), _now()
        wait_s = job.wait_s if job.attempts else taken - job.ready
        job = dataclasses.replace(job, slot_taken_at=taken_at, wait_s=wait_s)
        if job.attempts == 0:
            if held_by is not None:
                job = dataclasses.replace(job, waited_on=held_by)
            job = self._held_up(job)
            with self._count_lock:
                self.waiting -= 1  # started or not, it waits no longer
        self._look_up_ahead(job)
        if self._blocked(job):
            slot.release()
            permit.release()
            if not self._cancelled.is_set():
                self._emit(job.seq, self._unstarted(job))
            return
        if self.shared.describe_slot is not None:
            self.shared.describe_slot(slot, redact(job.entry.url))
        if not self.shared.pool.submit(functools.partial(self._work, job=job, slot=slot, permit=permit)):
            slot.release()  # the Fetcher closed between acquire and submit
            permit.release()

    def _drop_unstartable(self) -> None:
        """Record the URLs that will not start: their acquire timeout ran out, or the run was cut short."""
        for job, held_by in self._schedule.expired():
            if job.attempts == 0:  # a retry stopped counting as waiting at its first start
                with self._count_lock:
                    self.waiting -= 1
            self._emit(job.seq, self._unstarted(self._held_up(dataclasses.replace(job, waited_on=held_by))))
        if not self._stopped():
            return
        for job in self._schedule.drain_new():
            with self._count_lock:
                self.waiting -= 1
            self._emit(job.seq, self._unstarted(job))
        if self._halt.is_set():
            for job in self._schedule.drain_retries():
                self._emit(job.seq, self._unstarted(job))

    def _held_up(self, job: _Job) -> _Job:
        """*job* with the limit it waited on: its host's, or else one the dispatcher waited on since it was read."""
        if job.waited_on is None and self._held_by is not None and self._held_by[1] > job.ready:
            return dataclasses.replace(job, waited_on=self._held_by[0])
        return job

    def _until_next_change(self) -> float:
        """Seconds to wait for the schedule: until a lane opens, a retry is due or a URL expires; at most _POLL_S."""
        change = self._schedule.next_change()
        return _POLL_S if change is None else max(0.0, min(_POLL_S, change - self.shared.clock()))

    def _slot(self) -> Slot | None:
        """A slot of the gate, or None after waiting until the schedule may have changed."""
        gate = self.shared.gate
        slot = gate.acquire(timeout=0)
        if slot is None:
            slot = gate.acquire(timeout=self._until_next_change())
            # Marked when the wait ends: every URL read before then waited on it too.
            self._held_by = (self.shared.gate_limit, time.monotonic())
        return slot

    def _rate_allows(self) -> bool:
        """Whether --rate has a turn now; if not, wait for it (no slot held), at most until the
        schedule may change, so that acquire timeouts are still kept meanwhile."""
        bucket = self.shared.request_rate
        if bucket is None:
            return True
        delay = bucket.delay()
        if delay <= 0.0:
            return True
        self._halt.wait(min(delay, self._until_next_change()))
        # Marked when the wait ends: every URL read before then waited on it too.
        self._held_by = (RATE, time.monotonic())
        return False

    def _look_up_ahead(self, job: _Job) -> None:
        """Read the saved records of *job* and of the new jobs behind it, in one query.

        A query per URL on the workers costs more than its own time: each
        releases and retakes the GIL among all the threads of the run.
        """
        store = self.shared.state
        if store is None or self.config.force or job.attempts or job.seq in self._looked_up:
            return
        batch = [job, *(j for j in self._schedule.peek_new(_LOOKUP_BATCH) if j.seq not in self._looked_up)]
        found = self._state(store.saved_many, [_key(j.entry.url) for j in batch], failed={})
        with self._count_lock:
            for each in batch:
                self._looked_up[each.seq] = found.get(_key(each.entry.url))

    def _saved_record(self, job: _Job, store: StateStore) -> Saved | None:
        with self._count_lock:
            if job.seq in self._looked_up:
                return self._looked_up.pop(job.seq)
        result: Saved | None = self._state(store.saved, _key(job.entry.url))
        return result

    # -- stopping early: --deadline and --quota ------------------------------

    def _stopped(self) -> bool:
        """Whether the run takes no new downloads (checking the deadline on the way)."""
        # Not "if nothing cut the run yet": a quota reached first must not switch the deadline off.
        if not self._halt.is_set() and self._deadline_at is not None and time.monotonic() >= self._deadline_at:
            self._stop(f"the --deadline of {format_duration(self.limits.deadline or 0)} passed", halt=True)
        return self._cut is not None

    def _stop(self, reason: str, *, halt: bool) -> None:
        with self._count_lock:
            if self._cut is None:
                self._cut = reason
                log.info("%s: the run stops", reason)
            if halt and self._halted_by is None:
                self._halted_by = reason  # what cancels the downloads in flight (a quota never does)
        if halt:
            self._halt.set()
            self._results.put(_Halted())
            self._hang_up_all()

    def _hang_up_all(self) -> None:
        """Cut the connections of the attempts in flight: a connect, a TLS handshake, a wait for headers
        or a read blocked on a silent server ends now."""
        with self._count_lock:
            hang_ups, self._hang_ups = list(self._hang_ups.values()), {}
        for hang_up in hang_ups:
            hang_up()

    def _on_stop(self, hang_up: Callable[[], None]) -> Callable[[], None]:
        """Call *hang_up* when the run halts (now, if it has); the callable returned forgets it."""
        key = object()
        with self._count_lock:
            halted = self._halt.is_set()
            if not halted:
                self._hang_ups[key] = hang_up
        if halted:
            hang_up()
        return functools.partial(self._forget_hang_up, key)

    def _forget_hang_up(self, key: object) -> None:
        with self._count_lock:
            self._hang_ups.pop(key, None)

    def _blocked(self, job: _Job) -> bool:
        """No attempt for *job* now: nothing new starts once the run is cut short, and after
        the deadline nothing at all (a retry goes on under a reached quota: it was started);
        nor does a retry whose --max-time ran out while it waited for a slot."""
        return (self._stopped() and (job.attempts == 0 or self._halt.is_set())) or self._out_of_time(job)

    def _out_of_time(self, job: _Job) -> bool:
        max_time = self.config.max_time
        return max_time is not None and job.began is not None and time.monotonic() >= job.began + max_time

    def _unstarted(self, job: _Job) -> Result:
        """The record of a job that gets no (further) attempt: cut short, or no slot in time."""
        entry = job.entry
        with self._count_lock:
            self._looked_up.pop(job.seq, None)
        if job.attempts:
            # A retry that gets no further attempt: the run was cut short, or its --max-time ran out.
            if self._cut is not None:
                status, why = Status.CANCELLED, self._halted_by or self._cut
            else:
                status, why = (
                    Status.FAILED,
                    f"took longer than the --max-time of {format_duration(self.config.max_time or 0)}",
                )
            self._let_go(entry.url, job.partial)
            error = f"{why}; the last attempt failed: {job.last_error}"
            return self._result(entry, status, job.ready, job.ready_at, wait_s=job.wait_s, error=error,
                                attempts=job.attempts, waited_on=job.waited_on)  # fmt: skip
        if self._cut is not None:
            return self._result(entry, Status.NOT_STARTED, job.ready, job.ready_at, error=self._cut, attempts=0,
                                waited_on=job.waited_on)  # fmt: skip
        waited = time.monotonic() - job.ready
        held_back, next_step = _HELD_BACK.get(job.waited_on or SLOTS, _HELD_BACK[SLOTS])
        error = f"{held_back} within {self.config.acquire_timeout:g}s ({next_step})"
        return self._result(entry, Status.ACQUIRE_TIMEOUT, job.ready, job.ready_at, wait_s=waited, error=error,
                            attempts=0, waited_on=job.waited_on)  # fmt: skip

    # -- worker: one attempt --------------------------------------------------

    def _work(self, session: requests.Session, job: _Job, slot: Slot, permit: HostPermit) -> None:
        try:
            with slot, permit:
                started = time.monotonic()
                if self._cancelled.is_set():
                    self._let_go(job.entry.url, job.partial)
                    return  # the caller has gone; nobody will read a result
                if self._blocked(job):
                    self._emit(job.seq, self._unstarted(job))  # the deadline passed while it queued
                    return
                if job.began is None:
                    job = dataclasses.replace(job, began=started)
                outcome = download(
                    session, job.entry.url, job.target,
                    config=self.config, temp_files=self.shared.temp_files,
                    cancelled=self._halt, watch=self.shared.watch, ask=self._ask(job),
                )  # fmt: skip
                if outcome.error is not None:
                    self._pause_host(job, outcome.error)  # before the permit goes back: the next URL of the host waits
                if self.limits.quota is not None and outcome.error is None and not outcome.unchanged:
                    # Counted before the slot is given back, so the next
                    # download cannot start past a quota just reached.
                    self._count_saved(outcome.bytes)
                # Stamped before the slot goes back, so that the URL given it next never overlaps this one.
                released_at = _now()
            wait_s = job.wait_s
            made = job.attempts + 1
            error = outcome.error
            reason = None
            # _stopped() looks at the clock: a read that timed out at the deadline was cut by it.
            if error is not None and self._stopped() and self._halt.is_set() and not self._cancelled.is_set():
                result = self._cut_off(job, outcome, made, wait_s)
            else:
                if error is not None and not self._cancelled.is_set():
                    decision = self.shared.retry.decide(error, made, now=_now(), random=random.random())
                    reason = decision.reason
                    if decision.retry:
                        reason = self._no_time_for(job, decision.delay)
                    if decision.retry and reason is None:
                        log.debug("line %d: attempt %d failed (%s); retrying in %.2fs", job.entry.line, made, error,
                                  decision.delay)  # fmt: skip
                        later = dataclasses.replace(job, attempts=made, wait_s=wait_s, partial=outcome.partial,
                                                    last_error=str(error))  # fmt: skip
                        self._schedule.put_later(later, later.host, due=self.shared.clock() + decision.delay,
                                                 expires=self._time_up(later))  # fmt: skip
                        return
                result = self._finish(job, outcome, made, wait_s, reason)
            result = dataclasses.replace(result, slot_taken_at=job.slot_taken_at, slot_released_at=released_at)
        except BaseException as exc:  # never lose a result: a bug becomes a failed URL
            error = translate(exc, job.entry.url)
            result = self._result(job.entry, Status.FAILED, job.ready, job.ready_at, error=str(error),
                                  attempts=job.attempts + 1, waited_on=job.waited_on)  # fmt: skip
        self._emit(job.seq, result)

    def _ask(self, job: _Job) -> Ask:
        """What this attempt asks the server: from the last attempt, or else from the state database."""
        entry, store = job.entry, self.shared.state
        remember = None if store is None else functools.partial(self._remember_partial, store, entry.url)
        if job.attempts or store is None or self.config.force:
            resume = job.partial
            saved = None
        else:
            resume = _resumable(self._state(store.partial, _key(entry.url)), job.target)
            saved = _still_saved(self._saved_record(job, store), job.target, entry)
        deadline = None
        if self.config.max_time is not None and job.began is not None:
            deadline = job.began + self.config.max_time
        shared = self.shared
        paced = shared.request_rate is not None or shared.hosts.rate_per_host is not None or shared.hosts.any_paused
        return Ask(saved=saved, resume=resume, checksum=entry.checksum, remote_time=self.config.remote_time,
                   on_resumable=remember, deadline=deadline, stop_at=self._deadline_at,
                   before_request=self._pace if paced else None,
                   throttle=self._throttle if shared.byte_rate is not None else None,
                   on_stop=self._on_stop)  # fmt: skip

    def _pace(self, url: str) -> None:
        """Before a request after an attempt's first (a redirect hop, a start-over): wait its turn under
        the rates and any pause of its host.  The first had its turn from the dispatcher."""
        wait = self.shared.hosts.reserve_request(host_key(url))
        if self.shared.request_rate is not None:
            wait = max(wait, self.shared.request_rate.reserve())
        if wait > 0:
            self._halt.wait(wait)

    def _throttle(self, size: int) -> None:
        """*size* bytes came in: wait until --limit-rate allows them (in turn with every other download)."""
        assert self.shared.byte_rate is not None
        wait = self.shared.byte_rate.reserve(size)
        if wait > 0:
            self._halt.wait(wait)

    def _pause_host(self, job: _Job, error: BaseException) -> None:
        if not isinstance(error, HTTPStatusError):
            return
        pause = self.shared.retry.host_pause(error, now=_now())
        if pause:
            # The host that answered: after a redirect, not the listed URL's.
            host = job.host if error.answered_by is None else host_key(error.answered_by)
            log.info("%s asked for a pause (HTTP %d): no new request to it for %s", host, error.status_code,
                     format_duration(pause))  # fmt: skip
            self.shared.hosts.pause(host, pause)

    def _finish(self, job: _Job, outcome: Outcome, attempts: int, wait_s: float | None, reason: str | None) -> Result:
        """The URL's last attempt is over: record it, and keep or drop its partial file."""
        entry = job.entry
        store = self.shared.state
        if outcome.error is None:
            status = Status.UNCHANGED if outcome.unchanged else Status.OK
            if store is not None and not outcome.unchanged and outcome.mtime_ns is not None:
                validators = outcome.validators or Validators()
                saved = Saved(
                    url=_key(entry.url), path=str(job.target), size=outcome.bytes, mtime_ns=outcome.mtime_ns,
                    etag=validators.etag, last_modified=validators.last_modified,
                    checksum=None if entry.checksum is None else str(entry.checksum), saved_at=store.now(),
                )  # fmt: skip
                self._state(store.record_saved, saved)
        else:
            status = Status.FAILED
            self._let_go(entry.url, outcome.partial)
        error = None if outcome.error is None else str(outcome.error)
        if error is not None and reason:
            error = f"{error}; {reason}"
        return self._result(
            entry, status, job.ready, job.ready_at,
            path=job.target if outcome.error is None else None,
            http_status=outcome.http_status,
            bytes=0 if outcome.unchanged else outcome.bytes,
            wait_s=wait_s, ttfb_s=outcome.ttfb_s, download_s=outcome.download_s,
            error=error, attempts=attempts, resumed_from=outcome.resumed_from, waited_on=job.waited_on,
        )  # fmt: skip

    def _let_go(self, url: str, partial: PartialFile | None) -> None:
        """A URL is done without its file: keep its partial file for a later run, or drop it and its record."""
        temp_files = self.shared.temp_files
        if partial is not None and temp_files.is_kept(partial.path):
            temp_files.forget(partial.path)  # on disk and on record; a later run resumes it
            return
        if partial is not None:
            temp_files.remove(partial.path)
        if self.shared.state is not None:
            self._state(self.shared.state.forget_partial, _key(url))  # no query when none is on record

    def _cut_off(self, job: _Job, outcome: Outcome, attempts: int, wait_s: float | None) -> Result:
        """The record of a download the deadline stopped in flight; a resumable partial stays."""
        self._let_go(job.entry.url, outcome.partial)
        return self._result(
            job.entry, Status.CANCELLED, job.ready, job.ready_at,
            http_status=outcome.http_status, bytes=outcome.bytes, wait_s=wait_s, ttfb_s=outcome.ttfb_s,
            download_s=outcome.download_s, error=self._halted_by or self._cut, attempts=attempts,
            waited_on=job.waited_on,
        )  # fmt: skip

    def _time_up(self, job: _Job) -> float | None:
        """When *job*'s --max-time runs out, by the run's clock; None without one."""
        if self.config.max_time is None or job.began is None:
            return None
        return self.shared.clock() + job.began + self.config.max_time - time.monotonic()

    def _no_time_for(self, job: _Job, delay: float) -> str | None:
        """Why a retry after *delay* seconds would come too late for --max-time, if it would."""
        max_time = self.config.max_time
        if max_time is None or job.began is None or time.monotonic() + delay < job.began + max_time:
            return None
        return f"no time left for another attempt within the --max-time of {format_duration(max_time)}"

    def _count_saved(self, size: int) -> None:
        quota = self.limits.quota
        with self._count_lock:
            self._saved_bytes += size
            reached = quota is not None and self._saved_bytes >= quota
        if reached and quota is not None:
            self._stop(f"the --quota of {format_size(quota)} was reached", halt=False)

    def _remember_partial(self, store: StateStore, url: str, partial: PartialFile) -> bool:
        """Record a partial file worth resuming in a later run; True if it is on record."""
        validators = partial.validators
        record = Partial(
            url=_key(url), path=str(partial.path),
            etag=partial.if_range if partial.if_range == validators.etag else None,
            last_modified=validators.last_modified, total=partial.total, updated_at=store.now(),
        )  # fmt: skip
        return self._state(store.record_partial, record, failed=False) is not False

    def _state(self, method: Callable[..., Any], *args: Any, failed: Any = None) -> Any:
        """Call the state database; a failure there never fails a download, it only costs a re-run."""
        try:
            return method(*args)
        except StateError as exc:
            log.warning("%s", exc)
            return failed

    # -- results ----------------------------------------------------------------

    def _result(self, entry: Entry, status: Status, ready: float, ready_at: datetime, **fields: Any) -> Result:
        return Result(
            run_id=self.run_id,
            line=entry.line,
            url=redact(entry.url),
            status=status,
            total_s=time.monotonic() - ready,
            started_at=ready_at,
            finished_at=_now(),
            **fields,
        )

    def _emit(self, seq: int, result: Result) -> None:
        log.debug("line %d %s: %s", result.line, result.status.value, result.error or result.path)
        self._results.put((seq, result))


def _as_entry(item: Item, position: int) -> Entry:
    if isinstance(item, Entry):
        return item if item.line else dataclasses.replace(item, line=position)
    if isinstance(item, str):
        return Entry(url=item.strip(), line=position)
    raise TypeError(f"item {position} is {type(item).__name__}, not a URL string")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _key(url: str) -> str:
    """A URL as the state database knows it: without a password, which is never recorded."""
    return redact(url)


def _resumable(partial: Partial | None, target: Path) -> PartialFile | None:
    """The partial file on record as the download can continue it, if it can.

    Only one in the target's own folder: a state database shared by two
    DESTs must not move a file between them (and a rename across file
    systems would fail).
    """
    if partial is None or partial.total is None or Path(partial.path).parent != target.parent:
        return None
    if_range = partial.etag or partial.last_modified
    if not if_range:
        return None
    validators = Validators(etag=partial.etag, last_modified=partial.last_modified)
    return PartialFile(path=Path(partial.path), if_range=if_range, total=partial.total, validators=validators)


def _still_saved(saved: Saved | None, target: Path, entry: Entry) -> Validators | None:
    """The validators to ask with, if the file saved last time is still there as it was saved.

    A file deleted, edited or moved since (its size or mtime differ) is
    downloaded plainly; so is one whose list entry now asks for a checksum
    it was not verified against.
    """
    if saved is None or saved.path != str(target) or not (saved.etag or saved.last_modified):
        return None
    if entry.checksum is not None and saved.checksum != str(entry.checksum):
        return None
    try:
        info = os.stat(target)
    except OSError:
        return None
    if info.st_size != saved.size or info.st_mtime_ns != saved.mtime_ns:
        return None
    return Validators(etag=saved.etag, last_modified=saved.last_modified)
