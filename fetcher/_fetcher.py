"""Fetcher: download many URLs with at most N in flight, results as values."""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from ._config import DEFAULT_CHUNK_SIZE, DEFAULT_USER_AGENT, FetcherConfig, RunLimits
from ._errors import ClosedError, ConfigError
from ._parts import burst, open_parts
from ._result import Result
from ._run import Item, Run
from .limits import Gate, HostPace
from .state import DEFAULT_STATE_NAME
from .transfer.outcome import WatchStart

if TYPE_CHECKING:
    import requests

log = logging.getLogger("fetcher")


@dataclass(frozen=True, kw_only=True, slots=True)
class Stats:
    """A snapshot of a Fetcher's load, for a progress display."""

    capacity: int  # slots in all
    in_use: int  # slots held now
    waiting: int  # URLs read and waiting for a slot, over all runs
    active_runs: int
    retrying: int = 0  # URLs waiting out a pause before their next attempt (not holding a slot)
    #: Hosts paused now at their server's request, with the seconds left of each pause.
    paused: dict[str, float] = field(default_factory=dict)
    #: Requests started per second lately, and the --rate cap (None: no cap).
    request_rate: float = 0.0
    request_rate_cap: float | None = None
    #: Bytes per second lately under --limit-rate, and the cap (None: no cap; the rate is then not counted).
    byte_rate: float = 0.0
    byte_rate_cap: int | None = None
    #: With ``adaptive``: the hosts whose limit is below its cap now, host -> (limit, cap).
    host_limits: dict[str, tuple[int, int]] = field(default_factory=dict)


#: URLs read from the input ahead of the downloads, by default.
DEFAULT_READ_AHEAD = 10_000


class Fetcher:
    """Downloads URLs into one folder with at most ``max_concurrent`` at a time.

    One Fetcher is one cap: ``fetch()`` calls from several threads share its
    slots and workers.  Failures of single URLs come back as Results; misuse
    (bad arguments, a closed Fetcher) raises.  The library never prints; it
    logs to ``logging.getLogger("fetcher")``.

    Methods: ``fetch()`` (results in input order), ``as_completed()``
    (results as they finish), ``stats()`` (the load now, for a display),
    ``close()``.  Attributes: ``config`` (the FetcherConfig), ``dest`` (the
    folder, resolved), ``gate`` (the slots), ``cleanup`` (what the start-up
    clean-up of earlier runs' partial files did).

    Close it (or use ``with``) when done: closing cancels what is still
    running, removes unfinished temporary files and stops the workers.
    """

    def __init__(
        self,
        *,
        max_concurrent: int = 3,
        dest: str | Path = ".",
        acquire_timeout: float | None = None,
        timeout: float = 30.0,
        max_redirects: int = 10,
        read_ahead: int = DEFAULT_READ_AHEAD,
        user_agent: str = DEFAULT_USER_AGENT,
        retries: int = 3,
        retry_wait_max: float = 60.0,
        retry_after_max: float = 300.0,
        state: str | Path | bool = True,
        remote_time: bool = True,
        force: bool = False,
        skip_existing: bool = False,
        max_time: float | None = None,
        speed_limit: int | None = None,
        speed_time: float | None = None,
        max_filesize: int | None = None,
        max_per_host: int | None = None,
        rate: float | None = None,
        rate_per_host: float | None = None,
        adaptive: bool = False,
        limit_rate: int | None = None,
        shared_slots: str | None = None,
        shared_slots_dir: str | Path | None = None,
        redis: str | None = None,
        cluster: str | None = None,
        cluster_lease: float = 10.0,
        shared_state: bool = False,
        ca_certificate: str | Path | None = None,
        workers: int | None = None,
        gate: Gate | None = None,
        watch: WatchStart | None = None,
        session_factory: Callable[[], requests.Session] | None = None,
        reserved_names: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Make the folder if needed, check it is writable, open the state, start the workers.

        Every parameter is keyword-only.

        The cap and the folder:

        - ``max_concurrent``: downloads in flight at once (1 to 512), the
          number of slots and of worker threads.
        - ``dest``: the folder for the files; made if missing.
        - ``acquire_timeout``: seconds a URL may wait for the right to start
          (a slot, its host's turn) before it is given up as
          ``acquire-timeout``; None waits as long as it takes.
        - ``read_ahead``: URLs read from the input ahead of the downloads
          (bounds memory for a huge list; a URL's acquire timeout starts when
          it is read).

        Each request:

        - ``timeout``: seconds to connect, and seconds a server may send
          nothing mid-body.
        - ``max_redirects``: redirects followed for one URL before it fails.
        - ``user_agent``: the User-Agent header.
        - ``ca_certificate``: a CA bundle (PEM) to trust for HTTPS instead
          of the system's, for a private CA; checked here (ConfigError if it
          cannot be read or holds no certificate).
        - ``retries``: extra attempts for a transient failure (a reset, a
          stall, a 503...), after a backoff with full jitter capped at
          ``retry_wait_max`` seconds, or after the server's Retry-After if it
          is at most ``retry_after_max``.  A URL waiting to retry holds no
          slot.

        Speed:

        - ``workers``: processes that the downloads of a long list are
          spread over, so that they use every core (0: all in this process);
          None: one per core (none on one core), started only for a long
          list: at once for one that tells its length (a list, anything with
          ``__len__`` or ``__length_hint__``) of 500 URLs or more, or else once
          a run has read 500 (threads download meanwhile).  A number
          given starts them with the Fetcher.  They take no part in any
          limit: slots, hosts, rates and stops all stay in this process.
          Not with ``session_factory``, ``limit_rate``, ``rate``
          or ``rate_per_host``, whose hooks run inside each download: those
          runs use threads only.

        Re-runs:

        - ``state``: the state database that makes re-runs cheap and resumes
          partial downloads; True keeps it in DEST (``.fetcher-state.db``), a
          path puts it there, False keeps none.
        - ``remote_time``: give files the server's Last-Modified as mtime.
        - ``force``: download everything in full whatever the state says.
        - ``skip_existing``: never request a URL whose file exists.

        Bounds, so that every run ends and no server fills the disk:

        - ``max_time``: seconds from a URL's first request to its record,
          retries included.
        - ``speed_limit`` (bytes/s) and ``speed_time`` (s): cut a download
          that stays slower than that (curl's meaning; it is retried and
          resumed).
        - ``max_filesize``: a file's decoded bytes at most; replaces the
          default guard against decompression bombs.
        - ``deadline`` and ``quota`` bound a whole run: they are arguments of
          ``fetch()`` and ``as_completed()``.

        Politeness, beyond ``max_concurrent``:

        - ``max_per_host``: downloads of one host (name and port) in flight.
        - ``rate`` and ``rate_per_host``: requests started per second,
          overall and per host, evenly spaced (redirect hops and retries
          count).
        - ``adaptive``: give each host a concurrency limit that follows its
          server, from 1 up to ``max_per_host`` (else ``max_concurrent``):
          it grows while answers come as fast as unloaded, and comes down
          when they slow or the server refuses (429, 503, resets, timeouts).
          A URL held back by it is recorded ``waited_on: adaptive``;
          ``stats().host_limits`` and ``adaptive_limits()`` tell the limits.
        - ``limit_rate``: bytes per second over all downloads.
        - ``shared_slots``: names a set of ``max_concurrent`` slots shared
          with every process on the machine that names it, kept in
          ``shared_slots_dir`` (by default ``$XDG_CACHE_HOME/fetcher/slots``,
          read from the environment here); the first process to use the set
          fixes its size.
        - ``redis`` and ``cluster``: share the ``max_concurrent`` slots with
          every fetcher, on any machine, that gives the same Redis URL and
          cluster name (needs ``pip install 'fetcher[redis]'``); the first
          fixes the count.  A slot is a lease: a holder that dies gives it
          back after ``cluster_lease`` seconds (10), never sooner.
        - ``shared_state``: with ``redis`` and ``cluster``, keep the state
          (the validators of saved files, resumable partial files, file
          names) in the cluster's Redis instead of a database in DEST, so
          that every fetcher of the cluster, on any machine, asks with what
          any of them saved: with one DEST shared by all (a shared folder),
          a URL done last night by another machine is asked for with a
          conditional GET, and a partial file another left is resumed.
          With a DEST of its own, a fetcher downloads in full a URL whose
          file is in another's DEST; its name is still the cluster's.  Not
          with a ``state`` path or ``state=False``.

        A 429, or a 503 with Retry-After, pauses every new request to that
        host.  A URL waiting on a host never holds up another host's URLs.

        Seams, for embedding and tests:

        - ``gate``: replaces the default per-Fetcher slots (to share slots
          with other Fetchers); not with ``shared_slots``.
        - ``watch``: told about each download's progress (a display).
        - ``session_factory``: makes each worker's requests.Session (the
          transport seam for tests).  A stop hangs up a request of such a
          session only once its headers are in: before that, its socket is
          out of reach (fetcher's own sessions hand theirs over at once).
        - ``reserved_names``: file names never given to a URL (fetcher's own
          report, say).
        - ``clock``: monotonic seconds that time everything a run waits for
          (retry waits, acquire timeouts, pauses, rates), so tests run fast.

        Raises ConfigError for a bad value, DestinationError for an unusable
        DEST, StateError for a state database that cannot be used (all three
        are FetcherErrors).
        """
        if not isinstance(state, (bool, str, os.PathLike)):
            raise ConfigError(f"state must be True, False or a path, not {state!r}")
        if shared_state is True and state is not True:
            raise ConfigError("give either a state database (state: a path, or False for none) or shared_state, "
                              "not both")
        self.config = FetcherConfig(
            max_concurrent=max_concurrent,
            dest=_path(dest, "dest"),
            acquire_timeout=acquire_timeout,
            timeout=timeout,
            max_redirects=max_redirects,
            read_ahead=read_ahead,
            user_agent=user_agent,
            retries=retries,
            retry_wait_max=retry_wait_max,
            retry_after_max=retry_after_max,
            state=None if shared_state is True else _state_path(state, _path(dest, "dest")),
            remote_time=remote_time,
            force=force,
            skip_existing=skip_existing,
            max_time=max_time,
            speed_limit=speed_limit,
            speed_time=speed_time,
            max_filesize=max_filesize,
            max_per_host=max_per_host,
            rate=rate,
            rate_per_host=rate_per_host,
            adaptive=adaptive,
            limit_rate=limit_rate,
            shared_slots=shared_slots,
            shared_slots_dir=None if shared_slots_dir is None else _path(shared_slots_dir, "shared_slots_dir"),
            redis=redis,
            cluster=cluster,
            cluster_lease=cluster_lease,
            shared_state=shared_state,
            ca_certificate=None if ca_certificate is None else _path(ca_certificate, "ca_certificate"),
            workers=workers,
        )
        if self.config.limit_rate is not None:
            # Under --limit-rate, reads no bigger than the bucket's burst: a 1 MiB read at
            # 100 KiB/s would move in ten-second jumps.  Set once limit_rate is known valid.
            self.config = dataclasses.replace(self.config, chunk_size=_chunk_size(self.config.limit_rate))
        if gate is not None and shared_slots is not None:
            raise ConfigError("give either gate or shared_slots, not both")
        if gate is not None and redis is not None:
            raise ConfigError("give either gate or a cluster (redis), not both")
        parts = open_parts(self.config, gate=gate, watch=watch, session_factory=session_factory,
                           reserved_names=reserved_names, clock=clock)  # fmt: skip
        self.dest = parts.dest
        self.gate: Gate = parts.gate
        #: What the start-up clean-up of partial files left by earlier runs did.
        self.cleanup = parts.cleanup
        self._shared_gate, self._state, self._processes = parts.shared_gate, parts.state, parts.processes
        self._temp_files, self._pool, self._shared = parts.temp_files, parts.pool, parts.shared
        self._lock = threading.Lock()
        self._runs: set[Run] = set()
        self._closed = False

    # -- public API ---------------------------------------------------------

    def fetch(
        self,
        urls: Iterable[Item],
        *,
        run_id: str | None = None,
        deadline: float | None = None,
        quota: int | None = None,
    ) -> Iterator[Result]:
        """Download *urls*; yield one Result per distinct URL, in input order.

        *urls*: URL strings or Entries (an Entry carries a checksum, an
        ``out=`` name, its list line).  ``run_id`` labels every Result of
        this call (default: a new one, see ``new_run_id()``).

        Work starts when iteration starts.  Leaving the loop early cancels
        the rest of this call's URLs.  A URL listed twice is downloaded once.

        ``deadline``: seconds from the first ``next()`` after which the run
        stops: downloads in flight are cancelled (``cancelled``, a resumable
        partial kept), URLs not started are ``not-started``.  ``quota``:
        once the files this run saved hold this many bytes, no new download
        starts; those in flight finish; the rest are ``not-started``.
        """
        return self._results(urls, run_id=run_id, ordered=True, limits=RunLimits(deadline=deadline, quota=quota))

    def as_completed(
        self,
        urls: Iterable[Item],
        *,
        run_id: str | None = None,
        deadline: float | None = None,
        quota: int | None = None,
    ) -> Iterator[Result]:
        """Like ``fetch()`` (the same arguments), but yield each Result as soon as it is ready."""
        return self._results(urls, run_id=run_id, ordered=False, limits=RunLimits(deadline=deadline, quota=quota))

    @property
    def worker_processes(self) -> int:
        """The processes a long list's downloads are spread over; 0 when every download runs in this one."""
        return 0 if self._processes is None else self._processes.size

    def stats(self) -> Stats:
        """A snapshot of the load: slots in all and in use, URLs waiting and retrying, hosts paused, rates."""
        with self._lock:
            runs = list(self._runs)
        shared = self._shared
        return Stats(
            capacity=self.gate.capacity,
            in_use=self.gate.in_use,
            waiting=sum(run.waiting for run in runs),
            active_runs=len(runs),
            retrying=sum(run.retrying for run in runs),
            paused=self._shared.hosts.paused() if self._shared.hosts.any_paused else {},
            host_limits=self._shared.hosts.adaptive_limits() if self.config.adaptive else {},
            request_rate=0.0 if shared.request_rate is None else shared.request_rate.recent_rate(),
            request_rate_cap=self.config.rate,
            byte_rate=0.0 if shared.byte_rate is None else shared.byte_rate.recent_rate(),
            byte_rate_cap=self.config.limit_rate,
        )

    def adaptive_limits(self) -> list[HostPace]:
        """With ``adaptive``: each host's limit over the runs so far (its cap, where it ended, the
        lowest it went, and each change); empty without it."""
        return self._shared.hosts.adaptive_history()

    def stop(self, reason: str = "interrupted") -> None:
        """Stop every run in progress as ``deadline`` does, for *reason*: downloads in flight end as
        ``cancelled`` (a resumable partial file kept), and every URL not started, to the end of its
        input, as ``not-started``; the runs' iterators then end.  Unlike ``close()``, every URL
        still gets its Result.  Thread-safe; safe to call from a thread a signal handler started.
        """
        with self._lock:
            runs = list(self._runs)
        for run in runs:
            run.stop(reason)

    def close(self) -> None:
        """Cancel running work, remove unfinished temporary files, stop workers."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            runs = list(self._runs)
        for run in runs:
            run.cancel()
        if not self._pool.shutdown(wait_s=1.0):
            log.debug("some workers are still blocked in a read; leaving them behind")
        if self._processes is not None:
            self._processes.shutdown(wait_s=1.0)
        self._temp_files.remove_all()
        if self._state is not None:
            self._state.close()
        self._shared.hosts.close()
        if self._shared_gate is not None:
            self._shared_gate.close()

    def __enter__(self) -> Fetcher:
        """The Fetcher itself; leaving the ``with`` block closes it."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the Fetcher (see ``close()``)."""
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Fetcher {state} dest={str(self.dest)!r} max_concurrent={self.config.max_concurrent}>"

    # -- internals ------------------------------------------------------------

    def _results(
        self, urls: Iterable[Item], *, run_id: str | None, ordered: bool, limits: RunLimits
    ) -> Iterator[Result]:
        if self._closed:
            raise ClosedError("this Fetcher is closed")
        if isinstance(urls, (str, bytes)) or not isinstance(urls, Iterable):
            raise TypeError("urls must be an iterable of URL strings (a list, a file's lines, a generator)")
        run = Run(self._shared, urls, run_id or new_run_id(), limits)
        return self._drive(run, ordered)

    def _drive(self, run: Run, ordered: bool) -> Iterator[Result]:
        with self._lock:
            if self._closed:
                raise ClosedError("this Fetcher is closed")
            self._runs.add(run)
        run.start()
        try:
            yield from run.results(ordered)
        finally:
            run.cancel()
            with self._lock:
                self._runs.discard(run)


def new_run_id() -> str:
    """A run id that sorts by time and is unique enough: 20261122T131300Z-1a2b3c."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def _path(value: object, name: str) -> Path:
    """*value* as a Path; a ConfigError naming *name* if it is not a path (rather than Path's TypeError)."""
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"{name} must be a path, not {value!r}")
    return Path(value)



def _chunk_size(limit_rate: int) -> int:
    return min(DEFAULT_CHUNK_SIZE, burst(limit_rate))


def _state_path(state: str | Path | bool, dest: Path) -> Path | None:
    if state is True:
        return dest / DEFAULT_STATE_NAME
    if state is False:
        return None
    return Path(state)













