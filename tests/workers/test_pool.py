"""The worker processes from the run's side: started, fed in batches, halted, lost and ended; and what a Fetcher
whose downloads they make still does as its threads do (logs, progress, partial files)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fetcher import ClosedError, Fetcher, LocalGate, Result, Status
from fetcher._config import FetcherConfig
from fetcher._errors import Cancelled, TransportError
from fetcher._urllist import Entry
from fetcher.transfer.download import KEEP_FROM, Outcome
from fetcher.transfer.tempfiles import TEMP_PREFIX, TEMP_SUFFIX
from fetcher.workers import ProcessPool
from fetcher.workers.pool import _feeder_safe
from fetcher.workers.receiver import OnDone
from fetcher.workers.wire import Task
from tests import server as srv
from tests.workers.processes import all_gone, socket_owner, wait_until, workers_of

# The longest a test waits for anything a healthy pool does in milliseconds.
WAIT_S = 10.0


class Outcomes:
    """What the pool says of each task, by the key given to ``done``; ``wait`` for some (bounded)."""

    def __init__(self) -> None:
        self._got: dict[str, Outcome] = {}
        self._changed = threading.Condition()

    def done(self, key: str) -> OnDone:
        def record(outcome: Outcome, kept: bool) -> None:
            with self._changed:
                self._got[key] = outcome
                self._changed.notify_all()

        return record

    def wait(self, *keys: str, timeout: float = WAIT_S) -> dict[str, Outcome]:
        with self._changed:
            self._changed.wait_for(lambda: set(keys) <= set(self._got), timeout)
            missing = set(keys) - set(self._got)
            assert not missing, f"no outcome for {sorted(missing)}"
            return {key: self._got[key] for key in keys}


def submit(pool: ProcessPool, outcomes: Outcomes, url: str, target: Path, *, run: int = 0) -> bool:
    """Hand *pool* one plain attempt at *url* into *target*, its outcome kept under *target*'s name.

    Run 0 is no run's token (``new_run`` counts from 1): no halt stops it.
    """

    def task(task_id: int) -> Task:
        return Task(id=task_id, run=run, entry=Entry(url=url, line=1), target=target, saved=None, resume=None,
                    resume_kept=False, offer_partial=False, deadline=None, stop_at=None, watched=False)  # fmt: skip

    return pool.submit(task, url, outcomes.done(target.name), None)


@pytest.fixture(scope="module")
def shared_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessPool]:
    made = ProcessPool(FetcherConfig(dest=tmp_path_factory.mktemp("pool"), timeout=20), 2, threads=2, eager=True)
    yield made
    made.shutdown(wait_s=1.0)


@pytest.fixture
def pool(shared_pool: ProcessPool) -> ProcessPool:
    """An eager pool of two processes with two download threads each, for the tests that do not end it
    (starting one costs a few tenths of a second of CPU a process); each test's tasks are done at its end."""
    assert shared_pool.ready(), "a process of the shared pool died in an earlier test"
    return shared_pool


def partial_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"))


def wait_for_request(server: srv.LoopbackServer, path: str) -> None:
    assert wait_until(lambda: server.requests[path] > 0, WAIT_S), f"no request for {path}"


def owned(handler: srv.Handler, owners: list[int | None]) -> srv.Handler:
    """*handler*, noting which worker process of this test process sent each request (None: none of them)."""

    def handle(request: srv.Request) -> None:
        owners.append(socket_owner(request.client_address[1], workers_of(os.getpid())))
        handler(request)

    return handle


def drain(results: Iterator[Result]) -> None:
    """Read *results* to their end, or to the ClosedError that a close mid-run raises."""
    with contextlib.suppress(ClosedError):
        list(results)


def kill_the_first(owners: list[int | None]) -> None:
    """SIGKILL the process that made the first request noted in *owners*, once it is noted."""
    assert wait_until(lambda: bool(owners), WAIT_S), "no request came"
    assert owners[0] is not None, "the first request came from no worker process"
    os.kill(owners[0], signal.SIGKILL)


# -- the pool: start, batches, halt, a lost child, shutdown ----------------------------------------


def test_an_eager_pool_takes_tasks_in_all_its_processes_as_soon_as_it_is_made(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    earlier = set(workers_of(os.getpid()))
    pool = ProcessPool(FetcherConfig(dest=tmp_path), 2, threads=2, eager=True)
    try:
        assert len(set(workers_of(os.getpid())) - earlier) == 2
        outcomes = Outcomes()
        # Up already: a URL's clock (--max-time) never runs while a process is still importing.
        assert submit(pool, outcomes, server.route("/a", srv.body(b"x")), tmp_path / "a")
        pool.flush()
        assert outcomes.wait("a")["a"].error is None
    finally:
        pool.shutdown(wait_s=1.0)


def test_a_lazy_pool_starts_nothing_and_takes_no_task_until_started(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    earlier = set(workers_of(os.getpid()))
    pool = ProcessPool(FetcherConfig(dest=tmp_path), 2, threads=2)
    try:
        assert not pool.ready()
        assert not submit(pool, Outcomes(), server.route("/a", srv.body(b"x")), tmp_path / "a")
        assert set(workers_of(os.getpid())) <= earlier
        pool.start()
        assert wait_until(pool.ready, WAIT_S)
        assert len(set(workers_of(os.getpid())) - earlier) == 2
    finally:
        pool.shutdown(wait_s=1.0)


def test_tasks_gathered_go_out_when_the_dispatcher_flushes(
    server: srv.LoopbackServer, pool: ProcessPool, tmp_path: Path
) -> None:
    outcomes = Outcomes()
    assert submit(pool, outcomes, server.route("/a", srv.body(b"x")), tmp_path / "a")
    time.sleep(0.3)
    assert server.requests["/a"] == 0  # gathered, not sent: the dispatcher has more to hand out
    pool.flush()
    assert outcomes.wait("a")["a"].error is None
    assert (tmp_path / "a").read_bytes() == b"x"


def test_a_full_batch_goes_out_without_waiting_for_a_flush(
    server: srv.LoopbackServer, pool: ProcessPool, tmp_path: Path
) -> None:
    outcomes = Outcomes()
    url = server.route("/a", srv.body(b"x"))
    for n in range(130):  # more than two processes' batches
        assert submit(pool, outcomes, f"{url}?{n}", tmp_path / f"a{n}")
    assert wait_until(lambda: server.requests["/a"] > 0, WAIT_S)
    pool.flush()
    assert all(outcome.error is None for outcome in outcomes.wait(*(f"a{n}" for n in range(130))).values())


def test_tasks_go_to_the_least_busy_process(server: srv.LoopbackServer, pool: ProcessPool, tmp_path: Path) -> None:
    owners: list[int | None] = []
    outcomes = Outcomes()
    url = server.route("/slow", owned(srv.body(b"x", delay=0.5), owners))
    assert submit(pool, outcomes, f"{url}?1", tmp_path / "one") and submit(pool, outcomes, f"{url}?2", tmp_path / "two")
    pool.flush()
    outcomes.wait("one", "two")
    assert len(owners) == 2 and None not in owners and owners[0] != owners[1]


def test_a_halt_hangs_up_only_its_runs_attempts(server: srv.LoopbackServer, pool: ProcessPool, tmp_path: Path) -> None:
    outcomes = Outcomes()
    halted_run, other_run = pool.new_run(), pool.new_run()
    assert submit(pool, outcomes, server.route("/held", srv.held_headers()), tmp_path / "held", run=halted_run)
    assert submit(pool, outcomes, server.route("/slow", srv.body(b"x", delay=0.5)), tmp_path / "slow", run=other_run)
    pool.flush()
    wait_for_request(server, "/held")
    halted = time.monotonic()
    pool.halt(halted_run)
    assert isinstance(outcomes.wait("held")["held"].error, Cancelled)
    assert time.monotonic() - halted < 1.0
    assert outcomes.wait("slow")["slow"].error is None


def test_a_process_killed_mid_task_fails_its_tasks_as_transient(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    earlier = set(workers_of(os.getpid()))
    pool = ProcessPool(FetcherConfig(dest=tmp_path, timeout=20), 1, threads=2, eager=True)
    try:
        assert pool.ready()
        outcomes = Outcomes()
        held = server.route("/held", srv.held_headers())
        assert submit(pool, outcomes, f"{held}?1", tmp_path / "one") and submit(pool, outcomes, f"{held}?2",
                                                                                tmp_path / "two")  # fmt: skip
        pool.flush()
        assert wait_until(lambda: server.requests["/held"] == 2, WAIT_S)
        [child] = set(workers_of(os.getpid())) - earlier
        os.kill(child, signal.SIGKILL)
        for outcome in outcomes.wait("one", "two").values():
            assert isinstance(outcome.error, TransportError) and outcome.error.transient
            assert str(outcome.error) == "the worker process downloading it ended unexpectedly"
    finally:
        pool.shutdown(wait_s=1.0)


def test_a_pool_whose_processes_all_died_is_not_ready(server: srv.LoopbackServer, tmp_path: Path) -> None:
    earlier = set(workers_of(os.getpid()))
    pool = ProcessPool(FetcherConfig(dest=tmp_path, timeout=20), 1, threads=1, eager=True)
    try:
        assert pool.ready()
        outcomes = Outcomes()
        assert submit(pool, outcomes, server.route("/held", srv.held_headers()), tmp_path / "held")
        pool.flush()
        wait_for_request(server, "/held")
        [child] = set(workers_of(os.getpid())) - earlier
        os.kill(child, signal.SIGKILL)
        outcomes.wait("held")
        assert not pool.ready()  # so the run's attempts go to its threads, not to a pool that takes none
    finally:
        pool.shutdown(wait_s=1.0)


def test_shutdown_ends_every_process_and_removes_their_partial_files(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    url = server.route("/stall", srv.stalled(b"x" * 1000, claimed=10_000_000, stall=8))
    earlier = set(workers_of(os.getpid()))
    fetcher = Fetcher(dest=tmp_path, workers=2, timeout=20, state=False)
    mine = set(workers_of(os.getpid())) - earlier
    results = fetcher.as_completed([url])
    caller = threading.Thread(target=drain, args=(results,), daemon=True)
    caller.start()
    assert wait_until(lambda: bool(partial_files(tmp_path)), WAIT_S), "the download never started"
    began = time.monotonic()
    fetcher.close()
    assert time.monotonic() - began < 3  # not the stall of 8 s
    assert len(mine) == 2 and all_gone(mine, timeout=3)
    assert partial_files(tmp_path) == []
    caller.join(5)


# -- a Fetcher whose downloads are in worker processes ---------------------------------------------


def test_a_stop_hangs_up_an_attempt_blocked_on_a_silent_server_within_a_second(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    url = server.route("/held", srv.held_headers())
    with Fetcher(dest=tmp_path, workers=2, timeout=20) as fetcher:
        results = fetcher.as_completed([url])
        stopped: list[float] = []

        def stop() -> None:
            wait_for_request(server, "/held")
            stopped.append(time.monotonic())
            fetcher.stop("interrupted")

        stopper = threading.Thread(target=stop)
        stopper.start()
        [result] = results
        took = time.monotonic() - stopped[0]
        stopper.join()
    assert (result.status, result.error, result.attempts) == (Status.CANCELLED, "interrupted", 1)
    assert took < 1.0  # not the --timeout of 20 s
    assert server.wait_for_hangups("/held")


def test_a_url_whose_process_was_killed_mid_download_is_retried_and_succeeds(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    owners: list[int | None] = []
    url = server.route("/f", owned(srv.faulty([srv.held_headers()], then=srv.body(b"fine")), owners))
    with Fetcher(dest=tmp_path, workers=2, timeout=20, retries=1, retry_wait_max=0) as fetcher:
        results = fetcher.as_completed([url])
        killer = threading.Thread(target=kill_the_first, args=(owners,))
        killer.start()
        [result] = results
        killer.join()
    assert (result.status, result.attempts, result.error) == (Status.OK, 2, None)
    assert (tmp_path / "f").read_bytes() == b"fine"
    assert owners[0] is not None and owners[1] not in (owners[0], None)  # the other process took the retry


def test_a_run_whose_processes_all_died_goes_on_in_threads(server: srv.LoopbackServer, tmp_path: Path) -> None:
    owners: list[int | None] = []
    url = server.route("/f", owned(srv.faulty([srv.held_headers()], then=srv.body(b"fine")), owners))
    got: list[Result] = []
    with Fetcher(dest=tmp_path, workers=1, timeout=20, retries=1, retry_wait_max=0) as fetcher:
        caller = threading.Thread(target=lambda: got.extend(fetcher.as_completed([url])), daemon=True)
        caller.start()
        kill_the_first(owners)
        caller.join(WAIT_S)
        assert not caller.is_alive(), "the retry was lost: the run never ended"
    assert [(r.status, r.attempts) for r in got] == [(Status.OK, 2)]
    assert owners[1] is None  # a thread of this process made it


def test_log_records_of_a_process_reach_the_parents_fetcher_logger(
    server: srv.LoopbackServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="fetcher")  # before the Fetcher: its processes log at the level it had
    url = server.route("/logged.txt", srv.body(b"12345"))
    with Fetcher(dest=tmp_path, workers=2) as fetcher:
        [result] = fetcher.fetch([url])
    assert result.ok
    saved = [r for r in caplog.records if r.getMessage() == f"saved {tmp_path.resolve() / 'logged.txt'} (5 bytes)"]
    assert [(r.name, r.levelno) for r in saved] == [("fetcher", logging.DEBUG)]


class Recorder:
    """A progress display that notes what it is told."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str, int | None]] = []
        self.advanced: list[int] = []
        self.ended = 0
        self._lock = threading.Lock()

    def __call__(self, url: str, name: str, total: int | None) -> Recorder:
        with self._lock:
            self.started.append((url, name, total))
        return self

    def advance(self, n: int) -> None:
        with self._lock:
            self.advanced.append(n)

    def done(self) -> None:
        with self._lock:
            self.ended += 1


@pytest.mark.parametrize("workers", [0, 2])
def test_the_progress_of_each_download_reaches_the_watcher(
    server: srv.LoopbackServer, tmp_path: Path, workers: int
) -> None:
    body = bytes(3 << 20)
    url = server.route("/watched.iso", srv.Resource(body, rate=8 << 20))
    watcher = Recorder()
    with Fetcher(dest=tmp_path, workers=workers, watch=watcher) as fetcher:
        [result] = fetcher.fetch([url])
    assert result.ok
    assert (watcher.started, sum(watcher.advanced), watcher.ended) == ([(url, "watched.iso", len(body))], len(body), 1)
    assert len(watcher.advanced) >= 3  # as it came, not all at the end


def cut_once(delay: float = 0.0) -> tuple[bytes, srv.Handler]:
    """A 2 MiB body with ranges whose first answer (after *delay* seconds) is cut after 1.5 MiB."""
    body = bytes(range(256)) * (8 << 10)
    resource = srv.Resource(body, cut_after=3 * KEEP_FROM // 2, cuts=1)

    def late(request: srv.Request) -> None:
        request.server.owner.sleep(delay)
        resource(request)

    return body, srv.faulty([late], then=resource)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_partial_file_is_resumed_by_the_next_attempt_whichever_process_makes_it(
    server: srv.LoopbackServer, tmp_path: Path, workers: int
) -> None:
    owners: list[int | None] = []
    body, cut = cut_once(delay=0.5)
    # The quick one takes the first process, the cut one the second.  The cut comes late, when both are
    # idle, and a tie goes to the first: so another process than the one that was cut resumes the file.
    quick = server.route("/quick", srv.body(b"q"))
    url = server.route("/cut.iso", owned(cut, owners))
    with Fetcher(dest=tmp_path, workers=workers, max_concurrent=2, retries=1, retry_wait_max=0) as fetcher:
        _, result = fetcher.fetch([quick, url])
    assert (result.status, result.attempts, result.http_status, result.bytes, result.resumed_from) == (
        Status.OK, 2, 206, len(body), 3 * KEEP_FROM // 2,
    )  # fmt: skip
    assert (tmp_path / "cut.iso").read_bytes() == body
    assert server.bytes_sent["/cut.iso"] == len(body)  # the second attempt asked only for the rest
    assert partial_files(tmp_path) == []
    if workers:
        assert None not in owners and owners[0] != owners[1]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_partial_file_kept_by_a_run_is_resumed_by_the_next_runs_processes(
    server: srv.LoopbackServer, tmp_path: Path, workers: int
) -> None:
    body, cut = cut_once()
    url = server.route("/cut.iso", cut)
    with Fetcher(dest=tmp_path, workers=workers, retries=0) as fetcher:
        [first] = fetcher.fetch([url])
    assert (first.status, first.error) == (Status.FAILED, "body cut short: 1572864 of 2097152 bytes")
    assert len(partial_files(tmp_path)) == 1  # on record in the state database, for the next run
    with Fetcher(dest=tmp_path, workers=workers) as fetcher:
        [second] = fetcher.fetch([url])
    assert (second.status, second.http_status, second.bytes, second.resumed_from) == (
        Status.OK, 206, len(body), 3 * KEEP_FROM // 2,
    )  # fmt: skip
    assert (tmp_path / "cut.iso").read_bytes() == body
    assert server.bytes_sent["/cut.iso"] == len(body)
    assert partial_files(tmp_path) == []


@pytest.mark.parametrize("workers", [0, 2])
def test_closing_a_fetcher_mid_download_gives_back_the_slots_it_held(
    server: srv.LoopbackServer, tmp_path: Path, workers: int
) -> None:
    gate = LocalGate(2)  # shared with another Fetcher, which must not lose them
    held = [server.route(f"/held{n}", srv.held_headers()) for n in range(2)]
    fetcher = Fetcher(dest=tmp_path, workers=workers, gate=gate, max_concurrent=2, timeout=20)
    results = fetcher.as_completed(held)
    caller = threading.Thread(target=drain, args=(results,), daemon=True)
    caller.start()
    assert wait_until(lambda: server.requests["/held0"] + server.requests["/held1"] == 2, WAIT_S)
    assert gate.in_use == 2
    fetcher.close()
    assert wait_until(lambda: gate.in_use == 0, 3), f"{gate.in_use} slots never came back"
    caller.join(5)


# -- the feeder process (fetcher/_run/apart.py) ---------------------------------------------------------------


def test_no_feeder_process_is_wanted_without_a_state_database_in_a_file(tmp_path: Path) -> None:
    assert _feeder_safe(FetcherConfig(dest=tmp_path)) is False
    assert _feeder_safe(FetcherConfig(dest=tmp_path, state=None)) is False


def test_no_feeder_process_is_wanted_while_a_thread_of_another_program_runs(tmp_path: Path) -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, name="not-fetcher", daemon=True)
    other.start()
    try:
        assert _feeder_safe(FetcherConfig(dest=tmp_path, state=tmp_path / "state.db")) is False
    finally:
        stop.set()
        other.join(5)


def _feeder_safe_in_a_program(tmp_path: Path, body: str) -> bool:
    """``_feeder_safe`` as a program of its own answers it, after *body* (pytest's process runs threads)."""
    head = """
import json, sqlite3, sys
from pathlib import Path
from fetcher._config import FetcherConfig
from fetcher.workers.pool import _feeder_safe
state = Path(sys.argv[1]) / "state.db"
"""
    tail = "print(json.dumps(_feeder_safe(FetcherConfig(dest=state.parent, state=state))))\n"
    done = subprocess.run([sys.executable, "-c", head + body + tail, str(tmp_path)], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    return bool(json.loads(done.stdout))


def test_a_feeder_process_is_wanted_where_the_state_database_is_not_open(tmp_path: Path) -> None:
    assert _feeder_safe_in_a_program(tmp_path, "sqlite3.connect(state).close()\n") is True


def test_no_feeder_process_is_wanted_where_this_process_has_the_state_database_open(tmp_path: Path) -> None:
    # A copy made now would carry SQLite's records of the open file: the feeder could not use it safely.
    body = "kept = sqlite3.connect(state)\nkept.execute('CREATE TABLE t (x)')\n"
    assert _feeder_safe_in_a_program(tmp_path, body) is False
