"""The same list downloaded in worker processes (``--workers 2``) and in threads (``--workers 0``) gives the same
files, records, lines, summary and exit code; and a run stopped or killed part way leaves no process behind."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fetcher.cli.main import main
from fetcher.state import DEFAULT_STATE_NAME
from fetcher.transfer.tempfiles import TEMP_PREFIX, TEMP_SUFFIX
from tests import server as srv
from tests.workers.processes import all_gone, wait_until, workers_of

# The fields of a URL's record that do not depend on timing.
FIELDS = ("line", "url", "status", "path", "http_status", "bytes", "attempts", "error", "resumed_from")
# "(2.9 KiB in 0.01s, queued 0.02s)" after a URL, "in 1.21s" in the summary: how long things took.
# Each mode's refused URL has a port of its own.
REFUSED = re.compile(r"http://127\.0\.0\.1:[0-9]+/refused")
TIMINGS = re.compile(r" \([^()]*\bin [0-9.]+s\b[^()]*\)|\bin [0-9.]+s\b")


@contextmanager
def serving() -> Iterator[srv.LoopbackServer]:
    """A fresh server: each mode gets faults that clear (a 503 once) from the start."""
    server = srv.LoopbackServer().start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class Seen:
    """What one run of the command showed, without timings, paths or ports."""

    code: int
    lines: list[str]  # a line per URL, sorted (they come as URLs end)
    summary: str
    records: list[tuple[Any, ...]]
    files: dict[str, bytes]


def seen(code: int, err: str, dest: Path, base: str) -> Seen:
    def plain(text: str) -> str:
        text = REFUSED.sub("REFUSED", text.replace(base, "BASE").replace(str(dest), "DEST"))
        return TIMINGS.sub("", text)

    *lines, summary = [plain(line) for line in err.splitlines()]
    everything = [json.loads(line) for line in (dest / "fetcher-report.jsonl").read_text().splitlines()]
    [run] = [r for r in everything if r.get("record") == "run"][-1:]  # this run's, not an earlier one's
    mine = sorted((r for r in everything if r.get("record") is None and r["run_id"] == run["run_id"]),
                  key=lambda r: r["line"])  # fmt: skip
    records: list[tuple[Any, ...]] = [
        tuple(plain(value) if isinstance(value, str) else value for value in (r[name] for name in FIELDS))
        for r in mine
    ]
    records.append(("run", run["ended"], run["reason"], run["totals"]))
    files = {p.name: p.read_bytes() for p in dest.iterdir() if not p.name.startswith((DEFAULT_STATE_NAME, "fetcher-"))}
    return Seen(code, sorted(lines), summary, records, files)


def fetcher(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return int(exit_info.value.code or 0), capsys.readouterr().err


def both_ways(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, lines: Callable[[srv.LoopbackServer], list[str]],
    *args: str, runs: int = 1,
) -> tuple[list[Seen], list[Seen]]:
    """The list *lines* makes, run *runs* times into one DEST with ``--workers 0`` and again with ``--workers 2``."""
    outcomes: dict[str, list[Seen]] = {}
    for workers in ("0", "2"):
        with serving() as server:
            listed = tmp_path / f"urls{workers}.txt"
            listed.write_text("\n".join(lines(server)) + "\n")
            dest = tmp_path / f"out{workers}"
            outcomes[workers] = []
            for _ in range(runs):
                code, err = fetcher(capsys, listed, "-d", dest, "--workers", workers, *args)
                outcomes[workers].append(seen(code, err, dest, server.base))
    return outcomes["0"], outcomes["2"]


def refused_url() -> str:
    """A loopback port where nothing listens (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/refused.bin"


def reset_mid_body(request: srv.Request) -> None:
    """100 bytes of a promised 1000, then a TCP reset (not an orderly close)."""
    request.send_response(200)
    request.send_header("Content-Length", "1000")
    request.end_headers()
    request.wfile.write(b"r" * 100)
    request.wfile.flush()
    request.server.owner.sleep(0.2)
    request.close_connection = True
    sock = request.connection
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    os.close(sock.detach())  # with a zero linger: a reset


def faults(server: srv.LoopbackServer) -> list[str]:
    return [
        server.route("/good.txt", srv.Resource(b"good" * 500)),
        server.route("/missing.txt", srv.body(b"", status=404)),
        refused_url(),
        server.route("/reset.bin", reset_mid_body),
        server.route("/cut.bin", srv.truncated(b"c" * 10, claimed=100)),
        server.route("/flaky.txt", srv.faulty([srv.status(503, headers={"Retry-After": "0"})], then=srv.body(b"x"))),
        server.route("/held.bin", srv.held_headers()),
        *lines_of_each_kind(server, server.route("/twice.txt", srv.Resource(b"once"))),
    ]


def lines_of_each_kind(server: srv.LoopbackServer, listed: str) -> list[str]:
    """Two lines that are no URL; *listed* and the same URL written another way (a duplicate); a URL whose
    checksum matches, one whose checksum does not, with an ``out=`` name."""
    path = listed.rpartition("/")[2]
    return [
        "junk",
        "ftp://files.example/a.txt",
        listed,
        listed.replace(f"/{path}", f"/./{path}"),
        server.route("/checked.txt", srv.Resource(b"abc")),
        "  checksum=sha-256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        server.route("/tampered.txt", srv.Resource(b"abd")),
        "  checksum=sha-256=" + "c2" * 32,
        "  out=renamed.txt",
    ]


def test_faults_retries_invalid_lines_duplicates_checksums_and_max_time_come_out_the_same(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    threads, processes = both_ways(capsys, tmp_path, faults, "--max", "4", "--retries", "1", "--retry-wait-max",
                                   "0", "--max-time", "1", runs=2)  # fmt: skip
    assert processes == threads
    first, rerun = threads
    assert first.code == rerun.code == 1
    statuses = {record[0]: record[2] for record in first.records if record[0] != "run"}
    assert statuses == {1: "ok", 2: "failed", 3: "failed", 4: "failed", 5: "failed", 6: "ok", 7: "failed",
                        8: "invalid", 9: "invalid", 10: "ok", 11: "duplicate", 12: "ok", 14: "failed"}  # fmt: skip
    assert [(r[0], r[2]) for r in rerun.records if r[0] != "run" and r[2] == "unchanged"] == [
        (1, "unchanged"), (10, "unchanged"), (12, "unchanged"),
    ]  # fmt: skip


def test_acquire_timeouts_come_out_the_same(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def lines(server: srv.LoopbackServer) -> list[str]:
        return [server.route(f"/s{n}", srv.body(b"x", delay=1.0)) for n in range(3)]

    [threads], [processes] = both_ways(capsys, tmp_path, lines, "--max", "1", "--acquire-timeout", "0.3")
    assert processes == threads
    assert threads.code == 3
    assert [r[2] for r in threads.records if r[0] != "run"] == ["ok", "acquire-timeout", "acquire-timeout"]


def test_a_deadline_comes_out_the_same(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def lines(server: srv.LoopbackServer) -> list[str]:
        return [server.route("/slow", srv.body(b"x", delay=5)), *(server.route(f"/n{n}", srv.body(b"x"))
                                                                 for n in range(3))]  # fmt: skip

    [threads], [processes] = both_ways(capsys, tmp_path, lines, "--max", "1", "--deadline", "1")
    assert processes == threads
    assert threads.code == 4
    assert sorted(r[2] for r in threads.records if r[0] != "run") == ["cancelled"] + ["not-started"] * 3


# -- signals and kills ------------------------------------------------------------------------------------


def spawn(*args: str | Path) -> subprocess.Popen[str]:
    """The command in a process group of its own, as a shell starts a job: a signal to the group reaches
    every process in it, as a Ctrl-C from the terminal (or `timeout`) does."""
    return subprocess.Popen([sys.executable, "-m", "fetcher", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip


def partial_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"))


def sizes(paths: list[Path]) -> list[int]:
    """The sizes of *paths*, smallest first; one gone meanwhile counts as 0."""
    found = []
    for path in paths:
        try:
            found.append(path.stat().st_size)
        except OSError:
            found.append(0)
    return sorted(found)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_to_the_commands_group_mid_run_comes_out_the_same_and_leaves_no_process_or_partial_file(
    tmp_path: Path, signum: int, code: int
) -> None:
    outcomes = []
    for workers in ("0", "2"):
        with serving() as server:
            stalled = [server.route(f"/stalled{n}.iso", srv.stalled(b"x" * 1000, claimed=10_000_000, stall=8))
                       for n in range(2)]  # fmt: skip
            rest = [server.route(f"/later{n}", srv.body(b"x")) for n in range(10)]
            listed = tmp_path / f"urls{workers}.txt"
            listed.write_text("\n".join([*stalled, *rest]) + "\n")
            dest = tmp_path / f"out{workers}"
            process = spawn(listed, "--max", "2", "-d", dest, "--timeout", "20", "--workers", workers)
            try:
                # Both bodies' first 1000 bytes on disk: a record's bytes must not depend on how far a read got.
                assert wait_until(lambda: sizes(partial_files(dest)) == [1000, 1000], 15), "the downloads never started"  # noqa: B023
                children = workers_of(process.pid)
                os.killpg(process.pid, signum)
                _, err = process.communicate(timeout=15)  # at once: the stalled reads are cut, not waited for
            finally:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            assert process.returncode == code, err
            assert len(children) == (0 if workers == "0" else 2) and all_gone(children, timeout=3)
            assert sorted(p.name for p in dest.iterdir()) == [DEFAULT_STATE_NAME, "fetcher-report.jsonl"]
            outcomes.append(seen(process.returncode, err, dest, server.base))
    threads, processes = outcomes
    assert processes == threads
    assert [r[0] for r in threads.records if r[0] != "run"] == list(range(1, 13))
    assert sorted(r[2] for r in threads.records if r[0] != "run") == ["cancelled"] * 2 + ["not-started"] * 10


def test_a_killed_command_leaves_no_worker_process_and_the_next_run_resumes_its_partial_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = bytes(range(256)) * (16 << 10)  # 4 MiB
    with serving() as server:
        urls = [server.route(f"/big{n}.iso", srv.Resource(body, rate=2 << 20)) for n in range(2)]
        listed = tmp_path / "urls.txt"
        listed.write_text("\n".join(urls) + "\n")
        dest = tmp_path / "out"
        process = spawn(listed, "-d", dest, "--max", "2", "--workers", "2")
        try:
            # Past KEEP_FROM by more than a read: a download waits for its partial to go on record there.
            assert wait_until(lambda: sizes(partial_files(dest)) >= [5 << 19] * 2, 15), "the downloads never got far"
            children = workers_of(process.pid)
        finally:
            os.kill(process.pid, signal.SIGKILL)  # the command alone: its processes must end by themselves
            process.communicate(timeout=15)
        assert len(children) == 2 and all_gone(children, timeout=5)
        assert len(partial_files(dest)) == 2, "the partial files were not kept"
        before = {n: server.bytes_sent[f"/big{n}.iso"] for n in range(2)}
        code, _ = fetcher(capsys, listed, "-d", dest, "-q", "--workers", "2")
        assert code == 0
        for n in range(2):
            assert (dest / f"big{n}.iso").read_bytes() == body
            assert server.bytes_sent[f"/big{n}.iso"] - before[n] < len(body) // 2
        assert partial_files(dest) == []
    everything = [json.loads(line) for line in (dest / "fetcher-report.jsonl").read_text().splitlines()]
    last = [r for r in everything if r.get("record") is None][-2:]
    assert all(isinstance(r["resumed_from"], int) and r["resumed_from"] >= 1 << 20 for r in last)
