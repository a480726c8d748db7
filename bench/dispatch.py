"""How many URLs a second the one dispatcher hands out, with workers that do no HTTP.

Usage::

    python bench/dispatch.py [--urls 200000] [--max 64] [--rounds 3] [--state]

Runs the library's whole path for each URL in this process (the feeder reads
and names it, the dispatcher takes a slot and its host's permit and hands it
out, the settle step records it, the caller receives its Result in order),
but the hand-out completes at once with a 2-byte "ok" Outcome instead of a
download: what is measured is the parent's own cost per URL, the part that
stays in one process however many worker processes download.  URLs go to
50 hosts.  Prints URLs per second and CPU µs per URL (this process), the
median of ``--rounds``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fetcher import Fetcher  # noqa: E402
from fetcher._run.attempt import Worker  # noqa: E402
from fetcher.transfer.download import Outcome  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--urls", type=int, default=200_000)
    parser.add_argument("--max", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--state", action="store_true", help="with a state database (the CLI's default)")
    args = parser.parse_args()
    Worker.hand_out = _hand_out_at_once  # type: ignore[method-assign]
    urls = [f"http://h{i % 50}.example/files/{i}.bin" for i in range(args.urls)]
    rates, cpus = [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as dest, Fetcher(max_concurrent=args.max, dest=dest,
                                                            state=args.state, workers=0) as fetcher:
            wall, cpu = time.perf_counter(), time.process_time()
            count = sum(1 for _ in fetcher.fetch(urls))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert count == len(urls)
        rates.append(count / wall)
        cpus.append(cpu / count * 1e6)
        print(f"  {count / wall:9,.0f} URLs/s  {cpu / count * 1e6:6.1f} µs CPU/URL  ({wall:.2f} s)", flush=True)
    print(f"median: {statistics.median(rates):,.0f} URLs/s, {statistics.median(cpus):.1f} µs CPU per URL "
          f"({args.urls:,} URLs, --max {args.max}, state {'on' if args.state else 'off'})")


if __name__ == "__main__":
    main()
