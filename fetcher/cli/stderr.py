"""stderr as the display writes to it: best effort, never raising and never blocking a download.

What the command prints is a courtesy; the report is the record.  So a stderr
that is gone (``| head -2`` exited: EPIPE; the terminal closed: EIO) or that
stops draining (a pipe nobody reads, a terminal paused with Ctrl-S) must not
fail, stall or deadlock the run.  Writes go to a buffer; one daemon thread
copies the buffer to the real stream.  Once a write fails the stream is
*lost*: everything after is dropped without a word.  A buffer that stops
draining is capped at MAX_PENDING characters; writes past it are dropped and
counted.

The thread gathers what comes in the GATHER_S after the first text it wakes
for, and writes it all at once: a long list of small files finishes hundreds
of URLs a second, and a line each would cost a wake-up of this thread and a
system call per URL.  Nobody reads lines 50 ms apart.

This matters beyond tidiness: tqdm takes a lock around each repaint and does
not release it when the write raises, so one EPIPE in a repaint used to leave
every other thread waiting for that lock forever.

Not here: what is shown (progress.py), and errors printed before a run starts
or after it ends (main.py writes those to stderr itself, ignoring a dead one).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

#: Characters held for a stderr that does not keep up, before writes are dropped (about 10,000 lines).
MAX_PENDING = 1 << 20
#: At the end of a run, how long to wait for a stderr that takes nothing before giving up on it.
DRAIN_STALL_S = 2.0
#: How long the copying thread gathers text before it writes it, in one write.
GATHER_S = 0.05


class BestEffortStream:
    """A text stream over *stream* (stderr) that never raises and never blocks its writers.

    ``lost`` is the reason the stream stopped taking text (None while it
    works); ``dropped`` counts the writes dropped because it did not keep up.
    ``close()`` waits for what is pending to go out, as long as the stream
    keeps taking it.
    """

    def __init__(self, stream: TextIO, *, max_pending: int = MAX_PENDING, gather_s: float = GATHER_S) -> None:
        self._stream = stream
        self._max_pending = max_pending
        self._gather_s = gather_s
        self._pending: list[str] = []
        self._size = 0
        self._changed = threading.Condition(threading.Lock())
        self._closing = False
        self._busy = False  # the thread holds text it is writing
        self._progress_at = time.monotonic()  # when the stream last took text
        self.lost: str | None = None
        self.dropped = 0
        self._thread = threading.Thread(target=self._copy, name="fetcher-stderr", daemon=True)
        self._thread.start()

    # -- what a TextIO user calls -------------------------------------------------------

    def write(self, text: str) -> int:
        with self._changed:
            if self.lost is not None or self._closing:
                return len(text)
            if self._size + len(text) > self._max_pending:
                self.dropped += 1
                return len(text)
            if not self._pending:
                # Only the first text wakes the thread: it is gathering the rest until it writes them.
                self._changed.notify()
            self._pending.append(text)
            self._size += len(text)
        return len(text)

    def flush(self) -> None:
        """Nothing to wait for: the copying thread writes as soon as text arrives."""

    def isatty(self) -> bool:
        try:
            return self._stream.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", None) or "utf-8"

    def close(self, *, stall_s: float = DRAIN_STALL_S) -> None:
        """Let what is pending go out, then stop; give up once the stream took nothing for *stall_s*."""
        with self._changed:
            self._closing = True
            # The stall counts from now at the earliest: a stream that had nothing to take for a while
            # (a quiet run) has not stalled, and the summary just written must still go out.
            self._progress_at = max(self._progress_at, time.monotonic())
            self._changed.notify()
            while (self._pending or self._busy) and self.lost is None:
                left = self._progress_at + stall_s - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)

    # -- the copying thread -------------------------------------------------------------

    def _copy(self) -> None:
        while True:
            with self._changed:
                while not self._pending and not self._closing:
                    self._changed.wait()
                if not self._pending:
                    return
                until = time.monotonic() + self._gather_s
                while not self._closing and (left := until - time.monotonic()) > 0:
                    self._changed.wait(left)  # only close() wakes it early
                text = "".join(self._pending)
                self._pending.clear()
                self._size = 0
                self._busy = True
            try:
                self._stream.write(text)
                self._stream.flush()
            except (OSError, ValueError) as exc:  # EPIPE, EIO, a closed stream
                with self._changed:
                    self.lost = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                    self._pending.clear()
                    self._busy = False
                    self._changed.notify_all()
                return
            with self._changed:
                self._busy = False
                self._progress_at = time.monotonic()
                self._changed.notify_all()


def say(text: str) -> None:
    """One line to stderr outside a run (an error, a note before the run starts): never raises.

    A stderr that is gone must not turn a note into a traceback, or keep a
    run from starting.
    """
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
