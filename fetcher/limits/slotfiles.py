"""The files of a set of shared slots: their names, their locks, their records, and who waits.

A set *name* lives in the folder ``directory/name`` (see ``shared.py`` for
how the slots work):

- ``slot.NN``: slot NN; held while a process holds an exclusive ``flock``
  on it, and its record says who holds it (``write_record``);
- ``capacity``: the slot count the users agreed on; ``users``: a shared
  lock for each gate open on the set; ``setup``: locked while a gate joins
  the users or registers a waiter, so that each of those is one step;
- ``wait.<pid>``: locked by a process whose threads wait for a slot, and
  its record says how many (``WaitFile``).

Nothing here keeps state of its own but ``WaitFile``; ``SharedGate`` and
``read_slots`` (the monitor) are built on these functions.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import ClosedError, ConfigError

if TYPE_CHECKING:
    import portalocker
else:
    from .._lazy import lazy_module

    portalocker = lazy_module("portalocker")

log = logging.getLogger("fetcher")

CAPACITY = "capacity"
USERS = "users"
SETUP = "setup"
WAIT_PREFIX = "wait."
#: A process whose acquire timed out, and that has not tried again since, stops showing as waiting after this.
IDLE_WAITER_S = 0.5
#: The size of every slot and wait file: one short JSON line, padded.
_RECORD_SIZE = 4096
#: The most a monitor reads of a slot or wait file.
_READ_MAX = 8192


# Functions, not constants, so that importing this module does not import portalocker; each made once.
@functools.cache
def exclusive_now() -> portalocker.LockFlags:
    return portalocker.LOCK_EX | portalocker.LOCK_NB


@functools.cache
def shared_now() -> portalocker.LockFlags:
    return portalocker.LOCK_SH | portalocker.LOCK_NB


def slot_name(number: int) -> str:
    return f"slot.{number:02d}"


def slot_number(filename: str) -> int | None:
    digits = filename[len("slot.") :]
    return int(digits) if digits.isdigit() and digits.isascii() else None


def listing(folder: Path, prefix: str) -> list[Path]:
    """The files in *folder* whose names start with *prefix*, sorted.

    os.scandir and a prefix, not Path.glob: the glob cost a millisecond a
    call, and a releasing process looks for waiters up to 100 times a second.
    """
    try:
        with os.scandir(folder) as entries:
            return sorted(folder / entry.name for entry in entries if entry.name.startswith(prefix))
    except OSError:
        return []


def make_folders(folder: Path) -> None:
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


def open_lock_file(path: Path) -> int:
    """Open (creating) a lock file; read-only if we may not write it (a folder shared by several users)."""
    try:
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # the umask decides, as for any file
        except PermissionError:
            return os.open(path, os.O_RDONLY)  # flock needs no write access; describe() then fails quietly
    except OSError as exc:
        raise ConfigError(f"cannot open the shared slots file {path}: {exc.strerror or exc}") from exc


def try_lock(fd: int, flags: portalocker.LockFlags) -> bool | None:
    """Lock *fd* without waiting: True if locked, False if another holder has it, None if locks fail here."""
    try:
        portalocker.lock(fd, flags)
    except portalocker.AlreadyLocked:
        return False
    except portalocker.LockException as exc:
        log.debug("cannot lock a shared slots file: %s", exc)
        return None
    return True


def write_record(fd: int, record: dict[str, object]) -> None:
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


def read_if_locked(path: Path) -> dict[str, object] | None:
    """The JSON record in *path* if another holder locks it (``{}`` when unreadable), else None."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if try_lock(fd, shared_now()) is not False:
            return None  # free (our shared lock goes with the close), or no locks here
        try:
            record = json.loads(os.read(fd, _READ_MAX))
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}
    finally:
        os.close(fd)


def as_whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_text(value: object) -> str:
    return value if isinstance(value, str) else ""


def as_seconds(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


# -- the count, and joining its users --------------------------------------


def join_users(folder: Path, users_fd: int, name: str, capacity: int) -> None:
    """Join the users of the slots *name* (a shared lock on *users_fd*), fixing the count if we are the only one.

    Raises ConfigError if the users agreed on another count, or if file locks do not work in *folder*.
    """
    setup_fd = open_lock_file(folder / SETUP)
    try:
        portalocker.lock(setup_fd, portalocker.LOCK_EX)  # held for microseconds by anyone
        alone = try_lock(users_fd, exclusive_now())
        if alone is None:
            raise ConfigError(f"file locks do not work in {folder}; shared slots need them")
        if alone:
            _write_atomically(folder / CAPACITY, f"{capacity}\n")
        else:
            agreed = read_capacity(folder)
            if agreed is None:
                raise ConfigError(
                    f"the shared slots {name!r} are in use but their slot count cannot be read "
                    f"from {folder / CAPACITY} (wait until no fetcher uses them)"
                )
            if agreed != capacity:
                raise ConfigError(
                    f"the shared slots {name!r} are in use with {agreed} slots; this run asks for "
                    f"{capacity} (use the same --max, or wait until no fetcher uses them)"
                )
        # Converting our exclusive lock is not atomic in flock, but nobody
        # else can look while we hold setup.
        portalocker.lock(users_fd, shared_now())
        _remove_stale_waits(folder)
    except portalocker.LockException as exc:
        raise ConfigError(f"file locks do not work in {folder}; shared slots need them ({exc})") from exc
    finally:
        os.close(setup_fd)  # releases setup


def read_capacity(folder: Path) -> int | None:
    try:
        text = (folder / CAPACITY).read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        return None
    return int(text) if text.isdigit() and text.isascii() and int(text) >= 1 else None


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="ascii")
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigError(f"cannot write the shared slots count {path}: {exc.strerror or exc}") from exc


# -- who waits -------------------------------------------------------------


def waits(record: dict[str, object], now: float) -> bool:
    """Whether a live wait file's *record* says its process still waits.

    A process whose acquire timed out keeps its file (it is likely to try again
    at once, as fetcher's dispatcher does), with no thread waiting and the time
    it went idle: once that is ``IDLE_WAITER_S`` old, it waits no more.
    """
    idle_since = as_seconds(record.get("idle_since"))
    return idle_since is None or as_whole(record.get("waiting")) != 0 or now - idle_since < IDLE_WAITER_S


def others_wait(folder: Path, pid: int) -> bool:
    """Whether a process other than *pid* shows as waiting for the slots in *folder*."""
    mine = f"{WAIT_PREFIX}{pid}"
    for path in listing(folder, WAIT_PREFIX):
        if path.name == mine:
            continue
        record = read_if_locked(path)
        if record is not None and waits(record, time.time()):
            return True
    return False


class WaitFile:
    """This process's ``wait.<pid>``: made when a thread begins to wait, it says how many wait.

    Thread-safe.  Once ``close()``d, ``begin()`` raises ClosedError: a gate
    closing while a thread begins to wait leaves no file behind.
    """

    def __init__(self, folder: Path, pid: int, name: str) -> None:
        self._folder, self._pid, self._name = folder, pid, name
        self._lock = threading.Lock()
        self._closed = False
        self.waiting = 0  # threads of this process waiting now
        self._fd: int | None = None
        self._since = 0.0

    def begin(self) -> None:
        with self._lock:
            if self._closed:
                raise ClosedError(f"the shared slots {self._name!r} were used after close()")
            self.waiting += 1
            if self._fd is None:
                self._since = time.time()
                self._fd = _register_waiter(self._folder, self._pid)
            self._write()

    def end(self, *, got: bool) -> None:
        with self._lock:
            self.waiting -= 1
            if self.waiting == 0 and got:
                self._drop()
            else:
                # A wait that timed out stays on show until a slot comes or the gate
                # closes: a caller that polls in short acquires (fetcher's dispatcher)
                # is still waiting between them, and other processes must see it.
                self._write()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop()

    def _write(self) -> None:
        if self._fd is not None:
            record: dict[str, object] = {"pid": self._pid, "waiting": self.waiting, "since": self._since}
            if self.waiting == 0:
                record["idle_since"] = time.time()  # shown as waiting a little longer only: see waits()
            write_record(self._fd, record)

    def _drop(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            # Unlinked while still locked: a process cleaning stale files
            # (under setup) never mistakes a live waiter for a dead one.
            (self._folder / f"{WAIT_PREFIX}{self._pid}").unlink()
        except OSError as exc:
            log.debug("could not remove the wait file of shared slots %s: %s", self._name, exc)
        os.close(fd)


def _register_waiter(folder: Path, pid: int) -> int | None:
    """Create and lock ``wait.<pid>``; its descriptor, or None if that cannot be done (then nobody sees us wait)."""
    path = folder / f"{WAIT_PREFIX}{pid}"
    try:
        setup_fd = os.open(folder / SETUP, os.O_RDONLY)
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
        if try_lock(fd, exclusive_now()):
            return fd
    finally:
        os.close(setup_fd)
    os.close(fd)  # the same pid in another pid namespace; waiting works, it just does not show
    return None


def _remove_stale_waits(folder: Path) -> None:
    """Remove the wait files of processes that are gone (their lock is free).  Called under setup."""
    for path in listing(folder, WAIT_PREFIX):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            if try_lock(fd, exclusive_now()):
                path.unlink()
        except OSError as exc:
            log.debug("could not remove a stale wait file %s: %s", path, exc)
        finally:
            os.close(fd)
