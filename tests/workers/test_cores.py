"""fetcher.workers.cores: each worker keeps to a core of its own, the deciding process to the one after them."""

from __future__ import annotations

import os
import threading

import pytest

from fetcher.workers.cores import kept_to, parent_core, usable, worker_core

TWO_CORES = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to choose from")


def test_each_worker_takes_the_next_core_in_turn() -> None:
    assert [worker_core(index, (0, 1)) for index in range(3)] == [0, 1, 0]


def test_with_one_core_there_is_no_choice_to_make() -> None:
    assert (worker_core(0, (3,)), worker_core(0, ()), parent_core(2, (3,))) == (None, None, None)


def test_the_deciding_process_takes_the_core_after_the_workers() -> None:
    assert (parent_core(1, (0, 1)), parent_core(2, (0, 1)), parent_core(3, (4, 5, 6, 7))) == (1, 0, 7)


def test_without_workers_the_deciding_process_keeps_every_core() -> None:
    assert parent_core(0, (0, 1)) is None


@TWO_CORES
def test_kept_to_holds_the_thread_and_the_threads_it_starts_then_gives_every_core_back() -> None:
    before = os.sched_getaffinity(0)
    core = usable()[1]
    seen: list[set[int]] = []
    with kept_to(core):
        inside = os.sched_getaffinity(0)
        started = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0)))
        started.start()
        started.join(10)
    assert (inside, seen, os.sched_getaffinity(0)) == ({core}, [{core}], before)


def test_kept_to_none_changes_nothing() -> None:
    before = os.sched_getaffinity(0)
    with kept_to(None):
        assert os.sched_getaffinity(0) == before
