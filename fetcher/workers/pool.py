"""Worker processes, the parent's side: start them, hand them tasks in batches, and take back what they did.

Each task's slot and host permit stay held in the parent while the task is
out; ``done`` (called on this pool's receiving thread) settles the task and
gives them back.  So every limit is kept where it always was, in the one
parent, and the children only download.

The children start when the first long list needs them (``start``), in the
background: until they are up, and for every task they cannot take, the
run uses its threads.  They are forked from a copy of the process made with
the pool (``zygote.py``), or else started afresh where that copy cannot be
made safely.  A child that dies takes its tasks with it: each ends
as a transient failure, which the retry policy may try again.
"""

from __future__ import annotations

import itertools
import logging
import selectors
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .._config import FetcherConfig
from .._errors import Cancelled, DownloadError, TransportError
from ..transfer.outcome import Outcome, Watcher, WatchStart
from ..transfer.tempfiles import TEMP_PREFIX, TEMP_SUFFIX
from ..transfer.validators import PartialFile
from .cores import usable
from .spawn import Child, came_up, start
from .wire import Answer, Call, Done, Frames, Halt, Logged, Task, ToParent, Watch
from .zygote import Zygote

log = logging.getLogger("fetcher")

#: What a task's owner is told when its attempt is over: (outcome, partial file kept for a resume).
OnDone = Callable[[Outcome, bool], None]
#: Asked whether a partial file worth resuming went on record.
OnPartial = Callable[[PartialFile], bool]

# The longest a task waits for an eager pool's children to come up, before it goes to a thread.
_START_WAIT_S = 30.0

# Tasks gathered for one child before they go even if the dispatcher has more to hand out.
_BATCH_MAX = 64


@dataclass(slots=True)
class _Pending:
    child: Child
    url: str
    done: OnDone
    on_partial: OnPartial | None
    watch: WatchStart | None
    watcher: Watcher | None = None


class ProcessPool:
    """*size* worker processes with *threads* download threads each.

    *eager*: start them now, and return once they are up (the caller asked
    for them by number); otherwise they start on the first ``start()`` and
    tasks go to threads until they are up.
    """

    def __init__(self, config: FetcherConfig, size: int, threads: int, *, eager: bool = False) -> None:
        self._config = config
        self._size = size
        self._threads = threads
        self._lock = threading.Lock()
        self._children: list[Child] = []
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._runs = itertools.count(1)
        self._started = False
        self._closed = False
        self._eager = eager
        self._up = threading.Event()  # set once the start is over, whether or not a child came up
        self._receiver: threading.Thread | None = None
        self._cores = usable()  # now, before a run may keep this process's threads to one core
        # Made now, while the caller has not started a run's threads yet.  It lives as long as the pool:
        # it waits for the workers it forked (see Zygote.close).
        self._zygote = Zygote.fork()
        if eager:
            # Up before the caller's first run: a URL's clock (--max-time, its timings) must
            # not run while a process is still importing.
            self._started = True
            self._start()

    @property
    def size(self) -> int:
        return self._size

    def new_run(self) -> int:
        """A token for one run's tasks: a halt names it."""
        return next(self._runs)

    def start(self) -> None:
        """Start the children in the background, once; tasks go to threads until they are up."""
        with self._lock:
            if self._started or self._closed:
                return
            self._started = True
        threading.Thread(target=self._start, name="fetcher-workers-start", daemon=True).start()

    def ready(self) -> bool:
        """Whether a child can take a task now; an eager pool waits until its children are up."""
        if self._eager and not self._up.is_set():
            self._up.wait(_START_WAIT_S)
        # Not merely "some were started": once every one has died, the run's tasks go to its threads.
        return any(child.alive for child in self._children)

    def wait_up(self, timeout: float) -> bool:
        """Wait up to *timeout* for the start under way to be over; True at once if none was asked for."""
        return not self._started or self._up.wait(timeout)

    def submit(
        self, task_of: Callable[[int], Task], url: str, done: OnDone, on_partial: OnPartial | None,
        watch: WatchStart | None = None,
    ) -> bool:
        """Give the task made by *task_of* (given its id) to the least busy child; False if none can take it.

        *done* is called on this pool's receiving thread with the attempt's Outcome; *on_partial* when the
        child asks to record a partial file; *watch* (the display) is told the download's progress.
        """
        with self._lock:
            live = [child for child in self._children if child.alive]
            if not live or self._closed:
                return False
            child = min(live, key=lambda c: c.out)
            task = task_of(next(self._ids))
            self._pending[task.id] = _Pending(child, url, done, on_partial, watch)
            child.out += 1
            child.waiting.append(task)
            full = len(child.waiting) >= _BATCH_MAX
        if full:
            self._flush(child)
        return True

    def flush(self) -> None:
        """Send every task gathered so far (the dispatcher calls this before it waits)."""
        for child in self._children:
            if child.waiting:
                self._flush(child)

    def halt(self, run: int) -> None:
        """Stop *run*'s attempts in every child: they hang up and end as cancelled."""
        self.flush()  # its tasks first, so that none is read after the halt and started
        for child in self._children:
            child.tell(Halt(run))

    def shutdown(self, wait_s: float) -> None:
        """End the children: they stop at once (their downloads end with them) and remove their partial files."""
        with self._lock:
            self._closed = True
            children = list(self._children)
            zygote, self._zygote = self._zygote, None
        for child in children:
            child.close()  # the child reads EOF, cleans up and exits
        for child in children:
            try:
                child.process.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                # Too slow to end (a busy machine): killed, its partial files are removed here,
                # by the process id in their names, rather than left for the next run's clean-up.
                child.process.kill()
                child.process.wait()
                for path in self._config.dest.glob(f"{TEMP_PREFIX}{child.process.pid}-*{TEMP_SUFFIX}"):
                    path.unlink(missing_ok=True)
        receiver = self._receiver
        if receiver is not None and receiver is not threading.current_thread():
            # What the children sent before they ended is taken before this returns: a Done that
            # hands its partial file over, taken late, would leave that file after the caller's clean-up.
            receiver.join(wait_s)
        if zygote is not None:
            zygote.close()  # after its workers: it waits for them

    def _flush(self, child: Child) -> None:
        with child.send_lock:
            with self._lock:
                batch, child.waiting = child.waiting, []
            if not batch or not child.alive:
                return
            try:
                child.inbox.send(batch)
            except (OSError, ValueError):
                pass  # it died: the receiving thread fails its tasks

    # -- starting ------------------------------------------------------------------

    def _start(self) -> None:
        try:
            self._start_children()
        finally:
            self._up.set()

    def _start_children(self) -> None:
        children: list[Child] = []
        for index in range(self._size):
            try:
                children.append(start(self._config, self._threads, index, self._zygote, last=index == self._size - 1,
                                      cores=self._cores))
            except OSError as exc:
                log.warning("could not start a worker process (%s); downloading in this process", exc)
                break
        deadline = time.monotonic() + _START_WAIT_S
        children = [child for child in children if came_up(child, deadline)]
        with self._lock:
            if self._closed:
                for child in children:
                    child.close()
                    child.process.wait()
                return
            self._children = children
        if children:
            log.debug("%d worker processes started", len(children))
            self._receiver = threading.Thread(target=self._receive, name="fetcher-workers-receive", daemon=True)
            self._receiver.start()

    # -- receiving -----------------------------------------------------------------

    def _receive(self) -> None:
        """The receiving thread: what the children did, settled as it comes."""
        # One selector for the pool's life: multiprocessing's wait() would make and fill one per wake-up.
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
            with self._lock:
                pending = self._pending.pop(message.id, None)
                child.out -= 1
            if pending is not None:
                if pending.watcher is not None:
                    pending.watcher.done()
                pending.done(message.outcome, message.kept)
        elif isinstance(message, Watch):
            self._watched(message)
        elif isinstance(message, Call):
            with self._lock:
                pending = self._pending.get(message.task)
            recorded = False
            if pending is not None and pending.on_partial is not None:
                recorded = pending.on_partial(message.partial)
            child.tell(Answer(message.id, recorded))
        elif isinstance(message, Logged):
            log.log(message.level, "%s", message.message)

    def _watched(self, message: Watch) -> None:
        with self._lock:
            pending = self._pending.get(message.task)
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
        with self._lock:
            child.alive = False
            lost = [(key, p) for key, p in self._pending.items() if p.child is child]
            for key, _ in lost:
                del self._pending[key]
            closed = self._closed
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
