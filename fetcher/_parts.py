"""What a Fetcher opens from its configuration, in order, and closes again if a later part fails.

The folder first (made if missing, and proven writable), then the slots
shared with other processes (``--shared-slots``, a cluster's), the state
(through the cluster's connection when it is the cluster's), the clean-up of
partial files earlier runs left, and last the worker threads.  The worker
processes come before all of them (see ``open_parts``), and are ended again
if a later part fails.  What every run of the Fetcher then shares is one
``Shared``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from ._config import FetcherConfig
from ._errors import DestinationError, StateError
from ._naming import Namer
from ._pool import WorkerPool
from ._run import Shared
from .limits import CLUSTER, SHARED, SLOTS, Gate, HostLimits, LocalGate, TokenBucket
from .state import StateStore
from .state.base import Store
from .transfer.outcome import WatchStart
from .transfer.retry import RetryPolicy
from .transfer.tempfiles import Cleanup, TempFiles, remove_leftovers

if TYPE_CHECKING:
    import requests

    from .limits.redis import RedisGate
    from .limits.shared import SharedGate
    from .workers import ProcessPool

log = logging.getLogger("fetcher")


class Parts:
    """What ``open_parts`` opened, for the Fetcher to keep (and close, in ``Fetcher.close``)."""

    __slots__ = ("dest", "shared_gate", "state", "cleanup", "gate", "temp_files", "processes", "pool", "shared")

    def __init__(self, *, dest: Path, shared_gate: SharedGate | RedisGate | None, state: Store | None,
                 cleanup: Cleanup, gate: Gate, temp_files: TempFiles, processes: ProcessPool | None,
                 pool: WorkerPool, shared: Shared) -> None:  # fmt: skip
        self.dest, self.shared_gate, self.state, self.cleanup = dest, shared_gate, state, cleanup
        self.gate, self.temp_files, self.processes, self.pool, self.shared = gate, temp_files, processes, pool, shared


def open_parts(
    config: FetcherConfig,
    *,
    gate: Gate | None,
    watch: WatchStart | None,
    session_factory: Callable[[], requests.Session] | None,
    reserved_names: Iterable[str],
    clock: Callable[[], float],
) -> Parts:
    """Everything a Fetcher of *config* needs, opened in order (see the module docs); the arguments are the
    Fetcher's own.  Raises DestinationError, StateError or ConfigError, having closed what it opened."""
    _prepare_folder(config.dest)
    dest = config.dest.resolve()
    # The worker processes first: the pool copies this process, which is safe only before its threads start,
    # and its feeder process (_run/apart.py) opens the state database, which SQLite allows only in a copy made
    # before this process opened it.
    processes = _processes(config, session_factory is None)
    shared_gate: SharedGate | RedisGate | None = None
    state: Store | None = None
    try:
        # The gate first: a shared state goes through its connection to the cluster.
        shared_gate = _open_shared_gate(config)
        state = _open_state(config, dest, shared_gate)
        cleanup = _clean_up(dest, state, forget_gone=not config.shared_state)
    except BaseException:
        if state is not None:
            state.close()
        if shared_gate is not None:
            shared_gate.close()
        if processes is not None:
            processes.shutdown(wait_s=1.0)
        raise
    # "is not None", not "or": a gate may well be falsy (one with a __len__ of its slots in use).
    slots: Gate = gate if gate is not None else shared_gate or LocalGate(config.max_concurrent)
    temp_files = TempFiles()
    # With a state database, names are kept from run to run (and not held in memory).
    names = None if state is None else state.names(dest)
    namer = Namer([*reserved_names, *_state_names(config.state, dest)], store=names)
    pool = WorkerPool(config.max_concurrent, session_factory or functools.partial(_new_session, config))
    shared = Shared(
        config=config, dest=dest, gate=slots, pool=pool, namer=namer, temp_files=temp_files, watch=watch,
        state=state, clock=clock,
        retry=RetryPolicy(retries=config.retries, wait_max=config.retry_wait_max,
                          retry_after_max=config.retry_after_max),
        **_limits(config, shared_gate, clock),
        gate_limit=_gate_limit(shared_gate),
        describe_slot=None if shared_gate is None else shared_gate.describe,
        processes=processes,
    )  # fmt: skip
    return Parts(dest=dest, shared_gate=shared_gate, state=state, cleanup=cleanup, gate=slots,
                 temp_files=temp_files, processes=processes, pool=pool, shared=shared)  # fmt: skip


def burst(limit_rate: int) -> int:
    """Bytes that may go at once under --limit-rate: a tenth of a second's worth, at least 4 KiB."""
    return max(4096, limit_rate // 10)


def _state_names(state: Path | None, dest: Path) -> list[str]:
    """The state database's file names, when it lives in DEST: no download may take them."""
    if state is None or state.resolve().parent != dest:
        return []
    return [state.name + suffix for suffix in ("", "-wal", "-shm", "-journal")]


def _open_shared_gate(config: FetcherConfig) -> SharedGate | RedisGate | None:
    """The slots shared with other processes that *config* names (its ``shared_slots`` or cluster), if any.

    Their modules are imported only here: most runs share no slots.
    """
    if config.shared_slots is not None:
        from .limits.shared import SharedGate, default_directory

        folder = config.shared_slots_dir or default_directory(os.environ)
        return SharedGate(config.shared_slots, config.max_concurrent, directory=folder)
    if config.redis is not None and config.cluster is not None:
        from .limits.redis import RedisGate

        return RedisGate(config.redis, config.cluster, config.max_concurrent, lease_s=config.cluster_lease,
                         limits=_cluster_limits(config), unreachable_s=config.timeout)  # fmt: skip
    return None


def _open_state(config: FetcherConfig, dest: Path, shared_gate: SharedGate | RedisGate | None) -> Store | None:
    """The state *config* asks for: the cluster's in Redis (through the gate's link), a database, or none."""
    if config.shared_state:
        from .state.redis_store import RedisStateStore  # only a cluster needs redis-py

        assert _on_redis(shared_gate)  # shared_state needs a cluster, and a cluster has no other gate
        return RedisStateStore(shared_gate.link, dest)
    return None if config.state is None else StateStore(config.state)


def _clean_up(dest: Path, store: Store | None, *, forget_gone: bool = True) -> Cleanup:
    """Remove partial files of earlier runs that nothing can use; forget partials that are gone.

    Not with *forget_gone* False (a cluster's shared state): a partial file on record that is not in
    this DEST may be in another fetcher's, which may still resume it.  One that is gone for good is
    forgotten when its URL is next saved.
    """
    if store is None:
        return remove_leftovers(dest, resumable=())
    partials = store.partials()
    cleanup = remove_leftovers(dest, resumable={partial.path for partial in partials})
    if not forget_gone:
        return cleanup
    for partial in partials:
        if Path(partial.path).parent == dest and not os.path.exists(partial.path):
            try:
                store.forget_partial(partial.url)
            except StateError as exc:
                log.warning("%s", exc)
    return cleanup


def _processes(config: FetcherConfig, allowed: bool) -> ProcessPool | None:
    """The worker processes for long lists, not started yet; None where a run keeps to threads."""
    count = config.workers
    if count is None:
        count = usable_cores()
        count = count if count > 1 else 0
    # Hooks that run inside each download (the caller's sessions and display, the
    # rates a redirect hop waits for) cannot cross into another process.
    coupled = config.limit_rate is not None or config.rate is not None or config.rate_per_host is not None
    count = min(count, config.max_concurrent)
    if not allowed or coupled or count == 0 or os.name != "posix":
        return None
    from .workers.pool import ProcessPool  # here: a run that keeps to threads never imports the pool

    threads = -(-config.max_concurrent // count)
    return ProcessPool(config, count, threads=threads, eager=config.workers is not None)


def _new_session(config: FetcherConfig) -> requests.Session:
    """A worker thread's session; requests is imported with it, by the first thread that needs one."""
    from .transfer.session import new_session  # a run that downloads only in worker processes never imports it

    return new_session(config, sessions=config.max_concurrent)  # the WorkerPool's threads


def usable_cores() -> int:
    """Cores this process may run on (its affinity, where the system says)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _prepare_folder(folder: Path) -> None:
    """Make *folder* if missing and prove it is writable, or raise DestinationError."""
    if folder.exists() and not folder.is_dir():
        raise DestinationError(f"destination '{folder}' exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = TempFiles()
        fd, path = probe.create(folder)
        os.close(fd)
        probe.remove(path)
    except OSError as exc:
        raise DestinationError(f"cannot write to destination '{folder}': {exc.strerror or exc}") from exc


def _cluster_limits(config: FetcherConfig) -> dict[str, Any]:
    """The limits every fetcher of a cluster must share, beside --max."""
    return {"max_per_host": config.max_per_host, "rate": config.rate, "rate_per_host": config.rate_per_host,
            "limit_rate": config.limit_rate, "adaptive": config.adaptive}  # fmt: skip


def _limits(config: FetcherConfig, gate: SharedGate | RedisGate | None, clock: Callable[[], float]) -> dict[str, Any]:
    """The per-host limits and the rates: this process's, or a cluster's (on Redis) for a RedisGate."""
    limit_rate, adaptive = config.limit_rate, _adaptive_cap(config)
    if not _on_redis(gate):
        return {
            "hosts": HostLimits(max_per_host=config.max_per_host, rate_per_host=config.rate_per_host,
                                adaptive=adaptive, clock=clock),
            "request_rate": None if config.rate is None else TokenBucket(config.rate, clock=clock),
            "byte_rate": None if limit_rate is None else TokenBucket(limit_rate, burst=burst(limit_rate), clock=clock),
        }  # fmt: skip
    from .limits.redis_hosts import ClusterHostLimits
    from .limits.redis_rate import RedisBucket

    link = gate.link
    return {
        "hosts": ClusterHostLimits(gate, max_per_host=config.max_per_host, rate_per_host=config.rate_per_host,
                                   adaptive=adaptive, clock=clock),
        "request_rate": None if config.rate is None else RedisBucket(link, link.keys["rate"], config.rate, clock=clock),
        "byte_rate": None if limit_rate is None else RedisBucket(link, link.keys["bytes"], limit_rate,
                                                                  burst=burst(limit_rate), clock=clock),
    }  # fmt: skip


def _gate_limit(shared: SharedGate | RedisGate | None) -> str:
    """What a URL waiting for a slot of the gate waited on (its record's ``waited_on``)."""
    if shared is None:
        return SLOTS
    return CLUSTER if _on_redis(shared) else SHARED


def _on_redis(gate: SharedGate | RedisGate | None) -> TypeGuard[RedisGate]:
    """Whether *gate* is a cluster's (on Redis), not this machine's (SharedGate) nor none."""
    if gate is None:
        return False
    from .limits.redis import RedisGate  # imported only where there is a gate: most runs have none

    return isinstance(gate, RedisGate)


def _adaptive_cap(config: FetcherConfig) -> int | None:
    """The cap of each host's adaptive limit: max_per_host, but never above max_concurrent; None: no adaptive limit."""
    if not config.adaptive:
        return None
    return min(config.max_per_host or config.max_concurrent, config.max_concurrent)
