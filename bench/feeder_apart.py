"""What the one deciding process would hand out with its feeder in a process of its own: a prototype, measured.

Usage::

    taskset -c 0 python bench/feeder_apart.py [--urls 100000] [--rounds 3] [--state] [--apart]

As ``bench/dispatch.py`` (workers that do no HTTP, 50 hosts, the deciding
process pinned by ``taskset``), but with ``--apart`` the feeder thread's
work per URL (reading it, checking it, finding duplicates, its host and
its file name) is done by a forked process on another core, which sends
the results in batches of 1,024 over a pipe; the feeder thread only makes
each ``Job`` and queues it.  Prints URLs per second, CPU µs a URL of the
deciding process and each thread's share, the median of ``--rounds``.

A measurement, not a design: the process here names with its own
``Namer`` and claims no name in the state database (a real one would
claim them itself, on its own connection), and it knows nothing of
``out=``, checksums, invalid lines, ``--skip-existing``, acquire timeouts
or a cluster's names.  What it shows is what is left in the deciding
process once the feeder's work is elsewhere.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pickle
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dispatch  # noqa: E402

from fetcher._naming import Namer, name_key  # noqa: E402
from fetcher._run import feeder  # noqa: E402
from fetcher._run.attempt import Worker  # noqa: E402
from fetcher._run.jobs import End, Failed, Job, now  # noqa: E402
from fetcher._urllist import Entry  # noqa: E402
from fetcher._urls import check_url, host_key  # noqa: E402

BATCH = 1024


def _produce(urls: list[str], out: Connection) -> None:
    """The feeder's work per URL, on a core the deciding process does not use."""
    others = set(range(os.cpu_count() or 1)) - os.sched_getaffinity(0)
    if others:
        os.sched_setaffinity(0, others)
    namer, seen, batch = Namer(), set(), []
    for line, url in enumerate(urls, start=1):
        key = url if check_url(url) else name_key(url)
        if key in seen:
            continue
        seen.add(key)
        batch.append((line, url, host_key(url), namer.name_for(url, key=key)))
        if len(batch) == BATCH:
            out.send_bytes(pickle.dumps(batch))
            batch = []
    out.send_bytes(pickle.dumps(batch))
    out.send_bytes(pickle.dumps(None))


def _feed_from_apart(urls: list[str]):  # type: ignore[no-untyped-def]
    def feed(self: feeder.Feeder) -> None:
        run, seq = self._run, 0
        receiving, sending = multiprocessing.Pipe(duplex=False)
        process = multiprocessing.get_context("fork").Process(target=_produce, args=(urls, sending))
        process.start()
        sending.close()
        dest = run.shared.dest
        try:
            while (batch := pickle.loads(receiving.recv_bytes())) is not None:
                for line, url, host, name in batch:
                    if not self.window.take(run.cancelled):
                        return
                    with run.lock:
                        run.waiting += 1
                    job = Job(seq=seq, entry=Entry(url=url, line=line), target=dest / name, host=host,
                              ready=time.monotonic(), ready_at=now(), expires=None)  # fmt: skip
                    run.schedule.put(job, host, seq=seq, expires=None)
                    seq += 1
                    run.fed = seq
        except BaseException as exc:
            run.results.put(Failed(exc))
        finally:
            run.results.put(End(seq))
            process.join()

    return feed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--urls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--state", action="store_true", help="with a state database (the CLI's default)")
    parser.add_argument("--apart", action="store_true", help="the feeder's work in a process of its own")
    args = parser.parse_args()
    Worker.hand_out = dispatch._hand_out_at_once  # type: ignore[method-assign]
    urls = [f"http://h{i % 50}.example/files/{i}.bin" for i in range(args.urls)]
    if args.apart:
        feeder.Feeder.feed = _feed_from_apart(urls)  # type: ignore[method-assign]
    dispatch.measure(urls, rounds=args.rounds, max_concurrent=64, state=args.state,
                     what=f"state {'on' if args.state else 'off'}, feeder {'apart' if args.apart else 'a thread'}")

if __name__ == "__main__":
    main()
