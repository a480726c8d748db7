"""A long list's feeder work in a process of its own: the feeder thread then only makes each Job.

One deciding process hands out every URL of a run, and with a state
database the feeder thread's work took 35 of its 85 µs a URL: reading the
line, checking it, finding duplicates, naming its file in the database
(bench/README.md).  Here a process forked as the workers are (the pool
forks it, ``workers/pool.py``) does that work on another core, and sends
the feeder thread batches; the thread keeps the window, makes each Job and
records at once what needs no download, as it does for the URLs it reads
itself.  The records, names and exit codes are the same either way.

It is used when all of these hold, and otherwise the feeder is a thread
(feeder.py), as it always is for a short list:

- the input is a list file whose length is known (the CLI's), long enough
  for worker processes to start; it reads that same open file again from
  its start (through ``/proc/PID/fd``), not the path;
- the names live in a state database in a file, which it opens itself and
  claims the names in, on a connection of its own;
- no other run of the same Fetcher gives names meanwhile (``NamingTurn``):
  two namers that do not know each other's claims could give one name
  twice.

If it cannot open the state database or the list (``/proc`` hidden from
it), it says so before anything else, and the feeder thread does the work.
It ends when the list ends, once its names are written; a parent that stops
reading (the run cancelled, the parent killed) makes its next write fail,
and it ends then.  Like the workers it ignores Ctrl-C and SIGTERM.  If it
is killed, the run ends as with a list that cannot be read on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import _errors
from .._errors import FetcherError, URLListError
from .._naming import Namer, name_key
from .._text import redact
from .._urllist import URLList, reopen_url_list
from .._urls import check_url, host_key
from ..state.seen import Bloom, Seen

if TYPE_CHECKING:
    from ..workers.wire import PipeEnd
    from ..workers.zygote import ForkedWorker
    from .jobs import Shared
    from .runstate import RunState

log = logging.getLogger("fetcher")

#: What each item of a batch is: (kind, Entry, name or reason or first line, host); LOGGED: (kind, level, text, None).
#: A URL sent once the run stopped has no name (None).
START, SKIPPED, INVALID, DUPLICATE, LOGGED = range(5)

#: The parent's message once the run stopped: no more names are needed.
STOP = ("stop",)

# Items a batch holds at most; a batch also goes once it has waited this long (a name awaited, a slow disk).
_BATCH = 512
_BATCH_WAIT_S = 0.05

# How long the parent waits for the process to end (it writes the last names first), before it kills it.
_END_WAIT_S = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedRequest:
    """What the process is to read and where it names: the parent's only message to it."""

    list_path: str  # /proc/PID/fd/N: the parent's open list file
    source: str  # the list as the user named it, for messages
    expected: int  # its URLs, as counted
    dest: str
    reserved: frozenset[str]  # names no URL gets, casefolded
    state: str  # the state database's path
    skip_existing: bool
    name_timeout: float  # --timeout: how long a name is awaited (feeder.file_name)
    log_level: int


class NamingTurn:
    """Who gives names for one Fetcher's runs: its feeder threads, or one feeder process, never both at once.

    A run's feeder goes apart only while no feeder thread names (``go_apart``);
    a feeder thread that comes meanwhile waits for the process to end before
    its first name (``wait_for_threads``).
    """

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._threads = 0
        self._apart = False

    def go_apart(self) -> bool:
        with self._changed:
            if self._threads or self._apart:
                return False
            self._apart = True
            return True

    def apart_ended(self) -> None:
        with self._changed:
            self._apart = False
            self._changed.notify_all()

    def thread_joined(self) -> None:
        with self._changed:
            self._threads += 1

    def thread_left(self) -> None:
        with self._changed:
            self._threads -= 1

    def wait_for_threads(self, cancelled: threading.Event) -> bool:
        """Wait while a feeder process names; False if *cancelled* is set first."""
        with self._changed:
            while self._apart and not cancelled.is_set():
                self._changed.wait(0.1)
            return not cancelled.is_set()


class Apart:
    """The parent's side of a feeder process: ``batches`` of what it found, then ``close``."""

    def __init__(self, process: ForkedWorker, shared: Shared, source: str) -> None:
        from ..workers.wire import PipeEnd

        self._process = process
        self._shared = shared
        self._source = redact(source)
        self._control = PipeEnd(process.fds[0])
        self._out = PipeEnd(process.fds[1])
        self._told_to_stop = False

    @classmethod
    def start(cls, shared: Shared, urls: object, expected: int) -> Apart | None:
        """A feeder process for a run of *urls* (see the module's docstring for when); None: a thread feeds."""
        # Here, not at the top: only a long list's run needs them (what a start imports, bench/README.md).
        from ..state.store import StateStore

        state, processes = shared.state, shared.processes
        if processes is None or not isinstance(state, StateStore) or not isinstance(urls, URLList):
            return None
        fd = urls.regular_file()
        if fd is None or not shared.naming.go_apart():
            return None
        process = processes.take_feeder()
        if process is None:
            shared.naming.apart_ended()
            return None
        apart = cls(process, shared, urls.name)
        control = apart._control
        try:
            state.flush()  # names claimed here before are in the file, for the process to see
            config = shared.config
            control.send(FeedRequest(
                list_path=f"/proc/{os.getpid()}/fd/{fd}", source=urls.source, expected=expected,
                dest=str(shared.dest), reserved=shared.namer.reserved, state=str(state.path),
                skip_existing=config.skip_existing, name_timeout=config.timeout,
                log_level=log.getEffectiveLevel(),
            ))  # fmt: skip
        except (OSError, FetcherError) as exc:
            log.debug("could not start the feeder process (%s); the feeder is a thread", exc)
            apart.close()
            return None
        log.debug("the list is read, checked and named by a process of its own (%d)", process.pid)
        return apart

    def batches(self, run: RunState) -> Iterator[list[tuple[Any, ...]]]:
        """The process's batches, in the list's order, until its end; raises what stopped it."""
        from ..workers.wire import Frames

        frames = Frames(self._out.fileno())
        while True:
            run.reading_since = time.monotonic()
            try:
                messages = frames.read()
            except EOFError:  # it was killed: as a list that cannot be read on
                raise URLListError(f"cannot read URL list '{self._source}': the process reading it ended") from None
            finally:
                run.reading_since = None
            for message in messages:
                if isinstance(message, list):
                    yield message
                elif message[0] == "end":
                    return
                elif message[0] == "unready":
                    raise Unready(f"{message[1]}: {message[2]}")
                else:
                    raise _failure(message[1], message[2])

    def stop_naming(self) -> None:
        """The run stopped: the rest of the list needs no names (each URL is recorded as not started)."""
        if not self._told_to_stop:
            self._told_to_stop = True
            with contextlib.suppress(OSError):
                self._control.send(STOP)

    def close(self) -> None:
        """Stop reading (a process still sending ends), wait for it to end, and give the names back to threads."""
        self._control.close()  # first: a process still waiting for its request ends at the end of this pipe
        self._out.close()
        try:
            self._process.wait(timeout=_END_WAIT_S)
        except Exception:  # subprocess.TimeoutExpired: its last names are not written
            self._process.kill()
        self._shared.namer.others_named()
        self._shared.naming.apart_ended()


class Unready(Exception):
    """The process could not open what it needs (the state database, the list) and read nothing."""


def _failure(kind: str, text: str) -> BaseException:
    """The process's error as the same fetcher exception (its message only: it has no traceback here)."""
    cls = getattr(_errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, FetcherError):
        with contextlib.suppress(Exception):
            return cls(text)
    return FetcherError(text)


# -- the process's side ----------------------------------------------------------------------------------


class _Gone(Exception):
    """The parent stopped reading."""


class _Out:
    """The batches on their way to the parent, and whether it said the run stopped (looked at each batch)."""

    def __init__(self, pipe: PipeEnd, control: PipeEnd) -> None:
        self._pipe = pipe
        self._control = control
        self.batch: list[tuple[Any, ...]] = []
        self._since = time.monotonic()
        self.stopped = False

    def put(self, item: tuple[Any, ...]) -> None:
        self.batch.append(item)
        if len(self.batch) >= _BATCH or time.monotonic() - self._since >= _BATCH_WAIT_S:
            self.send()

    def send(self, message: object = None) -> None:
        try:
            if self.batch:
                self._pipe.send(self.batch)
                self.batch = []
            if message is not None:
                self._pipe.send(message)
        except OSError:
            raise _Gone from None
        self._since = time.monotonic()
        if not self.stopped and self._control.poll(0):
            self.stopped = True  # STOP, or the end of the pipe: the parent reads no more names either way


class _Sent(logging.Handler):
    """The process's log records go to the parent, in its batches."""

    def __init__(self, out: _Out) -> None:
        super().__init__()
        self._out = out

    def emit(self, record: logging.LogRecord) -> None:
        self._out.batch.append((LOGGED, record.levelno, record.getMessage(), None))


def serve(control_fd: int, out_fd: int) -> None:
    """Be the feeder process: read its request on *control_fd*, send batches on *out_fd*, end."""
    from ..state.store import StateStore
    from ..workers.wire import PipeEnd

    control = PipeEnd(control_fd)
    try:
        request = control.recv()
    except (EOFError, OSError):
        control.close()
        return  # never used: the pool closed it
    out = _Out(PipeEnd(out_fd), control)
    log.setLevel(request.log_level)
    log.propagate = False
    log.addHandler(_Sent(out))
    try:
        # What it opens first: if any of it fails, the run's feeder thread does the work instead.
        store = StateStore(request.state)
        entries = reopen_url_list(request.list_path, request.source)
    except BaseException as exc:
        with contextlib.suppress(_Gone):
            out.send(("unready", type(exc).__name__, str(exc)))
        return
    try:
        _feed(request, Namer(request.reserved, store=store.names(request.dest)), entries, out)
        entries.close()
        store.close()  # its names written, before the end is sent
        out.send(("end",))
    except _Gone:
        return
    except BaseException as exc:
        with contextlib.suppress(_Gone):
            out.send(("failed", type(exc).__name__, str(exc)))
    finally:
        entries.close()
        store.close()
        control.close()


def _feed(request: FeedRequest, namer: Namer, entries: URLList, out: _Out) -> None:
    """What the feeder thread does for each URL up to its Job (feeder.py), the same way."""
    from .feeder import NamedOwn, file_name  # here: feeder.py imports this module

    kept: Seen[int] = Seen("URLs", bloom=Bloom.for_keys(request.expected))
    named_own = NamedOwn()
    try:
        for entry in entries:
            url = entry.url
            unusable = check_url(url)
            key = url if unusable else name_key(url)
            first = kept.setdefault(key, entry.line)
            if first != entry.line:
                out.put((DUPLICATE, entry, first, None))
                continue
            reason = unusable or entry.problem
            if reason is not None:
                out.put((INVALID, entry, reason, None))
                continue
            if out.stopped:  # as the feeder thread: a URL the stopped run will not start gets no name
                out.put((START, entry, None, None))
                continue
            name = file_name(namer, entry, key, request.name_timeout, _sleep, named_own)
            assert name is not None  # _sleep never says stop
            existing = request.skip_existing and os.path.lexists(os.path.join(request.dest, name))
            out.put((SKIPPED if existing else START, entry, name, host_key(url)))
    finally:
        kept.close()


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False
