"""Starting a worker process, forked by the zygote or else ``python -m fetcher.workers.child``, and waiting until
it is up."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from .._config import FetcherConfig
from .wire import Hello, PipeEnd, ToChild
from .zygote import Zygote

log = logging.getLogger("fetcher")


class Process(Protocol):
    """What the pool needs of a worker process: a ``subprocess.Popen``, or a forked one (``zygote.ForkedWorker``)."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...


@dataclass(eq=False)
class Child:
    """One worker process, as the pool sees it."""

    process: Process
    control: PipeEnd  # we write: Hello, Halt, Answer
    inbox: PipeEnd  # we write: batches of Tasks
    outbox: PipeEnd  # we read
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    control_lock: threading.Lock = field(default_factory=threading.Lock)
    waiting: list[ToChild] = field(default_factory=list)  # gathered, not sent yet
    out: int = 0  # tasks handed to it and not done
    alive: bool = True

    def close(self) -> None:
        """Close the pipes to it: it reads their end, removes its partial files and exits."""
        self.control.close()
        self.inbox.close()

    def tell(self, message: ToChild) -> None:
        """Send *message* on the control pipe, now (the child reads it even with every thread busy)."""
        with self.control_lock:
            if self.alive:
                try:
                    self.control.send([message])
                except (OSError, ValueError):
                    pass  # it died: the pool's receiving thread fails its tasks


def start(
    config: FetcherConfig, threads: int, index: int, zygote: Zygote | None, level: int | None = None,
    *, last: bool = False, cores: tuple[int, ...] = (),
) -> Child:
    """Start worker process *index*, with *threads* download threads, and send it its Hello; it sends
    back log records at *level* (by default, what the ``fetcher`` logger lets through here).

    It is forked by *zygote* when there is one, else started afresh.  *last*: no worker is asked for
    after this one, so the zygote becomes it.  *cores*: those the worker's core is chosen among.
    """
    if zygote is None:
        return spawn(config, threads, index, level, cores=cores)
    worker = zygote.start_worker(last=last)
    control, tasks, results = worker.fds
    return _hello(worker, control, tasks, results, config, threads, index, level, cores)


def spawn(
    config: FetcherConfig, threads: int, index: int, level: int | None = None, *, cores: tuple[int, ...] = ()
) -> Child:
    """Start worker process *index* afresh, with *threads* download threads, and send it its Hello."""
    # Pipes are not inherited by other processes (PEP 446): each is passed to its own child only.
    child_controls, parent_controls = os.pipe()
    child_reads, parent_writes = os.pipe()
    parent_reads, child_writes = os.pipe()
    env = dict(os.environ)
    # The child imports this very fetcher, wherever it was imported from.
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "fetcher.workers.child", str(child_controls), str(child_reads), str(child_writes)],
            pass_fds=(child_controls, child_reads, child_writes), env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    except BaseException:
        for fd in (parent_controls, parent_writes, parent_reads):
            os.close(fd)
        raise
    finally:
        # Only the child holds its ends now: when it dies, the parent reads EOF (and the other way round).
        for fd in (child_controls, child_reads, child_writes):
            os.close(fd)
    return _hello(process, parent_controls, parent_writes, parent_reads, config, threads, index, level, cores)


def _hello(
    process: Process, control_fd: int, tasks_fd: int, results_fd: int, config: FetcherConfig, threads: int,
    index: int, level: int | None, cores: tuple[int, ...] = (),
) -> Child:
    control, inbox, outbox = PipeEnd(control_fd), PipeEnd(tasks_fd), PipeEnd(results_fd)
    if level is None:
        level = logging.getLogger("fetcher").getEffectiveLevel()
    control.send(Hello(config, threads, level, index, cores))
    return Child(process, control, inbox, outbox)


def came_up(child: Child, deadline: float) -> bool:
    """Wait for *child*'s first message, an empty batch: it has read its Hello and takes tasks now."""
    try:
        if child.outbox.poll(max(0.0, deadline - time.monotonic())):
            child.outbox.recv()
            return True
    except (EOFError, OSError):
        pass  # it died on its way up
    log.warning("a worker process did not start; downloading without it")
    child.close()
    child.process.kill()
    child.process.wait()
    child.outbox.close()
    return False
