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
"""

from __future__ import annotations

import functools
import json
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
from .gate import Slot

if TYPE_CHECKING:
    import portalocker
else:
    from .._lazy import lazy_module

    portalocker = lazy_module("portalocker")

log = logging.getLogger("fetcher")

__all__ = ["Holder", "SharedGate", "SlotsSnapshot", "Waiter", "default_directory", "locate", "read_slots"]

_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")


# Functions, not constants, so that importing this module does not import portalocker; each made once.
@functools.cache
def _exclusive_now() -> portalocker.LockFlags:
    return portalocker.LOCK_EX | portalocker.LOCK_NB


@functools.cache
def _shared_now() -> portalocker.LockFlags:
    return portalocker.LOCK_SH | portalocker.LOCK_NB


_CAPACITY = "capacity"
_USERS = "users"
_SETUP = "setup"
_WAIT_PREFIX = "wait."
#: A process shows as waiting (a wait file) once one of its threads has waited this long.
_SHOW_WAITER_AFTER_S = 0.05
#: A process whose acquire timed out, and that has not tried again since, stops showing as waiting after this.
_IDLE_WAITER_S = 0.5
#: The size of every slot and wait file: one short JSON line, padded.
_RECORD_SIZE = 4096
#: The most a monitor reads of a slot or wait file.
_READ_MAX = 8192
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
        self._wait_lock = threading.Lock()
        self._waiting = 0
        self._wait_fd: int | None = None
        self._wait_since = 0.0
        self._slot_fds: list[int] = []
        _make_folders(self._folder)
        self._users_fd = _open(self._folder / _USERS)
        try:
            self._agree()
            for number in range(capacity):
                self._slot_fds.append(_open(self._folder / _slot_name(number)))
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
        return self._waiting

    def _agree(self) -> None:
        """Join the users of the slots, fixing the count if we are the only one."""
        setup_fd = _open(self._folder / _SETUP)
        try:
            portalocker.lock(setup_fd, portalocker.LOCK_EX)  # held for microseconds by anyone
            alone = _try_lock(self._users_fd, _exclusive_now())
            if alone is None:
                raise ConfigError(f"file locks do not work in {self._folder}; shared slots need them")
            if alone:
                _write_atomically(self._folder / _CAPACITY, f"{self._capacity}\n")
            else:
                agreed = _read_capacity(self._folder)
                if agreed is None:
                    raise ConfigError(
                        f"the shared slots {self._name!r} are in use but their slot count cannot be read "
                        f"from {self._folder / _CAPACITY} (wait until no fetcher uses them)"
                    )
                if agreed != self._capacity:
                    raise ConfigError(
                        f"the shared slots {self._name!r} are in use with {agreed} slots; this run asks for "
                        f"{self._capacity} (use the same --max, or wait until no fetcher uses them)"
                    )
            # Converting our exclusive lock is not atomic in flock, but nobody
            # else can look while we hold setup.
            portalocker.lock(self._users_fd, _shared_now())
            _remove_stale_waits(self._folder)
        except portalocker.LockException as exc:
            raise ConfigError(f"file locks do not work in {self._folder}; shared slots need them ({exc})") from exc
        finally:
            os.close(setup_fd)  # releases setup

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
                    self._wait_begins()
                    registered = True
        finally:
            if registered:
                self._wait_ends(got=slot is not None)

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
                if holder is None and _try_lock(self._slot_fds[number], _exclusive_now()):
                    slot = Slot(functools.partial(self._give_back, number))
                    self._holders[number] = slot
                    self._index[id(slot)] = number
                    # A holder shows its pid even before describe().
                    _write_record(self._slot_fds[number], {"pid": self._pid, "url": "", "since": time.time()})
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
        if now - self._others_checked_at < self._poll_s:
            return self._others
        mine = f"{_WAIT_PREFIX}{self._pid}"
        others = False
        for path in _listing(self._folder, _WAIT_PREFIX):
            if path.name == mine:
                continue
            record = _read_if_locked(path)
            if record is not None and _waits(record, time.time()):
                others = True
                break
        self._others, self._others_checked_at = others, now
        return others

    def describe(self, slot: Slot, url: str) -> None:
        """Record in *slot*'s file who holds it and for what, for ``read_slots``.  Never raises."""
        with self._lock:
            number = self._index.get(id(slot))
            if self._closed or number is None or self._holders[number] is not slot:
                return  # released, or not one of ours
            shown = redact(url)
            if len(shown) > _URL_SHOWN:
                shown = shown[: _URL_SHOWN - 1] + "…"
            _write_record(self._slot_fds[number], {"pid": self._pid, "url": shown, "since": time.time()})

    def _wait_begins(self) -> None:
        with self._wait_lock:
            self._check_open()
            self._waiting += 1
            if self._wait_fd is None:
                self._wait_since = time.time()
                self._wait_fd = _register_waiter(self._folder, self._pid)
            self._write_waiting()

    def _wait_ends(self, *, got: bool) -> None:
        with self._wait_lock:
            self._waiting -= 1
            if self._waiting == 0 and got:
                self._drop_wait_file()
            else:
                # A wait that timed out stays on show until a slot comes or the gate
                # closes: a caller that polls in short acquires (fetcher's dispatcher)
                # is still waiting between them, and other processes must see it.
                self._write_waiting()

    def _write_waiting(self) -> None:
        if self._wait_fd is not None:
            record: dict[str, object] = {"pid": self._pid, "waiting": self._waiting, "since": self._wait_since}
            if self._waiting == 0:
                record["idle_since"] = time.time()  # shown as waiting a little longer only: see _waits
            _write_record(self._wait_fd, record)

    def _drop_wait_file(self) -> None:
        fd, self._wait_fd = self._wait_fd, None
        if fd is None:
            return
        try:
            # Unlinked while still locked: a process cleaning stale files
            # (under setup) never mistakes a live waiter for a dead one.
            (self._folder / f"{_WAIT_PREFIX}{self._pid}").unlink()
        except OSError as exc:
            log.debug("could not remove the wait file of shared slots %s: %s", self._name, exc)
        os.close(fd)

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
            with self._wait_lock:
                self._drop_wait_file()
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
        state = "closed" if self._closed else f"in_use={self.in_use}/{self._capacity} waiting={self._waiting}"
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
    capacity = _read_capacity(folder)
    if capacity is not None:
        numbers: list[int] = list(range(capacity))
    else:
        numbers = sorted(n for n in (_slot_number(p.name) for p in _listing(folder, "slot.")) if n is not None)
    holders: list[Holder] = []
    for number in numbers:
        record = _read_if_locked(folder / _slot_name(number))
        if record is not None:
            holders.append(
                Holder(
                    slot=number,
                    pid=_whole(record.get("pid")),
                    url=_text(record.get("url")),
                    since=_seconds(record.get("since")),
                )
            )
    waiters: list[Waiter] = []
    for path in _listing(folder, _WAIT_PREFIX):
        pid = path.name[len(_WAIT_PREFIX) :]
        record = _read_if_locked(path) if pid.isdigit() else None
        if record is not None and _waits(record, time.time()):  # an unlocked wait file is a dead process's
            count = _whole(record.get("waiting"))
            # The lock proves at least one thread waits, even before the count is written.
            waiters.append(Waiter(pid=int(pid), waiting=max(count or 1, 1), since=_seconds(record.get("since"))))
    waiters.sort(key=lambda waiter: waiter.pid)
    return SlotsSnapshot(
        name=name, directory=Path(directory), capacity=capacity, holders=tuple(holders), waiters=tuple(waiters)
    )


def _read_if_locked(path: Path) -> dict[str, object] | None:
    """The JSON record in *path* if another holder locks it (``{}`` when unreadable), else None."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if _try_lock(fd, _shared_now()) is not False:
            return None  # free (our shared lock goes with the close), or no locks here
        try:
            record = json.loads(os.read(fd, _READ_MAX))
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}
    finally:
        os.close(fd)


def _waits(record: dict[str, object], now: float) -> bool:
    """Whether a live wait file's *record* says its process still waits.

    A process whose acquire timed out keeps its file (it is likely to try again
    at once, as fetcher's dispatcher does), with no thread waiting and the time
    it went idle: once that is ``_IDLE_WAITER_S`` old, it waits no more.
    """
    idle_since = _seconds(record.get("idle_since"))
    return idle_since is None or _whole(record.get("waiting")) != 0 or now - idle_since < _IDLE_WAITER_S


def _whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _seconds(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


# -- files ----------------------------------------------------------------


def _slot_name(number: int) -> str:
    return f"slot.{number:02d}"


def _slot_number(filename: str) -> int | None:
    digits = filename[len("slot.") :]
    return int(digits) if digits.isdigit() and digits.isascii() else None


def _listing(folder: Path, prefix: str) -> list[Path]:
    """The files in *folder* whose names start with *prefix*, sorted.

    os.scandir and a prefix, not Path.glob: the glob cost a millisecond a
    call, and a releasing process looks for waiters up to 100 times a second.
    """
    try:
        with os.scandir(folder) as entries:
            return sorted(folder / entry.name for entry in entries if entry.name.startswith(prefix))
    except OSError:
        return []


def _make_folders(folder: Path) -> None:
    """Create *folder* and its missing parents, private (0o700); a folder that exists is used as it is."""
    missing: list[Path] = []
    for path in (folder, *folder.parents):
        if path.is_dir():
            break
        missing.append(path)
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass  # made by another process meanwhile
        except OSError as exc:
            raise ConfigError(f"cannot make the folder for shared slots {path}: {exc.strerror or exc}") from exc


def _open(path: Path) -> int:
    """Open (creating) a lock file; read-only if we may not write it (a folder shared by several users)."""
    try:
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # the umask decides, as for any file
        except PermissionError:
            return os.open(path, os.O_RDONLY)  # flock needs no write access; describe() then fails quietly
    except OSError as exc:
        raise ConfigError(f"cannot open the shared slots file {path}: {exc.strerror or exc}") from exc


def _try_lock(fd: int, flags: portalocker.LockFlags) -> bool | None:
    """Lock *fd* without waiting: True if locked, False if another holder has it, None if locks fail here."""
    try:
        portalocker.lock(fd, flags)
    except portalocker.AlreadyLocked:
        return False
    except portalocker.LockException as exc:
        log.debug("cannot lock a shared slots file: %s", exc)
        return None
    return True


def _write_record(fd: int, record: dict[str, object]) -> None:
    """Replace the contents of the open file *fd* with *record* as one JSON line.  Never raises.

    Padded with spaces to ``_RECORD_SIZE``, which JSON ignores: one pwrite
    replaces any earlier record, with no truncate (a third of the cost of a
    download's slot, measured).
    """
    data = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    if len(data) > _RECORD_SIZE:
        log.debug("a shared slots record of %d bytes is not written", len(data))
        return
    try:
        os.pwrite(fd, data.ljust(_RECORD_SIZE), 0)
    except OSError as exc:
        log.debug("could not record a shared slot's holder: %s", exc)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="ascii")
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigError(f"cannot write the shared slots count {path}: {exc.strerror or exc}") from exc


def _read_capacity(folder: Path) -> int | None:
    try:
        text = (folder / _CAPACITY).read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        return None
    return int(text) if text.isdigit() and text.isascii() and int(text) >= 1 else None


def _register_waiter(folder: Path, pid: int) -> int | None:
    """Create and lock ``wait.<pid>``; its descriptor, or None if that cannot be done (then nobody sees us wait)."""
    path = folder / f"{_WAIT_PREFIX}{pid}"
    try:
        setup_fd = os.open(folder / _SETUP, os.O_RDONLY)
    except OSError as exc:
        log.debug("cannot register a waiter for shared slots in %s: %s", folder, exc)
        return None
    try:
        # Under setup, so a stale-file clean-up never removes this file between its creation and its lock.
        portalocker.lock(setup_fd, portalocker.LOCK_EX)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except (OSError, portalocker.LockException) as exc:
        log.debug("cannot register a waiter for shared slots in %s: %s", folder, exc)
        os.close(setup_fd)
        return None
    try:
        if _try_lock(fd, _exclusive_now()):
            return fd
    finally:
        os.close(setup_fd)
    os.close(fd)  # the same pid in another pid namespace; waiting works, it just does not show
    return None


def _remove_stale_waits(folder: Path) -> None:
    """Remove the wait files of processes that are gone (their lock is free).  Called under setup."""
    for path in _listing(folder, _WAIT_PREFIX):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            if _try_lock(fd, _exclusive_now()):
                path.unlink()
        except OSError as exc:
            log.debug("could not remove a stale wait file %s: %s", path, exc)
        finally:
            os.close(fd)
