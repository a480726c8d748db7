"""fetcher._gate: LocalGate (a counting semaphore with readable counts) and Slot."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from fetcher.limits import Gate, LocalGate, Slot
from tests.limits import wait_until

JOIN_TIMEOUT = 10.0


def _start(target: Callable[[], None], count: int = 1) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads)


@pytest.mark.parametrize("capacity", [0, -1, True, False, 2.5, "3", None])
def test_capacity_must_be_a_whole_number_of_at_least_one(capacity: object) -> None:
    with pytest.raises(ValueError):
        LocalGate(capacity)  # type: ignore[arg-type]


def test_new_gate_reports_its_capacity_and_no_use() -> None:
    gate = LocalGate(4)
    assert (gate.capacity, gate.in_use, gate.waiting) == (4, 0, 0)


def test_acquire_returns_a_held_slot() -> None:
    gate = LocalGate(2)
    slot = gate.acquire()
    assert isinstance(slot, Slot)
    assert slot.held
    assert gate.in_use == 1


def test_release_gives_the_slot_back() -> None:
    gate = LocalGate(1)
    slot = gate.acquire()
    assert slot is not None
    slot.release()
    assert not slot.held
    assert gate.in_use == 0


def test_acquire_with_zero_timeout_on_a_full_gate_returns_none_immediately() -> None:
    gate = LocalGate(1)
    gate.acquire()
    began = time.monotonic()
    assert gate.acquire(timeout=0) is None
    assert time.monotonic() - began < 1.0


def test_acquire_with_negative_timeout_on_a_full_gate_returns_none() -> None:
    gate = LocalGate(1)
    gate.acquire()
    assert gate.acquire(timeout=-5) is None


def test_acquire_with_a_timeout_on_a_full_gate_gives_up_after_the_timeout() -> None:
    gate = LocalGate(1)
    gate.acquire()
    began = time.monotonic()
    assert gate.acquire(timeout=0.2) is None
    assert 0.15 <= time.monotonic() - began < 2.0


def test_failed_acquire_leaves_no_waiter_and_no_slot_in_use_behind() -> None:
    gate = LocalGate(1)
    gate.acquire()
    gate.acquire(timeout=0.01)
    assert (gate.in_use, gate.waiting) == (1, 0)


def test_double_release_does_not_free_a_second_slot() -> None:
    gate = LocalGate(1)
    slot = gate.acquire()
    assert slot is not None
    slot.release()
    slot.release()
    assert gate.in_use == 0
    assert gate.acquire(timeout=0) is not None
    assert gate.acquire(timeout=0) is None
    assert gate.in_use == 1


def test_with_block_releases_the_slot_on_exception() -> None:
    gate = LocalGate(1)
    slot = gate.acquire()
    assert slot is not None
    with pytest.raises(RuntimeError), slot:
        raise RuntimeError("boom")
    assert not slot.held
    assert gate.in_use == 0


def test_counts_are_right_while_threads_are_blocked() -> None:
    gate = LocalGate(1)
    held = gate.acquire()
    assert held is not None
    outcomes: list[bool] = []

    def waiter() -> None:
        slot = gate.acquire(timeout=JOIN_TIMEOUT)
        outcomes.append(slot is not None)
        if slot is not None:
            slot.release()

    threads = _start(waiter, count=2)
    try:
        assert wait_until(lambda: gate.waiting == 2)
        assert gate.in_use == 1
    finally:
        held.release()
        _join(threads)
    assert outcomes == [True, True]
    assert (gate.in_use, gate.waiting) == (0, 0)


def test_a_waiter_wakes_when_a_slot_is_released() -> None:
    gate = LocalGate(1)
    held = gate.acquire()
    assert held is not None
    got_slot = threading.Event()

    def waiter() -> None:
        slot = gate.acquire(timeout=JOIN_TIMEOUT)
        if slot is not None:
            got_slot.set()
            slot.release()

    threads = _start(waiter)
    try:
        assert wait_until(lambda: gate.waiting == 1)
        assert not got_slot.is_set()
    finally:
        held.release()
    assert got_slot.wait(timeout=5.0)
    _join(threads)


def test_concurrent_holders_never_exceed_capacity_and_reach_it() -> None:
    gate = LocalGate(3)
    lock = threading.Lock()
    state = {"now": 0, "peak": 0, "failures": 0}

    def worker() -> None:
        for _ in range(50):
            slot = gate.acquire(timeout=JOIN_TIMEOUT)
            if slot is None:
                with lock:
                    state["failures"] += 1
                return
            with slot:
                with lock:
                    state["now"] += 1
                    state["peak"] = max(state["peak"], state["now"])
                time.sleep(0.002)
                with lock:
                    state["now"] -= 1

    _join(_start(worker, count=8))
    assert state["failures"] == 0
    assert state["peak"] == 3
    assert (gate.in_use, gate.waiting) == (0, 0)


def test_local_gate_satisfies_the_gate_protocol() -> None:
    assert isinstance(LocalGate(1), Gate)
