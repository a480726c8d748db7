"""The values a run passes between its stages: a URL's ``Job``, the messages of the results queue, ``Shared``.

Values only: nothing here holds a lock, starts a thread or does I/O.  A Job
is frozen; a stage that learns something about its URL (the slot came, an
attempt failed) makes a new one with ``dataclasses.replace``, so a Job can be
handed from thread to thread without a lock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from .._config import FetcherConfig
from .._frozen import quick_init
from .._naming import Namer
from .._pool import WorkerPool
from .._result import Result
from .._text import redact
from .._urllist import Entry
from ..limits import SLOTS, Gate, HostLimits, Slot
from ..limits.rate import Bucket
from ..state.base import Store
from ..transfer.outcome import WatchStart
from ..transfer.retry import RetryPolicy
from ..transfer.tempfiles import TempFiles
from ..transfer.validators import PartialFile
from .apart import NamingTurn

if TYPE_CHECKING:
    from ..workers import ProcessPool

#: What ``fetch()`` accepts: URLs, or Entries that carry their list line number.
Item = str | Entry


@dataclass(frozen=True, kw_only=True, slots=True)
class Shared:
    """What every run of one Fetcher shares."""

    config: FetcherConfig
    dest: Path
    gate: Gate
    pool: WorkerPool
    namer: Namer
    temp_files: TempFiles
    watch: WatchStart | None
    state: Store | None
    #: Monotonic seconds, for everything the run waits for: retry due times,
    #: acquire timeouts, pauses and rates (tests pass a faster one).
    clock: Callable[[], float]
    retry: RetryPolicy
    hosts: HostLimits
    #: --rate: requests started per second, over all hosts.
    request_rate: Bucket | None = None
    #: --limit-rate: bytes per second, over all downloads.
    byte_rate: Bucket | None = None
    #: What a URL that waited for a slot of ``gate`` waited on (the report's ``waited_on``).
    gate_limit: str = SLOTS
    #: Records which URL holds a slot, where others can see it (``fetcher slots``).
    describe_slot: Callable[[Slot, str], None] | None = None
    #: Worker processes for long lists (None: threads only).
    processes: ProcessPool | None = None
    #: Who gives names now: the runs' feeder threads, or one feeder process (``apart.py``).
    naming: NamingTurn = dataclasses.field(default_factory=NamingTurn)


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Job:
    """One URL on its way: what the schedule holds, and what each attempt is given."""

    seq: int
    entry: Entry
    target: Path
    host: str  # what its per-host limits count against
    ready: float  # monotonic
    ready_at: datetime
    expires: float | None = None  # by the run's clock: when it gives up waiting to start (the acquire timeout)
    waited_on: str | None = None  # the limit that held up its first start
    attempts: int = 0  # made so far
    wait_s: float | None = None  # for the first slot, once it came
    partial: PartialFile | None = None  # what the last attempt left to continue
    began: float | None = None  # monotonic, when the first attempt started (--max-time counts from it)
    last_error: str | None = None
    slot_taken_at: datetime | None = None  # when its latest attempt took its slot (as ready_at: the wall clock)

    def with_slot(self, *, slot_taken_at: datetime, wait_s: float | None, waited_on: str | None,
                  began: float | None) -> Job:  # fmt: skip
        """This job as it takes a slot.  ``dataclasses.replace``'s result, built directly: the
        dispatcher makes one per URL, and replace() walks every field at twice the cost."""
        return Job(
            seq=self.seq, entry=self.entry, target=self.target, host=self.host, ready=self.ready,
            ready_at=self.ready_at, expires=self.expires, waited_on=waited_on, attempts=self.attempts,
            wait_s=wait_s, partial=self.partial, began=began, last_error=self.last_error, slot_taken_at=slot_taken_at,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class End:
    count: int  # results the run will produce


@dataclass(frozen=True, slots=True)
class Failed:
    error: BaseException  # the input iterable raised


@dataclass(frozen=True, slots=True)
class Cancelled:
    """Wakes a caller still waiting for results when the Fetcher is closed."""


@dataclass(frozen=True, slots=True)
class Halted:
    """Wakes a caller waiting for results when the deadline stops the run."""


#: What the results queue carries to the caller: a URL's record by its input position, or news of the run.
Message = tuple[int, Result] | End | Failed | Cancelled | Halted


def as_entry(item: Item, position: int) -> Entry:
    if isinstance(item, Entry):
        return item if item.line else dataclasses.replace(item, line=position)
    if isinstance(item, str):
        return Entry(url=item.strip(), line=position)
    raise TypeError(f"item {position} is {type(item).__name__}, not a URL string")


def now() -> datetime:
    return datetime.now(timezone.utc)


def state_key(url: str) -> str:
    """A URL as the state database knows it: without a password, which is never recorded."""
    return redact(url)
