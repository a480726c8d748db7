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
from collections.abc import Iterable, Iterator
from pathlib import Path

from .._errors import StateError
from .._memory import TRIMMER
from .._naming import name_key
from .._result import Status, duplicate_error
from .._text import redact
from .._urllist import Entry
from .._urls import check_url, host_key
from ..state.seen import Bloom, Seen
from .jobs import End, Failed, Item, Job, as_entry, now
from .runstate import POLL_S, RunState
from .stops import Stops

log = logging.getLogger("fetcher")

# How many URLs the feeder reads between two ticks of the trimmer (_memory.py): a tick reads the clock.
_TRIM_EVERY_URLS = 1024

#: The first wait before a file name is asked for again, when its store did not answer (then twice as long,
#: up to a second).
NAME_RETRY_S = 0.05


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
        with self._changed:
            if self._used >= self._size:
                while self._used > self._low_water and not cancelled.is_set():
                    self._changed.wait(POLL_S)
            if cancelled.is_set():
                return False
            self._used += 1
            return True

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
        self._named_own = False  # a URL was given a name of its own, its store silent past --timeout (said once)

    def feed(self) -> None:
        run = self._run
        seq = 0
        # Each URL in normal form: the line kept for it (on disk past a few thousand), behind a filter
        # made for the input's length where it tells it (a list, the CLI's counted list file).
        kept: Seen[int] = Seen("URLs", bloom=Bloom.for_keys(run.expected))
        try:
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
            kept.close()
            run.results.put(End(seq))

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

    def _take(self, seq: int, entry: Entry, reason: str | None, key: str) -> None:
        run = self._run
        ready, ready_at = time.monotonic(), now()
        if reason is not None:
            run.emit(seq, run.result(entry, Status.INVALID, ready, ready_at, error=reason, attempts=0))
            return
        target = self._target(entry, key)
        if target is None or self._stops.stopped():
            run.emit(seq, run.result(entry, Status.NOT_STARTED, ready, ready_at, error=run.cut, attempts=0))
            return
        if run.config.skip_existing and os.path.lexists(target):
            run.emit(seq, run.result(entry, Status.SKIPPED, ready, ready_at, path=target, attempts=0))
            return
        with run.lock:
            run.waiting += 1
        timeout = run.config.acquire_timeout
        expires = None if timeout is None else run.shared.clock() + timeout
        job = Job(seq=seq, entry=entry, target=target, host=host_key(entry.url), ready=ready, ready_at=ready_at,
                  expires=expires)  # fmt: skip
        run.schedule.put(job, job.host, seq=seq, expires=expires)

    def _target(self, entry: Entry, key: str) -> Path | None:
        """*entry*'s file in DEST.  While its name cannot be had (a cluster's Redis, which keeps the names, does
        not answer: no download starts then anyway), wait for it, up to --timeout, and then give the URL a name
        of its own, unrecorded; None if the run stops meanwhile."""
        run = self._run
        namer, pause, waiting_since = run.shared.namer, NAME_RETRY_S, None
        while True:
            try:
                return run.shared.dest / namer.name_for(entry.url, preferred=entry.out, key=key)
            except StateError as exc:
                waiting_since = waiting_since or time.monotonic()
                if time.monotonic() - waiting_since >= run.config.timeout:
                    own = namer.own_name(entry.url, preferred=entry.out, key=key)
                    (log.debug if self._named_own else log.warning)(
                        "%s; until it answers, a URL is named with a suffix of its own, unrecorded (%s: %s)",
                        exc, redact(entry.url), own)  # fmt: skip
                    self._named_own = True
                    return run.shared.dest / own
            if run.cancelled.wait(pause) or self._stops.stopped():
                return None
            pause = min(2 * pause, 1.0)
