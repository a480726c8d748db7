"""Stopping a run early: the caller gone (``cancel``), an interrupt (``stop``), --deadline and --quota.

A run cut short (``RunState.cut``) starts nothing new; a halt
(``RunState.halt``, by the deadline, an interrupt or a cancel) also stops the
downloads in flight, by hanging up their connections.  Every stage asks here
before it goes on (``stopped``, ``blocked``).  This module decides and
signals only: the records of the URLs that do not start are made where those
URLs are (``settle.Settle.unstarted``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .._units import format_duration
from ..transfer.lines import HangUps
from .jobs import Cancelled, Halted, Job
from .runstate import RunState

log = logging.getLogger("fetcher")


class Stops:
    """When the run stops taking URLs, and what it does to those in flight."""

    def __init__(self, run: RunState) -> None:
        self._run = run
        self._hang_ups = HangUps(run.halt)  # what cuts each attempt in flight

    def cancel(self) -> None:
        run = self._run
        if not run.cancelled.is_set():
            run.cancelled.set()
            run.halt.set()
            run.schedule.wake()  # the dispatcher ends now, not at its next look
            self.hang_up_all()
            run.results.put(Cancelled())

    def stop(self, reason: str) -> None:
        """Stop the run as --deadline does, for *reason* (an interrupt): downloads in flight end as
        ``cancelled``, and every URL not started, to the end of the input, as ``not-started``."""
        self.cut_short(reason, halt=True)
        self._run.schedule.wake()

    def stopped(self) -> bool:
        """Whether the run takes no new downloads (checking the deadline on the way)."""
        run = self._run
        # Not "if nothing cut the run yet": a quota reached first must not switch the deadline off.
        if not run.halt.is_set() and run.deadline_at is not None and time.monotonic() >= run.deadline_at:
            self.cut_short(f"the --deadline of {format_duration(run.limits.deadline or 0)} passed", halt=True)
        return run.cut is not None

    def cut_short(self, reason: str, *, halt: bool) -> None:
        """Start nothing new, for *reason*; with *halt*, stop the downloads in flight too."""
        run = self._run
        with run.lock:
            if run.cut is None:
                run.cut = reason
                log.info("%s: the run stops", reason)
            if halt and run.halted_by is None:
                run.halted_by = reason  # what cancels the downloads in flight (a quota never does)
        if halt:
            run.halt.set()
            run.results.put(Halted())
            self.hang_up_all()

    def hang_up_all(self) -> None:
        """Cut the connections of the attempts in flight: a connect, a TLS handshake, a wait for headers
        or a read blocked on a silent server ends now."""
        self._hang_ups.hang_up_all()

    def on_stop(self, hang_up: Callable[[], None]) -> Callable[[], None]:
        """Call *hang_up* when the run halts (now, if it has); the callable returned forgets it."""
        return self._hang_ups.on_stop(hang_up)

    def blocked(self, job: Job) -> bool:
        """No attempt for *job* now: nothing new starts once the run is cut short, and after
        the deadline nothing at all (a retry goes on under a reached quota: it was started);
        nor does a retry whose --max-time ran out while it waited for a slot."""
        return (self.stopped() and (job.attempts == 0 or self._run.halt.is_set())) or self._out_of_time(job)

    def _out_of_time(self, job: Job) -> bool:
        max_time = self._run.config.max_time
        return max_time is not None and job.began is not None and time.monotonic() >= job.began + max_time
