"""Which core each process of a long list's run keeps its threads to.

Threads of one process that run on two cores hand the GIL across cores at
every blocking call, and each hand-over wakes the other core.  A worker
keeps its threads to one core of its own (``worker_core``); the deciding
process, whose four threads (feeding, dispatching, receiving, the caller's
loop) pass every URL among themselves, keeps them to one core too
(``parent_core``): the one after the workers', which is a free core when
there are fewer workers than cores.  On 2,000 small files with two workers
that took 5 % off the run's CPU (bench/README.md, stop 31).  The ``fetcher``
command does it for its main thread; a library caller's threads are its own.

Linux only; elsewhere, or where the process may use one core, nothing is kept.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def usable() -> tuple[int, ...]:
    """The cores the calling thread may use, in order; empty where the system does not say."""
    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return ()


def worker_core(index: int, cores: tuple[int, ...]) -> int | None:
    """The core of the *index*-th worker process (0 first) among *cores*; None where there is no choice."""
    return cores[index % len(cores)] if len(cores) > 1 else None


def parent_core(workers: int, cores: tuple[int, ...] | None = None) -> int | None:
    """The core of the deciding process's threads when *workers* processes download among *cores* (by
    default, those this thread may use); None without workers."""
    cores = usable() if cores is None else cores
    return cores[workers % len(cores)] if workers > 0 and len(cores) > 1 else None


def keep_to(core: int | None) -> None:
    """Keep the calling thread, and the threads it starts from now on, to *core* (None: leave it be)."""
    if core is None:
        return
    try:
        os.sched_setaffinity(0, {core})  # 0: the calling thread, on Linux
    except (AttributeError, OSError):
        pass  # not allowed, or no such call: the threads go where the scheduler puts them


@contextlib.contextmanager
def kept_to(core: int | None) -> Iterator[None]:
    """While the block runs, the calling thread (and each thread it starts) keeps to *core*; as before after."""
    if core is None:
        yield
        return
    try:
        before = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        yield
        return
    keep_to(core)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, before)
