"""Peak memory of a command and every process it starts, as Linux counts it.

Usage::

    python bench/tree_memory.py [--every 0.5] -- COMMAND [ARG...]

Runs COMMAND and samples ``/proc/PID/smaps_rollup`` of it and of all its
descendants every ``--every`` seconds until it exits.  Prints the peak of the
tree's total PSS (each shared page split between the processes that share
it: the figure that adds up) and of the sum of RSS (shared pages counted in
every process), then each process's own peaks, by its name (``fetcher``,
``fetcher-worker``).  ``--trace N`` also prints the tree's PSS every N
seconds.  The exit status is COMMAND's.  Linux only.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

_PROC = Path("/proc")


def descendants(root: int) -> list[int]:
    """*root* and every process below it, now."""
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def pss_rss_kib(pid: int) -> tuple[int, int] | None:
    """(PSS, RSS) of *pid* in KiB; None if it is gone."""
    values = {}
    try:
        for line in (_PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("Pss", "Rss"):
                values[key] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return values.get("Pss", 0), values.get("Rss", 0)


def name_of(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--every", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--trace", type=float, default=0.0, help="also print the tree's PSS every this many seconds")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    began = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak_pss = peak_rss = 0
    traced_at = began
    per_process: dict[tuple[int, str], tuple[int, int]] = {}
    while process.poll() is None:
        total_pss = total_rss = 0
        for pid in descendants(process.pid):
            sample = pss_rss_kib(pid)
            if sample is None:
                continue
            total_pss += sample[0]
            total_rss += sample[1]
            key = (pid, name_of(pid))
            seen = per_process.get(key, (0, 0))
            per_process[key] = (max(seen[0], sample[0]), max(seen[1], sample[1]))
        peak_pss, peak_rss = max(peak_pss, total_pss), max(peak_rss, total_rss)
        if args.trace and time.monotonic() - traced_at >= args.trace:
            traced_at = time.monotonic()
            print(f"{traced_at - began:7.1f} s  {total_pss / 1024:6.1f} MiB PSS", flush=True)
        time.sleep(args.every)
    print(f"exit {process.returncode}, {time.monotonic() - began:.1f} s; peak over the tree: "
          f"{peak_pss / 1024:.1f} MiB PSS, {peak_rss / 1024:.1f} MiB as a sum of RSS")  # fmt: skip
    for (pid, name), (pss, rss) in sorted(per_process.items()):
        print(f"  {pid} {name}: peak {pss / 1024:.1f} MiB PSS, {rss / 1024:.1f} MiB RSS")
    return process.returncode


if __name__ == "__main__":
    sys.exit(main())
