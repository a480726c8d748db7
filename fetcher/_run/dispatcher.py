"""Schedule → a slot → the pool: the dispatcher thread.

It takes a slot of the gate only when some URL's host would let it start
(or, right after a start, a slot of its own gate that is free at once),
then the first URL (due retries first, then input order) whose host's limits
let it start, and hands it, slot and permit held, to a worker (``attempt.py``).
On the way it records the URLs that will not start (their acquire timeout ran
out, the run was cut short) and reads the state database ahead in batches.
It makes no request and waits on nothing but the gate, the --rate and the
schedule.
"""

from __future__ import annotations

import dataclasses
import functools
import time

from .._errors import FetcherError
from .._text import redact
from ..limits import RATE, HostPermit, LocalGate, Slot
from .attempt import LONG_LIST, Worker
from .jobs import Failed, Job, now, state_key
from .runstate import POLL_S, RunState
from .settle import Settle, state_call
from .stops import Stops

# The longest the dispatcher waits for a long list's worker processes to start (they take ~0.1 s).
START_WAIT_S = 30.0

# Saved records read from the state database in one query, ahead of the downloads.
_LOOKUP_BATCH = 255

# After a free slot was taken in vain while URLs wait (their hosts at their caps or rates), the
# starts made before the next try: on a list whose host is capped below --max, every try would
# fail, and a try in vain costs more than asking first.
_REST_AFTER_VAIN = 8


class Dispatcher:
    """The loop of the dispatcher thread, and the limit it last waited on itself."""

    def __init__(self, run: RunState, stops: Stops, settle: Settle, worker: Worker) -> None:
        self._run = run
        self._stops = stops
        self._settle = settle
        self._worker = worker
        # The limit the dispatcher last waited on itself, and since when: what held up
        # the URLs queued behind the one it waited for.
        self._held_by: tuple[str, float] | None = None
        self._rest = 0  # starts to make before a free slot is tried again (_free_slot)
        # The gate _free_slot may take from: the run's own LocalGate, and only without --rate.
        gate = run.shared.gate
        self._own_gate = gate if isinstance(gate, LocalGate) and run.shared.request_rate is None else None

    def dispatch(self) -> None:
        # Runs until the run is cancelled, which the caller does once it has
        # every result: retries can come back at any time before that.
        run = self._run
        schedule, hosts = run.schedule, run.shared.hosts
        hosts.add_listener(schedule.reopen)
        self._await_processes()
        started = False  # the last pass started a URL
        try:
            while not run.cancelled.is_set():
                self._drop_unstartable()
                free = self._free_slot() if started else None
                started = False
                try:
                    slot = free if free is not None else self._slot_when_ready()
                except FetcherError as exc:  # the gate can give no slot any more (a cluster's Redis gone too long)
                    run.results.put(Failed(exc))
                    return
                if slot is None:
                    continue
                taken = schedule.take(hosts.try_start)
                if taken is None:
                    slot.release()  # what was ready went (expired, taken by a retry's host...)
                    if free is not None and run.waiting:  # or a free slot was, while URLs wait: their
                        self._rest = _REST_AFTER_VAIN  # hosts are at their caps or rates
                    continue
                self._start(taken.job, slot, taken.permit, taken.held_by)
                started = True
        finally:
            hosts.remove_listener(schedule.reopen)

    def _slot_when_ready(self) -> Slot | None:
        """A slot once some URL's host would let it start, with the --rate turn taken; None: look again.

        The host's limits are then asked for real with the slot in hand, so a pause or a rate
        turn never goes stale while the dispatcher waits for a slot (at most until the schedule
        may change).
        """
        run = self._run
        if not run.schedule.ready(run.shared.hosts.check):
            self._flush()
            run.schedule.wait(self._until_next_change())
            return None
        if not self._rate_allows():
            return None
        slot = self._slot()
        if slot is None:
            return None
        # The --rate turn and the host's turn are taken together, just before the
        # start: the host's spacing is then the spacing of its requests.
        if run.shared.request_rate is not None and not run.shared.request_rate.try_take():
            slot.release()  # another run of this Fetcher took the turn
            return None
        return slot

    def _await_processes(self) -> None:
        """A list known to be long waits for its worker processes before its first slot.

        A thread would take the first URLs meanwhile, but it would import requests (a tenth of a
        second of this process's GIL, with the feeder waiting) while the processes' copy imports it
        anyway, on another core.  Bounded: a start that fails or hangs leaves the URLs to the threads.
        """
        run = self._run
        processes = run.shared.processes
        if processes is None or run.expected < LONG_LIST:
            return
        give_up = time.monotonic() + START_WAIT_S
        while not processes.wait_up(POLL_S) and time.monotonic() < give_up:
            if run.cancelled.is_set() or run.halt.is_set() or run.cut is not None:
                return

    def _start(self, job: Job, slot: Slot, permit: HostPermit, held_by: str | None) -> None:
        """Hand *job* to a worker, or record why it does not start after all."""
        run = self._run
        # The slot is held from here: the wait for it ends now, and the report counts it in use from now.
        # One new Job for all it learns here.
        taken, taken_at = time.monotonic(), now()
        waited_on = job.waited_on
        if job.attempts == 0:
            waited_on = self._held_up(job.ready, held_by or waited_on)
            with run.lock:
                run.waiting -= 1  # started or not, it waits no longer
        job = job.with_slot(
            slot_taken_at=taken_at, wait_s=job.wait_s if job.attempts else taken - job.ready,
            waited_on=waited_on, began=taken if job.began is None else job.began,
        )  # fmt: skip
        self._look_up_ahead(job)
        if self._stops.blocked(job):
            slot.release()
            permit.release()
            if not run.cancelled.is_set():
                run.emit(job.seq, self._settle.unstarted(job))
            return
        if run.shared.describe_slot is not None:
            run.shared.describe_slot(slot, redact(job.entry.url))
        if self._worker.hand_out(job, slot, permit):
            return
        if not run.shared.pool.submit(functools.partial(self._worker.work, job=job, slot=slot, permit=permit)):
            slot.release()  # the Fetcher closed between acquire and submit
            permit.release()

    def _flush(self) -> None:
        """Before the dispatcher waits: the tasks gathered for the worker processes go now, as one batch each."""
        processes = self._run.shared.processes
        if processes is not None:
            processes.flush()

    def _drop_unstartable(self) -> None:
        """Record the URLs that will not start: their acquire timeout ran out, or the run was cut short."""
        run, unstarted = self._run, self._settle.unstarted
        for job, held_by in run.schedule.expired():
            if job.attempts == 0:  # a retry stopped counting as waiting at its first start
                with run.lock:
                    run.waiting -= 1
            waited_on = self._held_up(job.ready, held_by)
            run.emit(job.seq, unstarted(job if waited_on == job.waited_on else
                                        dataclasses.replace(job, waited_on=waited_on)))  # fmt: skip
        if not self._stops.stopped():
            return
        for job in run.schedule.drain_new():
            with run.lock:
                run.waiting -= 1
            run.emit(job.seq, unstarted(job))
        if run.halt.is_set():
            for job in run.schedule.drain_retries():
                run.emit(job.seq, unstarted(job))

    def _held_up(self, ready: float, waited_on: str | None) -> str | None:
        """The limit a URL read at *ready* waited on: its host's (*waited_on*), or else one the dispatcher
        waited on since then."""
        if waited_on is None and self._held_by is not None and self._held_by[1] > ready:
            return self._held_by[0]
        return waited_on

    def _until_next_change(self) -> float:
        """Seconds to wait for the schedule: until a lane opens, a retry is due or a URL expires; at most POLL_S."""
        change = self._run.schedule.next_change()
        return POLL_S if change is None else max(0.0, min(POLL_S, change - self._run.shared.clock()))

    def _slot(self) -> Slot | None:
        """A slot of the gate, or None after waiting until the schedule may have changed."""
        gate = self._run.shared.gate
        slot = gate.acquire(timeout=0)
        if slot is None:
            self._flush()
            slot = gate.acquire(timeout=self._until_next_change())
            # Marked when the wait ends: every URL read before then waited on it too.
            self._held_by = (self._run.shared.gate_limit, time.monotonic())
        return slot

    def _free_slot(self) -> Slot | None:
        """Right after a start, a slot of the run's own gate that is free now (else None): the next URL
        then goes without asking the schedule first (``ready``, an eighth of the cost a URL).

        A slot taken in vain goes back at once: on a ``LocalGate`` that costs a lock, and a
        dispatcher that found it full meanwhile wakes at the release.  Other gates (shared
        with other processes or machines, or the caller's) and --rate always ask first.
        """
        if self._own_gate is None:
            return None
        if self._rest:  # the last one was taken in vain
            self._rest -= 1
            return None
        return self._own_gate.acquire(timeout=0)

    def _rate_allows(self) -> bool:
        """Whether --rate has a turn now; if not, wait for it (no slot held), at most until the
        schedule may change, so that acquire timeouts are still kept meanwhile."""
        bucket = self._run.shared.request_rate
        if bucket is None:
            return True
        delay = bucket.delay()
        if delay <= 0.0:
            return True
        self._flush()
        self._run.halt.wait(min(delay, self._until_next_change()))
        # Marked when the wait ends: every URL read before then waited on it too.
        self._held_by = (RATE, time.monotonic())
        return False

    def _look_up_ahead(self, job: Job) -> None:
        """Read the saved records of *job* and of the new jobs behind it, in one query.

        A query per URL on the workers costs more than its own time: each
        releases and retakes the GIL among all the threads of the run.
        """
        run = self._run
        store = run.shared.state
        if store is None or run.config.force or job.attempts or job.seq in run.looked_up:
            return
        batch = [job, *(j for j in run.schedule.peek_new(_LOOKUP_BATCH) if j.seq not in run.looked_up)]
        found = state_call(store.saved_many, [state_key(j.entry.url) for j in batch], failed={})
        with run.lock:
            for each in batch:
                run.looked_up[each.seq] = found.get(state_key(each.entry.url))
