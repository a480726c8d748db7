"""What ``fetcher cluster status`` shows: a cluster's queue, slots, workers, rates and pauses, read from Redis.

The slots by host are what each holder last said at its lease's renewal
(every third of a lease): a few seconds old at most.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .._text import escape, redact
from .._units import format_size
from ..limits.redis import DEFAULT_LEASE_S, cluster_keys
from ..limits.redis_link import redis_client, server_ms
from ..limits.redis_rate import recent_rate
from .queue import GROUP, _text

#: Hosts named on the "by host" and "paused" lines (the JSON has them all).
HOSTS_SHOWN = 5
#: A worker counts as alive when it said so within this many seconds (it says so every third of a lease).
ALIVE_S = 2 * DEFAULT_LEASE_S


@dataclass(frozen=True, kw_only=True, slots=True)
class ClusterStatus:
    """A cluster now.  ``to_record()`` gives it as JSON (its keys are these fields)."""

    cluster: str
    redis: str  # the server, without a password
    waiting: int  # queued, not taken by any worker yet
    in_progress: int  # taken by a worker, not finished (pending in the consumer group)
    done: int  # URLs with their final record
    statuses: Mapping[str, int] = field(default_factory=dict)  # final records by status
    slots_in_use: int = 0
    slots: int | None = None  # the cluster's --max, while it lives
    workers_alive: int = 0
    hosts: Mapping[str, int] = field(default_factory=dict)  # slots in use by host (as of the last renewals)
    request_rate: float | None = None  # requests a second over the last 2 s (--rate), None without it
    byte_rate: float | None = None  # bytes a second over the last 2 s (--limit-rate), None without it
    limits: Mapping[str, Any] = field(default_factory=dict)  # the limits the cluster runs with
    paused: Mapping[str, float] = field(default_factory=dict)  # hosts paused now: seconds left

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        for name in ("statuses", "hosts", "limits", "paused"):
            record[name] = dict(record[name])
        return record


def read_status(url: str, cluster: str) -> ClusterStatus:
    """The status of *cluster* on the Redis server at *url*; a ConfigError if it cannot be read."""
    names = cluster_keys(cluster)
    with redis_client(url) as client:
        now_ms = server_ms(client)
        waiting = in_progress = 0
        if client.exists(names["queue"]):
            for group in client.xinfo_groups(names["queue"]):
                if _text(group["name"]) == GROUP:
                    in_progress = int(group["pending"])
                    waiting = int(group.get("lag") or 0)
        totals = {_text(k): int(v) for k, v in client.hgetall(names["totals"]).items()}
        fixed = client.get(names["limits"])
        limits = {} if fixed is None else json.loads(fixed)
        held = {_text(holder) for holder in client.zrangebyscore(names["slots"], f"({now_ms}", "+inf")}
        hosts: dict[str, int] = {}
        for holder, host in client.hgetall(names["downloading"]).items():
            if _text(holder) in held:
                hosts[_text(host)] = hosts.get(_text(host), 0) + 1
        pauses = client.hgetall(names["pauses"])
        paused = {_text(host): (float(until) - now_ms) / 1000 for host, until in pauses.items()}
        return ClusterStatus(
            cluster=cluster,
            redis=redact(url),
            waiting=waiting,
            in_progress=in_progress,
            done=int(client.hlen(names["records"])),
            statuses=dict(sorted(totals.items(), key=lambda item: -item[1])),
            slots_in_use=len(held),
            slots=limits.get("max"),
            workers_alive=int(client.zcount(names["workers"], now_ms - int(ALIVE_S * 1000), "+inf")),
            hosts=dict(sorted(hosts.items(), key=lambda item: (-item[1], item[0]))),
            request_rate=None if limits.get("rate") is None else recent_rate(client, names["rate"]),
            byte_rate=None if limits.get("limit_rate") is None else recent_rate(client, names["bytes"]),
            limits=limits,
            paused={host: left for host, left in sorted(paused.items()) if left > 0},
        )


def status_text(status: ClusterStatus) -> str:
    done = ", ".join(f"{count:,} {name}" for name, count in status.statuses.items())
    slots = "none fixed (no fetcher runs)" if status.slots is None else f"{status.slots_in_use}/{status.slots} in use"
    lines = [
        f"cluster {escape(status.cluster)} at {escape(status.redis)}",
        f"queue     {status.waiting:,} waiting, {status.in_progress:,} in progress, {status.done:,} done"
        + (f" ({done})" if done else ""),
        f"slots     {slots}",
    ]  # fmt: skip
    shown = list(status.hosts.items())[:HOSTS_SHOWN]
    if shown:
        more = len(status.hosts) - len(shown)
        lines.append("by host   " + ", ".join(f"{escape(host)} {count}" for host, count in shown)
                     + (f" (+{more} hosts)" if more > 0 else ""))  # fmt: skip
    rates = []
    if status.request_rate is not None:
        rates.append(f"{status.request_rate:.1f}/{status.limits.get('rate'):g} req/s")
    if status.byte_rate is not None:
        rates.append(f"{format_size(int(status.byte_rate))}/s of {format_size(status.limits['limit_rate'])}/s")
    if rates:
        lines.append("rates     " + ", ".join(rates))
    if status.paused:
        lines.append("paused    " + ", ".join(f"{escape(host)} {left:.0f}s" for host, left in
                                              list(status.paused.items())[:HOSTS_SHOWN]))  # fmt: skip
    lines.append(f"workers   {status.workers_alive} alive (seen within {ALIVE_S:g}s)")
    return "\n".join(lines) + "\n"
