"""fetcher.limits.shared: slots shared by processes through flock, the count agreed, the monitor's view."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fetcher._errors import ClosedError, ConfigError
from fetcher.limits import Gate
from fetcher.limits.shared import Holder, SharedGate, Waiter, default_directory, locate, read_slots
from tests.limits import wait_until

HELPER = Path(__file__).with_name("slot_holder.py")
ROOT = Path(__file__).resolve().parents[2]
JOIN_TIMEOUT = 10.0


def _helper(directory: Path, name: str, capacity: int, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, str(HELPER), str(directory), name, str(capacity), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.fixture
def helpers() -> Iterator[list[subprocess.Popen[str]]]:
    """Helper processes, killed and reaped whatever the test did."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(JOIN_TIMEOUT)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


def _expect_line(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdout is not None
    assert process.stdout.readline().strip() == line


def _cycle_together(
    tmp_path: Path, helpers: list[subprocess.Popen[str]], processes: int, *, capacity: int, threads: int, holds: int
) -> list[Path]:
    """Start *processes* helpers that each take a slot *holds* times for 10 ms on *threads* threads,
    let them go at once, wait for them; the files of their holds' "start end" lines."""
    outs = [tmp_path / f"spans{index}.txt" for index in range(processes)]
    for out in outs:
        helpers.append(_helper(tmp_path, "jobs", capacity, "cycle", str(threads), str(holds), "0.01", str(out)))
    for process in helpers:
        _expect_line(process, "ready")
    for process in helpers:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    for process in helpers:
        assert process.wait(JOIN_TIMEOUT) == 0
    return outs


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    # An end sorts before a start at the same instant: touching holds do not overlap.
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


class FakeTime:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


# -- one process ------------------------------------------------------------


def test_a_shared_gate_is_a_gate(tmp_path: Path) -> None:
    with SharedGate("jobs", 2, directory=tmp_path) as gate:
        assert isinstance(gate, Gate)
        assert (gate.capacity, gate.in_use, gate.waiting) == (2, 0, 0)


def test_acquire_and_release_in_one_process(tmp_path: Path) -> None:
    with SharedGate("jobs", 2, directory=tmp_path) as gate:
        slot = gate.acquire()
        assert slot is not None and slot.held
        assert gate.in_use == 1
        slot.release()
        assert not slot.held
        assert gate.in_use == 0


def test_a_full_gate_with_zero_timeout_gives_none(tmp_path: Path) -> None:
    with SharedGate("jobs", 2, directory=tmp_path) as gate:
        assert gate.acquire(timeout=0) is not None
        assert gate.acquire(timeout=0) is not None
        assert gate.acquire(timeout=0) is None
        assert gate.in_use == 2


def test_two_gates_in_one_process_share_the_slots(tmp_path: Path) -> None:
    with SharedGate("jobs", 1, directory=tmp_path) as first, SharedGate("jobs", 1, directory=tmp_path) as second:
        slot = first.acquire(timeout=0)
        assert slot is not None
        assert second.acquire(timeout=0) is None
        slot.release()
        assert second.acquire(timeout=0) is not None


def test_the_timeout_is_honoured_with_the_injected_clock(tmp_path: Path) -> None:
    fake = FakeTime()
    with SharedGate("jobs", 1, directory=tmp_path, poll_s=0.01, clock=fake.clock, sleep=fake.sleep) as gate:
        gate.acquire()
        began = time.monotonic()
        assert gate.acquire(timeout=0.05) is None
        assert time.monotonic() - began < 1.0
        assert sum(fake.slept) == pytest.approx(0.05)
        assert max(fake.slept) <= 0.01 + 1e-9
        assert gate.waiting == 0


def test_a_waiter_gets_a_slot_another_thread_releases(tmp_path: Path) -> None:
    with SharedGate("jobs", 1, directory=tmp_path, poll_s=0.002) as gate:
        slot = gate.acquire()
        assert slot is not None
        got: list[object] = []
        waiter = threading.Thread(target=lambda: got.append(gate.acquire(timeout=JOIN_TIMEOUT)), daemon=True)
        waiter.start()
        assert wait_until(lambda: gate.waiting == 1)
        slot.release()
        waiter.join(JOIN_TIMEOUT)
        assert got and got[0] is not None
        assert (gate.in_use, gate.waiting) == (1, 0)


def test_threads_of_one_process_never_exceed_the_capacity(tmp_path: Path) -> None:
    busy = most = 0
    count_lock = threading.Lock()
    with SharedGate("jobs", 3, directory=tmp_path, poll_s=0.001) as gate:

        def work() -> None:
            nonlocal busy, most
            for _ in range(20):
                slot = gate.acquire(timeout=JOIN_TIMEOUT)
                assert slot is not None
                with slot:
                    with count_lock:
                        busy += 1
                        most = max(most, busy)
                    time.sleep(0.001)
                    with count_lock:
                        busy -= 1

        threads = [threading.Thread(target=work, daemon=True) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(JOIN_TIMEOUT)
        assert not any(thread.is_alive() for thread in threads)
        assert most == 3
        assert (gate.in_use, gate.waiting) == (0, 0)


def test_releasing_twice_is_harmless(tmp_path: Path) -> None:
    with SharedGate("jobs", 1, directory=tmp_path) as gate:
        slot = gate.acquire()
        assert slot is not None
        slot.release()
        slot.release()
        again = gate.acquire(timeout=0)
        assert again is not None
        slot.release()  # the old slot object must not free the new holder's slot
        assert gate.acquire(timeout=0) is None


def test_closing_gives_the_slots_back_and_a_later_release_is_harmless(tmp_path: Path) -> None:
    gate = SharedGate("jobs", 1, directory=tmp_path)
    slot = gate.acquire()
    assert slot is not None
    gate.close()
    with SharedGate("jobs", 1, directory=tmp_path) as other:
        assert other.acquire(timeout=0) is not None
        slot.release()
        gate.close()
        assert other.acquire(timeout=0) is None


def test_acquire_after_close_raises(tmp_path: Path) -> None:
    gate = SharedGate("jobs", 1, directory=tmp_path)
    gate.close()
    with pytest.raises(ClosedError):
        gate.acquire(timeout=0)


def test_the_folders_are_made_private(tmp_path: Path) -> None:
    with SharedGate("jobs", 1, directory=tmp_path / "cache" / "slots"):
        pass
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "cache" / "slots" / "jobs").stat().st_mode & 0o777 == 0o700


def test_an_existing_folder_is_used_as_it_is(tmp_path: Path) -> None:
    folder = tmp_path / "jobs"
    folder.mkdir()
    folder.chmod(0o770)
    with SharedGate("jobs", 1, directory=tmp_path):
        pass
    assert folder.stat().st_mode & 0o777 == 0o770


@pytest.mark.parametrize("name", ["", ".hidden", "..", "a/b", "a b", "x" * 65, "é", "nul\0", None, 3])
def test_a_name_that_is_not_a_plain_file_name_is_refused(tmp_path: Path, name: object) -> None:
    with pytest.raises(ConfigError, match="plain file name"):
        SharedGate(name, 1, directory=tmp_path)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())


def test_a_plain_name_of_64_characters_is_accepted(tmp_path: Path) -> None:
    with SharedGate("a.b_c-" + "x" * 58, 1, directory=tmp_path) as gate:
        assert gate.capacity == 1


@pytest.mark.parametrize("capacity", [0, -1, True, 2.5, "3"])
def test_the_capacity_must_be_a_whole_number_of_at_least_one(tmp_path: Path, capacity: object) -> None:
    with pytest.raises(ConfigError, match="capacity"):
        SharedGate("jobs", capacity, directory=tmp_path)  # type: ignore[arg-type]


# -- the count agreed ---------------------------------------------------------


def test_a_second_user_with_another_count_is_refused_naming_both(tmp_path: Path) -> None:
    with SharedGate("jobs", 2, directory=tmp_path), pytest.raises(ConfigError) as refused:
        SharedGate("jobs", 3, directory=tmp_path)
    assert "'jobs' are in use with 2 slots; this run asks for 3" in str(refused.value)


def test_once_the_first_user_closed_another_count_is_accepted_and_fixed(tmp_path: Path) -> None:
    with SharedGate("jobs", 2, directory=tmp_path):
        pass
    with SharedGate("jobs", 3, directory=tmp_path) as gate:
        assert gate.capacity == 3
        with pytest.raises(ConfigError, match="in use with 3 slots; this run asks for 2"):
            SharedGate("jobs", 2, directory=tmp_path)


# -- several processes ------------------------------------------------------


@pytest.mark.parametrize(("processes", "threads", "capacity"), [(2, 2, 2), (4, 1, 3)])
def test_processes_together_never_exceed_the_capacity(
    tmp_path: Path, helpers: list[subprocess.Popen[str]], processes: int, threads: int, capacity: int
) -> None:
    outs = _cycle_together(tmp_path, helpers, processes, capacity=capacity, threads=threads, holds=8)
    spans = [tuple(map(float, line.split())) for out in outs for line in out.read_text().splitlines()]
    assert len(spans) == processes * threads * 8
    assert _max_overlap(spans) == capacity  # type: ignore[arg-type]


def test_a_killed_holders_slots_come_back_within_a_second(tmp_path: Path, helpers: list[subprocess.Popen[str]]) -> None:
    holder = _helper(tmp_path, "jobs", 2, "grab")
    helpers.append(holder)
    _expect_line(holder, "held")
    with SharedGate("jobs", 2, directory=tmp_path, poll_s=0.002) as gate:
        assert gate.acquire(timeout=0) is None
        killed = time.monotonic()
        os.kill(holder.pid, signal.SIGKILL)
        slot = gate.acquire(timeout=5.0)
        took = time.monotonic() - killed
        assert slot is not None
        assert took < 1.0


def test_read_slots_shows_another_process_holding_every_slot(
    tmp_path: Path, helpers: list[subprocess.Popen[str]]
) -> None:
    holder = _helper(tmp_path, "jobs", 2, "grab")
    helpers.append(holder)
    _expect_line(holder, "held")
    snapshot = read_slots("jobs", tmp_path)
    assert snapshot is not None
    assert [(h.slot, h.pid, h.url) for h in snapshot.holders] == [
        (0, holder.pid, "https://example.com/0"),
        (1, holder.pid, "https://example.com/1"),
    ]


# -- what the monitor sees --------------------------------------------------


def test_read_slots_of_an_unknown_name_is_none(tmp_path: Path) -> None:
    assert read_slots("nobody", tmp_path) is None


def test_read_slots_shows_the_holder_pid_and_url_after_describe(tmp_path: Path) -> None:
    with SharedGate("jobs", 3, directory=tmp_path) as gate:
        first, second = gate.acquire(), gate.acquire()
        assert first is not None and second is not None
        before = time.time()
        gate.describe(second, "https://example.com/b.txt")
        snapshot = read_slots("jobs", tmp_path)
    assert snapshot is not None
    assert (snapshot.name, snapshot.directory, snapshot.capacity, snapshot.waiters) == ("jobs", tmp_path, 3, ())
    assert [(h.slot, h.pid, h.url) for h in snapshot.holders] == [
        (0, os.getpid(), ""),
        (1, os.getpid(), "https://example.com/b.txt"),
    ]
    assert snapshot.holders[1].since is not None and snapshot.holders[1].since >= before - 1


def test_describe_never_records_a_password(tmp_path: Path) -> None:
    with SharedGate("jobs", 1, directory=tmp_path) as gate:
        slot = gate.acquire()
        assert slot is not None
        gate.describe(slot, "https://user:secret@example.com/a")
        assert "secret" not in (tmp_path / "jobs" / "slot.00").read_text()


def test_describe_of_a_released_slot_does_nothing(tmp_path: Path) -> None:
    with SharedGate("jobs", 1, directory=tmp_path) as gate:
        slot = gate.acquire()
        assert slot is not None
        slot.release()
        gate.describe(slot, "https://example.com/late")
        assert "late" not in (tmp_path / "jobs" / "slot.00").read_text()
    gate.describe(slot, "https://example.com/closed")


def test_a_released_slot_is_not_shown_held(tmp_path: Path) -> None:
    with SharedGate("jobs", 2, directory=tmp_path) as gate:
        slot = gate.acquire()
        assert slot is not None
        gate.describe(slot, "https://example.com/a")
        slot.release()
        snapshot = read_slots("jobs", tmp_path)
    assert snapshot is not None and snapshot.holders == ()


def test_read_slots_shows_waiters_with_their_count(tmp_path: Path) -> None:
    with SharedGate("jobs", 1, directory=tmp_path, poll_s=0.002) as gate:
        slot = gate.acquire()
        assert slot is not None
        got: list[object] = []
        threads = [
            threading.Thread(target=lambda: got.append(gate.acquire(timeout=JOIN_TIMEOUT)), daemon=True)
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()

        def two_waiting() -> bool:
            snapshot = read_slots("jobs", tmp_path)
            return snapshot is not None and [(w.pid, w.waiting) for w in snapshot.waiters] == [(os.getpid(), 2)]

        assert wait_until(two_waiting)
        slot.release()
        assert wait_until(lambda: len(got) == 1)
        assert got[0] is not None
        got[0].release()  # type: ignore[attr-defined]
        for thread in threads:
            thread.join(JOIN_TIMEOUT)
        assert len(got) == 2 and gate.waiting == 0
        snapshot = read_slots("jobs", tmp_path)
    assert snapshot is not None and snapshot.waiters == ()
    assert not list((tmp_path / "jobs").glob("wait.*"))


def test_read_slots_ignores_stale_files_and_a_new_gate_removes_them(tmp_path: Path) -> None:
    with SharedGate("jobs", 2, directory=tmp_path):
        pass
    folder = tmp_path / "jobs"
    (folder / "slot.00").write_text(json.dumps({"pid": 4242, "url": "https://example.com/old", "since": 1.0}))
    (folder / "wait.4242").write_text(json.dumps({"pid": 4242, "waiting": 3, "since": 1.0}))
    snapshot = read_slots("jobs", tmp_path)
    assert snapshot is not None
    assert (snapshot.holders, snapshot.waiters) == ((), ())
    with SharedGate("jobs", 2, directory=tmp_path):
        assert not (folder / "wait.4242").exists()


def test_read_slots_survives_garbage_in_a_slot_file(tmp_path: Path) -> None:
    with SharedGate("jobs", 2, directory=tmp_path) as gate:
        assert gate.acquire() is not None and gate.acquire() is not None
        (tmp_path / "jobs" / "slot.00").write_bytes(b"\xff\x00not json")
        (tmp_path / "jobs" / "slot.01").write_text('{"pid": true, "url": 7, "since": "soon"}')
        snapshot = read_slots("jobs", tmp_path)
    assert snapshot is not None
    assert snapshot.holders == (
        Holder(slot=0, pid=None, url="", since=None),
        Holder(slot=1, pid=None, url="", since=None),
    )


def test_read_slots_without_a_readable_count_still_lists_the_slot_files(tmp_path: Path) -> None:
    with SharedGate("jobs", 2, directory=tmp_path) as gate:
        slot = gate.acquire()
        assert slot is not None
        (tmp_path / "jobs" / "capacity").write_text("many\n")
        snapshot = read_slots("jobs", tmp_path)
    assert snapshot is not None
    assert snapshot.capacity is None
    assert [h.slot for h in snapshot.holders] == [0]


def test_a_waiter_shows_at_least_one_thread_when_its_file_is_unreadable(tmp_path: Path) -> None:
    with SharedGate("jobs", 1, directory=tmp_path, poll_s=0.002) as gate:
        slot = gate.acquire()
        assert slot is not None
        waiter = threading.Thread(target=lambda: gate.acquire(timeout=JOIN_TIMEOUT), daemon=True)
        waiter.start()
        wait_file = tmp_path / "jobs" / f"wait.{os.getpid()}"
        # Until it shows: the file is made a moment before it is locked, and a file not locked is a dead waiter's.
        assert wait_until(lambda: bool(getattr(read_slots("jobs", tmp_path), "waiters", ())))
        wait_file.write_text("garbage")
        snapshot = read_slots("jobs", tmp_path)
        slot.release()
        waiter.join(JOIN_TIMEOUT)
    assert snapshot is not None
    assert snapshot.waiters == (Waiter(pid=os.getpid(), waiting=1, since=None),)


# -- the default folder -----------------------------------------------------


def test_the_default_folder_is_in_the_xdg_cache() -> None:
    assert default_directory({"XDG_CACHE_HOME": "/c", "HOME": "/h"}) == Path("/c/fetcher/slots")


def test_the_default_folder_falls_back_on_home() -> None:
    assert default_directory({"HOME": "/h"}) == Path("/h/.cache/fetcher/slots")
    assert default_directory({"XDG_CACHE_HOME": "relative", "HOME": "/h"}) == Path("/h/.cache/fetcher/slots")


def test_the_default_folder_needs_home_or_xdg_cache() -> None:
    with pytest.raises(ConfigError, match="HOME"):
        default_directory({})


def test_a_plain_name_is_located_in_the_default_folder() -> None:
    assert locate("jobs", {"HOME": "/h"}) == ("jobs", Path("/h/.cache/fetcher/slots/"))


def test_a_path_names_the_slots_folder_itself() -> None:
    assert locate("/srv/slots/jobs", {}) == ("jobs", Path("/srv/slots"))
    assert locate("here/jobs/", {}) == ("jobs", Path("here"))


@pytest.mark.parametrize("value", ["/", "/srv/.hidden", "a b"])
def test_a_located_name_must_still_be_a_plain_file_name(value: str) -> None:
    with pytest.raises(ConfigError, match="plain file name"):
        locate(value, {"HOME": "/h"})


def test_a_process_that_gives_a_slot_back_does_not_take_it_again_while_another_waits(
    tmp_path: Path, helpers: list[subprocess.Popen[str]]
) -> None:
    # One slot, two processes, each taking it 30 times in a row for 10 ms: taking it back at
    # once, the first to start would do all 30 before the other got one.
    outs = _cycle_together(tmp_path, helpers, 2, capacity=1, threads=1, holds=30)
    holds = sorted(
        (float(line.split()[0]), index) for index, out in enumerate(outs) for line in out.read_text().splitlines()
    )
    first_half = [index for _, index in holds[:30]]
    assert min(first_half.count(0), first_half.count(1)) >= 8, first_half


def test_a_process_whose_wait_timed_out_stops_showing_as_waiting_soon_after(tmp_path: Path) -> None:
    with SharedGate("jobs", 1, directory=tmp_path) as gate:
        slot = gate.acquire(timeout=0)
        assert slot is not None
        assert gate.acquire(timeout=0.2) is None  # long enough to show as waiting
        snapshot = read_slots("jobs", tmp_path)
        assert snapshot is not None and [w.pid for w in snapshot.waiters] == [os.getpid()]  # it may try again
        time.sleep(0.6)
        snapshot = read_slots("jobs", tmp_path)
        assert snapshot is not None and snapshot.waiters == ()
        slot.release()
