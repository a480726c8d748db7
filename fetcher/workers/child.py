"""A worker process: it makes the attempts its parent hands it, on a few threads, and sends back what each did.

Forked by ``zygote.py`` (it starts in ``serve``), or else started afresh by
``spawn.py`` as ``python -m fetcher.workers.child CONTROL_FD TASKS_FD OUT_FD``.
The download threads read their tasks from the tasks pipe themselves (one
at a time, a batch each): no thread stands between the pipe and the
download.  The main thread reads the control pipe (the Hello, halts, and
answers to ``Call``), which must be read even while every download thread
is busy.
It decides nothing about a URL: its slot, its host's limits, retries and
records all stay with the parent.  It does only the HTTP and the file
(``transfer/download.py``), with a requests Session per thread, as a worker
thread of the parent would.

It ends when its parent closes the pipe, which the kernel does for a parent
that dies in any way (even SIGKILL): a worker never outlives its run.  Its
partial files are then removed, or, if it is killed too, left unlocked
with its process id in their names, which the next run's clean-up removes.
"""

from __future__ import annotations

import collections
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

from .._errors import translate
from .._memory import Trimmer
from .._run.attempt import still_saved
from ..transfer.download import Ask, Outcome, download, new_session
from ..transfer.lines import HangUps
from ..transfer.tempfiles import TempFiles
from ..transfer.validators import PartialFile
from .cores import keep_to, usable, worker_core
from .wire import Answer, Call, Done, Frames, Halt, Hello, Logged, PipeEnd, Task, ToParent, Watch
from .zygote import ignore_stop_signals

log = logging.getLogger("fetcher")

# Halted runs remembered, so that a task that crossed its run's halt on the pipe does not start.
_RUNS_KEPT = 1024

# How often a watched download's progress goes to the parent.
_WATCH_EVERY_S = 0.1

# The longest a child waits for the parent to say whether a partial file went on record.
_ANSWER_WAIT_S = 30.0


class _RunSide:
    """One run's stop, as this process sees it: the event its downloads check, and their hang-ups."""

    def __init__(self) -> None:
        self.halt = threading.Event()
        self.hang_ups = HangUps(self.halt)

    def stop(self) -> None:
        self.halt.set()
        self.hang_ups.hang_up_all()


class _Sent(logging.Handler):
    """Log records go back to the parent, which logs them as its own."""

    def __init__(self, put: Callable[[ToParent], None]) -> None:
        super().__init__()
        self._put = put

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._put(Logged(record.levelno, record.getMessage()))
        except Exception:  # a log record must never fail a download
            self.handleError(record)


class _Watcher:
    """A watched download's progress, sent to the parent's display at most every ``_WATCH_EVERY_S``."""

    def __init__(self, put: Callable[[ToParent], None], task: int) -> None:
        self._put = put
        self._task = task
        self._unsent = 0
        self._sent_at = time.monotonic()

    def advance(self, n: int) -> None:
        self._unsent += n
        if time.monotonic() - self._sent_at >= _WATCH_EVERY_S:
            self._put(Watch(self._task, advance=self._unsent))
            self._unsent, self._sent_at = 0, time.monotonic()

    def done(self) -> None:
        self._put(Watch(self._task, advance=self._unsent, done=True))
        self._unsent = 0


class _TempFiles(TempFiles):
    """TempFiles whose ``create`` the end of the process waits for.

    A file made but not yet listed when ``remove_all`` runs would be left
    behind: ``os._exit`` ends the thread that made it before it could list it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ending = threading.Lock()  # held by the end, for good

    def create(self, folder: Path) -> tuple[int, Path]:
        with self.ending:
            return super().create(folder)


class Child:
    """The worker process: a reader (the main thread) that hands tasks to the download threads."""

    def __init__(self, hello: Hello, control: PipeEnd, tasks: PipeEnd, outbox: PipeEnd,
                 at_end: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.config = hello.config
        self._at_end = at_end  # last, before the process exits
        self._threads = hello.threads
        self._control = control
        self._tasks_pipe = tasks  # kept: the pipe closes with it
        self._tasks_in = Frames(tasks.fileno())  # read by one thread at a time (_reading)
        self._outbox = outbox
        self._tasks: collections.deque[Task] = collections.deque()  # read, not started
        self._tasks_lock = threading.Lock()
        self._reading = threading.Lock()  # held by the one thread reading the tasks pipe
        self._out: list[ToParent] = []  # to send
        self._out_lock = threading.Lock()
        # Partial files not kept for a resume, handed to the parent in a Done not yet being sent: if this
        # process ends first, no one else knows of them (see _end).
        self._handing: set[Path] = set()
        self._sending = False
        self._temp_files = _TempFiles()
        self._trimmer = Trimmer()  # its own: the parent's lock may have been held when this process was forked
        self._lock = threading.Lock()
        self._runs: collections.OrderedDict[int, _RunSide] = collections.OrderedDict()
        self._calls: dict[int, tuple[threading.Event, list[bool]]] = {}
        self._call_ids = iter(range(1, sys.maxsize))
        log.setLevel(hello.log_level)
        log.propagate = False
        log.addHandler(_Sent(self.put))

    def run(self) -> None:
        self._outbox.send([])  # up: the parent hands tasks out from now on
        for i in range(self._threads):
            threading.Thread(target=self._work, name=f"fetcher-worker-{i}", daemon=True).start()
        self._read()

    def put(self, message: ToParent) -> None:
        """Send *message* to the parent, with any others waiting.

        No thread of its own: the thread that finds no send under way sends
        everything gathered, until none is left, so a batch forms whenever
        attempts end while a send is under way, and no hand-off is paid.
        """
        with self._out_lock:
            self._out.append(message)
            if self._sending:
                return
            self._sending = True
        while True:
            with self._out_lock:
                batch, self._out = self._out, []
                if not batch:
                    self._sending = False
                    return
                # From now the parent may have them, and may close this process the instant it does: _end
                # must not remove them then. A send that fails leaves them behind, named with this
                # process's id, for the next run's clean-up.
                if self._handing:  # rare: most attempts leave no partial file
                    for sent in batch:
                        if isinstance(sent, Done) and sent.outcome.partial is not None:
                            self._handing.discard(sent.outcome.partial.path)
            try:
                self._outbox.send(batch)
            except (OSError, ValueError):
                self._end()

    def _read(self) -> None:
        try:
            while True:
                for message in self._control.recv():
                    if isinstance(message, Halt):
                        self._run_side(message.run).stop()
                    elif isinstance(message, Answer):
                        with self._lock:
                            waiter = self._calls.pop(message.id, None)
                        if waiter is not None:
                            waiter[1].append(message.recorded)
                            waiter[0].set()
        except (EOFError, OSError):
            pass  # the parent is gone, or has closed the pipe: this process ends with it
        self._end()

    def _end(self) -> None:
        self._temp_files.ending.acquire()
        self._temp_files.remove_all()
        with self._out_lock:
            unsent = list(self._handing)
        for path in unsent:  # the parent never heard of them (a kept one is on record for a resume)
            path.unlink(missing_ok=True)
        if self._at_end is not None:
            self._at_end()
        os._exit(0)

    def _next_task(self) -> Task:
        """The next task: one read before, or else a batch read from the pipe now (by one thread at a time)."""
        while True:
            with self._tasks_lock:
                if self._tasks:
                    return self._tasks.popleft()
            with self._reading:
                with self._tasks_lock:
                    if self._tasks:  # another thread read a batch while this one waited to read
                        return self._tasks.popleft()
                try:
                    batches: list[list[Task]] = self._tasks_in.read()
                except (EOFError, OSError):
                    self._end()  # the parent is gone, or has closed the pipe
                tasks = [task for batch in batches for task in batch]
                if tasks:
                    with self._tasks_lock:
                        self._tasks.extend(tasks[1:])
                    self._trimmer.tick()
                    return tasks[0]

    def _work(self) -> None:
        session = new_session(self.config, sessions=self._threads)
        while True:
            task = self._next_task()
            try:
                outcome, kept = self._attempt(session, task)
            except BaseException as exc:  # a bug must not lose the URL: it becomes a failed attempt
                outcome, kept = Outcome(http_status=None, bytes=0, ttfb_s=None, download_s=None,
                                        error=translate(exc, task.entry.url)), False  # fmt: skip
            self.put(Done(task.id, outcome, kept))

    def _attempt(self, session: requests.Session, task: Task) -> tuple[Outcome, bool]:
        side = self._run_side(task.run)
        temp_files = self._temp_files
        if task.resume is not None and task.resume_kept:
            temp_files.keep(task.resume.path)
        remember = None
        if task.offer_partial:
            remember = lambda partial: self._ask_parent(task.id, partial)  # noqa: E731
        ask = Ask(saved=still_saved(task.saved, task.target, task.entry), resume=task.resume,
                  checksum=task.entry.checksum, remote_time=self.config.remote_time, on_resumable=remember,
                  deadline=task.deadline, stop_at=task.stop_at, on_stop=side.hang_ups.on_stop)  # fmt: skip
        watch = None
        if task.watched:
            def watch(url: str, name: str, total: int | None) -> _Watcher:
                self.put(Watch(task.id, name=name, total=total))
                return _Watcher(self.put, task.id)

        outcome = download(session, task.entry.url, task.target, config=self.config, temp_files=temp_files,
                           cancelled=side.halt, watch=watch, ask=ask)  # fmt: skip
        # The partial file is the parent's from here: it keeps it for a retry, or removes it.
        kept = False
        if outcome.partial is not None:
            kept = temp_files.is_kept(outcome.partial.path)
            if not kept:
                with self._out_lock:  # the parent's once the Done carrying it is sent
                    self._handing.add(outcome.partial.path)
            temp_files.forget(outcome.partial.path)
        if task.resume is not None and (outcome.partial is None or outcome.partial.path != task.resume.path):
            temp_files.forget(task.resume.path)
        return outcome, kept

    def _ask_parent(self, task: int, partial: PartialFile) -> bool:
        event, answer = threading.Event(), list[bool]()
        with self._lock:
            call = next(self._call_ids)
            self._calls[call] = (event, answer)
        self.put(Call(call, task, partial))
        if not event.wait(_ANSWER_WAIT_S):
            with self._lock:
                self._calls.pop(call, None)
            return False
        return bool(answer[0])

    def _run_side(self, run: int) -> _RunSide:
        with self._lock:
            side = self._runs.get(run)
            if side is None:
                side = self._runs[run] = _RunSide()
                if len(self._runs) > _RUNS_KEPT:
                    self._runs.popitem(last=False)
            return side


def main(argv: list[str]) -> None:
    ignore_stop_signals()
    serve(int(argv[1]), int(argv[2]), int(argv[3]))


def serve(control_fd: int, tasks_fd: int, outbox_fd: int, at_end: Callable[[], None] | None = None) -> None:
    """Be a worker process on these pipes, until the parent closes them (a forked worker starts here).

    *at_end* is called last, just before the process exits.
    """
    control, tasks, outbox = PipeEnd(control_fd), PipeEnd(tasks_fd), PipeEnd(outbox_fd)
    try:
        hello = control.recv()
    except (EOFError, OSError):
        return
    assert isinstance(hello, Hello)
    # On 2,000 small files, threads free to use both cores cost twice the CPU a URL (bench/README.md).
    keep_to(worker_core(hello.index, hello.cores or usable()))
    Child(hello, control, tasks, outbox, at_end).run()


if __name__ == "__main__":
    main(sys.argv)
