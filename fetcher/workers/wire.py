"""What passes between a run and its worker processes: values only, pickled in batches.

Parent → child: on the control pipe one ``Hello`` first, then ``Halt``
and ``Answer``; on the tasks pipe, lists of ``Task``.  Child → parent: an empty list first (it is up), then lists of
``Done``, ``Call``, ``Watch`` and ``Logged``.
A list is one message on the pipe: one write and one wake-up for a batch
of URLs, not for each.
"""

from __future__ import annotations

import copyreg
import dataclasses
import os
import pickle
import selectors
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from .._config import FetcherConfig
from .._urllist import Entry
from ..state import Saved
from ..transfer.checksum import Checksum
from ..transfer.outcome import Outcome
from ..transfer.validators import PartialFile, Validators


@dataclass(frozen=True, slots=True)
class Hello:
    """The child's set-up: how to download, with how many threads, and which log records to send back."""

    config: FetcherConfig
    threads: int
    log_level: int
    index: int  # 0 for the first child started, 1 for the next...
    # The cores the pool's process could use when the pool was made (a worker started afresh inherits
    # the affinity of the thread that starts it, which may keep to one core by then); empty: its own.
    cores: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Task:
    """One attempt at one URL, its slot held by the parent for as long as the task is out."""

    id: int
    run: int  # the run's token: a halt names it
    entry: Entry
    target: Path
    saved: Saved | None  # on record for the URL: the child checks the file is still as saved
    resume: PartialFile | None
    resume_kept: bool  # the partial is on record already (the parent's TempFiles keeps it)
    offer_partial: bool  # a state database can keep a partial: ask the parent (``Call``)
    deadline: float | None  # monotonic: --max-time
    stop_at: float | None  # monotonic: --deadline
    watched: bool  # the parent shows its progress (``Watch`` messages)


@dataclass(frozen=True, slots=True)
class Halt:
    """The run stops: its attempts in flight hang up and end as cancelled."""

    run: int


@dataclass(frozen=True, slots=True)
class Done:
    """A task's attempt is over; ``kept``: its partial file is to outlive the attempt."""

    id: int
    outcome: Outcome
    kept: bool


@dataclass(frozen=True, slots=True)
class Call:
    """A child asks whether a partial file worth resuming was put on record (the parent owns the state db)."""

    id: int
    task: int
    partial: PartialFile


@dataclass(frozen=True, slots=True)
class Answer:
    id: int
    recorded: bool


@dataclass(frozen=True, slots=True)
class Watch:
    """A watched task's progress: its body began (``name`` and ``total`` given), bytes came, or it ended."""

    task: int
    name: str | None = None  # set once, when the body begins
    total: int | None = None
    advance: int = 0
    done: bool = False


@dataclass(frozen=True, slots=True)
class Logged:
    """A log record of the child's, re-logged by the parent on the ``fetcher`` logger."""

    level: int
    message: str


ToChild = Task | Halt | Answer
ToParent = Done | Call | Watch | Logged


# Frozen dataclasses with slots pickle through a __setstate__ that calls
# dataclasses.fields() for every object: ~15 µs for an Outcome, more than the
# rest of its trip.  These go as a plain tuple of their fields instead.
_FIELDS: dict[type, tuple[str, ...]] = {}
#: Each field's slot setter, in _FIELDS' order: what object.__setattr__ finds by name, found once.
_SETTERS: dict[type, tuple[Callable[[Any, Any], None], ...]] = {}


def _rebuild(cls: type, values: tuple[Any, ...]) -> Any:
    made: Any = object.__new__(cls)
    for set_field, value in zip(_SETTERS[cls], values, strict=True):
        set_field(made, value)
    return made


def _reduce(value: Any) -> tuple[Any, ...]:
    cls = type(value)
    return _rebuild, (cls, tuple([getattr(value, name) for name in _FIELDS[cls]]))


def _done_from(task: int, kept: bool, outcome: tuple[Any, ...]) -> Done:
    values = list(outcome)
    validators = values[_VALIDATORS_AT]
    if type(validators) is tuple:
        values[_VALIDATORS_AT] = _rebuild(Validators, validators)
    return cast(Done, _rebuild(Done, (task, _rebuild(Outcome, tuple(values)), kept)))


def _reduce_done(done: Done) -> tuple[Any, ...]:
    """A Done as one flat tuple: every worker sends one per URL, and three nested reductions (Done,
    Outcome, Validators) took 6 µs of a child's CPU where this takes 3 (and 5.5 µs to load, against 3)."""
    outcome = done.outcome
    values = [getattr(outcome, name) for name in _FIELDS[Outcome]]
    validators = values[_VALIDATORS_AT]
    if type(validators) is Validators:
        values[_VALIDATORS_AT] = tuple([getattr(validators, name) for name in _FIELDS[Validators]])
    return _done_from, (done.id, done.kept, tuple(values))


def _task_from(values: tuple[Any, ...]) -> Task:
    entry = _rebuild(Entry, values[_ENTRY_AT : _ENTRY_AT + _ENTRY_LENGTH])
    task_values = [*values[:_ENTRY_AT], entry, *values[_ENTRY_AT + _ENTRY_LENGTH :]]
    task_values[_TARGET_AT] = Path(task_values[_TARGET_AT])
    return cast(Task, _rebuild(Task, tuple(task_values)))


def _reduce_task(task: Task) -> tuple[Any, ...]:
    """A Task as one flat tuple, its Entry's fields inline and its target as text: the parent sends one
    per URL, and the nested reductions and a pickled Path took 8 µs to dump and 11 µs to load, where
    this takes about 4 and 5."""
    values = [getattr(task, name) for name in _FIELDS[Task]]
    values[_TARGET_AT] = str(task.target)
    values[_ENTRY_AT : _ENTRY_AT + 1] = [getattr(task.entry, name) for name in _FIELDS[Entry]]
    return _task_from, (tuple(values),)


for _cls in (Outcome, Validators, PartialFile, Saved, Entry, Checksum, Hello, Task, Halt, Done, Call, Answer, Watch,
             Logged):  # fmt: skip
    _FIELDS[_cls] = tuple(field.name for field in dataclasses.fields(_cls))
    _SETTERS[_cls] = tuple(getattr(_cls, name).__set__ for name in _FIELDS[_cls])
    copyreg.pickle(_cls, _reduce)
copyreg.pickle(Done, _reduce_done)
copyreg.pickle(Task, _reduce_task)
_VALIDATORS_AT = _FIELDS[Outcome].index("validators")
_ENTRY_AT = _FIELDS[Task].index("entry")
_ENTRY_LENGTH = len(_FIELDS[Entry])
_TARGET_AT = _FIELDS[Task].index("target")  # counted in the Task's fields, once the Entry is one again


class PipeEnd:
    """One end of an OS pipe that carries pickled messages, framed as ``multiprocessing.connection`` frames them.

    The four things the pool and its children do with a pipe (send, recv,
    poll, close) without importing multiprocessing: its package and what it
    imports (tempfile, shutil and the compression modules among them) cost
    5 ms of every start of fetcher.  Not safe for two threads writing or
    reading at once; each pipe here has one writer and one reader at a time.
    """

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def fileno(self) -> int:
        if self._fd is None:
            raise OSError("the pipe is closed")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd is None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:
        # As a Connection does: an end dropped unclosed (a child given up on) gives its descriptor back.
        self.close()

    def send(self, message: Any) -> None:
        """Write *message* whole (blocking while the pipe is full); OSError once the reader is gone."""
        body = pickle.dumps(message)
        size = len(body)
        header = struct.pack("!i", size) if size < 0x7FFFFFFF else struct.pack("!iQ", -1, size)
        if size <= _SMALL:
            self._write_all(header + body)  # one write: one wake-up of the reader
        else:
            self._write_all(header)
            self._write_all(body)

    def recv(self) -> Any:
        """The next message, unpickled; EOFError once the writer has closed the pipe."""
        (size,) = struct.unpack("!i", self._read_exactly(4))
        if size == -1:
            (size,) = struct.unpack("!Q", self._read_exactly(8))
        return pickle.loads(self._read_exactly(size))

    def poll(self, timeout: float) -> bool:
        """Whether a read would not block (a message, or the end of the pipe) within *timeout* seconds."""
        # A selector, not select.poll (macOS has none) nor select.select (no descriptor past 1023).
        with selectors.DefaultSelector() as selector:
            selector.register(self.fileno(), selectors.EVENT_READ)
            return bool(selector.select(max(0.0, timeout)))

    def _write_all(self, data: bytes) -> None:
        fd, view = self.fileno(), memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def _read_exactly(self, size: int) -> bytes:
        fd, got = self.fileno(), bytearray()
        while len(got) < size:
            data = os.read(fd, min(size - len(got), _READ_SIZE))
            if not data:
                raise EOFError
            got += data
        return bytes(got)


# A message up to this size goes in one write with its header (as Connection.send does it).
_SMALL = 16384


class Frames:
    """The messages on a pipe that ``PipeEnd.send`` writes, read as many at a time as one read brings.

    ``PipeEnd.recv`` reads each message's length, then its body: two reads,
    and two hand-overs of the GIL among the reader's threads, per message.
    ``read`` takes what the pipe holds (up to 64 KiB) in one read and hands
    back every whole message in it, so a burst of messages costs one wake-up.
    Once a pipe is read here, its PipeEnd must not read it again: a part of
    the next message may wait in this buffer.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()

    def read(self) -> list[Any]:
        """The whole messages the next read completes, unpickled, in order; at least one.

        Blocks until one is whole.  EOFError once the writer has closed the pipe.
        """
        buffer = self._buffer
        while True:
            data = os.read(self._fd, _READ_SIZE)
            if not data:
                raise EOFError
            buffer += data
            messages = []
            start = 0
            while (frame := _frame_at(buffer, start)) is not None:
                body, start = frame
                messages.append(pickle.loads(buffer[body:start]))
            if start:
                del buffer[:start]
            if messages:
                return messages


_READ_SIZE = 64 << 10


def _frame_at(buffer: bytearray, start: int) -> tuple[int, int] | None:
    """(where the body starts, where it ends) of the whole message at *start*; None if not whole yet.

    multiprocessing's framing: a signed 4-byte big-endian length, or -1 then an 8-byte one.
    """
    have = len(buffer) - start
    if have < 4:
        return None
    (size,) = struct.unpack_from("!i", buffer, start)
    body = start + 4
    if size == -1:
        if have < 12:
            return None
        (size,) = struct.unpack_from("!Q", buffer, body)
        body += 8
    end = body + size
    return (body, end) if end <= len(buffer) else None
