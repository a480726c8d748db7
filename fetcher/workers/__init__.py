"""Worker processes: the downloads of a long list spread over every core.

``pool.py`` is the run's side (start the processes, hand them tasks in
batches), with ``receiver.py`` (settle what comes back); ``child.py`` is
the process's side, and ``wire.py`` the values that cross between them.  A
newcomer can read them in that order.  ``cores.py`` says which core each
process keeps to, ``spawn.py`` and ``zygote.py`` how a worker process is
started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pool import ProcessPool


def __getattr__(name: str) -> Any:
    # The pool is imported at its first use (PEP 562): a short list, which starts no
    # worker process, does not pay the import of the pool, its start-up and its receiver.
    if name != "ProcessPool":
        raise AttributeError(f"module 'fetcher.workers' has no attribute {name!r}")
    from .pool import ProcessPool

    return ProcessPool


__all__ = ["ProcessPool"]
