"""The dispatcher: what it waits for before a long list's first slot, and when it takes a slot (the rest is
covered end to end in test_run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fetcher import Fetcher, LocalGate, Slot, Status
from fetcher._parts import usable_cores
from fetcher._run.attempt import LONG_LIST
from tests import server as srv

# The command in a child Python, which then says whether requests was ever imported in it.
_RUN_AND_TELL = """
import sys
from fetcher.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as end:
    code = end.code
print(code, "requests" in sys.modules)
"""


@pytest.mark.skipif(usable_cores() < 2, reason="worker processes start by default only with two cores or more")
def test_a_long_lists_first_urls_wait_for_the_worker_processes_rather_than_go_to_threads(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    # A URL given to a thread of the run's own process would import requests there.
    urls = [server.route(f"/f{n}", srv.body(b"x")) for n in range(LONG_LIST)]
    listed = tmp_path / "urls.txt"
    listed.write_text("\n".join(urls) + "\n")
    command = [sys.executable, "-c", _RUN_AND_TELL, str(listed), "-d", str(tmp_path / "out"), "-q", "--max", "4"]
    told = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert told.stdout.split() == ["0", "False"], told.stderr
    assert len(list((tmp_path / "out").glob("f[0-9]*"))) == LONG_LIST


class _CountedLocalGate(LocalGate):
    """The run's own kind of gate, counting the slots taken from it."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.taken = 0

    def acquire(self, timeout: float | None = None) -> Slot | None:
        slot = super().acquire(timeout)
        if slot is not None:
            self.taken += 1
        return slot


class _OtherGate:
    """A gate that is not a LocalGate, over a counted one."""

    def __init__(self, capacity: int) -> None:
        self.counted = _CountedLocalGate(capacity)
        self.capacity, self.waiting = capacity, 0

    @property
    def in_use(self) -> int:
        return self.counted.in_use

    def acquire(self, timeout: float | None = None) -> Slot | None:
        return self.counted.acquire(timeout)


def test_a_gate_of_another_kind_gives_a_slot_only_when_a_url_can_start(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    # The run's own LocalGate may give a slot in vain right after a start; a gate the caller gives
    # (or one shared with other processes) is asked only when some URL's host lets it start.
    urls = [server.route(f"/g{n}", srv.body(b"x")) for n in range(40)]
    gate = _OtherGate(8)
    with Fetcher(dest=tmp_path, state=False, gate=gate, max_concurrent=8, max_per_host=1) as fetcher:
        results = list(fetcher.fetch(urls))
    assert [r.status for r in results] == [Status.OK] * 40
    assert gate.counted.taken == 40


def test_a_host_at_its_cap_gets_few_free_slots_taken_in_vain(server: srv.LoopbackServer, tmp_path: Path) -> None:
    # One host capped below --max: a free slot right after each start would go back unused every time.
    urls = [server.route(f"/c{n}", srv.body(b"x")) for n in range(45)]
    gate = _CountedLocalGate(8)
    with Fetcher(dest=tmp_path, state=False, gate=gate, max_concurrent=8, max_per_host=1) as fetcher:
        results = list(fetcher.fetch(urls))
    assert [r.status for r in results] == [Status.OK] * 45
    assert 45 <= gate.taken <= 45 + 45 // 8 + 1
