"""The worker threads' pool: a session per thread, made when the thread first needs one."""

from __future__ import annotations

import logging
import threading

import requests

from fetcher._pool import WorkerPool


class Ran:
    """A job that notes the thread it ran in."""

    def __init__(self) -> None:
        self.threads: list[str] = []
        self.done = threading.Event()

    def __call__(self, session: requests.Session) -> None:
        self.threads.append(threading.current_thread().name)
        self.done.set()


def test_a_thread_makes_its_session_for_its_first_job_not_when_it_starts() -> None:
    made: list[requests.Session] = []

    def new_session() -> requests.Session:
        made.append(requests.Session())
        return made[-1]

    pool = WorkerPool(2, new_session)
    try:
        assert made == []
        job = Ran()
        pool.submit(job)
        assert job.done.wait(5)
        assert len(made) == 1
    finally:
        assert pool.shutdown(wait_s=5)


class Kept(logging.Handler):
    """The messages logged to it (on the fetcher logger itself: a worker process's set-up, made in-process by
    other tests, stops it propagating)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_job_whose_thread_cannot_make_a_session_is_run_by_another_thread() -> None:
    calls: list[str] = []

    def new_session() -> requests.Session:
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            raise RuntimeError("no session for the first thread")
        return requests.Session()

    kept, logger = Kept(), logging.getLogger("fetcher")
    logger.addHandler(kept)
    pool = WorkerPool(2, new_session)
    try:
        job = Ran()
        pool.submit(job)
        assert job.done.wait(5)
        assert len(calls) == 2 and job.threads == [calls[1]] != [calls[0]]
        assert kept.messages == ["a fetcher worker thread could not make its session"]
    finally:
        logger.removeHandler(kept)
        pool.shutdown(wait_s=5)
