"""The connection every cluster-wide limit shares: one Redis client, its key names, and whether it answers.

A cluster is every fetcher that names the same Redis server and cluster
name.  All its keys start ``fetcher:{NAME}:`` (one hash slot, so a script
may use any of them together, on a Redis Cluster too).  ``Link`` is one
process's way to them: the client (redis-py: its connection pool, scripts
and URL parsing, not a protocol of fetcher's own), and one place that says
once when Redis stops answering and once when it is back.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from .._text import redact

if TYPE_CHECKING:
    import redis as redis_module

log = logging.getLogger("fetcher")

#: What to install for the cluster options.
INSTALL_HINT = "the cluster options need redis-py: pip install 'fetcher[redis]'"

# The names cluster_keys gives: the slots, the limits the cluster runs with, the
# release tokens, host pauses and the channel of news of hosts (paused, or a slot
# of a full host freed), the hosts' adaptive limits, the buckets of --rate and
# --limit-rate (this package's); the queue, the URLs ever queued, the final
# records, their counts by status and the workers seen (fetcher/cluster/queue.py's);
# what each held slot is downloading; the shared state (the saved files'
# validators, the partial files and when each was recorded, the file names both
# ways: fetcher/state/redis_store.py's).
_NAMES = ("slots", "limits", "released", "pauses", "paused", "adaptive", "rate", "bytes", "partial_at", "queue", "seen",
          "records", "totals", "workers", "downloading", "saved", "partials", "names", "named")  # fmt: skip


def cluster_keys(cluster: str) -> dict[str, str]:
    """Every fixed Redis key of cluster *cluster*, by what it holds (see ``per_host`` for the others)."""
    base = f"fetcher:{{{cluster}}}"
    return {name: f"{base}:{name}" for name in _NAMES}


def per_host(cluster: str, kind: str, host: str) -> str:
    """The key of *host*'s *kind* (``hostslots``, ``hostrate``) in cluster *cluster*."""
    return f"fetcher:{{{cluster}}}:{kind}:{host}"


def import_redis() -> Any:
    """redis-py, or a ConfigError that says what to install."""
    try:
        import redis
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return redis


def connect(url: str) -> redis_module.Redis:
    """A client for *url* (``redis://``, ``rediss://``, ``unix://``); a ConfigError for a URL it cannot use."""
    redis = import_redis()
    try:
        return redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)  # type: ignore[no-any-return]
    except ValueError as exc:
        raise ConfigError(f"--redis {redact(url)}: {exc}") from None


def server_ms(client: Any) -> float:
    """The Redis server's clock now (``TIME``), in ms: the one clock the machines of a cluster share."""
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) / 1000


@contextlib.contextmanager
def redis_client(url: str) -> Iterator[Any]:
    """A client for a command's few calls to the Redis at *url*, closed after them; a Redis error among them
    becomes one ConfigError line (``cannot use Redis at URL: why``, without the password)."""
    redis = import_redis()
    client: Any = connect(url)  # Any: redis-py types each reply as a union over its protocol versions
    try:
        yield client
    except redis.exceptions.RedisError as exc:
        raise ConfigError(f"cannot use Redis at {redact(url)}: {exc}") from None
    finally:
        client.close()


class Link:
    """One process's connection to cluster *cluster* on the Redis server at *url*."""

    def __init__(self, url: str, cluster: str) -> None:
        if not cluster or not cluster.isprintable():
            raise ConfigError(f"the cluster name must be printable text, not {cluster!r}")
        self.redis = import_redis()
        #: What a call raises when Redis does not answer (or answers with an error).
        self.errors: type[Exception] = self.redis.exceptions.RedisError
        self.client: Any = connect(url)  # Any: redis-py's own hints make every reply a union
        self.url = url
        self.where = redact(url)
        self.cluster = cluster
        self.keys = cluster_keys(cluster)
        self._lock = threading.Lock()
        self._unreachable_since: float | None = None
        self._last_error: Exception | None = None
        #: When a call last answered (monotonic; -inf: none yet), as its caller said with ``reachable``.
        self.answered_at = -math.inf

    def key(self, kind: str, host: str) -> str:
        return per_host(self.cluster, kind, host)

    @property
    def down(self) -> bool:
        """Whether the last call failed (and none has answered since)."""
        return self._unreachable_since is not None

    def down_for(self) -> tuple[float, Exception | None]:
        """Seconds since a call first failed, and its error, while none has answered since; (0.0, None) if up."""
        since = self._unreachable_since
        return (0.0, None) if since is None else (time.monotonic() - since, self._last_error)

    def unreachable(self, exc: Exception) -> None:
        """A call failed: say so, once until Redis answers again."""
        with self._lock:
            self._last_error = exc
            if self._unreachable_since is not None:
                return
            self._unreachable_since = time.monotonic()
        log.warning("Redis at %s is unreachable (%s): no new download starts until it is back", self.where, exc)

    def reachable(self) -> None:
        """A call answered: say so if Redis was unreachable."""
        self.answered_at = time.monotonic()
        if self._unreachable_since is None:
            return
        with self._lock:
            since, self._unreachable_since = self._unreachable_since, None
        if since is not None:
            log.warning("Redis at %s is back after %.1fs", self.where, time.monotonic() - since)

    def close(self) -> None:
        self.client.close()
