"""Behind: what the state stores' writer threads share, which write the records handed to them behind, in batches.

A caller hands a record over and goes on; the thread, started with the
first record, lets a batch gather for up to ``WRITE_EVERY_S`` (not while a
caller waits in ``flush``, nor once ``max_pending`` records wait, nor while
the writer's own ``_write_now`` says so) and writes it in one go.  A caller
that would hand over more than ``max_pending`` records waits for the thread
to take them (memory must not grow when downloads finish faster than the
store writes).  ``flush`` and ``close`` wait a bounded time: a store that
does not answer must never hang a run.

A subclass holds the records themselves (under ``_changed``), says how many
wait (``_count``) and whether any wait or are being written (``_busy``),
and runs the thread (``_run``), which takes each batch with ``_gathered``.
"""

from __future__ import annotations

import threading
import time

#: The writer thread writes at least this often while records wait.
WRITE_EVERY_S = 0.1

#: Records handed to the writer and not yet being written, at most: a caller that
#: would add more waits for the writer (a bounded queue: memory must not grow when
#: downloads finish faster than the store writes them).
MAX_PENDING = 10_000


class Behind:
    """The thread, its lock and its waits; see the module docs."""

    def __init__(self, *, max_pending: int, flush_wait_s: float, close_wait_s: float, thread_name: str) -> None:
        self._max_pending = max_pending
        self._flush_wait_s = flush_wait_s
        self._close_wait_s = close_wait_s
        self._thread_name = thread_name
        self._changed = threading.Condition(threading.Lock())
        self._closing = False
        self._hurry = 0  # callers in flush(): write at once, without gathering a batch
        self._thread: threading.Thread | None = None

    def _count(self) -> int:
        """Under the lock: the records handed over and not yet being written."""
        raise NotImplementedError

    def _busy(self) -> bool:
        """Under the lock: whether records wait or are being written."""
        raise NotImplementedError

    def _run(self) -> None:
        raise NotImplementedError

    def _write_now(self) -> bool:
        """Under the lock: whether the records waiting must be written without gathering more."""
        return False

    def _make_room(self) -> None:
        """Under the lock, before a record is handed over: start the thread on first use (a store that only reads
        needs none), and while ``max_pending`` records wait, wait for the thread to take them (as long as it runs)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
            self._thread.start()
        while self._count() >= self._max_pending and self._thread.is_alive() and not self._closing:
            self._changed.notify_all()  # a full batch need not gather any longer
            self._changed.wait(WRITE_EVERY_S)

    def _wake(self) -> None:
        """Under the lock, after a record was handed over.  Only the first record of a batch wakes the thread (and
        a full one): a wake-up per record would cost a thread switch, and the GIL, per URL."""
        count = self._count()
        if count == 1 or count >= self._max_pending:
            self._changed.notify_all()

    def _gathered(self) -> bool:
        """On the thread, under the lock: wait for records, then let a batch gather (see the module docs); False
        when closing with none left."""
        while not self._count() and not self._closing:
            self._changed.wait()
        if not self._count():
            return False
        gathered_at = time.monotonic() + WRITE_EVERY_S
        while (
            not self._closing and not self._hurry and not self._write_now() and self._count() < self._max_pending
            and (left := gathered_at - time.monotonic()) > 0
        ):  # fmt: skip
            self._changed.wait(left)
        return True

    def flush(self) -> None:
        """Wait until every record handed over so far is written (or dropped), for ``flush_wait_s`` at most."""
        deadline = time.monotonic() + self._flush_wait_s
        with self._changed:
            self._hurry += 1
            self._changed.notify_all()
            try:
                while self._busy() and self._thread is not None and self._thread.is_alive():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._changed.wait(left)
            finally:
                self._hurry -= 1

    def close(self) -> None:
        """Write what waits and stop the thread (waiting ``close_wait_s`` at most)."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(self._close_wait_s)
