"""FetcherConfig: every setting of a Fetcher, validated once, never changed."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ._errors import ConfigError
from ._version import __version__

#: More threads than this is not polite to anyone, and costs memory for nothing.
MAX_CONCURRENT_LIMIT = 512

DEFAULT_USER_AGENT = f"fetcher/{__version__}"


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
    chunk_size: int = 1 << 20
    #: URLs read from the input ahead of the downloads.  A URL's acquire
    #: timeout starts when it is read, so with a list shorter than this, every
    #: URL's clock starts with the run.  Also bounds memory for a huge list.
    read_ahead: int = 10_000
    #: Sent as the User-Agent header.
    user_agent: str = DEFAULT_USER_AGENT

    def __post_init__(self) -> None:
        if not isinstance(self.dest, (str, os.PathLike)):
            raise ConfigError(f"dest must be a path, not {self.dest!r}")
        object.__setattr__(self, "dest", Path(self.dest))
        _whole(self, "max_concurrent", 1, MAX_CONCURRENT_LIMIT)
        _whole(self, "max_redirects", 0, 100)
        _whole(self, "chunk_size", 1, 1 << 30)
        _whole(self, "read_ahead", 1, 10_000_000)
        if self.acquire_timeout is not None:
            _seconds(self, "acquire_timeout", allow_zero=True)
        _seconds(self, "timeout", allow_zero=False)
        if not isinstance(self.user_agent, str) or not self.user_agent.isprintable():
            raise ConfigError("user_agent must be printable text")


def _whole(config: FetcherConfig, name: str, low: int, high: int) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}, not {value!r}")


def _seconds(config: FetcherConfig, name: str, *, allow_zero: bool) -> None:
    value = getattr(config, name)
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and (value >= 0 if allow_zero else value > 0)
    )
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be a finite number of seconds {bound}, not {value!r}")
    object.__setattr__(config, name, float(value))
