"""Slots shared by every fetcher process on the machine: a crash-safe process semaphore.

``SharedGate(name, capacity, directory=...)`` is a ``Gate`` whose slots are
shared by every process (and thread) that opens the same *name* in the same
*directory*: ten cron jobs that each say ``--max 3`` together never run more
than three downloads at once.

How it works:
    Slot *i* is the file ``directory/name/slot.NN``; holding the slot means
    holding an exclusive kernel ``flock`` on it.  The kernel drops that lock
    the instant its process dies, even by SIGKILL, so a crashed holder gives
    its slot back at once (a semaphore in shared memory, POSIX or
    multiprocessing, would keep the count it took forever).  Each gate opens
    its slot files once and keeps them open: a sweep of free slots costs a
    few microseconds, not an open and a close per file.

    flock locks belong to an open file description, not to a thread: two
    threads of one process trying the same descriptor would both "get" it.
    So the process keeps its own ``held`` flag per slot, under a thread lock,
    and only tries the kernel lock on slots it does not hold itself.

    "The first user fixes the count": the ``capacity`` file records the
    number of slots.  Every gate holds a shared lock on ``users`` for its
    life; a gate that can take ``users`` exclusively knows nobody else uses
    the slots and (re)writes the count, any other gate must agree with it or
    is refused.  The ``setup`` lock makes that check-and-write one step.

    A process whose threads wait for a slot holds a lock on ``wait.<pid>``,
    which also says how many of its threads wait; ``read_slots`` (for the
    ``fetcher slots NAME`` monitor) reads those and the slot files, each of
    which says who holds it (``describe``).

What it is not:
    Not a queue: waiters in other processes poll every ``poll_s`` (flock
    cannot wait with a timeout), and whoever looks first after a release
    wins.  Roughly fair between processes all the same: while another
    process waits, a process leaves a slot it just gave back alone for two
    polls, and does not hand it straight to its own waiting threads (two
    fetchers sharing 2 slots, one started a second after the other, started
    42 and 40 downloads while both ran).  Polling costs a sweep
    of the slots: about 18 us per slot another process holds (portalocker
    raises an exception for each), so a process waiting at capacity 512
    spends a third of a core.  Not
    for network file systems, where flock may be emulated or absent.  Not
    usable across ``fork()``: a child would share the parent's locks; it
    must open its own gate.  Not ``portalocker.BoundedSemaphore``: that
    reopens every slot file on each sweep, its ``timeout=None`` means 5 s,
    and it has no agreement on the count and no record of holders.

The default folder is in the user's cache folder, not /tmp: a tmp cleaner
that deleted a held slot file would let a second holder in silently.

The files themselves (their names, locks and records, and the record of
who waits) are ``slotfiles.py``'s; this module holds the gate and the
monitor's ``read_slots``.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from .._errors import ClosedError, ConfigError
from .._text import redact
from . import slotfiles as files
from .gate import Slot

if TYPE_CHECKING:
    import portalocker
else:
    from .._lazy import lazy_module

    portalocker = lazy_module("portalocker")

log = logging.getLogger("fetcher")

__all__ = ["Holder", "SharedGate", "SlotsSnapshot", "Waiter", "default_directory", "locate", "read_slots"]

_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")


#: A process shows as waiting (a wait file) once one of its threads has waited this long.
_SHOW_WAITER_AFTER_S = 0.05
#: A URL recorded as a slot's holder is cut to this many characters, to fit the record.
_URL_SHOWN = 600


def default_directory(environ: Mapping[str, str]) -> Path:
    """The folder for shared slots: ``$XDG_CACHE_HOME/fetcher/slots``, else ``$HOME/.cache/fetcher/slots``.

    A pure function of *environ* (the command line passes ``os.environ``).
    """
    cache = environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(cache):  # the XDG spec says to ignore a relative one
        return Path(cache) / "fetcher" / "slots"
    home = environ.get("HOME", "")
    if not home:
        raise ConfigError("no folder for shared slots: neither XDG_CACHE_HOME nor HOME is set")
    return Path(home) / ".cache" / "fetcher" / "slots"


def locate(value: str, environ: Mapping[str, str]) -> tuple[str, Path]:
    """Split what the user gave (``--shared-slots``, ``fetcher slots NAME``) into (name, directory).

    A plain name lives in ``default_directory(environ)``; a value with a
    path separator names the slots folder itself: ``/srv/slots/jobs`` is the
    name ``jobs`` in ``/srv/slots``.
    """
    separators = [sep for sep in (os.sep, os.altsep) if sep]
    if not any(sep in value for sep in separators):
        return _check_name(value), default_directory(environ)
    path = Path(value)
    return _check_name(path.name), path.parent


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            f"the shared slots name must be a plain file name (letters, digits, '.', '_', '-', "
            f"not starting with a dot, at most 64 characters), not {name!r}"
        )
    return name


class SharedGate:
    """A gate whose slots are shared by every process that opens *name* in *directory*.

    ``capacity`` is the count all users agreed on; ``in_use`` and ``waiting``
    count this process only (``read_slots`` gives the whole machine), and
    ``waiting`` only the threads that have waited ``_SHOW_WAITER_AFTER_S``.
    Close it, or use it with ``with``: closing gives back every slot it holds.

    A waiter polls the other processes' slots every ``poll_s``; a slot that
    a thread of this process gives back wakes it at once.  ``sleep`` replaces
    that wait (tests pass a fake, with a fake ``clock``).
    """

    def __init__(
        self,
        name: str,
        capacity: int,
        *,
        directory: Path,
        poll_s: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._name = _check_name(name)
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ConfigError(f"capacity must be a whole number >= 1, not {capacity!r}")
        if isinstance(poll_s, bool) or not isinstance(poll_s, (int, float)) or not 0 < poll_s < math.inf:
            raise ConfigError(f"poll_s must be a number of seconds > 0, not {poll_s!r}")
        self._capacity = capacity
        self._poll_s = float(poll_s)
        self._clock = clock
        self._sleep = sleep
        self._folder = Path(directory) / name
        self._pid = os.getpid()
        # One lock for the slot table and every use of a slot descriptor: after
        # close() a descriptor number may name another file, so nothing may
        # touch one without seeing _closed first.
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        self._released = 0  # slots this process gave back to its own waiters, so far
        self._others = False  # whether another process waited, when last looked
        self._others_checked_at = -math.inf
        self._closed = False
        self._holders: list[Slot | None] = [None] * capacity
        self._given_back_at = [-math.inf] * capacity  # by the clock, when this process last released each
        self._index: dict[int, int] = {}  # id(slot) -> slot number, for describe()
        self._waits = files.WaitFile(self._folder, self._pid, name)
        self._slot_fds: list[int] = []
        files.make_folders(self._folder)
        self._users_fd = files.open_lock_file(self._folder / files.USERS)
        try:
            files.join_users(self._folder, self._users_fd, name, capacity)
            for number in range(capacity):
                self._slot_fds.append(files.open_lock_file(self._folder / files.slot_name(number)))
        except BaseException:
            self._closed = True
            self._close_fds()
            raise

    @property
    def name(self) -> str:
        return self._name

    @property
    def folder(self) -> Path:
        return self._folder

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def in_use(self) -> int:
        """Slots held by this process."""
        return sum(holder is not None for holder in self._holders)

    @property
    def waiting(self) -> int:
        """Threads of this process waiting in ``acquire``."""
        return self._waits.waiting

    def acquire(self, timeout: float | None = None) -> Slot | None:
        released = self._released
        slot = self._try()
        if slot is not None or (timeout is not None and timeout <= 0):
            return slot
        began = self._clock()
        deadline = None if timeout is None else began + timeout
        registered = False
        try:
            while True:
                left = math.inf if deadline is None else deadline - self._clock()
                self._pause(max(0.0, min(self._poll_s, left)), released)
                released = self._released
                slot = self._try()
                if slot is not None:
                    return slot
                now = self._clock()
                if deadline is not None and now >= deadline:
                    return None
                if not registered and now - began >= _SHOW_WAITER_AFTER_S:
                    # Only a wait that lasts is worth a file: most last milliseconds.
                    self._waits.begin()
                    registered = True
        finally:
            if registered:
                self._waits.end(got=slot is not None)

    def _pause(self, seconds: float, released: int) -> None:
        """Sleep *seconds*, or less if a slot of this process comes back meanwhile (since *released*)."""
        if self._sleep is not None:
            self._sleep(seconds)
            return
        with self._freed:
            if self._released == released:
                self._freed.wait(seconds)

    def _try(self) -> Slot | None:
        """One sweep: the first slot neither this process nor another holds, or None.

        While another process waits, a slot this process gave back in the last
        two polls is left to it: it looks once per poll, this process could
        take the slot back at once, and would every time.
        """
        others = self._others_waiting()
        with self._lock:
            self._check_open()
            left_to_others_since = self._clock() - 2 * self._poll_s if others else math.inf
            for number, holder in enumerate(self._holders):
                if holder is None and self._given_back_at[number] > left_to_others_since:
                    continue
                if holder is None and files.try_lock(self._slot_fds[number], files.exclusive_now()):
                    slot = Slot(functools.partial(self._give_back, number))
                    self._holders[number] = slot
                    self._index[id(slot)] = number
                    # A holder shows its pid even before describe().
                    files.write_record(self._slot_fds[number], {"pid": self._pid, "url": "", "since": time.time()})
                    return slot
        return None

    def _give_back(self, number: int) -> None:
        # Looked at before the lock: it may read the folder (at most once per poll).
        handoff = not self._others_waiting()
        given_back_at = self._clock()
        with self._lock:
            holder = self._holders[number]
            if self._closed or holder is None:
                return  # close() gave it back already
            # Unlock before clearing the flag: another thread trying this
            # descriptor while we still hold it would "get" it too.
            try:
                portalocker.unlock(self._slot_fds[number])
            except portalocker.LockException as exc:
                log.debug("could not unlock shared slot %s/%d: %s", self._name, number, exc)
            self._holders[number] = None
            del self._index[id(holder)]
            self._given_back_at[number] = given_back_at
            if handoff:
                # A thread of this process waiting for a slot takes it now, not at its next
                # poll; but not while another process waits: then every waiter polls, so
                # that the slot goes to whoever looks first, not always to this process.
                self._released += 1
                self._freed.notify()

    def _others_waiting(self) -> bool:
        """Whether another process shows as waiting for these slots (read at most once per ``poll_s``)."""
        now = self._clock()
        if now - self._others_checked_at >= self._poll_s:
            self._others, self._others_checked_at = files.others_wait(self._folder, self._pid), now
        return self._others

    def describe(self, slot: Slot, url: str) -> None:
        """Record in *slot*'s file who holds it and for what, for ``read_slots``.  Never raises."""
        with self._lock:
            number = self._index.get(id(slot))
            if self._closed or number is None or self._holders[number] is not slot:
                return  # released, or not one of ours
            shown = redact(url)
            if len(shown) > _URL_SHOWN:
                shown = shown[: _URL_SHOWN - 1] + "…"
            files.write_record(self._slot_fds[number], {"pid": self._pid, "url": shown, "since": time.time()})

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"the shared slots {self._name!r} were used after close()")
        if os.getpid() != self._pid:
            # A forked child shares the parent's flock locks: it would hold what the parent holds.
            raise ClosedError(f"the shared slots {self._name!r} were opened by another process; open them anew")

    def close(self) -> None:
        """Give back every slot this gate holds and leave the users of the slots.  Calling it again does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._holders = [None] * self._capacity
            self._index.clear()
            self._waits.close()
            self._close_fds()

    def _close_fds(self) -> None:
        # Slots first, users last: whoever then finds users free may rewrite the count.
        for fd in self._slot_fds:
            os.close(fd)
        self._slot_fds = []
        os.close(self._users_fd)

    def __enter__(self) -> SharedGate:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"in_use={self.in_use}/{self._capacity} waiting={self.waiting}"
        return f"<SharedGate {self._name!r} in {self._folder.parent} {state}>"


# -- what the monitor reads -------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Holder:
    """A held slot: its number and, as far as its file says, who holds it since when."""

    slot: int
    pid: int | None
    url: str
    since: float | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Waiter:
    """A process with threads waiting for a slot."""

    pid: int
    waiting: int
    since: float | None


@dataclass(frozen=True, kw_only=True, slots=True)
class SlotsSnapshot:
    """Who holds and who waits for the shared slots *name*, at one moment."""

    name: str
    directory: Path
    capacity: int | None  # None when the count file is missing or unreadable
    holders: tuple[Holder, ...]
    waiters: tuple[Waiter, ...]


def read_slots(name: str, directory: Path) -> SlotsSnapshot | None:
    """The holders and waiters of the shared slots *name* in *directory*; None if there are none such.

    A slot is held when a shared lock on its file is refused.  Looking takes
    that lock for microseconds when the slot is free, so an acquirer sweeping
    at that instant may miss the slot; it finds it on its next poll.  Never
    raises for a corrupt or vanished file.
    """
    folder = Path(directory) / _check_name(name)
    if not folder.is_dir():
        return None
    capacity = files.read_capacity(folder)
    if capacity is not None:
        numbers: list[int] = list(range(capacity))
    else:
        found = (files.slot_number(path.name) for path in files.listing(folder, "slot."))
        numbers = sorted(n for n in found if n is not None)
    holders: list[Holder] = []
    for number in numbers:
        record = files.read_if_locked(folder / files.slot_name(number))
        if record is not None:
            holders.append(
                Holder(
                    slot=number,
                    pid=files.as_whole(record.get("pid")),
                    url=files.as_text(record.get("url")),
                    since=files.as_seconds(record.get("since")),
                )
            )
    waiters: list[Waiter] = []
    for path in files.listing(folder, files.WAIT_PREFIX):
        pid = path.name[len(files.WAIT_PREFIX) :]
        record = files.read_if_locked(path) if pid.isdigit() else None
        if record is not None and files.waits(record, time.time()):  # an unlocked wait file is a dead process's
            count = files.as_whole(record.get("waiting"))
            # The lock proves at least one thread waits, even before the count is written.
            since = files.as_seconds(record.get("since"))
            waiters.append(Waiter(pid=int(pid), waiting=max(count or 1, 1), since=since))
    waiters.sort(key=lambda waiter: waiter.pid)
    return SlotsSnapshot(
        name=name, directory=Path(directory), capacity=capacity, holders=tuple(holders), waiters=tuple(waiters)
    )
