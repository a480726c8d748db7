"""The lines a stop hangs up: a session's sockets (``Line``) and a run's attempts in flight (``HangUps``).

No HTTP here (hangup.py explains the scheme and hands its sockets to a
Line): the run keeps its HangUps without importing requests.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import socket
import threading
from collections.abc import Callable


class HungUp(ConnectionAbortedError):
    """A request was about to use a line its attempt had hung up."""

    def __init__(self) -> None:
        super().__init__(errno.ECONNABORTED, "hung up: the run stopped")


class Line:
    """The sockets the current attempt of one session uses; its hang-up shuts them from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._user: object | None = None  # the attempt that has the line open
        self._hung_up = False

    def open(self) -> Callable[[], None]:
        """Start an attempt; the callable returned hangs up that attempt's sockets, and later ones of it."""
        user = object()
        with self._lock:
            self._user, self._hung_up = user, False
            self._socks.clear()
        return functools.partial(self._hang_up, user)

    def close(self) -> None:
        """The attempt is over: its hang-up no longer does anything."""
        with self._lock:
            self._user, self._hung_up = None, False
            self._socks.clear()

    def add(self, sock: socket.socket) -> None:
        """*sock* is about to carry the open attempt's request; raise if that attempt was hung up already."""
        with self._lock:
            if self._user is None:
                return
            if self._hung_up:
                raise HungUp()
            self._socks.append(sock)

    def add_duplicate(self, sock: socket.socket) -> socket.socket | None:
        """Add a duplicate descriptor of *sock*, to shut it while *sock*'s own object is out of reach.

        Return it, for ``discard``; None when no attempt has the line open.
        """
        with self._lock:
            if self._user is None:
                return None
            if self._hung_up:
                raise HungUp()
            duplicate = sock.dup()
            self._socks.append(duplicate)
            return duplicate

    def discard(self, duplicate: socket.socket) -> None:
        """Forget and close a duplicate from ``add_duplicate``; under the lock, so a hang-up never
        shuts its descriptor number after another file took it."""
        with self._lock:
            with contextlib.suppress(ValueError):
                self._socks.remove(duplicate)
            duplicate.close()

    def _hang_up(self, user: object) -> None:
        with self._lock:
            if self._user is not user:
                return  # that attempt is over; the line may carry another now
            self._hung_up = True
            for sock in self._socks:
                with contextlib.suppress(OSError):  # closed or detached since: nothing left to cut
                    sock.shutdown(socket.SHUT_RDWR)


class HangUps:
    """What cuts each attempt in flight of one run, all called at once when *halt* is set.

    The run's side of ``Ask.on_stop``: the run (``_run/stops.py``) and a
    worker process (``workers/child.py``) each keep one per run.
    """

    def __init__(self, halt: threading.Event) -> None:
        self._halt = halt
        self._lock = threading.Lock()
        self._hang_ups: dict[object, Callable[[], None]] = {}

    def on_stop(self, hang_up: Callable[[], None]) -> Callable[[], None]:
        """Call *hang_up* when the run halts (now, if it has); the callable returned forgets it."""
        key = object()
        with self._lock:
            halted = self._halt.is_set()
            if not halted:
                self._hang_ups[key] = hang_up
        if halted:
            hang_up()
        return functools.partial(self._forget, key)

    def hang_up_all(self) -> None:
        """Cut every attempt in flight (the caller has set *halt* first: none registers after this)."""
        with self._lock:
            hang_ups, self._hang_ups = list(self._hang_ups.values()), {}
        for hang_up in hang_ups:
            hang_up()

    def _forget(self, key: object) -> None:
        with self._lock:
            self._hang_ups.pop(key, None)
