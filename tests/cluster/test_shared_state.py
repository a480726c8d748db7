"""Whole runs with the state shared in a cluster's Redis (shared_state): Fetchers of one cluster stand in for
machines, against a real Redis-protocol server (valkey-server) and loopback HTTP servers.

A DEST shared by every machine is one folder here; a machine that mounts it at another place is the folder
renamed between two runs (the records keep paths relative to DEST).  DESTs of their own are two folders.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fetcher import Fetcher, Result, Status
from fetcher._errors import StateError
from fetcher.state.redis_store import RedisNames
from fetcher.transfer.tempfiles import TEMP_PREFIX, TEMP_SUFFIX
from tests import server as srv
from tests.server import LoopbackServer

MiB = 1 << 20
N = 20
#: A file big enough that a download cut after half a second leaves a partial file worth keeping (1 MiB or more).
BIG = bytes(range(256)) * (12 << 10)  # 3 MiB, sent at 4 MiB/s


@pytest.fixture
def machine(redis_server: str, cluster_name: str) -> Iterator[Any]:
    """Makes a Fetcher of the test's cluster with the state shared: one machine; closed at the test's end."""
    made: list[Fetcher] = []

    def make(dest: Path, **options: Any) -> Fetcher:
        made.append(Fetcher(dest=dest, max_concurrent=4, redis=redis_server, cluster=cluster_name,
                            shared_state=True, **options))  # fmt: skip
        return made[-1]

    yield make
    for fetcher in made:
        fetcher.close()


def fetch(fetcher: Fetcher, urls: list[str], **options: Any) -> list[Result]:
    """A run of *fetcher*, which is closed after it (its last records written: a run on another machine reads
    them; until then, only this fetcher does)."""
    try:
        return list(fetcher.fetch(urls, **options))
    finally:
        fetcher.close()


def files(folder: Path) -> dict[str, tuple[int, int]]:
    """Each file in *folder*: its inode and mtime, which a write would change."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}


def name(result: Result) -> str:
    assert result.path is not None, result
    return result.path.name


def statuses(server: LoopbackServer) -> Counter[int]:
    return Counter(code for codes in server.statuses.values() for code in codes)


def test_a_rerun_on_another_machine_of_a_shared_dest_asks_with_conditional_gets_and_writes_nothing(
    server: LoopbackServer, tmp_path: Path, machine: Any
) -> None:
    urls = [server.route(f"/f/{n}.txt", srv.Resource(b"x" * (100 + n))) for n in range(N)]
    assert {r.status for r in fetch(machine(tmp_path / "shared"), urls)} == {Status.OK}
    (tmp_path / "shared").rename(tmp_path / "mounted-elsewhere")  # the other machine mounts it elsewhere
    before = files(tmp_path / "mounted-elsewhere")
    server.statuses.clear()
    results = fetch(machine(tmp_path / "mounted-elsewhere"), urls)
    assert {r.status for r in results} == {Status.UNCHANGED}
    assert statuses(server) == {304: N}
    assert all(server.headers_seen[f"/f/{n}.txt"][-1].get("If-None-Match") == '"v1"' for n in range(N))
    assert files(tmp_path / "mounted-elsewhere") == before


def left_partial(server: LoopbackServer, machine: Any, dest: Path) -> str:
    """A URL of BIG whose download on a machine with DEST *dest* a deadline cut short, its partial file kept."""
    url = server.route("/big.bin", srv.Resource(BIG, rate=4 * MiB))
    [cut] = fetch(machine(dest), [url], deadline=0.5)
    assert cut.status is Status.CANCELLED and cut.bytes >= MiB
    return url


def test_a_partial_file_one_machine_left_is_resumed_by_another(
    server: LoopbackServer, tmp_path: Path, machine: Any
) -> None:
    url = left_partial(server, machine, tmp_path / "shared")
    [done] = fetch(machine(tmp_path / "shared"), [url])
    assert done.status is Status.OK and done.resumed_from is not None and done.resumed_from >= MiB
    assert server.headers_seen["/big.bin"][-1]["Range"] == f"bytes={done.resumed_from}-"
    assert (tmp_path / "shared" / "big.bin").read_bytes() == BIG
    assert not [p for p in (tmp_path / "shared").iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_a_machine_with_a_dest_of_its_own_downloads_in_full_under_the_clusters_name(
    server: LoopbackServer, tmp_path: Path, machine: Any
) -> None:
    urls = [server.route("/a/data.bin", srv.Resource(b"a")), server.route("/b/data.bin", srv.Resource(b"bb"))]
    names = [name(r) for r in fetch(machine(tmp_path / "one"), urls)]
    server.statuses.clear()
    results = fetch(machine(tmp_path / "two"), urls[::-1])
    assert [r.status for r in results] == [Status.OK, Status.OK] and statuses(server) == {200: 2}
    assert [name(r) for r in results] == names[::-1]
    assert (tmp_path / "two" / names[1]).read_bytes() == b"bb"


def test_a_machine_with_a_dest_of_its_own_does_not_resume_another_machines_partial_file(
    server: LoopbackServer, tmp_path: Path, machine: Any
) -> None:
    url = left_partial(server, machine, tmp_path / "one")
    [done] = fetch(machine(tmp_path / "two"), [url])
    assert done.status is Status.OK and done.resumed_from is None
    assert "Range" not in server.headers_seen["/big.bin"][-1]
    assert (tmp_path / "two" / "big.bin").read_bytes() == BIG


def test_a_machine_whose_own_dest_has_the_file_as_last_saved_in_the_cluster_still_asks_conditionally(
    server: LoopbackServer, tmp_path: Path, machine: Any
) -> None:
    url = server.route("/data.bin", srv.Resource(b"x" * 100))
    fetch(machine(tmp_path / "one"), [url])
    fetch(machine(tmp_path / "two"), [url])  # in full: its DEST had no file; the record is now its file's
    server.statuses.clear()
    # The same size, and the server's Last-Modified as mtime: the first machine's file matches that record.
    assert [r.status for r in fetch(machine(tmp_path / "one"), [url])] == [Status.UNCHANGED]
    assert statuses(server) == {304: 1}


def test_two_machines_give_two_urls_of_one_basename_two_names_and_keep_both_files(
    server: LoopbackServer, tmp_path: Path, machine: Any
) -> None:
    pairs = [(server.route(f"/{host}/{n}/data.bin", srv.Resource(f"{host}{n}".encode())), f"{host}{n}".encode())
             for n in range(10) for host in ("a", "b")]  # fmt: skip
    one, two = machine(tmp_path / "shared"), machine(tmp_path / "shared")
    results: dict[str, list[Result]] = {}

    def run(name: str, fetcher: Fetcher, urls: list[str]) -> None:
        results[name] = list(fetcher.fetch(urls))

    runs = [threading.Thread(target=run, args=("one", one, [u for u, _ in pairs[0::2]])),
            threading.Thread(target=run, args=("two", two, [u for u, _ in pairs[1::2]]))]  # fmt: skip
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(30)
    done = {r.url: r for r in [*results["one"], *results["two"]]}
    assert {r.status for r in done.values()} == {Status.OK}
    assert len({r.path for r in done.values()}) == len(pairs)
    assert all((tmp_path / "shared" / name(done[url])).read_bytes() == content for url, content in pairs)


def test_a_shared_state_run_keeps_no_database_in_dest(server: LoopbackServer, tmp_path: Path, machine: Any) -> None:
    fetch(machine(tmp_path / "shared"), [server.route("/a.txt", srv.Resource(b"a"))])
    assert sorted(os.listdir(tmp_path / "shared")) == ["a.txt"]


# -- Redis silent while a URL is named --------------------------------------------------------------


@pytest.fixture
def names_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cluster's names cannot be looked up (what a Redis that does not answer does), the rest works."""

    def failing(*args: object, **kwargs: object) -> None:
        raise StateError("could not look up a file name in Redis at redis://somewhere: Connection refused")

    for method in ("known_or_claim", "name_of", "owner_of", "claim"):
        monkeypatch.setattr(RedisNames, method, failing)


@pytest.mark.usefixtures("names_fail")
def test_a_name_redis_does_not_give_within_the_timeout_is_the_urls_own_and_said_once(
    server: LoopbackServer, tmp_path: Path, machine: Any, caplog: pytest.LogCaptureFixture
) -> None:
    urls = [server.route(f"/{n}/data.bin", srv.Resource(b"x")) for n in range(2)]
    with caplog.at_level(logging.WARNING, logger="fetcher"):
        results = fetch(machine(tmp_path / "shared", timeout=0.2), urls)
    names = [name(r) for r in results]
    assert {r.status for r in results} == {Status.OK} and len(set(names)) == 2
    assert all(name.startswith("data-") and name.endswith(".bin") for name in names)
    [warning] = [r.getMessage() for r in caplog.records]
    assert "a URL is named with a suffix of its own, unrecorded" in warning


@pytest.mark.usefixtures("names_fail")
def test_a_run_stopped_while_it_waits_for_a_name_ends(server: LoopbackServer, tmp_path: Path, machine: Any) -> None:
    url = server.route("/data.bin", srv.Resource(b"x"))
    began = time.monotonic()
    [result] = fetch(machine(tmp_path / "shared", timeout=30.0), [url], deadline=0.3)
    assert result.status is Status.NOT_STARTED and time.monotonic() - began < 3
    assert server.requests["/data.bin"] == 0
    assert not [p for p in (tmp_path / "shared").iterdir() if p.name.endswith(TEMP_SUFFIX)]
