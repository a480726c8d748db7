"""FetcherConfig: every setting of a Fetcher, validated once, never changed."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ._errors import ConfigError
from ._validate import flag, per_second, seconds, whole
from ._version import __version__

#: More threads than this is not polite to anyone, and costs memory for nothing.
MAX_CONCURRENT_LIMIT = 512

#: Worker processes: as many as any machine has cores to give, and a bound on a typo.
MAX_WORKERS = 256

DEFAULT_USER_AGENT = f"fetcher/{__version__}"

DEFAULT_CHUNK_SIZE = 1 << 20

#: Requests per second: more is no rate limit, and tokens finer than a microsecond mean nothing.
MAX_RATE = 1_000_000.0


@dataclass(frozen=True, kw_only=True, slots=True)
class FetcherConfig:
    """How a Fetcher downloads.  Raises ConfigError on a value it cannot use."""

    #: Downloads in flight at once (the number of slots and of worker threads).
    max_concurrent: int = 3
    #: Folder the files go to; created if missing.
    dest: Path = field(default_factory=lambda: Path("."))
    #: Seconds a URL may wait for a slot before it is given up; None waits forever.
    acquire_timeout: float | None = None
    #: Seconds to connect, and seconds the server may send nothing mid-body.
    timeout: float = 30.0
    #: Redirects followed for one URL before it fails.
    max_redirects: int = 10
    #: Bytes read from the network and written to disk at a time.
    chunk_size: int = DEFAULT_CHUNK_SIZE
    #: URLs read from the input ahead of the downloads.  A URL's acquire
    #: timeout starts when it is read, so with a list shorter than this, every
    #: URL's clock starts with the run.  Also bounds memory for a huge list.
    read_ahead: int = 10_000
    #: Sent as the User-Agent header.
    user_agent: str = DEFAULT_USER_AGENT
    #: Extra attempts for a transient failure (a URL waiting to retry holds no
    #: slot); the longest backoff wait; the longest Retry-After obeyed.  The
    #: Fetcher turns them into a transfer.retry.RetryPolicy.
    retries: int = 3
    retry_wait_max: float = 60.0
    retry_after_max: float = 300.0
    #: The state database (validators of saved files, resumable partial
    #: files); None keeps no state, so every run downloads everything
    #: (unless shared_state keeps it in a cluster's Redis).
    state: Path | None = None
    #: Give each saved file the server's Last-Modified as its mtime.
    remote_time: bool = True
    #: Download every URL in full, whatever the state database says.
    force: bool = False
    #: Never request a URL whose file already exists.
    skip_existing: bool = False
    #: Seconds a URL may take from its first request to its record, all
    #: attempts and retry waits included; None: no limit.
    max_time: float | None = None
    #: curl's --speed-limit / --speed-time: a download slower than
    #: speed_limit bytes/s on average for speed_time seconds is cut (and
    #: retried).  Either one alone turns the check on (with 1 B/s or 30 s).
    speed_limit: int | None = None
    speed_time: float | None = None
    #: Bytes a file may have on disk (decoded); None: only the bomb guard.
    max_filesize: int | None = None
    #: Downloads of one host (name and port) in flight at once; None: only max_concurrent caps them.
    max_per_host: int | None = None
    #: Requests started per second over all hosts, and to any one host;
    #: None: no limit.  Evenly spaced (no burst): at most one more than the
    #: rate in any one-second window.  Redirect hops and retries count.
    rate: float | None = None
    rate_per_host: float | None = None
    #: Give each host a concurrency limit of its own that follows the server's
    #: answers (limits/adaptive.py), from 1 up to max_per_host, else max_concurrent.
    adaptive: bool = False
    #: Bytes per second over all downloads together (--limit-rate); None: no cap.
    limit_rate: int | None = None
    #: Share the max_concurrent slots with every process on the machine that
    #: names the same set; None: this Fetcher's slots are its own.
    shared_slots: str | None = None
    #: The folder that holds shared slot sets; None: the user's default
    #: (``$XDG_CACHE_HOME/fetcher/slots``), which the Fetcher reads.
    shared_slots_dir: Path | None = None
    #: Share the max_concurrent slots with every fetcher, on any machine, that
    #: names the same Redis server (a redis:// URL; never shown: it may hold a
    #: password) and cluster; None: no cluster.  ``cluster_lease`` is how long
    #: a slot stays taken after its holder stops renewing it (dies).
    redis: str | None = field(default=None, repr=False)
    cluster: str | None = None
    cluster_lease: float = 10.0
    #: Keep the state (validators, resumable partial files, file names) in the
    #: cluster's Redis instead of a database in DEST (fetcher/state/redis_store.py):
    #: every fetcher of the cluster reads what any of them saved.  Needs redis and
    #: cluster, and no ``state`` path.
    shared_state: bool = False
    #: A CA bundle (PEM) trusted for HTTPS instead of the system's; None:
    #: the system's (or $REQUESTS_CA_BUNDLE / $CURL_CA_BUNDLE).
    ca_certificate: Path | None = None
    #: Worker processes that a long list's downloads are spread over (0: all
    #: in this process); None: one per core the process may use, none on a
    #: single core.  Every limit stays in this process whatever the number.
    workers: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.dest, (str, os.PathLike)):
            raise ConfigError(f"dest must be a path, not {self.dest!r}")
        object.__setattr__(self, "dest", Path(self.dest))
        whole(self, "max_concurrent", 1, MAX_CONCURRENT_LIMIT)
        whole(self, "max_redirects", 0, 100)
        whole(self, "chunk_size", 1, 1 << 30)
        whole(self, "read_ahead", 1, 10_000_000)
        if self.workers is not None:
            whole(self, "workers", 0, MAX_WORKERS)
        if self.acquire_timeout is not None:
            seconds(self, "acquire_timeout", allow_zero=True)
        seconds(self, "timeout", allow_zero=False)
        if not isinstance(self.user_agent, str) or not self.user_agent.isprintable():
            raise ConfigError("user_agent must be printable text")
        whole(self, "retries", 0, 100)
        seconds(self, "retry_wait_max", allow_zero=True)
        seconds(self, "retry_after_max", allow_zero=True)
        if self.state is not None:
            if not isinstance(self.state, (str, os.PathLike)):
                raise ConfigError(f"state must be a path or None, not {self.state!r}")
            object.__setattr__(self, "state", Path(self.state))
        for name in ("remote_time", "force", "skip_existing", "adaptive", "shared_state"):
            flag(self, name)
        if self.force and self.skip_existing:
            raise ConfigError("force and skip_existing cannot both be set")
        if self.max_time is not None:
            seconds(self, "max_time", allow_zero=False)
        if self.speed_limit is not None:
            whole(self, "speed_limit", 1, 1 << 50)
        if self.speed_time is not None:
            seconds(self, "speed_time", allow_zero=False)
        if self.max_filesize is not None:
            whole(self, "max_filesize", 1, 1 << 62)
        if self.max_per_host is not None:
            whole(self, "max_per_host", 1, MAX_CONCURRENT_LIMIT)
        for name in ("rate", "rate_per_host"):
            if getattr(self, name) is not None:
                per_second(self, name, MAX_RATE)
        if self.limit_rate is not None:
            whole(self, "limit_rate", 1, 1 << 50)
            if self.speed_limit is not None and self.limit_rate < self.speed_limit:
                raise ConfigError("limit_rate is below speed_limit: every download would be cut as too slow")
        if self.shared_slots is not None and (not isinstance(self.shared_slots, str) or not self.shared_slots):
            raise ConfigError(f"shared_slots must be a name, not {self.shared_slots!r}")
        if self.shared_slots_dir is not None:
            if not isinstance(self.shared_slots_dir, (str, os.PathLike)):
                raise ConfigError(f"shared_slots_dir must be a path or None, not {self.shared_slots_dir!r}")
            object.__setattr__(self, "shared_slots_dir", Path(self.shared_slots_dir))
        if (self.redis is None) != (self.cluster is None):
            raise ConfigError("redis and cluster (--redis URL, --cluster NAME) go together: give both, or neither")
        if self.redis is not None and self.shared_slots is not None:
            raise ConfigError("give either a cluster (redis) or shared_slots, not both")
        seconds(self, "cluster_lease", allow_zero=False)
        if self.shared_state and self.cluster is None:
            raise ConfigError("shared_state keeps the state in a cluster's Redis: it needs redis and cluster")
        if self.shared_state and self.state is not None:
            raise ConfigError("give either a state database (state) or shared_state, not both")
        if self.ca_certificate is not None:
            if not isinstance(self.ca_certificate, (str, os.PathLike)):
                raise ConfigError(f"ca_certificate must be a path or None, not {self.ca_certificate!r}")
            object.__setattr__(self, "ca_certificate", Path(self.ca_certificate))
            problem = ca_bundle_problem(self.ca_certificate)
            if problem is not None:
                raise ConfigError(f"ca_certificate '{self.ca_certificate}': {problem}")

    @property
    def speed_check(self) -> tuple[int, float] | None:
        """(bytes/s, seconds) of the speed check, or None when it is off."""
        if self.speed_limit is None and self.speed_time is None:
            return None
        return (self.speed_limit or 1, self.speed_time or 30.0)


def ca_bundle_problem(path: Path) -> str | None:
    """Why *path* cannot serve as a CA bundle, or None when OpenSSL loads certificates from it.

    Checked once at the start, so that a bad bundle is one error rather than
    a failure for every HTTPS URL.
    """
    try:
        with open(path, "rb") as stream:
            stream.read(1)
    except OSError as exc:
        return f"cannot read it ({exc.strerror or exc})"
    import ssl  # here: only a run given a CA bundle needs it

    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, ValueError):
        return "is not a PEM certificate bundle"
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class RunLimits:
    """Bounds on one run (one ``fetch()`` call) as a whole."""

    #: Seconds after the run starts when it stops, as SIGTERM stops it.
    deadline: float | None = None
    #: Bytes the run's saved files may add up to before no new download starts.
    quota: int | None = None

    def __post_init__(self) -> None:
        if self.deadline is not None:
            seconds(self, "deadline", allow_zero=False)
        if self.quota is not None:
            whole(self, "quota", 1, 1 << 62)


#: A run with no bounds of its own.
NO_RUN_LIMITS = RunLimits()
