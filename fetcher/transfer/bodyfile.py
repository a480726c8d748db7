"""BodyFile: the file one attempt writes a body into, and how it ends.

A new body goes into an empty temporary file in the target's folder
(``TempFiles``); a resumed one is appended to the partial file it continues.
Only a whole, checked body is moved over the final name (``finish``).  Any
other end removes the file, or hands it back as a ``PartialFile`` when the
server's validators let a later attempt continue it (``release``).

``download.py`` drives it: this module holds the file and its descriptor,
not the HTTP exchange.  One attempt's own: not thread-safe.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path

from .._errors import BodyError
from .checksum import Hasher
from .outcome import Ask
from .tempfiles import TempFiles
from .validators import PartialFile, Validators, last_modified_ns, resumable

log = logging.getLogger("fetcher")

#: A partial file smaller than this is not worth a state database write.
KEEP_FROM = 1 << 20

#: Last-Modified as an mtime, remembered: the files of one server often share a
#: date, and parsing it costs more than the rest of setting a file's time.
_mtime_of = functools.lru_cache(maxsize=256)(last_modified_ns)

#: os.utime on the open descriptor where the platform has it: no second path lookup.
_UTIME_BY_FD = os.utime in os.supports_fd


class BodyFile:
    """The temporary file of one attempt at *target*: created, continued, dropped, finished or handed back."""

    __slots__ = ("ask", "chunk_size", "fd", "hasher", "kept", "offset", "partial", "resumed_from", "target", "temp",
                 "temp_files")  # fmt: skip

    def __init__(self, target: Path, temp_files: TempFiles, ask: Ask, chunk_size: int) -> None:
        self.target, self.temp_files, self.ask, self.chunk_size = target, temp_files, ask, chunk_size
        self.fd: int | None = None
        self.temp: Path | None = None
        self.offset = 0  # bytes already in the file when the current response's body began
        self.partial: PartialFile | None = None  # set while the file could be continued
        self.resumed_from: int | None = None
        self.hasher: Hasher | None = None
        self.kept = False  # offered to be kept (the answer aside): asked once per body

    def reopen(self, resume: PartialFile | None) -> PartialFile | None:
        """Open the partial file *resume* to append to; None, and nothing to continue, if it cannot be."""
        if resume is None:
            return None
        fd = self.temp_files.reopen(resume.path)
        if fd is None:
            log.debug("%s: partial file is gone or in use by another run; starting over", self.target.name)
            return None
        size = os.fstat(fd).st_size
        if not 0 < size < resume.total:
            self.fd, self.temp = fd, resume.path
            self.drop()
            return None
        os.lseek(fd, size, os.SEEK_SET)
        # Until the server says otherwise, the file can still be continued: an
        # attempt that fails before any answer (a 503, a refused connection)
        # hands it on rather than deleting it.
        self.fd, self.temp, self.offset, self.partial = fd, resume.path, size, resume
        # Kept only if this process marked it so; a partial from an earlier run
        # is on record already, and is offered again so that this run keeps it too.
        self.kept = self.temp_files.is_kept(resume.path)
        if not self.kept and size >= KEEP_FROM:
            self.offer()
        return resume

    def continue_partial(self, resume: PartialFile) -> None:
        """The server sends the rest of *resume* (a 206 that continues it exactly): append to it."""
        self.resumed_from = self.offset
        self.partial = resume
        self.hasher = self._hash_existing()

    def start(self, headers: Mapping[str, str], length: int | None) -> None:
        """A whole body is coming, into an empty file (the caller drops an earlier one): may it be resumed later?"""
        if self.fd is None:
            self.fd, self.temp = self.temp_files.create(self.target.parent)
        self.hasher = None if self.ask.checksum is None else self.ask.checksum.new_hasher()
        found = resumable(headers, length)
        self.partial = None
        self.kept = False  # a new body, with its own validator: offer it afresh
        if found is not None and length is not None and self.temp is not None:
            if_range, validators = found
            self.partial = PartialFile(path=self.temp, if_range=if_range, total=length, validators=validators)

    def drop(self) -> None:
        """Empty the file so the whole body can be written from the start."""
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.lseek(self.fd, 0, os.SEEK_SET)
        if self.temp is not None:
            # Whatever the state database says of this file no longer holds;
            # the new body is offered afresh if it is worth keeping.
            self.temp_files.unkeep(self.temp)
        self.offset = 0
        self.partial = None
        self.resumed_from = None
        self.kept = False

    def offer(self) -> None:
        """Ask ``Ask.on_resumable`` whether the file, past KEEP_FROM, is to be kept if the attempt fails."""
        self.kept = True  # asked once, whatever the answer
        if self.partial is not None and self.ask.on_resumable is not None and self.ask.on_resumable(self.partial):
            self.temp_files.keep(self.partial.path)

    def finish(self, size: int, validators: Validators, url: str) -> int:
        """Check the whole body of *size* bytes, set its time, put it under the final name; its mtime_ns."""
        assert self.fd is not None and self.temp is not None
        if self.partial is not None and size != self.partial.total:
            raise BodyError(url, f"joined file is {size} bytes, the server said {self.partial.total}")
        checksum = self.ask.checksum
        if checksum is not None and self.hasher is not None and not checksum.matches(self.hasher.hexdigest()):
            raise BodyError(url, f"checksum mismatch: expected {checksum}, got {self.hasher.hexdigest()}")
        remote_ns = _mtime_of(validators.last_modified) if self.ask.remote_time else None
        if remote_ns is not None:
            os.utime(self.fd if _UTIME_BY_FD else self.temp, ns=(time.time_ns(), remote_ns))
        # Asked, not assumed to be remote_ns: a file system with coarse times
        # (FAT: 2 s) rounds it, and the next run compares with what it stored.
        mtime_ns = os.fstat(self.fd).st_mtime_ns
        os.replace(self.temp, self.target)
        self.temp_files.forget(self.temp)
        self.temp = None
        log.debug("saved %s (%d bytes)", self.target, size)
        return mtime_ns

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def release(self, resumable: bool) -> PartialFile | None:
        """After ``close``: the file to continue later, if the attempt's end is *resumable* and it can be; else
        the file is removed (if it is not under its final name already) and None."""
        kept = self.partial if resumable and self.temp is not None else None
        if self.temp is not None and kept is None:
            self.temp_files.remove(self.temp)
        return kept

    def _hash_existing(self) -> Hasher | None:
        """A hasher that has already seen the bytes of the partial file."""
        if self.ask.checksum is None or self.fd is None:
            return None
        hasher = self.ask.checksum.new_hasher()
        position = 0
        while position < self.offset:
            block = os.pread(self.fd, min(self.chunk_size, self.offset - position), position)
            if not block:
                break
            hasher.update(block)
            position += len(block)
        return hasher
