"""``fetcher slots NAME``: who holds the shared download slots NAME now, and who waits.

The operator's view of ``--shared-slots``, as the seeds' monitor printed a
semaphore's value: read-only, it never takes a slot.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING

import click

from .._text import escape
from .._units import format_duration
from .exits import EXIT_OK
from .params import Duration

if TYPE_CHECKING:
    from ..limits.shared import SlotsSnapshot


@click.command("slots", short_help="Show who holds the shared download slots NAME, and who waits.")
@click.argument("name", metavar="NAME")
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot as one JSON object.")
@click.option(
    "--watch",
    type=Duration(low=0.1, high=3600, examples="2, 0.5, 30s, 5m"),
    default=None,
    metavar="DURATION",
    help="Show it again every DURATION (2, 30s, 5m) until Ctrl-C.",
)
def slots(name: str, as_json: bool, watch: float | None) -> int:
    """Show who holds the shared download slots NAME (the --shared-slots of running fetchers) and who waits.

    NAME is what the fetchers were given: a plain name (kept in $XDG_CACHE_HOME/fetcher/slots,
    else ~/.cache/fetcher/slots), or a path to a folder.  Each holder shows its pid, since when
    and the URL it downloads.  Exit status 0, also when no fetcher uses NAME.
    """
    from ..limits.shared import locate, read_slots  # the one command that reads shared slots; not every start

    set_name, folder = locate(name, os.environ)
    try:
        while True:
            snapshot = read_slots(set_name, folder)
            if as_json:
                click.echo(json.dumps(_as_record(set_name, folder / set_name, snapshot)))
            else:
                click.echo(_as_text(set_name, folder / set_name, snapshot, now=time.time()))
            if watch is None:
                return EXIT_OK
            sys.stdout.flush()
            time.sleep(watch)
            if not as_json:
                click.echo()
    except KeyboardInterrupt:
        return EXIT_OK  # the way to end --watch


def _as_text(name: str, where: os.PathLike[str], snapshot: SlotsSnapshot | None, *, now: float) -> str:
    label = f"shared slots {escape(name)!s} ({escape(os.fspath(where))})"
    if snapshot is None:
        return f"{label}: not in use (no fetcher has used them: the folder does not exist)"
    count = "?" if snapshot.capacity is None else str(snapshot.capacity)
    lines = [f"{label}: {len(snapshot.holders)}/{count} in use, {_waiting_text(len(snapshot.waiters))}"]
    for holder in snapshot.holders:
        pid = "pid ?" if holder.pid is None else f"pid {holder.pid}"
        lines.append(f"  slot {holder.slot:<3} {pid:<11} {_since(holder.since, now):>12}  {escape(holder.url) or '-'}")
    for waiter in snapshot.waiters:
        lines.append(f"  waiting  pid {waiter.pid:<7} {_since(waiter.since, now):>12}")
    return "\n".join(lines)


def _waiting_text(processes: int) -> str:
    if processes == 0:
        return "none waiting"
    return f"{processes} process{'es' if processes != 1 else ''} waiting"


def _since(since: float | None, now: float) -> str:
    if since is None:
        return ""
    clock = datetime.fromtimestamp(since).strftime("%H:%M:%S")
    held = max(0.0, now - since)
    return f"{clock} ({format_duration(round(held)) if held >= 1 else f'{held:.1f}s'})"


def _as_record(name: str, where: os.PathLike[str], snapshot: SlotsSnapshot | None) -> dict[str, object]:
    record: dict[str, object] = {"name": name, "folder": os.fspath(where), "known": snapshot is not None}
    if snapshot is not None:
        record |= {
            "capacity": snapshot.capacity,
            "holders": [{"slot": h.slot, "pid": h.pid, "url": h.url, "since": h.since} for h in snapshot.holders],
            "waiters": [{"pid": w.pid, "waiting": w.waiting, "since": w.since} for w in snapshot.waiters],
        }
    return record
