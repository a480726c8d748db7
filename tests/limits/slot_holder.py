"""A separate process for tests/limits/test_shared.py: it opens shared slots and uses them.

python slot_holder.py DIRECTORY NAME CAPACITY cycle THREADS HOLDS HOLD_S OUT
    Print "ready", wait for a line on stdin, then let THREADS threads each
    take a slot HOLDS times for HOLD_S seconds; write one "start end" line
    (time.monotonic, the same clock in every process) per hold to OUT.
python slot_holder.py DIRECTORY NAME CAPACITY grab
    Take every slot, describe each, print "held", then sleep until killed.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from fetcher.limits.shared import SharedGate

#: No helper outlives a test that forgot it.
LIFETIME_S = 30.0


def _cycle(gate: SharedGate, threads: int, holds: int, hold_s: float, out: Path) -> None:
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(holds):
            slot = gate.acquire(timeout=LIFETIME_S)
            assert slot is not None
            with slot:
                start = time.monotonic()
                time.sleep(hold_s)
                end = time.monotonic()
            with lock:
                spans.append((start, end))

    print("ready", flush=True)
    sys.stdin.readline()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(LIFETIME_S)
    out.write_text("".join(f"{start!r} {end!r}\n" for start, end in spans))


def _grab(gate: SharedGate) -> None:
    for number in range(gate.capacity):
        slot = gate.acquire(timeout=0)
        assert slot is not None
        gate.describe(slot, f"https://example.com/{number}")
    print("held", flush=True)
    time.sleep(LIFETIME_S)


def main(argv: list[str]) -> None:
    directory, name, capacity, mode, *rest = argv
    with SharedGate(name, int(capacity), directory=Path(directory), poll_s=0.002) as gate:
        if mode == "cycle":
            threads, holds, hold_s, out = rest
            _cycle(gate, int(threads), int(holds), float(hold_s), Path(out))
        else:
            _grab(gate)


if __name__ == "__main__":
    main(sys.argv[1:])
