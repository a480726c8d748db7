"""The worker threads' pool: a session per thread, made when the thread first needs one."""

from __future__ import annotations

import logging
import threading

import pytest
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


def test_a_job_whose_thread_cannot_make_a_session_is_run_by_another_thread(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    def new_session() -> requests.Session:
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            raise RuntimeError("no session for the first thread")
        return requests.Session()

    pool = WorkerPool(2, new_session)
    try:
        job = Ran()
        with caplog.at_level(logging.ERROR, logger="fetcher"):
            pool.submit(job)
            assert job.done.wait(5)
        assert len(calls) == 2 and job.threads == [calls[1]] != [calls[0]]
        assert "could not make its session" in caplog.text
    finally:
        pool.shutdown(wait_s=5)
