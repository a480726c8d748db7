"""Worker processes, the parent's side: start them, and hand them tasks in batches.

Each task's slot and host permit stay held in the parent while the task is
out; ``done``, called on the pool's receiving thread (``receiver.py``) when
the task's result comes back, settles the task and gives them back.  So
every limit is kept where it always was, in the one parent, and the
children only download.

The children start when the first long list needs them (``start``), in the
background: until they are up, and for every task they cannot take, the
run uses its threads.  They are forked from a copy of the process made with
the pool (``zygote.py``), or else started afresh where that copy cannot be
made safely.  A child that dies takes its tasks with it: each ends
as a transient failure, which the retry policy may try again.  With the
children the copy also forks, first, the process that a long list's run
may take to read and name its list (``take_feeder``; ``_run/apart.py``).
"""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable

from .._config import FetcherConfig
from ..transfer.outcome import WatchStart
from ..transfer.tempfiles import TEMP_PREFIX, TEMP_SUFFIX
from .cores import usable
from .receiver import Ledger, OnDone, OnPartial, Pending, Receiver
from .spawn import Child, came_up, start
from .wire import Halt, Task
from .zygote import ForkedWorker, Zygote

log = logging.getLogger("fetcher")

# The longest a task waits for an eager pool's children to come up, before it goes to a thread.
_START_WAIT_S = 30.0

# The longest a run waits for the feeder process that the pool's start forks (a few ms).
_FEEDER_WAIT_S = 5.0

# Tasks gathered for one child before they go even if the dispatcher has more to hand out.
_BATCH_MAX = 64


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
        self._ledger = Ledger()
        self._lock = self._ledger.lock  # over the children's counts and batches too
        self._children: list[Child] = []
        self._ids = itertools.count(1)
        self._runs = itertools.count(1)
        self._started = False
        self._eager = eager
        self._up = threading.Event()  # set once the start is over, whether or not a child came up
        self._receiver: threading.Thread | None = None
        self._cores = usable()  # now, before a run may keep this process's threads to one core
        # Made now, while the caller has not started a run's threads yet.  It lives as long as the pool:
        # it waits for the workers it forked (see Zygote.close).
        feeder_safe = _feeder_safe(config)  # before the copy is made: what it can safely do
        self._zygote = Zygote.fork()
        # A process for a long list's feeder (``_run/apart.py``), forked before the last worker (the zygote
        # then becomes that worker): where the names live in a state database, which that process opens.
        self._feeder: ForkedWorker | None = None
        self._feeder_wanted = feeder_safe and self._zygote is not None
        self._feeder_ready = threading.Event()
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
            if self._started or self._ledger.closed:
                return
            self._started = True
        threading.Thread(target=self._start, name="fetcher-workers-start", daemon=True).start()

    def ready(self) -> bool:
        """Whether a child can take a task now; an eager pool waits until its children are up."""
        if self._eager and not self._up.is_set():
            self._up.wait(_START_WAIT_S)
        # Not merely "some were started": once every one has died, the run's tasks go to its threads.
        return any(child.alive for child in self._children)

    def take_feeder(self, wait_s: float = _FEEDER_WAIT_S) -> ForkedWorker | None:
        """The process forked for a long list's feeder, once (a later run's feeder is a thread); None if there
        is none.  Waits up to *wait_s* for a start under way to fork it."""
        if not self._started:
            return None
        self._feeder_ready.wait(wait_s)
        with self._lock:
            feeder, self._feeder = self._feeder, None
        return feeder

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
            if not live or self._ledger.closed:
                return False
            child = min(live, key=lambda c: c.out)
            task = task_of(next(self._ids))
            self._ledger.pending[task.id] = Pending(child, url, done, on_partial, watch)
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
            self._ledger.closed = True
            children = list(self._children)
            zygote, self._zygote = self._zygote, None
            feeder, self._feeder = self._feeder, None
        if feeder is not None:  # never taken: it reads the end of its control pipe and exits
            for fd in feeder.fds:
                os.close(fd)
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
            self._feeder_ready.set()
            self._up.set()

    def _start_children(self) -> None:
        children: list[Child] = []
        if self._zygote is not None and self._feeder_wanted:
            try:
                self._feeder = self._zygote.start_feeder()
            except OSError as exc:
                log.debug("could not fork a feeder process (%s); the feeder is a thread", exc)
        self._feeder_ready.set()
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
            if self._ledger.closed:
                for child in children:
                    child.close()
                    child.process.wait()
                return
            self._children = children
        if children:
            log.debug("%d worker processes started", len(children))
            receiver = Receiver(self._ledger, children)
            self._receiver = threading.Thread(target=receiver.run, name="fetcher-workers-receive", daemon=True)
            self._receiver.start()


# fetcher's threads that never call SQLite: the command's copy of stderr, its progress bars, a report's flusher.
_SQLITE_FREE_THREADS = frozenset({"fetcher-stderr", "fetcher-bars", "fetcher-report"})


def _feeder_safe(config: FetcherConfig) -> bool:
    """Whether a feeder process forked from a copy of this process made now could use *config*'s state database.

    SQLite forbids a process to use a database file its parent had open when it forked (the copy's records
    of the file's locks and shared memory would be the parent's), or any database if another thread was in
    SQLite then (a mutex it held stays held).  So: a state database in a file, not open in this process, and
    no other thread but those of fetcher's that never use SQLite.
    """
    here = threading.current_thread()
    if config.state is None or config.shared_state:
        return False
    if any(thread is not here and thread.name not in _SQLITE_FREE_THREADS for thread in threading.enumerate()):
        return False
    try:
        wanted = os.stat(config.state)
    except OSError:
        return True  # not there yet: nobody has it open
    try:
        descriptors = os.listdir("/proc/self/fd")
    except OSError:
        return False
    for fd in descriptors:
        try:
            if os.path.samestat(os.stat(f"/proc/self/fd/{fd}"), wanted):
                return False
        except OSError:
            continue
    return True
