"""One ``fetch()`` call: its threads, its queues, and the path of each URL.

    input ──feeder──▶ pending ──dispatcher──▶ worker pool ──▶ results ──▶ caller
             reads,            takes a slot     downloads,                 in input order,
             checks,           from the gate    releases the slot          or as completed
             names             (or gives up)

The feeder and the dispatcher are two threads of their own so that a slow
input (a pipe) never stops URLs already read from being started, and a URL
waiting for a slot never stops the input from being read.  A URL is "ready"
when the feeder has read it; its acquire timeout counts from then.  The
feeder reads at most ``read_ahead`` URLs ahead of the caller, which bounds
memory whatever the length of the list.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

from ._config import FetcherConfig
from ._errors import ClosedError, translate
from ._gate import Gate, Slot
from ._naming import Namer
from ._pool import WorkerPool
from ._result import Result, Status
from ._text import redact
from ._urls import Entry, check_url
from .transfer.download import WatchStart, download
from .transfer.tempfiles import TempFiles

log = logging.getLogger("fetcher")

#: What ``fetch()`` accepts: URLs, or Entries that carry their list line number.
Item = str | Entry

# How often a blocked feeder or dispatcher looks up to see if its run was cancelled.
_POLL_S = 0.1


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


@dataclass(frozen=True, kw_only=True, slots=True)
class _Job:
    seq: int
    entry: Entry
    target: Path
    ready: float  # monotonic
    ready_at: datetime


@dataclass(frozen=True, slots=True)
class _End:
    count: int  # results the run will produce


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException  # the input iterable raised


@dataclass(frozen=True, slots=True)
class _Cancelled:
    """Wakes a caller still waiting for results when the Fetcher is closed."""


class _Window:
    """How many URLs the feeder may have read that the caller has not received.

    A full window makes the feeder wait until it is half empty, not just
    until one place is free: otherwise, on a long list, every result the
    caller takes would wake the feeder for a single line, two thread
    switches per URL.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._low_water = size // 2
        self._used = 0
        self._changed = threading.Condition(threading.Lock())

    def take(self, cancelled: threading.Event) -> bool:
        """Take a place; False if *cancelled* was set first."""
        with self._changed:
            if self._used >= self._size:
                while self._used > self._low_water and not cancelled.is_set():
                    self._changed.wait(_POLL_S)
            if cancelled.is_set():
                return False
            self._used += 1
            return True

    def give_back(self) -> None:
        with self._changed:
            self._used -= 1
            if self._used == self._low_water:
                self._changed.notify()


class Run:
    """The threads and queues of one ``fetch()`` call."""

    def __init__(self, shared: Shared, urls: Iterable[Item], run_id: str) -> None:
        self.shared = shared
        self.config = shared.config
        self.run_id = run_id
        self.waiting = 0  # read, not yet holding a slot
        self._urls = urls
        self._pending: queue.Queue[_Job | None] = queue.Queue()
        self._results: queue.SimpleQueue[tuple[int, Result] | _End | _Failed | _Cancelled] = queue.SimpleQueue()
        self._window = _Window(self.config.read_ahead)
        self._cancelled = threading.Event()
        self._count_lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._feed, name=f"fetcher-feed-{run_id}", daemon=True),
            threading.Thread(target=self._dispatch, name=f"fetcher-dispatch-{run_id}", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def cancel(self) -> None:
        if not self._cancelled.is_set():
            self._cancelled.set()
            self._results.put(_Cancelled())

    def results(self, ordered: bool) -> Iterator[Result]:
        done: dict[int, Result] = {}
        next_seq = 0
        expected: int | None = None
        while expected is None or next_seq < expected:
            message = self._results.get()
            if isinstance(message, _End):
                expected = message.count
                continue
            if isinstance(message, _Failed):
                raise message.error
            if isinstance(message, _Cancelled):
                raise ClosedError("the Fetcher was closed while this fetch was running")
            seq, result = message
            if not ordered:
                next_seq += 1
                self._window.give_back()
                yield result
                continue
            done[seq] = result
            while next_seq in done:
                ready = done.pop(next_seq)
                next_seq += 1
                self._window.give_back()
                yield ready

    # -- feeder: input → pending ---------------------------------------------

    def _feed(self) -> None:
        seq = 0
        seen: set[str] = set()
        try:
            for position, item in enumerate(self._urls, start=1):
                entry = _as_entry(item, position)
                if entry.url in seen:
                    log.debug("line %d: duplicate URL, skipped", entry.line)
                    continue
                seen.add(entry.url)
                if not self._window.take(self._cancelled):
                    return
                self._take(seq, entry)
                seq += 1
        except BaseException as exc:  # the input's own error goes to the caller
            self._results.put(_Failed(exc))
        finally:
            self._results.put(_End(seq))
            self._pending.put(None)

    def _take(self, seq: int, entry: Entry) -> None:
        ready, ready_at = time.monotonic(), _now()
        reason = check_url(entry.url)
        if reason is not None:
            self._emit(seq, self._result(entry, Status.INVALID, ready, ready_at, error=reason))
            return
        target = self.shared.dest / self.shared.namer.name_for(entry.url)
        with self._count_lock:
            self.waiting += 1
        self._pending.put(_Job(seq=seq, entry=entry, target=target, ready=ready, ready_at=ready_at))

    # -- dispatcher: pending → a slot → the pool ------------------------------

    def _dispatch(self) -> None:
        while (job := self._pending.get()) is not None:
            slot = self._acquire(job)
            with self._count_lock:
                self.waiting -= 1
            if slot is None:
                if not self._cancelled.is_set():
                    waited = time.monotonic() - job.ready
                    error = f"no download slot came free within {self.config.acquire_timeout:g}s"
                    self._emit(job.seq, self._result(job.entry, Status.ACQUIRE_TIMEOUT, job.ready, job.ready_at,
                                                     wait_s=waited, error=error))  # fmt: skip
                continue
            if not self.shared.pool.submit(functools.partial(self._work, job=job, slot=slot)):
                slot.release()  # the Fetcher closed between acquire and submit

    def _acquire(self, job: _Job) -> Slot | None:
        """A slot for *job*, or None if its deadline passed or the run was cancelled."""
        limit = self.config.acquire_timeout
        deadline = None if limit is None else job.ready + limit
        while not self._cancelled.is_set():
            left = _POLL_S if deadline is None else min(_POLL_S, deadline - time.monotonic())
            slot = self.shared.gate.acquire(timeout=max(0.0, left))
            if slot is not None:
                return slot
            if deadline is not None and time.monotonic() >= deadline:
                return None
        return None

    # -- worker: one download --------------------------------------------------

    def _work(self, session: requests.Session, job: _Job, slot: Slot) -> None:
        try:
            with slot:
                started = time.monotonic()
                if self._cancelled.is_set():
                    return  # the caller has gone; nobody will read a result
                outcome = download(
                    session, job.entry.url, job.target,
                    config=self.config, temp_files=self.shared.temp_files,
                    cancelled=self._cancelled, watch=self.shared.watch,
                )  # fmt: skip
            ok = outcome.error is None
            result = self._result(
                job.entry,
                Status.OK if ok else Status.FAILED,
                job.ready,
                job.ready_at,
                path=job.target if ok else None,
                http_status=outcome.http_status,
                bytes=outcome.bytes,
                wait_s=started - job.ready,
                ttfb_s=outcome.ttfb_s,
                download_s=outcome.download_s,
                error=None if ok else str(outcome.error),
            )
        except BaseException as exc:  # never lose a result: a bug becomes a failed URL
            error = translate(exc, job.entry.url)
            result = self._result(job.entry, Status.FAILED, job.ready, job.ready_at, error=str(error))
        self._emit(job.seq, result)

    # -- results ----------------------------------------------------------------

    def _result(self, entry: Entry, status: Status, ready: float, ready_at: datetime, **fields: Any) -> Result:
        return Result(
            run_id=self.run_id,
            line=entry.line,
            url=redact(entry.url),
            status=status,
            total_s=time.monotonic() - ready,
            started_at=ready_at,
            finished_at=_now(),
            **fields,
        )

    def _emit(self, seq: int, result: Result) -> None:
        log.debug("line %d %s: %s", result.line, result.status.value, result.error or result.path)
        self._results.put((seq, result))


def _as_entry(item: Item, position: int) -> Entry:
    if isinstance(item, Entry):
        return item
    if isinstance(item, str):
        return Entry(url=item.strip(), line=position)
    raise TypeError(f"item {position} is {type(item).__name__}, not a URL string")


def _now() -> datetime:
    return datetime.now(timezone.utc)
