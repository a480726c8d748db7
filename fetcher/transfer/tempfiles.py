"""Temporary files: where a download is written before it gets its final name.

Every download goes to a hidden file in DEST (``.fetcher-*.part``), a name no
URL can get, because URL names never start with a dot.  Its writer holds an
exclusive kernel lock on it (flock; portalocker's where there is no fcntl)
for as long as it writes, and the kernel drops that lock the instant the
writer dies, even by SIGKILL.  So any run can tell a partial file that a
live download is writing (locked) from one left by a run that is gone
(unlocked), and two runs never write one partial file at once.

A partial file is *kept* when it can be resumed (the server allows ranges and
gave a strong validator) and the state database knows of it; everything else
is removed when its download ends, however it ends.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import secrets
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import portalocker
else:
    from .._lazy import lazy_module

    portalocker = lazy_module("portalocker")  # for systems without fcntl only

try:
    import fcntl
except ImportError:  # not POSIX: portalocker's own locks
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("fetcher")

TEMP_PREFIX = ".fetcher-"
TEMP_SUFFIX = ".part"

#: An unlocked partial file this young, whose writer's process is alive, may
#: be one that writer has created and not locked yet (microseconds, but
#: another run could look then).  Its process id is in its name.
UNLOCKED_GRACE_S = 60.0

#: A partial file whose writer cannot be judged (a file system without
#: locks) is taken for abandoned only when untouched this long.
ABANDONED_AFTER_S = 24 * 3600

#: A resumable partial file kept for a later run is given up after this long
#: untouched: the server's copy has most likely changed by then anyway.
KEEP_RESUMABLE_S = 7 * 24 * 3600


class TempFiles:
    """The temporary files this process is writing, so they can be removed on close.

    A worker stuck in a read cannot be interrupted; when the Fetcher closes,
    it removes that worker's temporary file itself, unless it was marked to
    be kept for resuming.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: set[Path] = set()
        self._kept: set[Path] = set()
        self._prefix = f"{os.getpid()}-{secrets.token_hex(2)}-"
        self._counter = itertools.count()

    def create(self, folder: Path) -> tuple[int, Path]:
        """A new, locked, empty temporary file in *folder*: (descriptor, path)."""
        # O_EXCL: never open an existing file; mode 0o666 lets the umask decide,
        # so finished files get the same permissions as any other new file.
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        for _ in range(16):
            # Process id and a counter: unique here, and O_EXCL guards against
            # a leftover from an earlier process that had the same id.
            path = folder / f"{TEMP_PREFIX}{self._prefix}{next(self._counter)}{TEMP_SUFFIX}"
            try:
                fd = os.open(path, flags, 0o666)
            except FileExistsError:
                continue
            _try_lock(fd)  # a file system without locks still downloads
            with self._lock:
                self._paths.add(path)
            return fd, path
        raise FileExistsError(f"no free temporary name in {folder}")

    def reopen(self, path: Path) -> int | None:
        """Open a kept partial file to append to it, locked; None if that cannot be done now.

        None when another process is writing it (locked), when it is gone, or
        when it was replaced under the same name since it was recorded.
        """
        try:
            fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
        except OSError:
            return None
        if not _try_lock(fd) or not _still_named(fd, path):
            os.close(fd)
            return None
        with self._lock:
            self._paths.add(path)
        return fd

    def adopt(self, path: Path, *, kept: bool) -> None:
        """Take on *path*, made by a worker process: removed on close, unless *kept* (a resume may continue it)."""
        with self._lock:
            self._paths.add(path)
            if kept:
                self._kept.add(path)

    def keep(self, path: Path) -> None:
        """Leave *path* in place on close: a later run can resume it."""
        with self._lock:
            self._kept.add(path)

    def unkeep(self, path: Path) -> None:
        """Remove *path* on close after all: what made it worth keeping no longer holds."""
        with self._lock:
            self._kept.discard(path)

    def is_kept(self, path: Path) -> bool:
        with self._lock:
            return path in self._kept

    def forget(self, path: Path) -> None:
        with self._lock:
            self._paths.discard(path)
            self._kept.discard(path)

    def remove(self, path: Path) -> None:
        """Remove *path*; a failure is logged, never raised (callers are threads that must go on).

        Listed until it is gone: a worker process that ends (``remove_all``, then ``os._exit``) while
        this thread is between the two steps still removes it.
        """
        _unlink(path)
        self.forget(path)

    def remove_all(self) -> None:
        """Remove every temporary file not marked to be kept (on close)."""
        with self._lock:
            paths, self._paths = self._paths - self._kept, set()
            self._kept = set()
        for path in paths:
            _unlink(path)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove the temporary file %s: %s", path, exc.strerror or exc)


@dataclass(frozen=True, kw_only=True, slots=True)
class Cleanup:
    """What ``remove_leftovers`` did."""

    removed: int = 0
    removed_bytes: int = 0
    kept: int = 0  # resumable partial files left for their URLs
    kept_bytes: int = 0


def remove_leftovers(folder: Path, *, resumable: Collection[str], now: float | None = None) -> Cleanup:
    """Remove the partial files in *folder* that no live writer owns and no URL can resume.

    *resumable* holds the paths (as str) the state database keeps for resuming;
    those stay, unless untouched for KEEP_RESUMABLE_S.  A locked file is being
    written by a live run (this one or another) and is never touched.
    """
    now = time.time() if now is None else now
    removed = removed_bytes = kept = kept_bytes = 0
    for path in folder.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except OSError:
            continue  # gone already, or not ours to open
        try:
            info = os.fstat(fd)
            age = now - info.st_mtime
            judged = _try_lock(fd, quiet=True)
            if judged is None:
                doomed = age > ABANDONED_AFTER_S  # no locks here: fall back on age
            elif not judged:
                continue  # a live writer holds it
            elif str(path) in resumable and age <= KEEP_RESUMABLE_S:
                kept += 1
                kept_bytes += info.st_size
                continue
            else:
                doomed = age > UNLOCKED_GRACE_S or str(path) in resumable or not _writer_alive(path)
            if doomed and _still_named(fd, path):
                path.unlink()
                removed += 1
                removed_bytes += info.st_size
        except OSError:
            continue
        finally:
            os.close(fd)  # drops our lock, after the unlink
    if removed:
        log.info("removed %d partial files (%d bytes) left by interrupted runs in %s", removed, removed_bytes, folder)
    return Cleanup(removed=removed, removed_bytes=removed_bytes, kept=kept, kept_bytes=kept_bytes)


def _writer_alive(path: Path) -> bool:
    """Whether the process named in a temporary file's name (``.fetcher-<pid>-...``) is running."""
    pid = path.name[len(TEMP_PREFIX) :].partition("-")[0]
    if not pid.isdigit():
        return True  # not a name fetcher made: judge it by its age only
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # alive, but someone else's (EPERM), or cannot tell
    return True


def _try_lock(fd: int, *, quiet: bool = False) -> bool | None:
    """Lock *fd*: True if locked, False if another holder has it, None if locks do not work here."""
    if fcntl is not None:
        # The flock portalocker would make, without its layers: a lock per new file,
        # so on a list of small files its checks cost more than the lock itself.
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                return False
            _no_lock(exc, quiet)
            return None
        except EOFError as exc:  # some network file systems, as portalocker knows
            _no_lock(exc, quiet)
            return None
        return True
    try:
        portalocker.lock(fd, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
    except portalocker.AlreadyLocked:
        return False
    except portalocker.LockException as exc:
        _no_lock(exc, quiet)
        return None
    return True


def _no_lock(exc: Exception, quiet: bool) -> None:
    if not quiet:
        log.debug("cannot lock a temporary file (%s); carrying on without a lock", exc)


def _still_named(fd: int, path: Path) -> bool:
    """Whether *path* still names the file open as *fd* (not renamed, removed or replaced)."""
    try:
        named, opened = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)
