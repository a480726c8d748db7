"""One ``fetch()`` call: its threads, its queues, and the path of each URL.

    input ──feeder──▶ schedule ──dispatcher──▶ worker processes ──▶ results ──▶ caller
             reads,     ▲        takes a slot     (or threads): one             in input order,
             checks,    │        from the gate    attempt; its slot is          or as completed
             names      │        (or gives up)    released when it is over
                        └──── a retry, due later ◀─────┘

One URL's path, a module a stage:

- ``feeder.py``, the feeder thread: reads the URL from the input, checks it,
  names its file and puts it into the schedule (``fetcher/_schedule.py``) as
  a ``Job`` (``jobs.py``: the values that pass between the stages).  For a
  long list file, a process of its own reads, checks and names the URLs, and
  the thread only puts them in (``apart.py``).
- ``dispatcher.py``, the dispatcher thread: takes a slot from the gate, then
  the first URL whose host's limits let it start, and hands it to a worker.
- ``attempt.py``, the slot held: one attempt, a Job and an Ask in, an
  Outcome out; on a worker thread, or handed to a worker process
  (``fetcher/workers/``) once the run has read a long list.
- ``settle.py``, on the same thread (or the worker pool's receiving thread):
  what the Outcome means for the run (a host paused, the quota counted,
  before the slot goes back), then a retry back into the schedule, or the
  URL's record and what the state database keeps.
- ``results.py``, the caller's thread: the records, in input order or as
  they complete.

Beside the path: ``stops.py`` (cancel, an interrupt, --deadline, --quota),
``runstate.py`` (what the stages share) and ``run.py`` (``Run``, which makes
the stages and starts the threads).

The feeder and the dispatcher are two threads of their own so that a slow
input (a pipe) never stops URLs already read from being started, and a URL
waiting for a slot never stops the input from being read.  A URL is "ready"
when the feeder has read it; its acquire timeout counts from then, and only
for its first slot.  The feeder reads at most ``read_ahead`` URLs ahead of
the caller, which bounds memory whatever the length of the list.

A failed attempt that the retry policy says to try again goes back into the
schedule with a due time, and gives its slot up meanwhile: other URLs use it
through the wait.  When due, a retry goes ahead of new URLs.

The state database is read before a URL's first attempt (the validators of the
file already saved, read ahead in batches by the dispatcher; a partial file to
resume) and written after its last (by the store's writer thread, in batches);
the download itself never opens it.

``--deadline`` sets ``halt``: downloads in flight stop, retries waiting for
their turn are cancelled, nothing new starts.  ``--quota`` only stops new
starts.  Either way the URLs read but not started are recorded ``not-started``.
"""

from .jobs import Item, Shared
from .run import Run

__all__ = ["Item", "Run", "Shared"]
