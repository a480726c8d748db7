"""Worker processes, the parent's side: the receiving thread, which takes back what the children did.

One thread reads every child's pipe (a selector over them all) and settles
each task as its ``Done`` comes: the task's owner is told its outcome, on
this thread.  It also answers a child's question about a partial file,
passes on a download's progress and the children's log records, and fails
the tasks of a child that died.
"""

from __future__ import annotations

import logging
import selectors
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .._errors import Cancelled, DownloadError, TransportError
from ..transfer.outcome import Outcome, Watcher, WatchStart
from ..transfer.validators import PartialFile
from .spawn import Child
from .wire import Answer, Call, Done, Frames, Logged, ToParent, Watch

log = logging.getLogger("fetcher")

#: What a task's owner is told when its attempt is over: (outcome, partial file kept for a resume).
OnDone = Callable[[Outcome, bool], None]
#: Asked whether a partial file worth resuming went on record.
OnPartial = Callable[[PartialFile], bool]


@dataclass(slots=True)
class Pending:
    """A task out with a child: whom to tell when it is done."""

    child: Child
    url: str
    done: OnDone
    on_partial: OnPartial | None
    watch: WatchStart | None
    watcher: Watcher | None = None


class Ledger:
    """The tasks out with the children, by id; ``lock`` also guards each child's count and ``closed``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[int, Pending] = {}
        self.closed = False  # the pool is shutting down: nobody waits for a result any more


class Receiver:
    """The loop of the receiving thread, over *children*'s pipes, until every one has ended."""

    def __init__(self, ledger: Ledger, children: list[Child]) -> None:
        self._ledger = ledger
        self._children = children

    def run(self) -> None:
        """What the children did, settled as it comes."""
        # One selector for the pool's life: making and filling one per wake-up costs more.
        selector = selectors.DefaultSelector()
        for each in self._children:
            selector.register(each.outbox.fileno(), selectors.EVENT_READ, (each, Frames(each.outbox.fileno())))
        while selector.get_map():
            try:
                readable = selector.select()
            except (OSError, ValueError):
                return  # closed under us: the pool is shutting down
            for key, _ in readable:
                child, frames = key.data
                try:
                    # Every whole message the pipe holds: none is left in the buffer for a select that
                    # would not wake for it.
                    batches: list[list[ToParent]] = frames.read()
                except (EOFError, OSError, ValueError):
                    selector.unregister(key.fd)
                    self._lost(child)
                    continue
                for batch in batches:
                    for message in batch:
                        try:
                            self._take(child, message)
                        except Exception:  # one task's bug must not stop the others' results
                            log.exception("unexpected error taking a worker process's result")

    def _take(self, child: Child, message: ToParent) -> None:
        if isinstance(message, Done):
            with self._ledger.lock:
                pending = self._ledger.pending.pop(message.id, None)
                child.out -= 1
            if pending is not None:
                if pending.watcher is not None:
                    pending.watcher.done()
                pending.done(message.outcome, message.kept)
        elif isinstance(message, Watch):
            self._watched(message)
        elif isinstance(message, Call):
            with self._ledger.lock:
                pending = self._ledger.pending.get(message.task)
            recorded = False
            if pending is not None and pending.on_partial is not None:
                recorded = pending.on_partial(message.partial)
            child.tell(Answer(message.id, recorded))
        elif isinstance(message, Logged):
            log.log(message.level, "%s", message.message)

    def _watched(self, message: Watch) -> None:
        with self._ledger.lock:
            pending = self._ledger.pending.get(message.task)
        if pending is None or pending.watch is None:
            return
        if message.name is not None:
            if pending.watcher is not None:
                pending.watcher.done()
            pending.watcher = pending.watch(pending.url, message.name, message.total)
        if pending.watcher is None:
            return
        if message.advance:
            pending.watcher.advance(message.advance)
        if message.done:
            pending.watcher.done()
            pending.watcher = None

    def _lost(self, child: Child) -> None:
        """A child died (or the pool closed): every task it held fails, as a connection lost would."""
        with self._ledger.lock:
            child.alive = False
            lost = [(key, p) for key, p in self._ledger.pending.items() if p.child is child]
            for key, _ in lost:
                del self._ledger.pending[key]
            closed = self._ledger.closed
        child.outbox.close()
        if lost and not closed:
            log.warning("a worker process ended unexpectedly; %d downloads in it failed", len(lost))
        for _, pending in lost:
            if pending.watcher is not None:
                pending.watcher.done()
            error: DownloadError
            if closed:
                # Nobody waits for the result, but the task's slot and host permit must go back:
                # the gate may be another Fetcher's too.
                error = Cancelled(pending.url, "cancelled")
            else:
                error = TransportError(pending.url, "the worker process downloading it ended unexpectedly",
                                       transient=True)  # fmt: skip
            pending.done(Outcome(http_status=None, bytes=0, ttfb_s=None, download_s=None, error=error), False)
