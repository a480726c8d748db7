"""Giving the memory a long run has freed back to the system (glibc's ``malloc_trim``).

What Python frees in blocks over 512 bytes, and what SQLite frees, goes back
to the C library's heap, and glibc returns to the system only what is free at
the top of it.  A long run leaves the rest of its heap full of such holes:
the main process of a 1,000,000-URL run held 13 MiB more than it used.
``malloc_trim(0)`` hands every free page back.  It takes well under a
millisecond, so a run calls it at most once a second (``Trimmer.tick``).

Only where the C library has ``malloc_trim`` (glibc); elsewhere a tick does
nothing.  ctypes is imported at the first trim, so a short run never pays
for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: The least time between two trims, in seconds.
EVERY_S = 1.0

Trim = Callable[[int], object]


class Trimmer:
    """Calls ``malloc_trim(0)`` when ticked, at most once every *every* seconds.

    *trim* and *clock* are for tests; by default, libc's ``malloc_trim`` (looked
    up at the first trim) and ``time.monotonic``.
    """

    def __init__(
        self, every: float = EVERY_S, *, trim: Trim | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._every = every
        self._trim = trim
        self._looked_up = trim is not None
        self._clock = clock
        self._next = clock() + every
        self._lock = threading.Lock()

    def tick(self) -> bool:
        """Trim if *every* seconds have passed since the last trim (or since this Trimmer was made)."""
        now = self._clock()
        if now < self._next or not self._lock.acquire(blocking=False):
            return False  # not yet, or another thread is trimming now
        try:
            if now < self._next:
                return False
            self._next = now + self._every
            if not self._looked_up:
                self._trim, self._looked_up = _malloc_trim(), True
            trim = self._trim
        finally:
            self._lock.release()
        if trim is None:
            return False
        trim(0)
        return True


def _malloc_trim() -> Trim | None:
    """libc's ``malloc_trim``; None where the C library has none (not glibc)."""
    try:
        import ctypes

        function: Trim = ctypes.CDLL(None).malloc_trim
    except (ImportError, OSError, AttributeError):
        return None
    return function


#: This process's Trimmer, which its runs' feeders tick.  A worker process makes its own.
TRIMMER = Trimmer()
