"""What one attempt is asked (``Ask``) and what it did (``Outcome``), and how its progress is told.

Values only, with no HTTP in them: the run hands them to its worker threads
and processes and takes them back, and a process whose downloads all run in
worker processes never needs requests itself (``transfer/download.py``
makes the attempt).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .._errors import DownloadError
from .._frozen import quick_init
from .checksum import Checksum
from .validators import PartialFile, Validators


class Watcher(Protocol):
    """Told about one download's bytes as they arrive (the progress display)."""

    def advance(self, n: int) -> None: ...

    def done(self) -> None: ...


#: Called when a response's headers are in: (url, file name, expected bytes or None).
WatchStart = Callable[[str, str, "int | None"], Watcher]


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """What one download attempt did.  ``error`` is None when the file is in place (or unchanged).

    ``bytes`` is the size of the body on disk: with a resume, the bytes of
    earlier attempts count too.
    """

    http_status: int | None
    bytes: int
    ttfb_s: float | None
    download_s: float | None
    error: DownloadError | None
    unchanged: bool = False  # a 304: the file under the final name is current
    validators: Validators | None = None  # of the body saved, for the next run's conditional GET
    mtime_ns: int | None = None  # of the file saved
    partial: PartialFile | None = None  # a failed attempt's body so far, which the next may continue
    resumed_from: int | None = None  # bytes that were on disk before this attempt's body


@dataclass(frozen=True, kw_only=True, slots=True)
class Ask:
    """What one attempt asks of the server, beyond a plain GET.

    ``saved``: the validators of the file already under the final name, to
    ask for the body only if it changed (a 304 then means "unchanged").
    ``resume``: a partial file to continue.  ``checksum``: what the whole body
    must hash to.  ``remote_time``: give the file the server's Last-Modified.
    ``on_resumable``: called with the partial file once it is worth keeping
    across runs (KEEP_FROM bytes), and again for each new body (a start-over
    brings a new validator) or a partial of an earlier run that this process
    has not marked kept; returns True if it was recorded somewhere a later run
    will look, and only then does the partial outlive this process.
    """

    saved: Validators | None = None
    resume: PartialFile | None = None
    checksum: Checksum | None = None
    remote_time: bool = True
    on_resumable: Callable[[PartialFile], bool] | None = None
    #: Monotonic time by which the URL must be done (--max-time): past it the
    #: attempt fails, and its socket timeouts never reach beyond it.
    deadline: float | None = None
    #: Monotonic time the whole run stops (--deadline): the socket timeouts
    #: never reach beyond it, so a stalled read cannot hold the run's end up.
    stop_at: float | None = None
    #: Called with the URL of each request after the attempt's first (a
    #: redirect hop, a start-over), before it is sent: it waits that
    #: request's turn under the request rates.  The first had its turn already.
    before_request: Callable[[str], None] | None = None
    #: Called with the count of bytes each read took off the wire: it waits
    #: until the bandwidth cap allows them.
    throttle: Callable[[int], None] | None = None
    #: Called with a callable that cuts this attempt's connection; it calls it
    #: when the run stops (an interrupt, the deadline), so a connect, a TLS
    #: handshake, a wait for the headers or a read blocked on a silent server
    #: ends at once.  Returns its undo.  Given before the first request with a
    #: session of ``new_session``; with another session, only once a response
    #: has come (its connection is out of reach before).
    on_stop: Callable[[Callable[[], None]], Callable[[], None]] | None = None
