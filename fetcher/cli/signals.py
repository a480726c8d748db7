"""Ctrl-C and SIGTERM during a download run: the first stops the run gently, the second at once.

The first signal asks the Fetcher to stop as ``--deadline`` does: downloads in
flight end as ``cancelled``, the URLs not started (to the end of the list) as
``not-started``, so every URL of the list gets its record and the run ends
with a true summary.  That can take a moment on a long list, so a second
signal stops at once, as a signal always did (KeyboardInterrupt or
Terminated, raised in the main thread).

The handler itself only sets a flag and starts a thread: it runs between two
bytecodes of the main thread, which may hold the display's or the run's
locks at that instant.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from .exits import Terminated

_REASONS = {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "terminated (SIGTERM)"}


class StopOnSignal:
    """While in use (``with``), SIGINT and SIGTERM call *stop(reason)* once, then raise."""

    def __init__(self, stop: Callable[[str], None]) -> None:
        self._stop = stop
        self.signal: signal.Signals | None = None  # the first signal received
        self._noticed = False
        self._previous: dict[signal.Signals, Any] = {}

    @property
    def reason(self) -> str | None:
        return None if self.signal is None else _REASONS[self.signal]

    def noticed(self) -> bool:
        """True once, the first time it is asked after the first signal (to say so on screen)."""
        if self.signal is None or self._noticed:
            return False
        self._noticed = True
        return True

    def __enter__(self) -> StopOnSignal:
        for signum in _REASONS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise Terminated
        self.signal = signal.Signals(signum)
        threading.Thread(target=self._stop, args=(_REASONS[self.signal],), name="fetcher-stop", daemon=True).start()
