"""``Run``: one ``fetch()`` call, put together from its stages.

It makes the state the stages share and the stages themselves, and owns the
run's two threads (the feeder's and the dispatcher's; the workers belong to
the Fetcher).  Everything the Fetcher asks of a run goes through here.
"""

from __future__ import annotations

import operator
import threading
import time
from collections.abc import Iterable, Iterator

from .._config import NO_RUN_LIMITS, RunLimits
from .._result import Result
from .apart import Apart
from .attempt import LONG_LIST, Worker
from .dispatcher import Dispatcher
from .feeder import Feeder
from .jobs import Item, Shared
from .results import Results
from .runstate import RunState
from .settle import Settle
from .stops import Stops


class Run:
    """The threads and queues of one ``fetch()`` call."""

    def __init__(self, shared: Shared, urls: Iterable[Item], run_id: str, limits: RunLimits = NO_RUN_LIMITS) -> None:
        self.shared = shared
        self.config = shared.config
        self.run_id = run_id
        self.limits = limits
        self._run = run = RunState(shared, run_id, limits, expected=operator.length_hint(urls, 0))
        self._stops = stops = Stops(run)
        settle = Settle(run, stops)
        self._urls = urls
        self._feeder = feeder = Feeder(run, stops, urls)
        dispatcher = Dispatcher(run, stops, settle, Worker(run, stops, settle))
        self._results = Results(run, urls, feeder.window)
        self._threads = [
            threading.Thread(target=feeder.feed, name=f"fetcher-feed-{run_id}", daemon=True),
            threading.Thread(target=dispatcher.dispatch, name=f"fetcher-dispatch-{run_id}", daemon=True),
        ]

    @property
    def waiting(self) -> int:
        """URLs read, not yet holding a slot."""
        return self._run.waiting

    @property
    def retrying(self) -> int:
        """URLs waiting out a pause before their next attempt."""
        return self._run.schedule.retrying

    def start(self) -> None:
        if self.limits.deadline is not None:
            self._run.deadline_at = time.monotonic() + self.limits.deadline
        shared, expected = self.shared, self._run.expected
        if expected >= LONG_LIST and shared.processes is not None:
            # An input that tells its length (a list; the CLI's counted file) starts the worker processes
            # now when it is long, rather than after its LONG_LIST-th URL, as the run must wait for otherwise.
            shared.processes.start()
            self._feeder.apart = Apart.start(shared, self._urls, expected)
        if self._feeder.apart is None:
            shared.naming.thread_joined()
        for thread in self._threads:
            thread.start()

    def cancel(self) -> None:
        self._stops.cancel()

    def stop(self, reason: str) -> None:
        """Stop the run as --deadline does, for *reason* (an interrupt): downloads in flight end as
        ``cancelled``, and every URL not started, to the end of the input, as ``not-started``."""
        self._stops.stop(reason)

    def results(self, ordered: bool) -> Iterator[Result]:
        return self._results.iterate(ordered)
