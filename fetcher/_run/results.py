"""Results → the caller: in input order (``fetch()``) or as they complete (``as_completed()``).

This runs on the caller's thread, in its ``for`` loop: it reads the results
queue that every stage writes to (``RunState.emit``), gives the feeder back
a place in its window for each result handed over, and ends the iteration
when every URL read has its result.  It makes no record of its own but one:
the URL a list reader still holds back when a stopped run ends
(``_held_back``).
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterable, Iterator

from .._errors import ClosedError
from .._result import Result, Status
from .._urllist import Entry
from .feeder import Window
from .jobs import Cancelled, End, Failed, Halted, Item, now
from .runstate import POLL_S, RunState

log = logging.getLogger("fetcher")

# After the deadline, an input that the feeder has waited this long for is not waited for.
_INPUT_GRACE_S = 1.0


class Results:
    """The caller's side of the results queue."""

    def __init__(self, run: RunState, urls: Iterable[Item], window: Window) -> None:
        self._run = run
        self._urls = urls
        self._window = window

    def iterate(self, ordered: bool) -> Iterator[Result]:
        run = self._run
        done: dict[int, Result] = {}
        next_seq = 0
        expected: int | None = None
        received = 0
        while expected is None or next_seq < expected:
            try:
                # Once the deadline has passed, the input may be a pipe that never closes:
                # look up now and then instead of waiting for its end.
                message = run.results.get(timeout=POLL_S if run.halt.is_set() else None)
            except queue.Empty:
                if self._input_stalled(received):
                    log.info("the run stopped; the rest of the input is not read")
                    yield from self._held_back()
                    return
                continue
            if isinstance(message, Halted):
                continue
            if isinstance(message, End):
                expected = message.count
                continue
            if isinstance(message, Failed):
                raise message.error
            if isinstance(message, Cancelled):
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
            run = self._run
            yield run.result(entry, Status.NOT_STARTED, time.monotonic(), now(), error=run.cut, attempts=0)

    def _input_stalled(self, received: int) -> bool:
        """After the deadline: every URL read has its result, and the feeder has waited a while for the input."""
        since = self._run.reading_since
        return received >= self._run.fed and since is not None and time.monotonic() - since > _INPUT_GRACE_S
