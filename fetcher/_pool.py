"""A fixed pool of worker threads, each with its own requests.Session.

Why not ``concurrent.futures.ThreadPoolExecutor``: its threads are joined at
interpreter exit, so a worker blocked in a socket read would hold Ctrl-C up
for the whole read timeout.  These threads are daemons; the Fetcher cleans up
after any that are still stuck when it closes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests

log = logging.getLogger("fetcher")

Job = Callable[["requests.Session"], None]
_STOP = None


class WorkerPool:
    """*size* threads running jobs; each job gets the thread's own Session.

    One Session per thread because a Session is not safe to share between
    threads, and reusing it keeps connections alive between files.
    """

    def __init__(self, size: int, new_session: Callable[[], requests.Session]) -> None:
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._new_session = new_session
        self._lock = threading.Lock()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._work, name=f"fetcher-worker-{i}", daemon=True) for i in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Job) -> bool:
        """Queue *job*; False (and not queued) once the pool is shutting down."""
        with self._lock:
            if self._stopped:
                return False
            self._jobs.put(job)
            return True

    def shutdown(self, wait_s: float) -> bool:
        """Stop the threads after the queued jobs; True if all stopped in time."""
        with self._lock:
            self._stopped = True
            for _ in self._threads:
                self._jobs.put(_STOP)
        deadline = time.monotonic() + wait_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def _work(self) -> None:
        # Made for the thread's first job: a run whose downloads all go to worker processes makes none
        # (and never imports requests).
        session: requests.Session | None = None
        try:
            while (job := self._jobs.get()) is not _STOP:
                if session is None:
                    try:
                        session = self._new_session()
                    except Exception:
                        log.exception("a fetcher worker thread could not make its session")
                        self._jobs.put(job)  # for another thread; this one ends
                        return
                try:
                    job(session)
                except BaseException:  # a job must not kill its thread; it reports its own failures
                    log.exception("unexpected error in a fetcher worker")
        finally:
            if session is not None:
                session.close()
