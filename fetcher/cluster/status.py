"""What ``fetcher cluster status`` shows: a cluster's queue, slots and workers, read from Redis in one go."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .._errors import ConfigError
from .._text import redact
from ..limits.redis import DEFAULT_LEASE_S, cluster_keys, connect, import_redis
from .queue import GROUP, _text

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

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["statuses"] = dict(self.statuses)
        return record


def read_status(url: str, cluster: str) -> ClusterStatus:
    """The status of *cluster* on the Redis server at *url*; a ConfigError if it cannot be read."""
    redis = import_redis()
    client: Any = connect(url)  # Any: see queue.py
    names = cluster_keys(cluster)
    try:
        seconds, micros = client.time()
        now_ms = seconds * 1000 + micros // 1000
        waiting = in_progress = 0
        if client.exists(names["queue"]):
            for group in client.xinfo_groups(names["queue"]):
                if _text(group["name"]) == GROUP:
                    in_progress = int(group["pending"])
                    waiting = int(group.get("lag") or 0)
        totals = {_text(k): int(v) for k, v in client.hgetall(names["totals"]).items()}
        capacity = client.get(names["capacity"])
        return ClusterStatus(
            cluster=cluster,
            redis=redact(url),
            waiting=waiting,
            in_progress=in_progress,
            done=int(client.hlen(names["records"])),
            statuses=dict(sorted(totals.items(), key=lambda item: -item[1])),
            slots_in_use=int(client.zcount(names["slots"], f"({now_ms}", "+inf")),
            slots=None if capacity is None else int(capacity),
            workers_alive=int(client.zcount(names["workers"], now_ms - int(ALIVE_S * 1000), "+inf")),
        )
    except redis.exceptions.RedisError as exc:
        raise ConfigError(f"cannot use Redis at {redact(url)}: {exc}") from None
    finally:
        client.close()


def status_text(status: ClusterStatus) -> str:
    done = ", ".join(f"{count:,} {name}" for name, count in status.statuses.items())
    slots = "none fixed (no fetcher runs)" if status.slots is None else f"{status.slots_in_use}/{status.slots} in use"
    return "\n".join([
        f"cluster {status.cluster} at {status.redis}",
        f"queue     {status.waiting:,} waiting, {status.in_progress:,} in progress, {status.done:,} done"
        + (f" ({done})" if done else ""),
        f"slots     {slots}",
        f"workers   {status.workers_alive} alive (seen within {ALIVE_S:g}s)",
    ]) + "\n"  # fmt: skip

