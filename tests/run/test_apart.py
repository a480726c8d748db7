"""fetcher._run.apart: a long list's feeder in a process of its own gives the same records, names, files and exit
codes as the feeder thread, ends with its run, and leaves no process behind.

The command runs in a process of its own here, as a user runs it: the feeder
process is forked only from a process that runs no thread of another's (a
test's server runs in this one).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fetcher._run.apart import NamingTurn
from fetcher._run.attempt import LONG_LIST
from fetcher.state import DEFAULT_STATE_NAME
from tests import server as srv
from tests.workers.processes import all_gone, feeders_of, wait_until, workers_of
from tests.workers.test_parity import Seen, lines_of_each_kind, partial_files, refused_url, seen, serving, sizes

# The command, with the ``fetcher`` logger's debug records in the file named by its first argument.
_COMMAND = """
import logging, sys
handler = logging.FileHandler(sys.argv.pop(1))
logging.getLogger("fetcher").addHandler(handler)
logging.getLogger("fetcher").setLevel(logging.DEBUG)
from fetcher.cli.main import entry
sys.argv[0] = "fetcher"
entry()
"""
APART = "named by a process of its own"

# Well past the feeder's window (the command reads 10,000 URLs ahead) and what its pipe holds: its process is
# still there, with URLs left to send, while the run waits for the first downloads.
PAST_THE_WINDOW = 13_000


def start(log: Path, *args: str | Path) -> subprocess.Popen[str]:
    """The command, in a process group of its own (as a shell starts a job); its stderr in *log*'s sibling."""
    err = log.with_suffix(".err").open("w")
    try:
        return subprocess.Popen([sys.executable, "-c", _COMMAND, str(log), *map(str, args)], stdout=subprocess.DEVNULL,
                                stderr=err, text=True, start_new_session=True)  # fmt: skip
    finally:
        err.close()


def finish(process: subprocess.Popen[str], log: Path) -> tuple[int, str]:
    try:
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode, log.with_suffix(".err").read_text()


def run(log: Path, *args: str | Path) -> tuple[int, str]:
    return finish(start(log, *args), log)


def long_list(server: srv.LoopbackServer) -> list[str]:
    """Every kind of line the feeder handles, then enough URLs that worker processes start: each named
    ``same.txt`` first, so that their names collide and take suffixes."""
    same = server.route("/same.txt", srv.Resource(b"same"))
    return [
        "  out=orphan.txt",
        server.route("/good.txt", srv.Resource(b"good")),
        server.route("/missing.txt", srv.body(b"", status=404)),
        *lines_of_each_kind(server, same),
        server.route("/fetcher-report.jsonl", srv.Resource(b"not the report")),  # a name kept for the report
        *(f"{same}?n={n}" for n in range(LONG_LIST + 20)),
    ]


def both_ways(tmp_path: Path, *runs: tuple[str, ...]) -> tuple[list[Seen], list[Seen]]:
    """``long_list`` run into one DEST once for each of *runs* (its extra options), with the feeder a thread
    (``--workers 0``) and again in a process of its own (``--workers 2``).  One server for both: the same URLs,
    so the same suffixes in their names."""
    outcomes: dict[str, list[Seen]] = {}
    with serving() as server:
        listed = tmp_path / "urls.txt"
        listed.write_text("\n".join(long_list(server)) + "\n")
        for workers in ("0", "2"):
            dest = tmp_path / f"out{workers}"
            outcomes[workers] = []
            for n, extra in enumerate(runs):
                log = tmp_path / f"log{workers}-{n}.txt"
                code, err = run(log, listed, "-d", dest, "--max", "4", "--workers", workers, *extra)
                assert (APART in log.read_text()) == (workers == "2")
                outcomes[workers].append(seen(code, err, dest, server.base))
    return outcomes["0"], outcomes["2"]


def test_a_long_list_comes_out_the_same_with_its_feeder_apart_on_a_run_a_re_run_and_with_skip_existing(
    tmp_path: Path,
) -> None:
    threads, apart = both_ways(tmp_path, (), (), ("--skip-existing",))
    assert apart == threads
    first, rerun, skipping = threads
    assert first.code == rerun.code == skipping.code == 1
    by_line = {record[0]: record for record in first.records if record[0] != "run"}
    assert [by_line[line][2] for line in (1, 2, 3, 4, 5, 6, 7, 8, 10)] == [
        "invalid", "ok", "failed", "invalid", "invalid", "ok", "duplicate", "ok", "failed",
    ]  # fmt: skip
    paths = [record[3] for record in by_line.values() if record[3] is not None]
    assert len(set(paths)) == len(paths) == LONG_LIST + 20 + 4  # good, same, checked, the report's, each ?n=
    assert Path(by_line[13][3]).name.startswith("fetcher-report-")
    assert {record[2] for record in rerun.records if "?n=" in str(record[1])} == {"unchanged"}
    # Every file the first run saved is there: skipped, under the name the first run gave it.
    skipped = {record[0]: record[3] for record in skipping.records if record[0] != "run" and record[2] == "skipped"}
    assert skipped == {line: path for line, path in ((r[0], r[3]) for r in first.records if r[0] != "run")
                       if line in skipped}  # fmt: skip
    assert len(skipped) == LONG_LIST + 20 + 4


@contextmanager
def stalled_list(tmp_path: Path, workers: str) -> Iterator[tuple[srv.LoopbackServer, Path, Path]]:
    """Two downloads that stall, then more URLs than the feeder's window: the run waits with its feeder's
    process still there (it has URLs left to send)."""
    with serving() as server:
        stalled = [server.route(f"/stalled{n}.iso", srv.stalled(b"x" * 1000, claimed=10_000_000, stall=8))
                   for n in range(2)]  # fmt: skip
        later = server.route("/later", srv.body(b"x"))
        listed = tmp_path / f"urls{workers}.txt"
        listed.write_text("\n".join([*stalled, *(f"{later}?n={n}" for n in range(PAST_THE_WINDOW))]) + "\n")
        yield server, listed, tmp_path / f"out{workers}"


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_run_comes_out_the_same_with_the_feeder_apart_and_leaves_no_process(
    tmp_path: Path, signum: int, code: int
) -> None:
    outcomes = []
    for workers in ("0", "2"):
        with stalled_list(tmp_path, workers) as (server, listed, dest):
            log = tmp_path / f"log{workers}.txt"
            process = start(log, listed, "--max", "2", "-d", dest, "--timeout", "20", "--workers", workers)
            try:
                assert wait_until(lambda: sizes(partial_files(dest)) == [1000, 1000], 15), "the downloads never started"  # noqa: B023
                feeders = feeders_of(process.pid)
                assert len(feeders) == (workers == "2")
                children = workers_of(process.pid) + feeders
                os.killpg(process.pid, signum)
            finally:
                returned, err = finish(process, log)
            assert returned == code, err
            assert all_gone(children, timeout=3)
            assert sorted(p.name for p in dest.iterdir()) == [DEFAULT_STATE_NAME, "fetcher-report.jsonl"]
            # The URLs after the stop were given no name: only those read before it have one.
            with contextlib.closing(sqlite3.connect(dest / DEFAULT_STATE_NAME)) as db:
                assert db.execute("SELECT count(*) FROM names").fetchone()[0] < PAST_THE_WINDOW - 1000
            outcomes.append(seen(returned, err, dest, server.base))
    threads, apart = outcomes
    assert apart == threads
    statuses = [r[2] for r in threads.records if r[0] != "run"]
    assert statuses == ["cancelled"] * 2 + ["not-started"] * PAST_THE_WINDOW


def test_a_killed_command_leaves_no_feeder_process(tmp_path: Path) -> None:
    with stalled_list(tmp_path, "2") as (_, listed, dest):
        log = tmp_path / "log.txt"
        process = start(log, listed, "--max", "2", "-d", dest, "--workers", "2")
        try:
            assert wait_until(lambda: len(feeders_of(process.pid)) == 1, 15), "no feeder process"
            feeders = feeders_of(process.pid)
        finally:
            os.kill(process.pid, signal.SIGKILL)  # the command alone: its feeder must end by itself
            finish(process, log)
        assert all_gone(feeders, timeout=5)


def test_a_feeder_process_that_dies_ends_the_run_with_one_line_as_an_unreadable_list_does(tmp_path: Path) -> None:
    with serving() as server:
        slow = [server.route(f"/slow{n}.txt", srv.body(b"s", delay=1.0)) for n in range(2)]
        # Then more URLs than the window, each failing at once: the run takes more from the feeder soon.
        refused = refused_url()
        listed = tmp_path / "urls.txt"
        listed.write_text("\n".join([*slow, *(f"{refused}?n={n}" for n in range(PAST_THE_WINDOW))]) + "\n")
        dest = tmp_path / "out"
        log = tmp_path / "log.txt"
        process = start(log, listed, "--max", "2", "-d", dest, "--workers", "2", "--retries", "0", "--no-progress")
        try:
            # Both downloads under way: the run has taken its feeder process (the pool forks it before).
            assert wait_until(lambda: server.in_flight == 2, 15), "the downloads never started"
            assert len(feeders_of(process.pid)) == 1, "no feeder process"
            children = workers_of(process.pid)
            os.kill(feeders_of(process.pid)[0], signal.SIGKILL)
        finally:
            code, err = finish(process, log)
    assert code == 2
    assert f"fetcher: error: cannot read URL list '{listed}': the process reading it ended" in err.splitlines()
    assert "Traceback" not in err
    # As when a list cannot be read on: the run ends there, and what was under way is cancelled.
    assert sorted(p.name for p in dest.iterdir()) == [DEFAULT_STATE_NAME, "fetcher-report.jsonl"]
    assert all_gone(children, timeout=5)


# -- the turn to give names ---------------------------------------------------------------------------------


def test_a_feeder_goes_apart_only_while_no_feeder_thread_names() -> None:
    turn = NamingTurn()
    turn.thread_joined()
    assert not turn.go_apart()
    turn.thread_left()
    assert turn.go_apart()
    assert not turn.go_apart()  # one process at a time


def test_a_feeder_thread_waits_for_the_feeder_process_to_end_before_it_names() -> None:
    turn, cancelled = NamingTurn(), threading.Event()
    assert turn.go_apart()
    turn.thread_joined()
    waited = threading.Thread(target=turn.wait_for_threads, args=(cancelled,))
    waited.start()
    waited.join(0.3)
    assert waited.is_alive()
    turn.apart_ended()
    waited.join(5)
    assert not waited.is_alive()


def test_a_cancelled_feeder_thread_stops_waiting_for_its_turn() -> None:
    turn, cancelled = NamingTurn(), threading.Event()
    assert turn.go_apart()
    cancelled.set()
    assert turn.wait_for_threads(cancelled) is False


def test_a_feeder_process_that_cannot_open_the_list_leaves_the_work_to_the_feeder_thread(tmp_path: Path) -> None:
    # As where /proc/PID/fd cannot be read: the list cannot be opened in the feeder process (which is forked
    # from a copy of the command made before its run, so the change reaches it).
    failing = "import fetcher._run.apart as apart\ndef unreadable(*_):\n    raise OSError('no /proc here')\n"
    failing += "apart.reopen_url_list = unreadable\n"
    with serving() as server:
        same = server.route("/same.txt", srv.Resource(b"same"))
        listed = tmp_path / "urls.txt"
        listed.write_text("\n".join([same] * LONG_LIST) + "\n")  # one download, and duplicates
        log = tmp_path / "log.txt"
        command = _COMMAND.replace("from fetcher.cli", failing + "from fetcher.cli")
        process = subprocess.Popen([sys.executable, "-c", command, str(log), str(listed), "-d", str(tmp_path / "out"),
                                    "--workers", "2", "--no-progress"], stderr=subprocess.PIPE, text=True)  # fmt: skip
        _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "the feeder process could not start (OSError: no /proc here); the feeder is a thread" in log.read_text()
    assert (tmp_path / "out" / "same.txt").read_bytes() == b"same"
    assert f"{LONG_LIST} URLs: 1 ok, {LONG_LIST - 1} duplicate" in err
