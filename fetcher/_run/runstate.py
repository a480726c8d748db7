"""What the stages of one run share: the schedule, the results queue, the stop signals, the counts.

One RunState per ``fetch()`` call, made by ``Run`` and handed to each stage.
It holds only what more than one stage reads or writes; what one stage keeps
for itself stays in that stage (the limit the dispatcher waited on, the
hang-ups of the attempts in flight, the bytes counted against the quota).
It decides nothing: the stages do.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import datetime
from typing import Any

from .._config import FetcherConfig, RunLimits
from .._result import Result, Status
from .._schedule import Schedule
from .._text import redact
from .._urllist import Entry
from ..limits import HostPermit
from ..state import Saved
from .jobs import Job, Message, Shared, now

log = logging.getLogger("fetcher")

# How often a blocked feeder or dispatcher looks up to see if its run was cancelled.
POLL_S = 0.1


class RunState:
    """The shared, mutable state of one run; what two threads change, they change under ``lock``."""

    def __init__(self, shared: Shared, run_id: str, limits: RunLimits, *, expected: int = 0) -> None:
        self.shared = shared
        self.config: FetcherConfig = shared.config
        self.run_id = run_id
        self.limits = limits
        self.schedule: Schedule[Job, HostPermit] = Schedule(shared.clock)
        self.results: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self.cancelled = threading.Event()  # the caller is gone: nobody reads results any more
        self.halt = threading.Event()  # downloads in flight stop: cancelled, or the deadline passed
        self.cut: str | None = None  # why no new download starts: the deadline passed, the quota was reached
        self.halted_by: str | None = None  # why downloads in flight were stopped: the deadline
        self.deadline_at: float | None = None  # monotonic; set when the run starts
        self.lock = threading.Lock()
        self.waiting = 0  # read, not yet holding a slot
        self.expected = expected  # URLs the input says it holds (operator.length_hint); 0 if it does not say
        self.fed = 0  # URLs the feeder has taken from the input so far
        # monotonic, since when the feeder has waited for the input's next line; None while it
        # does anything else (its other steps may block too, on a full disk or a busy state writer)
        self.reading_since: float | None = None
        self.looked_up: dict[int, Saved | None] = {}  # by job seq: saved records read ahead in batches

    def result(self, entry: Entry, status: Status, ready: float, ready_at: datetime, **fields: Any) -> Result:
        return Result(
            run_id=self.run_id,
            line=entry.line,
            url=redact(entry.url),
            status=status,
            total_s=time.monotonic() - ready,
            started_at=ready_at,
            finished_at=now(),
            **fields,
        )

    def emit(self, seq: int, result: Result) -> None:
        log.debug("line %d %s: %s", result.line, result.status.value, result.error or result.path)
        self.results.put((seq, result))
