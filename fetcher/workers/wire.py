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


def _rebuild(cls: type, values: tuple[Any, ...]) -> Any:
    made: Any = object.__new__(cls)
    for name, value in zip(_FIELDS[cls], values, strict=True):
        object.__setattr__(made, name, value)
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


for _cls in (Outcome, Validators, PartialFile, Saved, Entry, Checksum, Hello, Task, Halt, Done, Call, Answer, Watch,
             Logged):  # fmt: skip
    _FIELDS[_cls] = tuple(field.name for field in dataclasses.fields(_cls))
    copyreg.pickle(_cls, _reduce)
copyreg.pickle(Done, _reduce_done)
_VALIDATORS_AT = _FIELDS[Outcome].index("validators")
