"""Processes as Linux shows them in /proc: which are fetcher's worker processes, whether they are gone,
and which of them holds a client socket.  Every wait here is bounded."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

_PROC = Path("/proc")


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll *predicate* every 10 ms until it holds; False if *timeout* seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def workers_of(parent: int) -> list[int]:
    """The worker processes of *parent*: started afresh (``python -m fetcher.workers.child``, its children) or
    forked (named ``fetcher-worker``: the copy that forked them, its child, once it became the last worker,
    and the copy's children)."""
    processes = _processes()
    # The copy: still forking (fetcher-forker), or a worker itself now (fetcher-worker, the parent's child).
    copies = _forkers(parent, processes) | {
        pid for pid, (ppid, name, _, _) in processes.items() if ppid == parent and name == "fetcher-worker"
    }
    found = []
    for pid, (ppid, name, command, state) in processes.items():
        spawned = ppid == parent and b"fetcher.workers.child" in command
        forked = name == "fetcher-worker" and (pid in copies or ppid in copies)
        if (spawned or forked) and state != "Z":
            found.append(pid)
    return sorted(found)


def feeders_of(parent: int) -> list[int]:
    """*parent*'s feeder process (``fetcher/_run/apart.py``), forked by its copy (still forking, or a worker
    now), while it runs."""
    processes = _processes()
    copies = _forkers(parent, processes) | {
        pid for pid, (ppid, name, _, _) in processes.items() if ppid == parent and name == "fetcher-worker"
    }
    return sorted(pid for pid, (ppid, name, _, state) in processes.items()
                  if name == "fetcher-feeder" and ppid in copies and state != "Z")  # fmt: skip


def forkers_of(parent: int) -> list[int]:
    """*parent*'s children that are the copy forking its worker processes (``fetcher/workers/zygote.py``)."""
    return sorted(_forkers(parent, _processes()))


def _forkers(parent: int, processes: dict[int, tuple[int, str, bytes, str]]) -> set[int]:
    return {pid for pid, (ppid, name, _, _) in processes.items() if ppid == parent and name == "fetcher-forker"}


def _processes() -> dict[int, tuple[int, str, bytes, str]]:
    """Every process now: pid -> (parent, name, command line, state)."""
    processes = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        # The command name, in parentheses, may hold spaces: the fields after it are fixed.
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rpartition(")")[2].split()
        processes[int(entry.name)] = (int(fields[1]), name, command, fields[0])
    return processes


def alive(pid: int) -> bool:
    """Whether *pid* runs (a zombie, dead and not yet reaped, does not)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def all_gone(pids: Iterable[int], timeout: float = 5.0) -> bool:
    """Wait until none of *pids* runs; False if one still does after *timeout* seconds."""
    pids = list(pids)
    return wait_until(lambda: not any(alive(pid) for pid in pids), timeout)


def socket_owner(port: int, pids: Iterable[int]) -> int | None:
    """Which of *pids* holds the loopback TCP socket whose own port is *port* (a client's), if any."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (_PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rpartition(":")[2], 16) == port:
                inodes.add(fields[9])
    for pid in pids:
        try:
            descriptors = os.listdir(_PROC / str(pid) / "fd")
        except OSError:
            continue
        for fd in descriptors:
            try:
                target = os.readlink(_PROC / str(pid) / "fd" / fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return pid
    return None
