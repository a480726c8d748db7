"""stderr as the command writes to it: a dead or stuck stderr never fails, stalls or hangs a run."""

from __future__ import annotations

import fcntl
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from fetcher.cli.stderr import BestEffortStream
from tests import server as srv

F_SETPIPE_SZ = 1031  # Linux: the smallest pipe (a page) fills after 4 KiB


class Broken(io.StringIO):
    """A stderr whose reader has gone: every write fails as a closed pipe does."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


class Stuck(io.StringIO):
    """A stderr nobody reads: a write blocks until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.release.wait(10)
        return super().write(text)


def test_writes_reach_the_stream_in_order() -> None:
    target = io.StringIO()
    stream = BestEffortStream(target)
    for n in range(100):
        stream.write(f"line {n}\n")
    stream.close()
    assert target.getvalue() == "".join(f"line {n}\n" for n in range(100))


def test_a_stream_that_is_gone_is_lost_without_raising() -> None:
    stream = BestEffortStream(Broken())
    stream.write("first\n")
    stream.close()
    assert stream.lost == "Broken pipe"
    assert stream.write("after\n") == len("after\n")  # dropped, not raised


def test_a_stuck_stream_never_blocks_the_writer_and_drops_what_overflows() -> None:
    target = Stuck()
    stream = BestEffortStream(target, max_pending=100)
    began = time.monotonic()
    for _ in range(1000):
        stream.write("x" * 10)
    assert time.monotonic() - began < 1.0
    assert stream.dropped > 0
    target.release.set()
    stream.close()
    assert stream.lost is None


def test_closing_gives_up_on_a_stream_that_takes_nothing() -> None:
    target = Stuck()
    stream = BestEffortStream(target)
    stream.write("never read\n")
    began = time.monotonic()
    stream.close(stall_s=0.3)
    assert time.monotonic() - began < 2.0
    target.release.set()


class Counted(io.StringIO):
    """A stderr that counts the writes it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_what_comes_while_the_thread_gathers_goes_out_in_one_write() -> None:
    target = Counted()
    stream = BestEffortStream(target, gather_s=30.0)
    for n in range(100):
        stream.write(f"line {n}\n")
    stream.close()  # cuts the gathering short
    assert target.writes == 1
    assert target.getvalue() == "".join(f"line {n}\n" for n in range(100))


def test_a_line_goes_out_within_the_gathering_time_without_a_close() -> None:
    target = io.StringIO()
    stream = BestEffortStream(target, gather_s=0.05)
    stream.write("first\n")
    deadline = time.monotonic() + 5.0
    while not target.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert target.getvalue() == "first\n"
    stream.close()


def test_closing_after_a_quiet_spell_still_writes_what_is_pending() -> None:
    # A --quiet run prints nothing for a long while, then its summary, then closes the stream at once.
    target = io.StringIO()
    stream = BestEffortStream(target)
    time.sleep(0.3)
    stream.write("fetcher: 1 URL: 1 failed\n")
    stream.close(stall_s=0.2)
    assert target.getvalue() == "fetcher: 1 URL: 1 failed\n"


# -- the command, with stderr as a real pipe --------------------------------------------


def _run(args: list[str], *, read_lines: int | None, stuck: bool = False, term_after: float | None = None,
         ) -> tuple[int, float]:  # fmt: skip
    """Run the command with stderr on a pipe: read *read_lines* lines then close it, or never read it."""
    reader, writer = os.pipe()
    if stuck:
        fcntl.fcntl(writer, F_SETPIPE_SZ, 4096)
    began = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "fetcher", *args], stderr=writer, stdin=subprocess.DEVNULL)
    os.close(writer)
    try:
        if read_lines is not None:
            with os.fdopen(reader, "rb") as lines:
                for _ in range(read_lines):
                    lines.readline()
            reader = -1
        if term_after is not None:
            time.sleep(term_after)
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail("the command hung on its stderr")
        return code, time.monotonic() - began
    finally:
        if reader >= 0:
            os.close(reader)


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("display", ["--no-progress", "--progress"])
def test_stderr_closed_after_two_lines_still_downloads_every_url(
    server: srv.LoopbackServer, tmp_path: Path, display: str
) -> None:
    urls = [server.route(f"/f{n}.bin", srv.body(b"x" * 2048)) for n in range(50)]
    listed = tmp_path / "urls.txt"
    listed.write_text("\n".join(urls) + "\n")
    dest = tmp_path / "out"
    code, _ = _run([str(listed), "-d", str(dest), display], read_lines=2)
    assert code == 0
    *url_records, run = _records(dest / "fetcher-report.jsonl")
    assert [r["status"] for r in url_records] == ["ok"] * 50
    assert (run["ended"], run["reason"]) == ("finished", None)
    assert run["display_lost"] == "Broken pipe"


def test_a_stderr_nobody_reads_neither_stalls_the_downloads_nor_stops_sigterm(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    # The lines of 60 quick downloads fill a 4 KiB pipe; then three downloads stall.
    quick = [server.route(f"/quick{n}", srv.body(b"x")) for n in range(60)]
    slow = [server.route(f"/slow{n}", srv.stalled(b"x" * 1000, claimed=10_000_000, stall=8)) for n in range(3)]
    listed = tmp_path / "urls.txt"
    listed.write_text("\n".join(quick + slow) + "\n")
    dest = tmp_path / "out"
    code, took = _run([str(listed), "-d", str(dest), "--progress", "--timeout", "20"], read_lines=None, stuck=True,
                      term_after=2.0)  # fmt: skip
    assert code == 143
    assert took < 2.0 + 5.0  # the signal, then at most the 2 s given to a stuck stderr at the end
    *url_records, run = _records(dest / "fetcher-report.jsonl")
    assert [r["status"] for r in url_records if r["line"] <= 60] == ["ok"] * 60
    assert {r["status"] for r in url_records if r["line"] > 60} == {"cancelled"}
    assert run["ended"] == "interrupted"
