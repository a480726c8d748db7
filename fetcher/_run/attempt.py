"""The worker step: one attempt at one URL, its slot and its host's permit held, on a thread or in a process.

A long list's attempts go to worker processes (``hand_out``, then ``finish``
on the pool's receiving thread) once they are up; the run starts them when
it has read ``LONG_LIST`` URLs (or at its start, when its input tells that
it is that long: see run.py, and then its first URLs wait for them: see
dispatcher.py).  Everything else, and any attempt whose hooks must run
inside it (a host paused, so a redirect hop may have to wait), goes to a
thread (``work``), which imports requests for it.

``attempt`` is the step itself: a Job and an Ask in, an Outcome out.  It
makes the requests and writes the file (``transfer/download.py``), and
decides nothing about the URL.  ``work`` is what the pool runs around it:
it checks that the URL may still start, builds the Ask, and hands the
Outcome to ``settle.py``, which decides what follows (a pause, a retry, the
record).

The Ask's values come from the last attempt, or else from the state database
(the saved record the dispatcher read ahead, the partial file on record).
Its callables are the run's, called back from inside the attempt: the rates
(``_pace``, ``_throttle``), the stop (``Stops.on_stop``) and the record of a
partial worth resuming (``Settle.remember_partial``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import translate
from .._result import Result, Status
from .._urllist import Entry
from .._urls import host_key
from ..limits import HostPermit, Slot
from ..state import Partial, Saved
from ..state.base import Store
from ..transfer.outcome import Ask, Outcome
from ..transfer.validators import PartialFile, Validators
from .jobs import Job, now, state_key
from .runstate import RunState
from .settle import Settle, state_call
from .stops import Stops

if TYPE_CHECKING:
    import requests

#: URLs read before a run starts its worker processes: a list shorter than
#: this is done before they would be up (starting one costs ~0.2 s of CPU).
LONG_LIST = 500


class Worker:
    """What a worker thread does with a Job the dispatcher handed it."""

    def __init__(self, run: RunState, stops: Stops, settle: Settle) -> None:
        self._run = run
        self._stops = stops
        self._settle = settle
        self._halt_token: int | None = None  # this run's, in the worker processes, once one has a task

    def work(self, session: requests.Session, job: Job, slot: Slot, permit: HostPermit) -> None:
        """On a worker thread: the attempt, then what follows it."""
        try:
            with slot, permit:
                started = self._started(job)
                if started is None:
                    return
                job = started
                outcome = self.attempt(session, job, self._ask(job))
                self._settle.before_release(job, outcome, permit)
                # Stamped before the slot goes back, so that the URL given it next never overlaps this one.
                released_at = now()
            result = self._settle.after_release(job, outcome, released_at)
        except BaseException as exc:  # never lose a result: a bug becomes a failed URL
            result = self._failed(job, exc)
        if result is not None:  # None: back in the schedule, for a retry
            self._run.emit(job.seq, result)

    def hand_out(self, job: Job, slot: Slot, permit: HostPermit) -> bool:
        """Give *job* to a worker process, its slot and permit held until its Outcome is back;
        False if it is for a thread (no process is up yet, or a hook must run inside the attempt)."""
        run = self._run
        shared = run.shared
        processes = shared.processes
        if processes is None:
            return False
        from ..workers.wire import Task  # here: a run without worker processes never imports it

        if not processes.ready():
            if run.fed >= LONG_LIST:
                processes.start()
            return False
        if shared.hosts.any_paused:
            return False  # a redirect hop to a paused host waits its turn (``_pace``), which only a thread can
        started = self._started(job)
        if started is None:
            permit.release()
            slot.release()
            return True
        job = started
        if self._halt_token is None:
            self._halt_token = token = processes.new_run()
            self._stops.on_stop(functools.partial(processes.halt, token))
        store, entry = shared.state, job.entry
        resume, saved, deadline = self._carried_over(job)  # the child checks the saved file (still_saved)
        resume_kept = resume is not None and shared.temp_files.is_kept(resume.path)
        token = self._halt_token

        def task(task_id: int) -> Task:
            return Task(id=task_id, run=token, entry=entry, target=job.target, saved=saved, resume=resume,
                        resume_kept=resume_kept, offer_partial=store is not None, deadline=deadline,
                        stop_at=run.deadline_at, watched=shared.watch is not None)  # fmt: skip

        remember = None if store is None else functools.partial(self._settle.remember_partial, store, entry.url)
        done = functools.partial(self.finish, job, slot, permit)
        # False: every process died since ready(), or the Fetcher is closing: a thread takes it, or the
        # dispatcher gives its slot back.
        return processes.submit(task, entry.url, done, remember, shared.watch)

    def finish(self, job: Job, slot: Slot, permit: HostPermit, outcome: Outcome, kept: bool) -> None:
        """A worker process's attempt at *job* is over: what follows it, as ``work`` does after a thread's."""
        try:
            if outcome.partial is not None:
                self._run.shared.temp_files.adopt(outcome.partial.path, kept=kept)
            try:
                self._settle.before_release(job, outcome, permit)
                released_at = now()
            finally:
                permit.release()
                slot.release()
            result = self._settle.after_release(job, outcome, released_at)
        except BaseException as exc:  # never lose a result: a bug becomes a failed URL
            result = self._failed(job, exc)
        if result is not None:
            self._run.emit(job.seq, result)

    def _started(self, job: Job) -> Job | None:
        """*job* as its attempt starts; None when it does not: the caller has gone, or the run was
        stopped while it queued (then it has its record)."""
        run = self._run
        if run.cancelled.is_set():
            self._settle.let_go(job.entry.url, job.partial)
            return None  # the caller has gone; nobody will read a result
        if self._stops.blocked(job):
            run.emit(job.seq, self._settle.unstarted(job))  # the deadline passed while it queued
            return None
        if job.began is None:
            job = dataclasses.replace(job, began=time.monotonic())
        return job

    def _failed(self, job: Job, exc: BaseException) -> Result:
        error = translate(exc, job.entry.url)
        return self._run.result(job.entry, Status.FAILED, job.ready, job.ready_at, error=str(error),
                                attempts=job.attempts + 1, waited_on=job.waited_on)  # fmt: skip

    def attempt(self, session: requests.Session, job: Job, ask: Ask) -> Outcome:
        """One attempt at *job*'s URL, asking the server *ask*."""
        from ..transfer.download import download  # here, with the session: requests comes with it

        run = self._run
        return download(
            session, job.entry.url, job.target,
            config=run.config, temp_files=run.shared.temp_files,
            cancelled=run.halt, watch=run.shared.watch, ask=ask,
        )  # fmt: skip

    def _ask(self, job: Job) -> Ask:
        """What this attempt asks the server: from the last attempt, or else from the state database."""
        run, settle = self._run, self._settle
        entry, store = job.entry, run.shared.state
        remember = None if store is None else functools.partial(settle.remember_partial, store, entry.url)
        resume, record, deadline = self._carried_over(job)
        saved = still_saved(record, job.target, entry)
        shared = run.shared
        paced = shared.request_rate is not None or shared.hosts.rate_per_host is not None or shared.hosts.any_paused
        return Ask(saved=saved, resume=resume, checksum=entry.checksum, remote_time=run.config.remote_time,
                   on_resumable=remember, deadline=deadline, stop_at=run.deadline_at,
                   before_request=self._pace if paced else None,
                   throttle=self._throttle if shared.byte_rate is not None else None,
                   on_stop=self._stops.on_stop)  # fmt: skip

    def _carried_over(self, job: Job) -> tuple[PartialFile | None, Saved | None, float | None]:
        """What an attempt at *job* starts from, on a thread or in a worker process: the partial file to
        resume, the saved record to ask with (not yet checked against the file), and its --max-time deadline.

        A retry continues its last attempt's partial file; a first attempt takes both from the state
        database, unless there is none or --force ignores it.
        """
        run = self._run
        store = run.shared.state
        deadline = None
        if run.config.max_time is not None and job.began is not None:
            deadline = job.began + run.config.max_time
        if job.attempts or store is None or run.config.force:
            return job.partial, None, deadline
        resume = resumable(state_call(store.partial, state_key(job.entry.url)), job.target)
        return resume, self._saved_record(job, store), deadline

    def _saved_record(self, job: Job, store: Store) -> Saved | None:
        """*job*'s saved record: as the dispatcher read it ahead, or else read now."""
        run = self._run
        with run.lock:
            if job.seq in run.looked_up:
                return run.looked_up.pop(job.seq)
        result: Saved | None = state_call(store.saved, state_key(job.entry.url))
        return result

    def _pace(self, url: str) -> None:
        """Before a request after an attempt's first (a redirect hop, a start-over): wait its turn under
        the rates and any pause of its host.  The first had its turn from the dispatcher."""
        shared = self._run.shared
        wait = shared.hosts.reserve_request(host_key(url))
        if shared.request_rate is not None:
            wait = max(wait, shared.request_rate.reserve())
        if wait > 0:
            self._run.halt.wait(wait)

    def _throttle(self, size: int) -> None:
        """*size* bytes came in: wait until --limit-rate allows them (in turn with every other download)."""
        byte_rate = self._run.shared.byte_rate
        assert byte_rate is not None
        wait = byte_rate.reserve(size)
        if wait > 0:
            self._run.halt.wait(wait)


def resumable(partial: Partial | None, target: Path) -> PartialFile | None:
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


def still_saved(saved: Saved | None, target: Path, entry: Entry) -> Validators | None:
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
