"""Input → schedule: the feeder thread.

It reads the caller's items one by one and gives each URL its place: a line
that is no URL, a URL listed before, a file to skip and a run already cut
short are recorded at once; every other URL gets its file name (waiting for
it while a cluster's Redis, which keeps the names, does not answer) and goes
into the schedule as a new Job, "ready" from now (its acquire timeout counts from
here).  It reads at most ``read_ahead`` URLs ahead of the caller (``Window``),
and never waits for a slot, so a slow input and a busy gate never hold each
other up.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from .._errors import StateError
from .._memory import TRIMMER
from .._naming import Namer, name_key
from .._result import Status, duplicate_error
from .._text import redact
from .._urllist import Entry
from .._urls import check_url, host_key
from ..state.seen import Bloom, Seen
from .apart import INVALID, LOGGED, SKIPPED, START, Apart, Unready
from .jobs import End, Failed, Item, Job, as_entry, now
from .runstate import POLL_S, RunState
from .stops import Stops

log = logging.getLogger("fetcher")

# How many URLs the feeder reads between two ticks of the trimmer (_memory.py): a tick reads the clock.
_TRIM_EVERY_URLS = 1024

#: The first wait before a file name is asked for again, when its store did not answer (then twice as long,
#: up to a second).
NAME_RETRY_S = 0.05


#: When URLs were read: monotonic, the wall clock, and when their acquire timeout runs out (by the run's clock).
Ready = tuple[float, datetime, float | None]

#: A Job on its way into the schedule: the job, its lane (its host), its seq, and when it gives up waiting.
Queued = tuple[Job, str, int, float | None]


class NamedOwn:
    """Whether a URL was given a name of its own yet, its store silent past --timeout: logged once a feeder."""

    said = False


class Window:
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
        return self.take_some(1, cancelled) == 1

    def take_some(self, wanted: int, cancelled: threading.Event) -> int:
        """Take up to *wanted* places (at least one, once there is room); 0 if *cancelled* was set first."""
        with self._changed:
            if self._used >= self._size:
                while self._used > self._low_water and not cancelled.is_set():
                    self._changed.wait(POLL_S)
            if cancelled.is_set():
                return 0
            taken = min(wanted, self._size - self._used)
            self._used += taken
            return taken

    def give_back(self) -> None:
        with self._changed:
            self._used -= 1
            if self._used == self._low_water:
                self._changed.notify()


class Feeder:
    """The loop of the feeder thread; ``window`` is given back to by the caller's side (``results.py``)."""

    def __init__(self, run: RunState, stops: Stops, urls: Iterable[Item]) -> None:
        self._run = run
        self._stops = stops
        self._urls = urls
        self.window = Window(run.config.read_ahead)
        self._named_own = NamedOwn()
        #: The process that reads, checks and names the URLs, if the run has one (``apart.py``; set by ``Run``).
        self.apart: Apart | None = None

    def feed(self) -> None:
        if self.apart is not None:
            if self._feed_apart(self.apart):
                return
            self._run.shared.naming.thread_joined()  # its process could not start: this thread feeds
        run = self._run
        seq = 0
        turn = run.shared.naming
        # Each URL in normal form: the line kept for it (on disk past a few thousand), behind a filter
        # made for the input's length where it tells it (a list, the CLI's counted list file).
        kept: Seen[int] = Seen("URLs", bloom=Bloom.for_keys(run.expected))
        try:
            if not turn.wait_for_threads(run.cancelled):
                return
            for position, item in enumerate(self._reading(run), start=1):
                entry = as_entry(item, position)
                unusable = check_url(entry.url)
                # Equivalent URLs are one (case, default port, escapes...); a line that is
                # no URL can only be the same line again.
                key = entry.url if unusable else name_key(entry.url)
                first = kept.setdefault(key, entry.line)
                if not self.window.take(run.cancelled):
                    return
                if first != entry.line:
                    self._duplicate(seq, entry, first)
                else:
                    self._take(seq, entry, unusable or entry.problem, key)  # a line that is no URL says so first
                seq += 1
                run.fed = seq
                if not seq % _TRIM_EVERY_URLS:
                    TRIMMER.tick()
        except BaseException as exc:  # the input's own error goes to the caller
            run.results.put(Failed(exc))
        finally:
            turn.thread_left()
            kept.close()
            run.results.put(End(seq))

    def _feed_apart(self, apart: Apart) -> bool:
        """The loop of the feeder thread when its process (``apart.py``) reads, checks and names the URLs;
        False if that process could not start (it read nothing): then this thread does it all.

        A batch at a time: its window places are taken, and its new Jobs put into the schedule, in one step
        each, not one per URL (the batch came in one read).
        """
        run, dest, window = self._run, self._run.shared.dest, self.window
        seq, started = 0, True
        try:
            for batch in apart.batches(run):
                logged = [item for item in batch if item[0] == LOGGED]
                for _, level, text, _ in logged:
                    log.log(level, "%s", text)
                items = [item for item in batch if item[0] != LOGGED] if logged else batch
                done = 0
                while done < len(items):
                    places = window.take_some(len(items) - done, run.cancelled)
                    if not places:
                        return True
                    self._place_many(seq, items[done : done + places], dest)
                    if self._stops.stopped():
                        apart.stop_naming()
                    done += places
                    seq += places
                    run.fed = seq
                TRIMMER.tick()
        except Unready as exc:
            log.debug("the feeder process could not start (%s); the feeder is a thread", exc)
            started = False
        except BaseException as exc:  # the input's own error goes to the caller
            run.results.put(Failed(exc))
        finally:
            apart.close()
            if started:
                run.results.put(End(seq))
        return started

    def _place_many(self, seq: int, items: list[tuple[Any, ...]], dest: Path) -> None:
        """What ``_take`` does for each of a batch's *items* (``apart.py``), numbered from *seq*, ready at one
        instant: those to download go into the schedule together."""
        ready = self._ready()
        jobs: list[Queued] = []
        for kind, entry, value, host in items:
            if kind == START or kind == SKIPPED:
                job = self._job(seq, entry, None if value is None else dest / value, host, kind == SKIPPED, ready)
                if job is not None:
                    jobs.append(job)
            elif kind == INVALID:
                self._invalid(seq, entry, value)
            else:
                self._duplicate(seq, entry, value)
            seq += 1
        if jobs:
            self._queue(jobs)

    def _reading(self, run: RunState) -> Iterator[Item]:
        """The input's items, with ``run.reading_since`` set while the next one is awaited."""
        items = iter(self._urls)
        while True:
            run.reading_since = time.monotonic()
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                run.reading_since = None
            yield item

    def _duplicate(self, seq: int, entry: Entry, first: int) -> None:
        log.debug("line %d: the same URL as line %d, skipped", entry.line, first)
        self._run.emit(seq, self._run.result(entry, Status.DUPLICATE, time.monotonic(), now(),
                                             error=duplicate_error(first), attempts=0))  # fmt: skip

    def _invalid(self, seq: int, entry: Entry, reason: str) -> None:
        self._run.emit(seq, self._run.result(entry, Status.INVALID, time.monotonic(), now(), error=reason, attempts=0))

    def _take(self, seq: int, entry: Entry, reason: str | None, key: str) -> None:
        if reason is not None:
            self._invalid(seq, entry, reason)
            return
        # A URL the stopped run will not start needs no name: a long list's rest is recorded at once.
        target = None if self._stops.stopped() else self._target(entry, key)
        job = self._job(seq, entry, target, host_key(entry.url), None, self._ready())
        if job is not None:
            self._queue([job])

    def _ready(self) -> Ready:
        """Now, for the URLs read now: monotonic, the wall clock, and when their acquire timeout runs out."""
        run = self._run
        timeout = run.config.acquire_timeout
        return time.monotonic(), now(), None if timeout is None else run.shared.clock() + timeout

    def _job(self, seq: int, entry: Entry, target: Path | None, host: str, exists: bool | None,
             ready: Ready) -> Queued | None:  # fmt: skip
        """*entry*'s Job, named *target*, to go into the schedule; None when its record is made now instead: not
        started (*target* None: the run stopped while its name was awaited), or skipped (*exists*: whether
        --skip-existing finds its file; None: look now)."""
        run = self._run
        ready_s, ready_at, expires = ready
        if target is None or self._stops.stopped():
            run.emit(seq, run.result(entry, Status.NOT_STARTED, ready_s, ready_at, error=run.cut, attempts=0))
            return None
        if exists is None:
            exists = run.config.skip_existing and os.path.lexists(target)
        if exists:
            run.emit(seq, run.result(entry, Status.SKIPPED, ready_s, ready_at, path=target, attempts=0))
            return None
        job = Job(seq=seq, entry=entry, target=target, host=host, ready=ready_s, ready_at=ready_at, expires=expires)
        return job, host, seq, expires

    def _queue(self, jobs: list[Queued]) -> None:
        """*jobs* into the schedule, counted as waiting for a slot first."""
        run = self._run
        with run.lock:
            run.waiting += len(jobs)
        run.schedule.put_many(jobs)

    def _target(self, entry: Entry, key: str) -> Path | None:
        """*entry*'s file in DEST (see ``file_name``); None if the run stops while its name is awaited."""
        run = self._run
        name = file_name(run.shared.namer, entry, key, run.config.timeout, self._pause, self._named_own)
        return None if name is None else run.shared.dest / name

    def _pause(self, seconds: float) -> bool:
        """Wait *seconds* before a name is asked for again; True if the run stops meanwhile."""
        return self._run.cancelled.wait(seconds) or self._stops.stopped()


def file_name(namer: Namer, entry: Entry, key: str, timeout: float, pause: Callable[[float], bool],
              named_own: NamedOwn) -> str | None:  # fmt: skip
    """*entry*'s file name in DEST.  While it cannot be had (a cluster's Redis, which keeps the names, does not
    answer: no download starts then anyway), wait for it (*pause*; None if that says the run stopped), up to
    *timeout*, and then give the URL a name of its own, unrecorded (said once: *named_own*)."""
    wait, waiting_since = NAME_RETRY_S, None
    while True:
        try:
            return namer.name_for(entry.url, preferred=entry.out, key=key)
        except StateError as exc:
            waiting_since = waiting_since or time.monotonic()
            if time.monotonic() - waiting_since >= timeout:
                own = namer.own_name(entry.url, preferred=entry.out, key=key)
                (log.debug if named_own.said else log.warning)(
                    "%s; until it answers, a URL is named with a suffix of its own, unrecorded (%s: %s)",
                    exc, redact(entry.url), own)  # fmt: skip
                named_own.said = True
                return own
        if pause(wait):
            return None
        wait = min(2 * wait, 1.0)
