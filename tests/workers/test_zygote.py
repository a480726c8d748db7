"""The copy of the process that forks worker processes: when it is made, what it keeps of its parent, and how it
and its workers end.  A fork is made only by a process without foreign threads, and pytest's process has some (the
test servers), so each test runs a small program of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from fetcher.workers.zygote import Zygote
from tests import server as srv
from tests.workers.processes import all_gone, wait_until

_ROOT = Path(__file__).resolve().parents[2]

# The longest a test waits for a program or a process; each needs well under a second.
WAIT_S = 20.0

# The set-up every program shares: a zygote forked first, then one worker started from it.
_PREAMBLE = """
import json, os, resource, sys, time
from pathlib import Path
from fetcher._config import FetcherConfig
from fetcher._urllist import Entry
from fetcher.workers.spawn import came_up, start
from fetcher.workers.wire import Done, Task
from fetcher.workers.zygote import Zygote
folder = Path(sys.argv[1])
"""


def run_program(body: str, folder: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    code = _PREAMBLE + textwrap.dedent(body)
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    return subprocess.run([sys.executable, "-c", code, str(folder), *extra], capture_output=True, text=True,
                          timeout=WAIT_S, env=env, check=True)  # fmt: skip


def test_no_copy_is_made_while_a_thread_of_another_program_runs() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, name="not-fetcher", daemon=True)
    other.start()
    try:
        assert Zygote.fork() is None
    finally:
        stop.set()
        other.join(WAIT_S)


def test_no_copy_is_made_of_a_large_process(tmp_path: Path) -> None:
    done = run_program(
        """
        import fetcher.workers.zygote as zygote
        zygote._LARGE_MIB = 1  # this process is a few tens of MiB: large by that measure
        print(json.dumps(Zygote.fork() is None))
        """,
        tmp_path,
    )
    assert json.loads(done.stdout) is True


def test_a_forked_worker_downloads_its_task_and_sends_back_the_outcome(server: srv.LoopbackServer,
                                                                        tmp_path: Path) -> None:  # fmt: skip
    url = server.route("/file", srv.body(b"forked body"))
    done = run_program(
        """
        zygote = Zygote.fork()
        child = start(FetcherConfig(dest=folder), 1, 0, zygote)
        assert came_up(child, time.monotonic() + 10)
        child.inbox.send([Task(id=1, run=1, entry=Entry(url=sys.argv[2], line=1), target=folder / "file",
                               saved=None, resume=None, resume_kept=False, offer_partial=False, deadline=None,
                               stop_at=None, watched=False)])
        messages = []
        while not any(isinstance(m, Done) for m in messages):
            assert child.outbox.poll(10)
            messages += child.outbox.recv()
        comm = Path(f"/proc/{child.process.pid}/comm").read_text().strip()
        parent = int(Path(f"/proc/{child.process.pid}/stat").read_text().rpartition(")")[2].split()[1])
        forker = Path(f"/proc/{parent}/comm").read_text().strip()
        outcome = next(m for m in messages if isinstance(m, Done)).outcome
        print(json.dumps([outcome.http_status, outcome.error is None, comm, forker]))
        """,
        tmp_path,
        url,
    )
    assert json.loads(done.stdout) == [200, True, "fetcher-worker", "fetcher-forker"]
    assert (tmp_path / "file").read_bytes() == b"forked body"


def test_the_copy_keeps_none_of_its_parents_files_open(tmp_path: Path) -> None:
    done = run_program(
        """
        held = open(folder / "held", "w")  # a file of the parent's, open when the copy is made
        zygote = Zygote.fork()
        child = start(FetcherConfig(dest=folder), 1, 0, zygote)
        assert came_up(child, time.monotonic() + 10)
        paths = {}
        for pid in (zygote._pid, child.process.pid):
            paths[pid] = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        print(json.dumps(list(paths.values())))
        """,
        tmp_path,
    )
    for paths in json.loads(done.stdout):
        assert not [path for path in paths if path.endswith("held")]


def test_ending_the_copy_waits_for_its_workers_and_counts_their_cpu_as_its_parents_childrens(tmp_path: Path) -> None:
    done = run_program(
        """
        zygote = Zygote.fork()
        child = start(FetcherConfig(dest=folder), 1, 0, zygote)
        assert came_up(child, time.monotonic() + 10)
        child.close()
        child.process.wait(10)
        zygote.close()
        own = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(json.dumps(own.ru_utime + own.ru_stime))
        """,
        tmp_path,
    )
    # A worker that came up has run Python code: its CPU is counted, never lost with it.
    assert json.loads(done.stdout) > 0


def test_the_copy_becomes_the_last_worker_and_ends_only_after_the_ones_it_forked(tmp_path: Path) -> None:
    done = run_program(
        """
        zygote = Zygote.fork()
        first = start(FetcherConfig(dest=folder), 1, 0, zygote)
        last = start(FetcherConfig(dest=folder), 1, 1, zygote, last=True)
        assert came_up(first, time.monotonic() + 10) and came_up(last, time.monotonic() + 10)
        names = [Path(f"/proc/{pid}/comm").read_text().strip() for pid in (first.process.pid, zygote._pid)]
        last.close()  # the copy's own pipes: it ends its downloads, but waits for the worker it forked
        time.sleep(0.5)
        waiting = last.process.poll() is None
        first.close()
        first.process.wait(10)
        last.process.wait(10)
        zygote.close()
        print(json.dumps([last.process.pid == zygote._pid, names, waiting]))
        """,
        tmp_path,
    )
    assert json.loads(done.stdout) == [True, ["fetcher-worker", "fetcher-worker"], True]


def test_the_copy_and_its_workers_end_when_the_parent_is_killed(tmp_path: Path) -> None:
    program = subprocess.Popen(
        [sys.executable, "-c", _PREAMBLE + textwrap.dedent(
            """
            zygote = Zygote.fork()
            child = start(FetcherConfig(dest=folder), 1, 0, zygote)
            assert came_up(child, time.monotonic() + 10)
            print(json.dumps([zygote._pid, child.process.pid]), flush=True)
            time.sleep(60)
            """
        ), str(tmp_path)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(_ROOT)},
    )  # fmt: skip
    try:
        assert program.stdout is not None
        pids = json.loads(program.stdout.readline())
        assert wait_until(lambda: all(Path(f"/proc/{pid}").exists() for pid in pids))
        os.kill(program.pid, signal.SIGKILL)
        program.wait(WAIT_S)
        assert all_gone(pids, timeout=5)
    finally:
        if program.poll() is None:
            program.kill()
            program.wait()


def test_the_copy_forks_a_feeder_process_that_reads_its_request_and_ends_when_its_pipe_closes(tmp_path: Path) -> None:
    done = run_program(
        """
        from fetcher.workers.wire import PipeEnd
        zygote = Zygote.fork()
        feeder = zygote.start_feeder()
        for _ in range(500):  # it names itself just after the fork
            name = Path(f"/proc/{feeder.pid}/comm").read_text().strip()
            if name != "fetcher-forker":
                break
            time.sleep(0.01)
        control, out = feeder.fds
        os.close(control)  # no request: it ends at once
        feeder.wait(timeout=10)
        print(json.dumps([name, len(feeder.fds)]))
        zygote.close()
        """,
        tmp_path,
    )
    assert json.loads(done.stdout) == ["fetcher-feeder", 2]
