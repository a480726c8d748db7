"""How many URLs a second the one dispatcher hands out, with workers that do no HTTP.

Usage::

    python bench/dispatch.py [--urls 200000] [--max 64] [--rounds 3] [--state] [--apart]

Runs the library's whole path for each URL in this process (the feeder reads
and names it, the dispatcher takes a slot and its host's permit and hands it
out, the settle step records it, the caller receives its Result in order),
but the hand-out completes at once with a 2-byte "ok" Outcome instead of a
download: what is measured is the parent's own cost per URL, the part that
stays in one process however many worker processes download.  URLs go to
50 hosts.  Prints URLs per second and CPU µs per URL (this process), the
median of ``--rounds``, and on Linux each thread's share: the feeder (reads,
de-duplicates and names each URL), the dispatcher (takes the slot and the
host's turn, hands out, settles), the state database's writer and the
caller's loop.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fetcher import Entry, Fetcher, open_url_list  # noqa: E402
from fetcher._run import apart as apart_module  # noqa: E402
from fetcher._run.attempt import Worker  # noqa: E402
from fetcher.transfer.download import Outcome  # noqa: E402
from fetcher.workers.cores import kept_to, usable  # noqa: E402


def _hand_out_at_once(self: Worker, job, slot, permit) -> bool:  # type: ignore[no-untyped-def]
    store = self._run.shared.state
    if store is not None:
        self._saved_record(job, store)  # as the real hand-out does: the record read ahead is taken
    started = self._started(job)
    if started is None:
        permit.release()
        slot.release()
        return True
    outcome = Outcome(http_status=200, bytes=2, ttfb_s=0.0, download_s=0.0, error=None, mtime_ns=1)
    self.finish(started, slot, permit, outcome, False)
    return True


class ThreadCPU:
    """CPU seconds of each of this process's threads, by kind, read from /proc every 50 ms (Linux only)."""

    KINDS = (("feeder", "fetcher-feed"), ("dispatcher", "fetcher-dispatch"), ("state writer", "fetcher-state-writer"),
             ("caller", "MainThread"))  # fmt: skip

    def __init__(self) -> None:
        self._seen: dict[int, tuple[str, float]] = {}  # thread id -> (name, CPU seconds)
        self._before: dict[int, float] = {}  # thread id -> CPU seconds when the block began
        self._stop = threading.Event()
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._thread = threading.Thread(target=self._sample_until_stopped, name="bench-sampler", daemon=True)

    def __enter__(self) -> ThreadCPU:
        if os.path.isdir("/proc/self/task"):
            self._sample()
            self._before = {tid: cpu for tid, (_, cpu) in self._seen.items()}  # the main thread's, so far
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _sample_until_stopped(self) -> None:
        while True:
            self._sample()
            if self._stop.wait(0.05):
                self._sample()
                return

    def _sample(self) -> None:
        names = {t.native_id: t.name for t in threading.enumerate()}
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            name = names.get(int(tid)) or self._seen.get(int(tid), ("?", 0.0))[0]
            self._seen[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / self._tick)

    def by_kind(self) -> dict[str, float]:
        """CPU seconds by kind of thread (the worker threads, idle here, are left out)."""
        totals = dict.fromkeys((kind for kind, _ in self.KINDS), 0.0)
        for tid, (name, cpu) in self._seen.items():
            for kind, prefix in self.KINDS:
                if re.match(re.escape(prefix), name):
                    totals[kind] += cpu - self._before.get(tid, 0.0)
        return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--urls", type=int, default=200_000)
    parser.add_argument("--max", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--state", action="store_true", help="with a state database (the CLI's default)")
    parser.add_argument("--apart", action="store_true",
                        help="the list from a file, with worker processes: a process of its own names it")  # fmt: skip
    args = parser.parse_args()
    Worker.hand_out = _hand_out_at_once  # type: ignore[method-assign]
    urls = [f"http://h{i % 50}.example/files/{i}.bin" for i in range(args.urls)]
    measure(urls, rounds=args.rounds, max_concurrent=args.max, state=args.state, apart=args.apart,
            what=f"--max {args.max}, state {'on' if args.state else 'off'}"
                 f"{', the feeder apart' if args.apart else ''}")  # fmt: skip


def measure(urls: list[str], *, rounds: int, max_concurrent: int, state: bool, what: str, apart: bool = False) -> None:
    """Fetch *urls* *rounds* times with the hand-out patched in; print each round and the medians.

    The run's threads keep to the first core, as the command keeps them with worker processes.  *apart*: the
    URLs come from a list file (as the command's), and the Fetcher has worker processes (idle: nothing is
    handed to them), so that the feeder's work goes to a process of its own; its CPU is counted apart.
    """
    rates, cpus, shares, feeders = [], [], [], []
    feeder_pids: list[int] = []
    if apart:
        started = apart_module.Apart.start

        def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
            made = started(*args, **kwargs)
            if made is not None:
                feeder_pids.append(made._process.pid)
            return made

        apart_module.Apart.start = recording  # type: ignore[method-assign]
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as dest, Fetcher(max_concurrent=max_concurrent, dest=dest, state=state,
                                                            workers=2 if apart else 0) as fetcher:  # fmt: skip
            items: Iterable[str | Entry] = urls
            if apart:
                listed = Path(dest) / "urls.txt"
                listed.write_text("\n".join(urls) + "\n")
                items = open_url_list(str(listed))
                items.length_hint = len(urls)
            with ThreadCPU() as threads, kept_to(0 if len(usable()) > 1 else None):
                wall, cpu = time.perf_counter(), time.process_time()
                count = sum(1 for _ in fetcher.fetch(items))
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            feeder = _cpu_of(feeder_pids.pop()) / count * 1e6 if apart and feeder_pids else 0.0
        assert count == len(urls)
        rates.append(count / wall)
        cpus.append(cpu / count * 1e6)
        feeders.append(feeder)
        shares.append({kind: seconds / count * 1e6 for kind, seconds in threads.by_kind().items()})
        if apart:
            shares[-1]["feeder process"] = feeder
        split = ", ".join(f"{kind} {us:.1f}" for kind, us in shares[-1].items() if us)
        print(f"  {count / wall:9,.0f} URLs/s  {cpu / count * 1e6:6.1f} µs CPU/URL  ({wall:.2f} s)"
              + (f"  [µs a URL: {split}]" if split else ""), flush=True)  # fmt: skip
    print(f"median: {statistics.median(rates):,.0f} URLs/s, {statistics.median(cpus):.1f} µs CPU per URL "
          f"({len(urls):,} URLs, {what})")
    if any(shares[0].values()):
        print("by thread, µs of CPU a URL (medians): " + ", ".join(
            f"{kind} {statistics.median(share[kind] for share in shares):.1f}" for kind in shares[0]))  # fmt: skip

def _cpu_of(pid: int) -> float:
    """CPU seconds of process *pid* (ended, not yet reaped: its parent reaps it when it ends), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
