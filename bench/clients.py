"""CPU per request of Python HTTP clients, one thread, against nginx on loopback.

Usage::

    python bench/clients.py [--requests 2000] [--rounds 3] [--tmpdir /dev/shm] [--cpu 1]

Serves the (b) files (2 KiB each) with bench.py's nginx (a child process, so
its CPU is not counted here) and, in this one thread, GETs ``--requests`` of
them in turn with each client below, reading every body whole. Shown: this
thread's CPU (``time.thread_time``) per request, the median of ``--rounds``
rounds (the clients take turns within a round), and each round's figure.
Every client keeps one connection alive for the whole batch and is warmed up
with 100 requests first, so neither import nor connect is counted.

* ``requests.Session.get``: ``session.get(url).content``, a default Session
  (``trust_env`` on: proxy and netrc lookups on every request);
* the same with ``session.trust_env = False``, as fetcher sets it;
* urllib3 ``PoolManager.request``: ``pool.request("GET", url).data``;
* ``http.client``: one ``HTTPConnection``, ``request`` / ``getresponse`` /
  ``read``;
* fetcher's session (``new_session``): ``session.get(url).content``;
* fetcher's session + ``download()``: what a worker thread does per URL, the
  file included (a temporary file in ``--tmpdir``, locked, renamed, its time
  set), with a stop's hang-up registered as a run registers it.

``--cpu N`` pins this process to CPU N and nginx to the others, so that the
figures do not depend on whether the GIL and the server share a core (give
the same N to compare runs; the machine needs two CPUs).

Needs requests and urllib3 (the project's venv has them); Linux, nginx.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import requests
import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
import bench as B  # noqa: E402  (bench.py beside this file)
from fetcher._config import FetcherConfig  # noqa: E402  (this checkout's fetcher)
from fetcher.transfer.download import Ask, download, new_session  # noqa: E402
from fetcher.transfer.tempfiles import TempFiles  # noqa: E402

WARM_UP = 100

#: One GET of a URL; the size of the body it got.
Fetch = Callable[[str], int]


def requests_client(trust_env: bool) -> Fetch:
    session = requests.Session()
    session.trust_env = trust_env

    def fetch(url: str) -> int:
        return len(session.get(url).content)

    return fetch


def urllib3_client() -> Fetch:
    pool = urllib3.PoolManager()

    def fetch(url: str) -> int:
        return len(pool.request("GET", url).data)

    return fetch


def http_client_client(base_url: str) -> Fetch:
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)

    def fetch(url: str) -> int:
        conn.request("GET", urlsplit(url).path)
        return len(conn.getresponse().read())

    return fetch


def fetcher_session_client(dest: Path) -> Fetch:
    session = new_session(FetcherConfig(dest=dest))

    def fetch(url: str) -> int:
        return len(session.get(url).content)

    return fetch


def fetcher_download_client(dest: Path) -> Fetch:
    config = FetcherConfig(dest=dest)
    session, temp_files, cancelled = new_session(config), TempFiles(), threading.Event()
    lock = threading.Lock()
    hang_ups: dict[object, Callable[[], None]] = {}

    def forget(key: object) -> None:
        with lock:
            hang_ups.pop(key, None)

    def on_stop(hang_up: Callable[[], None]) -> Callable[[], None]:
        key = object()  # as the run registers each attempt's hang-up
        with lock:
            hang_ups[key] = hang_up
        return functools.partial(forget, key)

    ask = Ask(on_stop=on_stop)

    def fetch(url: str) -> int:
        name = url.rsplit("/", 1)[1]
        outcome = download(session, url, dest / name, config=config, temp_files=temp_files,
                           cancelled=cancelled, ask=ask)
        return -1 if outcome.error is not None else outcome.bytes

    return fetch


def measure(fetch: Fetch, urls: list[str], size: int) -> tuple[float, float]:
    """(CPU s, wall s) of this thread for one GET of each URL."""
    for url in urls[:WARM_UP]:
        fetch(url)
    cpu, wall = time.thread_time(), time.perf_counter()
    for url in urls:
        if fetch(url) != size:
            raise RuntimeError(f"{url}: short body")
    return time.thread_time() - cpu, time.perf_counter() - wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per client and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians are shown)")
    parser.add_argument("--tmpdir", type=Path, default=Path("/dev/shm"),
                        help="where the served files and fetcher's downloads go (default: %(default)s)")
    parser.add_argument("--cpu", type=int, default=None,
                        help="pin this process to this CPU and nginx to the others")
    args = parser.parse_args(argv)
    scenario = replace(B.SCENARIOS["b"], count=args.requests)
    work = Path(tempfile.mkdtemp(prefix="fetcher-clients-", dir=args.tmpdir))
    server = None
    try:
        B.generate_files(scenario, work / "www")
        server = B.NginxServer(work / "www", work / "nginx")
        if args.cpu is not None:
            others = os.sched_getaffinity(0) - {args.cpu}
            for pid in [server.proc.pid, *B.children_of(server.proc.pid)]:
                os.sched_setaffinity(pid, others or {args.cpu})
            os.sched_setaffinity(0, {args.cpu})
        urls = [f"{server.base_url}/{scenario.key}/{name}" for name in scenario.names()]
        out = work / "out"

        def into_new_folder(make: Callable[[Path], Fetch]) -> Fetch:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            return make(out)

        clients: dict[str, Callable[[], Fetch]] = {
            "requests.Session.get": lambda: requests_client(True),
            "requests.Session.get, trust_env=False": lambda: requests_client(False),
            "urllib3 PoolManager.request": urllib3_client,
            "http.client HTTPConnection": lambda: http_client_client(server.base_url),
            "fetcher's session (new_session().get)": lambda: into_new_folder(fetcher_session_client),
            "fetcher's session + download()": lambda: into_new_folder(fetcher_download_client),
        }
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
        for _ in range(args.rounds):
            for name, make in clients.items():
                results[name].append(measure(make(), urls, scenario.size))
        print(f"{args.requests:,} GETs of 2 KiB in one thread, {server.version} on "
              f"loopback, kept-alive connection; medians of {args.rounds} rounds; "
              f"load average {B.load_average():.2f}"
              + ("" if args.cpu is None else f"; pinned to CPU {args.cpu}, nginx to the others"))
        headers = ["client", "CPU ms/request", "wall ms/request", "each round (CPU ms/request)"]
        rows = []
        for name, figures in results.items():
            cpu = [c * 1000 / args.requests for c, _ in figures]
            wall = [w * 1000 / args.requests for _, w in figures]
            rows.append([name, f"{statistics.median(cpu):.3f}", f"{statistics.median(wall):.3f}",
                         " / ".join(f"{c:.3f}" for c in cpu)])
        print(B.format_table(headers, rows, frozenset({1, 2})))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
