"""The gate: a fixed number of download slots.

A gate is what keeps fetcher polite.  Whoever wants to download asks the gate
for a slot, may give up after a timeout, and gives the slot back when done.

What a gate is:
    A counting semaphore whose counts can be read: ``in_use`` slots held now,
    ``waiting`` callers blocked in ``acquire`` now.  The progress display shows
    both.  A slot is an object, released exactly once, by ``with`` or
    ``release()``; releasing twice is harmless, so error paths can be careless.

What it is not:
    Not a queue: it promises no strict first-come-first-served order among
    waiters (fetcher keeps its own order before it asks).  Not a rate limiter:
    it caps how many downloads run at once, not how many start per second.
    ``LocalGate`` is not shared between processes.

Anything with the ``Gate`` shape can stand in for ``LocalGate`` (a gate shared
by several processes on one host, or by a cluster, or one per host name): the
rest of fetcher only calls ``acquire`` and reads the counts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, runtime_checkable

from .._errors import ConfigError


class Slot:
    """One held slot.  Give it back with ``release()`` or by leaving ``with``."""

    __slots__ = ("_give_back", "_lock")

    def __init__(self, give_back: Callable[[], None]) -> None:
        self._give_back: Callable[[], None] | None = give_back
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        return self._give_back is not None

    def release(self) -> None:
        """Give the slot back.  Calling it again does nothing."""
        with self._lock:
            give_back, self._give_back = self._give_back, None
        if give_back is not None:
            give_back()

    def __enter__(self) -> Slot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


@runtime_checkable
class Gate(Protocol):
    """What fetcher needs from a source of slots."""

    @property
    def capacity(self) -> int: ...

    @property
    def in_use(self) -> int: ...

    @property
    def waiting(self) -> int: ...

    def acquire(self, timeout: float | None = None) -> Slot | None:
        """Return a held slot, or None if *timeout* seconds passed first.

        ``timeout=None`` waits as long as it takes; ``timeout=0`` only tries.
        """
        ...


class LocalGate:
    """A gate for the threads of one process."""

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ConfigError(f"capacity must be a whole number >= 1, not {capacity!r}")
        self._capacity = capacity
        self._in_use = 0
        self._waiting = 0
        self._changed = threading.Condition(threading.Lock())

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def waiting(self) -> int:
        return self._waiting

    def acquire(self, timeout: float | None = None) -> Slot | None:
        if timeout is not None and timeout < 0:
            timeout = 0
        with self._changed:
            if self._in_use < self._capacity:  # free now: taken without a wait, so never counted as waiting
                self._in_use += 1
                return Slot(self._release)
            if timeout == 0:
                return None
            self._waiting += 1
            try:
                if not self._changed.wait_for(lambda: self._in_use < self._capacity, timeout):
                    return None
                self._in_use += 1
            finally:
                self._waiting -= 1
        return Slot(self._release)

    def _release(self) -> None:
        with self._changed:
            self._in_use -= 1
            self._changed.notify()

    def __repr__(self) -> str:
        return f"<LocalGate in_use={self._in_use}/{self._capacity} waiting={self._waiting}>"
