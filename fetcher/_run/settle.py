"""After an attempt, in the run: retry the URL later, or settle its record.

This is where the run acts on an Outcome: a host that asked for a pause is
paused and the bytes saved count against --quota, both before the slot and
the host's permit go back (``before_release``); then the URL goes back into
the schedule for a retry, or gets its record, and the state database learns
what was saved (``after_release``).  Here too: the record of a URL that gets
no further attempt (``unstarted``), and what becomes of a partial file when a
URL ends without its file (``let_go``).

Nothing here makes a request: these are the parent's decisions about what
one attempt brought, kept apart from the attempt itself (``attempt.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .._errors import HTTPStatusError, StateError
from .._result import Result, Status
from .._units import format_duration, format_size
from .._urls import host_key
from ..limits import ADAPTIVE, CLUSTER, HOST_CAP, HOST_RATE, PAUSED, RATE, SHARED, SLOTS, HostPermit
from ..state import Partial, Saved
from ..state.base import Store
from ..transfer.outcome import Outcome
from ..transfer.validators import PartialFile, Validators
from .jobs import Job, now, state_key
from .runstate import RunState
from .stops import Stops

log = logging.getLogger("fetcher")

# Why a URL could not start in time, by the limit it waited on (its acquire-timeout record's error),
# and what to change.
HELD_BACK = {
    SLOTS: ("no download slot came free", "raise --max or --acquire-timeout"),
    SHARED: ("no shared slot came free", "raise --acquire-timeout, or see 'fetcher slots NAME'"),
    CLUSTER: ("no slot of the cluster came free", "raise --acquire-timeout"),
    HOST_CAP: ("its host stayed at its --max-per-host", "raise --max-per-host or --acquire-timeout"),
    ADAPTIVE: ("its host stayed at its adaptive limit (--adaptive)", "raise --acquire-timeout"),
    HOST_RATE: ("--rate-per-host gave its host no turn", "raise --rate-per-host or --acquire-timeout"),
    RATE: ("--rate gave it no turn", "raise --rate or --acquire-timeout"),
    PAUSED: ("its host stayed paused, as the server asked", "raise --acquire-timeout"),
}


class Settle:
    """What follows each attempt, and the end of every URL that started."""

    def __init__(self, run: RunState, stops: Stops) -> None:
        self._run = run
        self._stops = stops
        self._saved_bytes = 0

    def before_release(self, job: Job, outcome: Outcome, permit: HostPermit) -> None:
        """What the next URL to take this attempt's slot or host permit must already see."""
        error = outcome.error
        if error is not None:
            self._pause_host(job, error)  # before the permit goes back: the next URL of the host waits
        # What the host's adaptive limit learns as the permit goes back (nothing without --adaptive).
        if error is not None and error.overload:
            permit.overloaded()
        elif outcome.ttfb_s is not None:
            permit.answered(outcome.ttfb_s)
        if self._run.limits.quota is not None and outcome.error is None and not outcome.unchanged:
            # Counted before the slot is given back, so the next
            # download cannot start past a quota just reached.
            self._count_saved(outcome.bytes)

    def after_release(self, job: Job, outcome: Outcome, released_at: datetime) -> Result | None:
        """The URL's record once its attempt gave its slot back at *released_at*; None: it was put
        back into the schedule to retry."""
        run = self._run
        wait_s = job.wait_s
        made = job.attempts + 1
        error = outcome.error
        reason = None
        # The slot's hold, for the record.
        held = {"slot_taken_at": job.slot_taken_at, "slot_released_at": released_at}
        # stopped() looks at the clock: a read that timed out at the deadline was cut by it.
        if error is not None and self._stops.stopped() and run.halt.is_set() and not run.cancelled.is_set():
            return self._cut_off(job, outcome, made, wait_s, held)
        if error is not None and not run.cancelled.is_set():
            decision = run.shared.retry.decide(error, made, now=now(), random=random.random())
            reason = decision.reason
            if decision.retry:
                reason = self._no_time_for(job, decision.delay)
            if decision.retry and reason is None:
                log.debug("line %d: attempt %d failed (%s); retrying in %.2fs", job.entry.line, made, error,
                          decision.delay)  # fmt: skip
                later = dataclasses.replace(job, attempts=made, wait_s=wait_s, partial=outcome.partial,
                                            last_error=str(error))  # fmt: skip
                run.schedule.put_later(later, later.host, due=run.shared.clock() + decision.delay,
                                       expires=self._time_up(later))  # fmt: skip
                return None
        return self._finish(job, outcome, made, wait_s, reason, held)

    def unstarted(self, job: Job) -> Result:
        """The record of a job that gets no (further) attempt: cut short, or no slot in time."""
        run, entry = self._run, job.entry
        with run.lock:
            run.looked_up.pop(job.seq, None)
        if job.attempts:
            # A retry that gets no further attempt: the run was cut short, or its --max-time ran out.
            if run.cut is not None:
                status, why = Status.CANCELLED, run.halted_by or run.cut
            else:
                status, why = (
                    Status.FAILED,
                    f"took longer than the --max-time of {format_duration(run.config.max_time or 0)}",
                )
            self.let_go(entry.url, job.partial)
            error = f"{why}; the last attempt failed: {job.last_error}"
            return run.result(entry, status, job.ready, job.ready_at, wait_s=job.wait_s, error=error,
                              attempts=job.attempts, waited_on=job.waited_on)  # fmt: skip
        if run.cut is not None:
            return run.result(entry, Status.NOT_STARTED, job.ready, job.ready_at, error=run.cut, attempts=0,
                              waited_on=job.waited_on)  # fmt: skip
        waited = time.monotonic() - job.ready
        held_back, next_step = HELD_BACK.get(job.waited_on or SLOTS, HELD_BACK[SLOTS])
        error = f"{held_back} within {run.config.acquire_timeout:g}s ({next_step})"
        return run.result(entry, Status.ACQUIRE_TIMEOUT, job.ready, job.ready_at, wait_s=waited, error=error,
                          attempts=0, waited_on=job.waited_on)  # fmt: skip

    def let_go(self, url: str, partial: PartialFile | None) -> None:
        """A URL is done without its file: keep its partial file for a later run, or drop it and its record."""
        temp_files = self._run.shared.temp_files
        if partial is not None and temp_files.is_kept(partial.path):
            temp_files.forget(partial.path)  # on disk and on record; a later run resumes it
            return
        if partial is not None:
            temp_files.remove(partial.path)
        if self._run.shared.state is not None:
            state_call(self._run.shared.state.forget_partial, state_key(url))  # no query when none is on record

    def remember_partial(self, store: Store, url: str, partial: PartialFile) -> bool:
        """Record a partial file worth resuming in a later run; True if it is on record."""
        validators = partial.validators
        record = Partial(
            url=state_key(url), path=str(partial.path),
            etag=partial.if_range if partial.if_range == validators.etag else None,
            last_modified=validators.last_modified, total=partial.total, updated_at=store.now(),
        )  # fmt: skip
        return state_call(store.record_partial, record, failed=False) is not False

    def _pause_host(self, job: Job, error: BaseException) -> None:
        if not isinstance(error, HTTPStatusError):
            return
        if error.retry_after is None and self._run.config.adaptive:
            return  # --adaptive answers a bare 429 with the host's limit (a cut), not a blanket pause
        pause = self._run.shared.retry.host_pause(error, now=now())
        if pause:
            # The host that answered: after a redirect, not the listed URL's.
            host = job.host if error.answered_by is None else host_key(error.answered_by)
            log.info("%s asked for a pause (HTTP %d): no new request to it for %s", host, error.status_code,
                     format_duration(pause))  # fmt: skip
            self._run.shared.hosts.pause(host, pause)

    def _count_saved(self, size: int) -> None:
        quota = self._run.limits.quota
        with self._run.lock:
            self._saved_bytes += size
            reached = quota is not None and self._saved_bytes >= quota
        if reached and quota is not None:
            self._stops.cut_short(f"the --quota of {format_size(quota)} was reached", halt=False)

    def _finish(
        self, job: Job, outcome: Outcome, attempts: int, wait_s: float | None, reason: str | None, held: dict[str, Any]
    ) -> Result:
        """The URL's last attempt is over: record it, and keep or drop its partial file."""
        entry = job.entry
        store = self._run.shared.state
        if outcome.error is None:
            status = Status.UNCHANGED if outcome.unchanged else Status.OK
            if store is not None and not outcome.unchanged and outcome.mtime_ns is not None:
                validators = outcome.validators or Validators()
                saved = Saved(
                    url=state_key(entry.url), path=str(job.target), size=outcome.bytes, mtime_ns=outcome.mtime_ns,
                    etag=validators.etag, last_modified=validators.last_modified,
                    checksum=None if entry.checksum is None else str(entry.checksum), saved_at=store.now(),
                )  # fmt: skip
                state_call(store.record_saved, saved)
        else:
            status = Status.FAILED
            self.let_go(entry.url, outcome.partial)
        error = None if outcome.error is None else str(outcome.error)
        if error is not None and reason:
            error = f"{error}; {reason}"
        return self._run.result(
            entry, status, job.ready, job.ready_at,
            path=job.target if outcome.error is None else None,
            http_status=outcome.http_status,
            bytes=0 if outcome.unchanged else outcome.bytes,
            wait_s=wait_s, ttfb_s=outcome.ttfb_s, download_s=outcome.download_s,
            error=error, attempts=attempts, resumed_from=outcome.resumed_from, waited_on=job.waited_on, **held,
        )  # fmt: skip

    def _cut_off(
        self, job: Job, outcome: Outcome, attempts: int, wait_s: float | None, held: dict[str, Any]
    ) -> Result:
        """The record of a download the deadline stopped in flight; a resumable partial stays."""
        self.let_go(job.entry.url, outcome.partial)
        run = self._run
        return run.result(
            job.entry, Status.CANCELLED, job.ready, job.ready_at,
            http_status=outcome.http_status, bytes=outcome.bytes, wait_s=wait_s, ttfb_s=outcome.ttfb_s,
            download_s=outcome.download_s, error=run.halted_by or run.cut, attempts=attempts,
            waited_on=job.waited_on, **held,
        )  # fmt: skip

    def _time_up(self, job: Job) -> float | None:
        """When *job*'s --max-time runs out, by the run's clock; None without one."""
        max_time = self._run.config.max_time
        if max_time is None or job.began is None:
            return None
        return self._run.shared.clock() + job.began + max_time - time.monotonic()

    def _no_time_for(self, job: Job, delay: float) -> str | None:
        """Why a retry after *delay* seconds would come too late for --max-time, if it would."""
        max_time = self._run.config.max_time
        if max_time is None or job.began is None or time.monotonic() + delay < job.began + max_time:
            return None
        return f"no time left for another attempt within the --max-time of {format_duration(max_time)}"


def state_call(method: Callable[..., Any], *args: Any, failed: Any = None) -> Any:
    """Call the state database; a failure there never fails a download, it only costs a re-run."""
    try:
        return method(*args)
    except StateError as exc:
        log.warning("%s", exc)
        return failed
