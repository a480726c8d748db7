"""Temporary files: where a download is written before it gets its final name.

Every download goes to a hidden file in DEST (``.fetcher-*.part``), a name no
URL can get, because URL names never start with a dot.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import threading
import time
from pathlib import Path

log = logging.getLogger("fetcher")

TEMP_PREFIX = ".fetcher-"
TEMP_SUFFIX = ".part"

#: A temporary file untouched this long was left by a run that was killed.
ABANDONED_AFTER_S = 24 * 3600


class TempFiles:
    """The temporary files being written now, so they can be removed on close.

    A worker stuck in a read cannot be interrupted; when the Fetcher closes, it
    removes that worker's temporary file itself.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: set[Path] = set()
        self._prefix = f"{os.getpid()}-{secrets.token_hex(2)}-"
        self._counter = itertools.count()

    def create(self, folder: Path) -> tuple[int, Path]:
        # O_EXCL: never open an existing file; mode 0o666 lets the umask decide,
        # so finished files get the same permissions as any other new file.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        for _ in range(16):
            # Process id and a counter: unique here, and O_EXCL guards against
            # a leftover from an earlier process that had the same id.
            path = folder / f"{TEMP_PREFIX}{self._prefix}{next(self._counter)}{TEMP_SUFFIX}"
            try:
                fd = os.open(path, flags, 0o666)
            except FileExistsError:
                continue
            with self._lock:
                self._paths.add(path)
            return fd, path
        raise FileExistsError(f"no free temporary name in {folder}")

    def forget(self, path: Path) -> None:
        with self._lock:
            self._paths.discard(path)

    def remove(self, path: Path) -> None:
        self.forget(path)
        try:
            path.unlink()
        except FileNotFoundError:
            pass

    @staticmethod
    def remove_abandoned(folder: Path, *, older_than_s: float = ABANDONED_AFTER_S) -> int:
        """Remove temporary files in *folder* left by runs that were killed.

        A download in progress writes to its file with every chunk, and
        fails after its timeout without data; a file untouched for a day
        belongs to no live run, even one that overlaps this one.
        """
        cutoff = time.time() - older_than_s
        removed = 0
        for path in folder.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except OSError:
                continue  # gone already, or not ours to remove
        if removed:
            log.info("removed %d temporary files left by earlier runs in %s", removed, folder)
        return removed

    def remove_all(self) -> None:
        with self._lock:
            paths, self._paths = self._paths, set()
        for path in paths:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
