"""A worker process, driven by hand through its two pipes as the pool drives it: tasks in, what each did out."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fetcher import _config
from fetcher._errors import BodyError, Cancelled, HTTPStatusError
from fetcher._urllist import Entry
from fetcher.transfer.download import KEEP_FROM
from fetcher.transfer.tempfiles import TEMP_PREFIX, TEMP_SUFFIX
from fetcher.transfer.validators import PartialFile, Validators
from fetcher.workers.cores import kept_to
from fetcher.workers.spawn import spawn
from fetcher.workers.wire import Answer, Call, Done, Halt, Logged, Task, ToParent, Watch
from tests import server as srv

_ROOT = Path(__file__).resolve().parents[2]

# The longest any test here waits for a child's answer; a healthy one answers in milliseconds.
WAIT_S = 10.0


class ChildProcess:
    """``python -m fetcher.workers.child`` as the pool starts it; ``send`` and ``collect`` speak its protocol.

    Tasks are numbered within a test (``task``, ``done``); ``begin`` gives the next test ids and a run of its
    own, so that one child can serve several tests (starting one costs a few tenths of a second of CPU).
    """

    def __init__(self, config: _config.FetcherConfig, *, threads: int = 2, level: int = logging.WARNING) -> None:
        # Started as the pool starts one: its three pipes, its Hello on the control pipe.
        self.handle = spawn(config, threads, 0, level)
        process = self.handle.process
        assert isinstance(process, subprocess.Popen)  # spawn() starts it afresh, not forked by a zygote
        self.process: subprocess.Popen[bytes] = process
        self.inbox = self.handle.inbox
        self.outbox = self.handle.outbox
        self.run = 0
        self.received: list[ToParent] = []
        #: What a Call (may this partial file go on record?) is answered.
        self.recorded = True

    def begin(self) -> ChildProcess:
        """A new test: a run token of its own, and nothing received yet."""
        self.run += 1
        self.received = []
        self.recorded = True
        return self

    def task(self, number: int, url: str, folder: Path, **fields: object) -> Task:
        """Task *number* of this test's run: *url* into ``folder/file<number>``, nothing asked beyond a plain GET."""
        plain = Task(id=self._id(number), run=self.run, entry=Entry(url=url, line=number),
                     target=folder / f"file{number}", saved=None, resume=None, resume_kept=False, offer_partial=False,
                     deadline=None, stop_at=None, watched=False)  # fmt: skip
        return dataclasses.replace(plain, **fields)  # type: ignore[arg-type]

    def send(self, *messages: Task | Halt | Answer) -> None:
        """Tasks go on the tasks pipe, as one batch; a Halt or an Answer on the control pipe."""
        tasks = [message for message in messages if isinstance(message, Task)]
        if tasks:
            self.inbox.send(tasks)
        for message in messages:
            if not isinstance(message, Task):
                self.handle.tell(message)

    def collect(self, until: Callable[[list[ToParent]], bool], timeout: float = WAIT_S) -> list[ToParent]:
        """Messages from the child until *until* holds for all received so far (answering its Calls)."""
        deadline = time.monotonic() + timeout
        while not until(self.received) and time.monotonic() < deadline:
            if not self.outbox.poll(min(0.05, max(0.0, deadline - time.monotonic()))):
                continue
            for message in self.outbox.recv():
                self.received.append(message)
                if isinstance(message, Call):
                    self.send(Answer(message.id, self.recorded))
        return self.received

    def done(self, *numbers: int, timeout: float = WAIT_S) -> dict[int, Done]:
        """The Done of each of this test's tasks *numbers*, waiting for them."""
        ids = {self._id(number): number for number in numbers}
        messages = self.collect(lambda got: set(ids) <= {m.id for m in got if isinstance(m, Done)}, timeout)
        found = {ids[m.id]: m for m in messages if isinstance(m, Done) and m.id in ids}
        assert set(found) == set(numbers), f"no answer for tasks {set(numbers) - set(found)}"
        return found

    def close(self) -> None:
        """What the pool's shutdown does: close the pipes, then wait for the child to end."""
        self.handle.close()
        try:
            self.process.wait(WAIT_S)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.outbox.close()

    def _id(self, number: int) -> int:
        return self.run * 1000 + number


@pytest.fixture(scope="module")
def shared_child(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChildProcess]:
    started = ChildProcess(_config.FetcherConfig(dest=tmp_path_factory.mktemp("child"), timeout=20),
                           level=logging.DEBUG)  # fmt: skip
    yield started
    started.close()


@pytest.fixture
def child(shared_child: ChildProcess) -> ChildProcess:
    """One child for the tests that do not end it: a new run, so a halt of one test stops nothing of another."""
    if shared_child.process.poll() is not None:
        pytest.fail("the shared worker process died in an earlier test")
    return shared_child.begin()


@pytest.fixture
def own_child(tmp_path: Path) -> Iterator[ChildProcess]:
    """A child of this test's own, for a test that ends it."""
    started = ChildProcess(_config.FetcherConfig(dest=tmp_path, timeout=20)).begin()
    yield started
    if not started.inbox.closed:
        started.close()


def partial_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"))


def test_a_task_is_downloaded_to_its_target_and_its_outcome_comes_back(
    server: srv.LoopbackServer, child: ChildProcess, tmp_path: Path
) -> None:
    child.send(child.task(1, server.route("/a", srv.body(b"a" * 1000)), tmp_path))
    outcome = child.done(1)[1].outcome
    assert (outcome.error, outcome.http_status, outcome.bytes) == (None, 200, 1000)
    assert (tmp_path / "file1").read_bytes() == b"a" * 1000


def test_a_failure_comes_back_as_the_error_a_thread_would_have_made(
    server: srv.LoopbackServer, child: ChildProcess, tmp_path: Path
) -> None:
    child.send(child.task(1, server.route("/busy", srv.status(503, headers={"Retry-After": "7"})), tmp_path))
    error = child.done(1)[1].outcome.error
    assert isinstance(error, HTTPStatusError)
    assert (str(error), error.status_code, error.retry_after, error.transient) == (
        "HTTP 503 Service Unavailable", 503, "7", True,
    )  # fmt: skip
    assert not (tmp_path / "file1").exists()


def test_tasks_run_on_as_many_threads_as_the_hello_says(
    server: srv.LoopbackServer, child: ChildProcess, tmp_path: Path
) -> None:
    overlap = srv.Overlap(0.3)
    child.send(*(child.task(n, server.route(f"/o{n}", overlap), tmp_path) for n in range(1, 6)))
    assert all(done.outcome.error is None for done in child.done(1, 2, 3, 4, 5).values())
    assert overlap.most == 2  # the shared child's Hello: 2 threads


def test_a_halt_hangs_up_its_runs_attempt_blocked_on_a_silent_server_within_a_second(
    server: srv.LoopbackServer, child: ChildProcess, tmp_path: Path
) -> None:
    child.send(child.task(1, server.route("/held", srv.held_headers()), tmp_path))
    for _ in range(500):  # bounded: the request comes within a second or two
        if server.requests["/held"]:
            break
        time.sleep(0.01)
    halted = time.monotonic()
    child.send(Halt(child.run))
    error = child.done(1)[1].outcome.error
    assert time.monotonic() - halted < 1.0  # not the timeout of 20 s
    assert isinstance(error, Cancelled)
    assert server.wait_for_hangups("/held", timeout=2)


def test_a_halt_hangs_up_a_tls_handshake_that_gets_no_answer(child: ChildProcess, tmp_path: Path) -> None:
    with srv.Silent() as silent:
        child.send(child.task(1, silent.url("/f", scheme="https"), tmp_path))
        time.sleep(0.3)  # into its handshake: the connect completes at once, the ClientHello gets no answer
        halted = time.monotonic()
        child.send(Halt(child.run))
        error = child.done(1)[1].outcome.error
    assert time.monotonic() - halted < 1.0  # not the timeout of 20 s
    assert isinstance(error, Cancelled)


def test_a_halt_leaves_the_attempts_of_other_runs_alone(
    server: srv.LoopbackServer, child: ChildProcess, tmp_path: Path
) -> None:
    child.send(child.task(1, server.route("/other", srv.body(b"x", delay=0.5)), tmp_path), Halt(child.run + 100))
    outcome = child.done(1)[1].outcome
    assert (outcome.error, outcome.http_status) == (None, 200)


def test_a_task_of_a_run_halted_already_makes_no_request(
    server: srv.LoopbackServer, child: ChildProcess, tmp_path: Path
) -> None:
    child.send(Halt(child.run))
    time.sleep(0.3)  # the halt goes on the control pipe, the task on the tasks pipe: let the halt land first
    child.send(child.task(1, server.route("/late", srv.body(b"x")), tmp_path))
    assert isinstance(child.done(1)[1].outcome.error, Cancelled)
    assert server.requests["/late"] == 0


def test_log_records_go_to_the_parent_at_the_level_it_asked(
    server: srv.LoopbackServer, child: ChildProcess, tmp_path: Path
) -> None:
    child.send(child.task(1, server.route("/logged", srv.body(b"x")), tmp_path))
    child.done(1)
    logged = [(m.level, m.message) for m in child.received if isinstance(m, Logged)]
    assert (logging.DEBUG, f"saved {tmp_path / 'file1'} (1 bytes)") in logged  # the shared child's Hello: DEBUG


def test_a_watched_task_reports_its_name_its_size_every_byte_and_its_end(
    server: srv.LoopbackServer, child: ChildProcess, tmp_path: Path
) -> None:
    body = bytes(3 << 20)
    child.send(child.task(1, server.route("/watched", srv.Resource(body, rate=12 << 20)), tmp_path, watched=True))
    child.done(1)
    watched = [m for m in child.received if isinstance(m, Watch)]
    assert (watched[0].name, watched[0].total) == ("file1", len(body))
    assert sum(m.advance for m in watched) == len(body)
    assert len(watched) >= 3  # progress while it came, not only at its end
    assert [m.done for m in watched].count(True) == 1 and watched[-1].done


def test_an_unwatched_task_sends_no_progress(server: srv.LoopbackServer, child: ChildProcess, tmp_path: Path) -> None:
    child.send(child.task(1, server.route("/plain", srv.body(bytes(100_000))), tmp_path))
    child.done(1)
    assert not [m for m in child.received if isinstance(m, Watch)]


def cut_resource() -> tuple[bytes, srv.Resource]:
    """A 2 MiB body with ranges, whose first answer is cut after 1.5 MiB: a partial worth keeping."""
    body = bytes(range(256)) * (8 << 10)
    return body, srv.Resource(body, cut_after=3 * KEEP_FROM // 2, cuts=1)


@pytest.mark.parametrize("recorded", [True, False])
def test_a_partial_worth_keeping_is_offered_to_the_parent_and_kept_as_it_answers(
    server: srv.LoopbackServer, child: ChildProcess, tmp_path: Path, recorded: bool
) -> None:
    _, resource = cut_resource()
    child.recorded = recorded
    child.send(child.task(1, server.route("/cut.iso", resource), tmp_path, offer_partial=True))
    done = child.done(1)[1]
    [call] = [m for m in child.received if isinstance(m, Call)]
    assert isinstance(done.outcome.error, BodyError) and done.outcome.error.transient
    assert done.outcome.partial is not None and call.partial.path == done.outcome.partial.path
    assert done.kept is recorded


def test_a_partial_is_offered_only_when_a_state_database_can_keep_it(
    server: srv.LoopbackServer, child: ChildProcess, tmp_path: Path
) -> None:
    _, resource = cut_resource()
    child.send(child.task(1, server.route("/cut.iso", resource), tmp_path, offer_partial=False))
    done = child.done(1)[1]
    assert done.outcome.partial is not None and not done.kept
    assert not [m for m in child.received if isinstance(m, Call)]


def test_a_partial_handed_back_is_the_parents_and_outlives_the_child(
    server: srv.LoopbackServer, own_child: ChildProcess, tmp_path: Path
) -> None:
    body, resource = cut_resource()
    own_child.send(own_child.task(1, server.route("/cut.iso", resource), tmp_path))
    partial = own_child.done(1)[1].outcome.partial
    own_child.close()
    assert partial is not None and partial.path.read_bytes() == body[: 3 * KEEP_FROM // 2]


def test_a_resume_continues_the_partial_file_it_is_given(
    server: srv.LoopbackServer, child: ChildProcess, tmp_path: Path
) -> None:
    body = bytes(range(256)) * (8 << 10)
    resource = srv.Resource(body)
    url = server.route("/resumed.iso", resource)
    path = tmp_path / f"{TEMP_PREFIX}earlier{TEMP_SUFFIX}"
    path.write_bytes(body[:KEEP_FROM])
    validators = Validators(etag=resource.etag, last_modified=resource.last_modified)
    resume = PartialFile(path=path, if_range=str(resource.etag), total=len(body), validators=validators)
    child.send(child.task(1, url, tmp_path, resume=resume))
    outcome = child.done(1)[1].outcome
    assert (outcome.error, outcome.http_status, outcome.resumed_from) == (None, 206, KEEP_FROM)
    assert outcome.bytes == len(body)
    assert (tmp_path / "file1").read_bytes() == body
    assert server.bytes_sent["/resumed.iso"] == len(body) - KEEP_FROM
    assert partial_files(tmp_path) == []


def test_the_child_ends_and_removes_its_partial_files_when_the_parent_closes_the_pipe(
    server: srv.LoopbackServer, own_child: ChildProcess, tmp_path: Path
) -> None:
    stalled = srv.stalled(b"x" * 1000, claimed=10_000_000, stall=8)
    own_child.send(own_child.task(1, server.route("/stall", stalled), tmp_path))
    for _ in range(500):  # bounded: the body begins within a second or two
        if partial_files(tmp_path):
            break
        time.sleep(0.01)
    assert partial_files(tmp_path), "the download never started"
    began = time.monotonic()
    own_child.close()
    assert own_child.process.returncode == 0 and time.monotonic() - began < 3  # at once, not after the stall
    assert partial_files(tmp_path) == []


def test_a_ctrl_c_or_sigterm_to_the_child_leaves_its_downloads_and_its_end_to_its_parent(
    server: srv.LoopbackServer, own_child: ChildProcess, tmp_path: Path
) -> None:
    # A Ctrl-C reaches every process of the terminal's group, and `timeout` signals its whole group:
    # the parent stops the run its own way, and the child must not die under it meanwhile.
    own_child.send(own_child.task(1, server.route("/slow", srv.body(b"x", delay=0.6)), tmp_path))
    for _ in range(500):  # bounded: the request comes within a second or two
        if server.requests["/slow"]:
            break
        time.sleep(0.01)
    own_child.process.send_signal(signal.SIGINT)
    own_child.process.send_signal(signal.SIGTERM)
    assert own_child.done(1)[1].outcome.error is None
    assert own_child.process.poll() is None


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to choose from")
def test_a_worker_started_from_a_thread_kept_to_one_core_still_gets_its_own(tmp_path: Path) -> None:
    # The run's threads keep to one core by the time the pool starts its workers (workers/cores.py).
    cores = tuple(sorted(os.sched_getaffinity(0)))
    with kept_to(cores[0]):
        child = spawn(_config.FetcherConfig(dest=tmp_path), 1, 1, cores=cores)
    try:
        assert child.outbox.poll(WAIT_S), "the child did not come up"
        assert os.sched_getaffinity(child.process.pid) == {cores[1]}
    finally:
        child.close()
        child.process.wait(WAIT_S)
        child.outbox.close()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to choose from")
def test_each_worker_runs_its_threads_on_one_core_of_its_own(tmp_path: Path) -> None:
    cores = sorted(os.sched_getaffinity(0))
    children = [spawn(_config.FetcherConfig(dest=tmp_path), 1, index) for index in (0, 1)]
    try:
        for child in children:
            assert child.outbox.poll(WAIT_S), "the child did not come up"
        assert [os.sched_getaffinity(child.process.pid) for child in children] == [{cores[0]}, {cores[1]}]
    finally:
        for child in children:
            child.close()
            child.process.wait(WAIT_S)
            child.outbox.close()
