"""The Fetcher against a real server on loopback: caps, timeouts, order, files."""

from __future__ import annotations

import contextlib
import inspect
import os
import pydoc
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest
import requests
from requests.adapters import HTTPAdapter

import fetcher
from fetcher import (
    ClosedError,
    ConfigError,
    DestinationError,
    Entry,
    Fetcher,
    LocalGate,
    Result,
    Status,
)
from fetcher.state import DEFAULT_STATE_NAME
from fetcher.transfer.download import new_session
from fetcher.transfer.tempfiles import TEMP_PREFIX, TEMP_SUFFIX
from tests import server as srv


def slow_files(server: srv.LoopbackServer, count: int, delay: float, size: int = 100) -> list[str]:
    return [server.route(f"/slow{i}.bin", srv.body(bytes([i % 256]) * size, delay=delay)) for i in range(count)]


def run(urls: list[str], tmp_path: Path, **options: object) -> list[Result]:
    with Fetcher(dest=tmp_path, **options) as fetcher:  # type: ignore[arg-type]
        return list(fetcher.fetch(urls))


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX) and p.name.endswith(TEMP_SUFFIX)]


def listing(folder: Path) -> list[str]:
    """The names in *folder*, without fetcher's state database."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(DEFAULT_STATE_NAME))


# -- the cap ----------------------------------------------------------------------


def test_downloads_in_flight_never_exceed_max_and_reach_it(server: srv.LoopbackServer, tmp_path: Path) -> None:
    results = run(slow_files(server, 12, delay=0.3), tmp_path, max_concurrent=3)
    assert [r.status for r in results] == [Status.OK] * 12
    assert server.max_in_flight == 3


def test_max_of_one_downloads_one_at_a_time(server: srv.LoopbackServer, tmp_path: Path) -> None:
    run(slow_files(server, 4, delay=0.1), tmp_path, max_concurrent=1)
    assert server.max_in_flight == 1


def fetch_halves_from_two_threads(fetcher: Fetcher, urls: list[str]) -> list[list[Result]]:
    """Each half of *urls* fetched by a thread of its own, at the same time; the records of each call."""
    outcomes: list[list[Result]] = []
    threads = [
        threading.Thread(target=lambda part=part: outcomes.append(list(fetcher.fetch(part))))
        for part in (urls[: len(urls) // 2], urls[len(urls) // 2 :])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes


def test_calls_from_several_threads_share_one_cap(server: srv.LoopbackServer, tmp_path: Path) -> None:
    urls = slow_files(server, 12, delay=0.2)
    with Fetcher(dest=tmp_path, max_concurrent=2) as fetcher:
        outcomes = fetch_halves_from_two_threads(fetcher, urls)
    assert sorted(len(o) for o in outcomes) == [6, 6]
    assert server.max_in_flight == 2


def test_a_gate_can_be_shared_by_two_fetchers(server: srv.LoopbackServer, tmp_path: Path) -> None:
    urls = slow_files(server, 8, delay=0.2)
    gate = LocalGate(2)
    with (
        Fetcher(dest=tmp_path / "a", max_concurrent=2, gate=gate) as first,
        Fetcher(dest=tmp_path / "b", max_concurrent=2, gate=gate) as second,
    ):
        thread = threading.Thread(target=lambda: list(first.fetch(urls[:4])))
        thread.start()
        list(second.fetch(urls[4:]))
        thread.join(30)
    assert server.max_in_flight == 2


class _CountedGate(LocalGate):
    """A gate that, like a container, is falsy while no slot is in use."""

    def __len__(self) -> int:
        return self.in_use


def test_a_gate_given_is_used_even_when_it_is_falsy(tmp_path: Path) -> None:
    gate = _CountedGate(2)
    with Fetcher(dest=tmp_path, state=False, gate=gate) as fetcher:
        assert fetcher.gate is gate


def test_worker_threads_are_bounded_by_max(server: srv.LoopbackServer, tmp_path: Path) -> None:
    urls = slow_files(server, 40, delay=0.05)
    peak = 0
    earlier = set(threading.enumerate())  # an earlier test's threads may still be on their way out
    with Fetcher(dest=tmp_path, max_concurrent=4) as fetcher:
        for _ in fetcher.as_completed(urls):
            mine = [t for t in threading.enumerate() if t.name.startswith("fetcher-") and t not in earlier]
            peak = max(peak, len(mine))
    assert peak <= 4 + 3  # the workers, one feeder and one dispatcher for the run, and the state's writer


def test_connections_are_kept_alive_between_files(server: srv.LoopbackServer, tmp_path: Path) -> None:
    urls = [server.route(f"/f{i}", srv.body(b"x" * 100)) for i in range(20)]
    run(urls, tmp_path, max_concurrent=2)
    assert server.connections <= 2


# -- acquire timeout --------------------------------------------------------------


def test_acquire_timeout_is_recorded_and_not_requested(server: srv.LoopbackServer, tmp_path: Path) -> None:
    urls = slow_files(server, 3, delay=1.5)
    results = run(urls, tmp_path, max_concurrent=1, acquire_timeout=0.3)
    assert [r.status for r in results] == [Status.OK, Status.ACQUIRE_TIMEOUT, Status.ACQUIRE_TIMEOUT]
    assert server.requests["/slow1.bin"] == server.requests["/slow2.bin"] == 0
    for timed_out in results[1:]:
        assert timed_out.wait_s is not None and 0.25 <= timed_out.wait_s < 1.4
        assert timed_out.path is None and "slot" in (timed_out.error or "")


def test_timed_out_url_does_not_hold_up_the_run(server: srv.LoopbackServer, tmp_path: Path) -> None:
    urls = slow_files(server, 1, delay=1.0) + [server.route("/late", srv.body(b"x"))]
    with Fetcher(dest=tmp_path, max_concurrent=1, acquire_timeout=0.2) as fetcher:
        began = time.monotonic()
        first = next(fetcher.as_completed(urls))
        elapsed = time.monotonic() - began
    assert first.status is Status.ACQUIRE_TIMEOUT
    assert elapsed < 0.9  # reported at its deadline, not after the slow download


def test_urls_that_get_a_slot_in_time_are_downloaded(server: srv.LoopbackServer, tmp_path: Path) -> None:
    results = run(slow_files(server, 4, delay=0.1), tmp_path, max_concurrent=2, acquire_timeout=5)
    assert all(r.ok for r in results)


# -- results ------------------------------------------------------------------------


def test_fetch_yields_results_in_input_order(server: srv.LoopbackServer, tmp_path: Path) -> None:
    urls = [server.route(f"/d{i}", srv.body(b"x", delay=0.4 - i * 0.1)) for i in range(4)]
    results = run(urls, tmp_path, max_concurrent=4)
    assert [r.url for r in results] == urls


def test_as_completed_yields_the_fastest_first(server: srv.LoopbackServer, tmp_path: Path) -> None:
    slow = server.route("/slow", srv.body(b"x", delay=0.6))
    fast = server.route("/fast", srv.body(b"x"))
    with Fetcher(dest=tmp_path, max_concurrent=2) as fetcher:
        assert [r.url for r in fetcher.as_completed([slow, fast])] == [fast, slow]


def test_result_records_what_happened(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/rfc791.txt", srv.body(b"x" * 1234, delay=0.1))
    with Fetcher(dest=tmp_path) as fetcher:
        (result,) = fetcher.fetch([url], run_id="run-1")
    assert result.status is Status.OK and result.ok
    assert result.path == (tmp_path / "rfc791.txt").resolve()
    assert (result.http_status, result.bytes, result.line, result.run_id) == (200, 1234, 1, "run-1")
    assert result.ttfb_s is not None and result.ttfb_s >= 0.05
    assert result.wait_s is not None and result.total_s >= result.wait_s + result.ttfb_s
    assert result.started_at <= result.finished_at
    assert result.error is None


def test_entries_keep_their_line_numbers(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/a", srv.body(b"x"))
    results = run([Entry(url=url, line=7), Entry(url="ftp://x/y", line=9)], tmp_path)  # type: ignore[list-item]
    assert [r.line for r in results] == [7, 9]


def test_generator_input_is_read_lazily(server: srv.LoopbackServer, tmp_path: Path) -> None:
    urls = [server.route(f"/g{i}", srv.body(b"x")) for i in range(5)]
    produced: list[str] = []

    def generate() -> Iterator[str]:
        for url in urls:
            produced.append(url)
            yield url

    with Fetcher(dest=tmp_path, read_ahead=2) as fetcher:
        iterator = fetcher.fetch(generate())
        assert produced == []  # nothing happens until iteration starts
        assert next(iterator).url == urls[0]
        assert len(produced) <= 4
        assert len(list(iterator)) == 4


def test_a_duplicate_url_is_downloaded_once_and_recorded_as_a_duplicate_of_the_kept_line(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    url = server.route("/twice", srv.body(b"x"))
    results = run([url, url], tmp_path)
    assert [(r.status, r.error, r.attempts) for r in results] == [
        (Status.OK, None, 1),
        (Status.DUPLICATE, "same as line 1", 0),
    ]
    assert server.requests["/twice"] == 1


def test_equivalent_urls_are_one_url(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/~q.txt", srv.body(b"x"))
    host, port = server.base.removeprefix("http://").split(":")
    same = [url, f"HTTP://{host}:{port}/%7Eq.txt", f"http://{host}:{port}/a/../~q.txt#part"]
    results = run(same, tmp_path)
    assert [r.status for r in results] == [Status.OK, Status.DUPLICATE, Status.DUPLICATE]
    assert server.requests["/~q.txt"] == 1


def test_a_line_that_is_no_url_is_a_duplicate_only_of_the_same_text(tmp_path: Path) -> None:
    results = run(["junk", "junk", "JUNK"], tmp_path)
    assert [r.status for r in results] == [Status.INVALID, Status.DUPLICATE, Status.INVALID]


def test_invalid_lines_are_results_and_the_good_lines_go_on(server: srv.LoopbackServer, tmp_path: Path) -> None:
    good = server.route("/good", srv.body(b"x"))
    results = run(["ftp://x/y", "junk", good, "http://"], tmp_path)
    assert [r.status for r in results] == [Status.INVALID, Status.INVALID, Status.OK, Status.INVALID]
    assert all(r.error for r in results if not r.ok)


def test_one_failing_url_does_not_stop_the_others(server: srv.LoopbackServer, tmp_path: Path) -> None:
    urls = [
        server.route("/missing", srv.body(b"", status=404)),
        server.route("/cut", srv.truncated(b"x" * 10, claimed=100)),
        server.route("/fine", srv.body(b"fine")),
    ]
    results = run(urls, tmp_path, max_concurrent=1, retries=0)
    assert [r.status for r in results] == [Status.FAILED, Status.FAILED, Status.OK]
    assert results[0].http_status == 404
    assert listing(tmp_path) == ["fine"]


def test_two_urls_with_one_name_both_survive(server: srv.LoopbackServer, tmp_path: Path) -> None:
    first = server.route("/a/data.csv", srv.body(b"first"))
    second = server.route("/b/data.csv", srv.body(b"second"))
    results = run([first, second], tmp_path)
    assert results[0].path is not None and results[1].path is not None
    assert results[0].path.name == "data.csv"
    assert results[1].path.name.startswith("data-") and results[1].path.name.endswith(".csv")
    assert results[0].path.read_bytes() == b"first" and results[1].path.read_bytes() == b"second"


def test_reserved_names_are_not_given_to_urls(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/fetcher-report.jsonl", srv.body(b"not a report"))
    (result,) = run([url], tmp_path, reserved_names=["fetcher-report.jsonl"])
    assert result.path is not None and result.path.name != "fetcher-report.jsonl"


def test_password_in_a_url_is_not_in_its_result(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/private", srv.body(b"x")).replace("http://", "http://user:s3cret@")
    (result,) = run([url], tmp_path)
    assert result.ok
    assert "s3cret" not in repr(result)


def test_the_library_prints_nothing(
    server: srv.LoopbackServer, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    run([server.route("/x", srv.body(b"", status=500)), "junk"], tmp_path, retries=0)
    assert capfd.readouterr() == ("", "")


def test_stats_show_slots_in_use_and_urls_waiting(server: srv.LoopbackServer, tmp_path: Path) -> None:
    urls = slow_files(server, 3, delay=0.5)
    with Fetcher(dest=tmp_path, max_concurrent=1) as fetcher:
        iterator = fetcher.as_completed(urls)
        seen = []
        for _ in iterator:
            seen.append(fetcher.stats())
        # While the first download was running the others had been read and were waiting.
    assert fetcher.stats().in_use == 0
    assert seen[0].capacity == 1 and seen[0].waiting >= 1


# -- misuse and cancellation ----------------------------------------------------------


def test_bad_arguments_raise_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_concurrent"):
        Fetcher(dest=tmp_path, max_concurrent=0)


def test_a_limit_rate_that_is_not_a_number_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^limit_rate must be a whole number"):
        Fetcher(dest=tmp_path, limit_rate="1k")  # type: ignore[arg-type]


def test_a_limit_rate_makes_reads_no_bigger_than_a_tenth_of_a_second(tmp_path: Path) -> None:
    with Fetcher(dest=tmp_path, state=False, limit_rate=100_000) as fetcher:
        assert fetcher.config.chunk_size == 10_000


def test_a_file_as_dest_raises_destination_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(DestinationError, match="not a folder"):
        Fetcher(dest=tmp_path / "file")


def test_missing_dest_is_created(tmp_path: Path) -> None:
    with Fetcher(dest=tmp_path / "new" / "dir"):
        pass
    assert (tmp_path / "new" / "dir").is_dir()


def test_a_string_instead_of_a_list_raises_type_error(tmp_path: Path) -> None:
    with Fetcher(dest=tmp_path) as fetcher, pytest.raises(TypeError):
        fetcher.fetch("https://example.com/one-url-not-a-list")


def test_a_closed_fetcher_raises(tmp_path: Path) -> None:
    fetcher = Fetcher(dest=tmp_path)
    fetcher.close()
    with pytest.raises(ClosedError):
        fetcher.fetch([])


def test_an_error_from_the_input_reaches_the_caller(tmp_path: Path) -> None:
    def broken() -> Iterator[str]:
        yield "junk"
        raise OSError("disk went away")

    with Fetcher(dest=tmp_path) as fetcher, pytest.raises(OSError, match="disk went away"):
        list(fetcher.fetch(broken()))


def test_an_empty_input_gives_no_results(tmp_path: Path) -> None:
    assert run([], tmp_path) == []


def test_leaving_the_loop_early_cancels_the_rest(server: srv.LoopbackServer, tmp_path: Path) -> None:
    urls = slow_files(server, 10, delay=0.2)
    with Fetcher(dest=tmp_path, max_concurrent=1) as fetcher:
        for _ in fetcher.fetch(urls):
            break
        time.sleep(0.5)
    assert sum(server.requests.values()) <= 3


def test_closing_mid_download_leaves_no_temporary_file(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/stall", srv.stalled(b"x" * 100, claimed=10_000, stall=8))
    fetcher = Fetcher(dest=tmp_path, timeout=20)
    iterator = fetcher.fetch([url])
    consumer = threading.Thread(target=lambda: pytest.raises(ClosedError, list, iterator))
    consumer.start()
    deadline = time.monotonic() + 5
    while not temp_files(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert temp_files(tmp_path), "the download never started"
    began = time.monotonic()
    fetcher.close()
    consumer.join(10)
    assert not consumer.is_alive()
    assert time.monotonic() - began < 5
    assert listing(tmp_path) == []


def test_a_new_fetcher_removes_temporary_files_of_killed_runs(tmp_path: Path) -> None:
    abandoned = tmp_path / f"{TEMP_PREFIX}killed.part"
    abandoned.write_bytes(b"partial")
    os.utime(abandoned, (0, 0))
    with Fetcher(dest=tmp_path):
        pass
    assert not abandoned.exists()


@pytest.mark.parametrize("arguments", [{"dest": 5}, {"shared_slots": "jobs", "shared_slots_dir": 5}])
def test_a_path_argument_that_is_not_a_path_raises_config_error(arguments: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="must be a path, not 5"):
        Fetcher(**arguments)  # type: ignore[arg-type]


def test_help_documents_every_parameter_and_method() -> None:
    doc = pydoc.render_doc(Fetcher, renderer=pydoc.plaintext)  # type: ignore[attr-defined]
    for name in inspect.signature(Fetcher).parameters:
        assert f"``{name}``" in doc, name
    for name in ("fetch", "as_completed", "stats", "close"):
        assert getattr(Fetcher, name).__doc__, name


def test_dir_of_the_package_shows_only_the_public_api() -> None:
    assert dir(fetcher) == sorted(fetcher.__all__)
    assert "logging" not in dir(fetcher) and "Fetcher" in dir(fetcher)


def test_every_public_name_is_found_where_the_package_says_it_lives() -> None:
    assert sorted(fetcher._SOURCES) == sorted(fetcher.__all__)
    for name in fetcher.__all__:
        assert getattr(fetcher, name) is not None, name


def test_importing_the_package_imports_none_of_its_modules_until_a_name_is_used() -> None:
    code = "import sys, fetcher; print(sorted(m for m in sys.modules if m.startswith('fetcher.')))"
    told = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert told.stdout.strip() == "[]", told.stderr


def test_what_the_readme_says_derives_from_fetcher_error_does() -> None:
    for kind in (fetcher.ConfigError, fetcher.DestinationError, fetcher.StateError, fetcher.URLListError,
                 fetcher.ClosedError):  # fmt: skip
        assert issubclass(kind, fetcher.FetcherError)


def test_a_ca_certificate_is_what_each_session_verifies_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/somewhere/else.pem")
    bundle = certifi.where()
    with Fetcher(dest=tmp_path, state=False, ca_certificate=bundle) as f:
        session = new_session(f.config)
    sent: dict[str, object] = {}
    monkeypatch.setattr(HTTPAdapter, "send", lambda self, request, **kwargs: sent.update(kwargs))
    session.get_adapter("https://files.example/").send(requests.Request("GET", "https://files.example/").prepare())
    assert sent["verify"] == bundle


def test_a_bad_ca_certificate_fails_before_dest_is_made(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ca_certificate .*: cannot read it"):
        Fetcher(dest=tmp_path / "out", ca_certificate=tmp_path / "nope.pem")
    assert not (tmp_path / "out").exists()


def test_stop_ends_a_run_at_once_and_every_url_still_gets_a_result(server: srv.LoopbackServer, tmp_path: Path) -> None:
    stalled = server.route("/stalled", srv.stalled(b"x" * 100, claimed=100_000, stall=8))
    rest = [server.route(f"/r{n}", srv.body(b"x")) for n in range(5)]
    with Fetcher(dest=tmp_path, max_concurrent=1, timeout=20) as fetcher:
        results = fetcher.as_completed([stalled, *rest])
        stopper = threading.Timer(0.5, fetcher.stop, args=("interrupted",))
        began = time.monotonic()
        stopper.start()
        got = sorted(((r.line, r.status, r.error) for r in results), key=lambda each: each[0])
        took = time.monotonic() - began
    assert got == [(1, Status.CANCELLED, "interrupted")] + [(n, Status.NOT_STARTED, "interrupted") for n in range(2, 7)]
    assert took < 3  # the stalled read was cut, not waited for (the server stalls 8 s, --timeout 20)


# -- a stop hangs up a request in any phase ---------------------------------------------------


def stop_midway(fetcher: Fetcher, url: str) -> tuple[Result, float]:
    """Fetch *url* and call ``fetcher.stop()`` half a second in: its Result, and the seconds it took after the stop."""
    stopped_at: list[float] = []

    def stop() -> None:
        stopped_at.append(time.monotonic())
        fetcher.stop("interrupted")

    timer = threading.Timer(0.5, stop)
    timer.start()
    [result] = fetcher.as_completed([url])
    ended = time.monotonic()
    timer.join()
    return result, ended - stopped_at[0]


def test_stop_hangs_up_a_request_waiting_for_its_headers(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/held", srv.held_headers())
    with Fetcher(dest=tmp_path, timeout=20) as fetcher:
        result, took = stop_midway(fetcher, url)
    assert (result.status, result.error, result.attempts) == (Status.CANCELLED, "interrupted", 1)
    assert took < 2  # not the --timeout of 20 s
    assert server.wait_for_hangups("/held")


def test_stop_hangs_up_a_connect_that_never_completes(tmp_path: Path) -> None:
    with srv.Silent(full=True) as silent:
        if silent.connects(0.2):
            pytest.skip("this system completes connects to a full listen queue")
        with Fetcher(dest=tmp_path, timeout=20) as fetcher:
            result, took = stop_midway(fetcher, silent.url("/f"))
    assert (result.status, result.error) == (Status.CANCELLED, "interrupted")
    assert took < 2


def test_stop_hangs_up_a_tls_handshake_that_gets_no_answer(tmp_path: Path) -> None:
    with srv.Silent() as silent, Fetcher(dest=tmp_path, timeout=20) as fetcher:
        result, took = stop_midway(fetcher, silent.url("/f", scheme="https"))
    assert (result.status, result.error) == (Status.CANCELLED, "interrupted")
    assert took < 2


def test_leaving_the_loop_hangs_up_a_request_waiting_for_its_headers(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    held = server.route("/held", srv.held_headers())
    quick = server.route("/quick", srv.body(b"x", delay=0.3))
    with Fetcher(dest=tmp_path, max_concurrent=2, timeout=20) as fetcher:
        for _ in fetcher.as_completed([held, quick]):
            break  # the quick one: the held one is still waiting for its headers
        assert server.wait_for_hangups("/held", timeout=2)


def test_close_hangs_up_a_request_waiting_for_its_headers(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/held", srv.held_headers())
    fetcher = Fetcher(dest=tmp_path, timeout=20)
    results = fetcher.as_completed([url])
    raised: list[ClosedError] = []

    def read_all() -> None:
        try:
            list(results)
        except ClosedError as exc:
            raised.append(exc)

    caller = threading.Thread(target=read_all)
    caller.start()
    for _ in range(500):  # bounded: the request comes within a second or two
        if server.requests["/held"]:
            break
        time.sleep(0.01)
    began = time.monotonic()
    fetcher.close()
    assert time.monotonic() - began < 0.9  # its worker ended: close() did not give up waiting for it after 1 s
    assert server.wait_for_hangups("/held", timeout=2)
    caller.join(5)
    assert len(raised) == 1


# -- worker processes (workers=) ----------------------------------------------------------------


def worker_processes() -> set[int]:
    """The worker processes (``fetcher.workers.child``) this test process runs now."""
    from tests.workers.processes import workers_of

    return set(workers_of(os.getpid()))


def test_workers_0_downloads_in_this_process_only(server: srv.LoopbackServer, tmp_path: Path) -> None:
    earlier = worker_processes()
    with Fetcher(dest=tmp_path, workers=0) as fetcher:
        results = list(fetcher.fetch(slow_files(server, 3, delay=0)))
        assert worker_processes() <= earlier  # none new (an earlier test's may be ending)
    assert [r.status for r in results] == [Status.OK] * 3


def test_workers_given_start_with_the_fetcher_and_end_with_it(tmp_path: Path) -> None:
    from tests.workers.processes import all_gone

    earlier = worker_processes()
    with Fetcher(dest=tmp_path, workers=2, max_concurrent=4):
        mine = worker_processes() - earlier
    assert len(mine) == 2 and all_gone(mine, timeout=3)


def test_by_default_processes_start_only_once_a_run_has_read_a_long_list(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    from fetcher._parts import usable_cores
    from tests.workers.processes import wait_until

    if usable_cores() < 2:
        pytest.skip("one core: the default is no worker process")
    earlier = worker_processes()
    with Fetcher(dest=tmp_path) as fetcher:
        short = list(fetcher.fetch(slow_files(server, 5, delay=0)))
        assert worker_processes() <= earlier  # a short list never pays for a process start
        # Lines that are no URL count as read: the URLs after 500 of them are a long list's.
        long = list(fetcher.fetch([f"junk{n}" for n in range(500)] + slow_files(server, 5, delay=0)))
        assert wait_until(lambda: len(worker_processes() - earlier) >= 2, timeout=5)
    assert all(r.ok for r in short) and [r.ok for r in long[500:]] == [True] * 5


def _first_or_closed(results: Iterator[Result]) -> None:
    with contextlib.suppress(ClosedError):  # the Fetcher closes while the first URL is held
        next(results, None)


@pytest.mark.parametrize(("sized", "started"), [(True, True), (False, False)], ids=["list", "generator"])
def test_by_default_an_input_that_tells_it_is_long_starts_processes_with_its_run(
    server: srv.LoopbackServer, tmp_path: Path, sized: bool, started: bool
) -> None:
    from fetcher._parts import usable_cores
    from tests.workers.processes import wait_until

    if usable_cores() < 2:
        pytest.skip("one core: the default is no worker process")
    # The first URL is held while the run reads no further than 20 lines: only a list's len() tells it is long.
    held = server.route("/held", srv.held_headers())
    urls = [held, *(f"{held}-not-there-{n}" for n in range(600))]
    earlier = worker_processes()
    with Fetcher(dest=tmp_path, read_ahead=20, max_concurrent=2) as fetcher:
        results = fetcher.fetch(urls if sized else (url for url in urls))
        reader = threading.Thread(target=_first_or_closed, args=(results,), daemon=True)
        reader.start()
        came = wait_until(lambda: len(worker_processes() - earlier) >= 2, timeout=10 if started else 1)
    reader.join(10)
    assert came == started


@pytest.mark.parametrize(
    "option",
    [{"rate": 100.0}, {"rate_per_host": 100.0}, {"limit_rate": 1 << 20},
     {"session_factory": lambda: requests.Session()}],
    ids=["rate", "rate_per_host", "limit_rate", "session_factory"],
)  # fmt: skip
def test_runs_whose_hooks_run_inside_each_download_keep_to_threads(
    server: srv.LoopbackServer, tmp_path: Path, option: dict[str, object]
) -> None:
    earlier = worker_processes()
    with Fetcher(dest=tmp_path, workers=2, **option) as fetcher:  # type: ignore[arg-type]
        [result] = fetcher.fetch(slow_files(server, 1, delay=0))
        assert worker_processes() <= earlier  # none new (an earlier test's may be ending)
    assert result.ok


def test_calls_from_several_threads_share_one_cap_in_worker_processes(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    overlap = srv.Overlap(0.2)
    urls = [server.route(f"/o{n}", overlap) for n in range(12)]
    with Fetcher(dest=tmp_path, max_concurrent=2, workers=2) as fetcher:
        outcomes = fetch_halves_from_two_threads(fetcher, urls)
    assert sorted(len(o) for o in outcomes) == [6, 6] and all(r.ok for o in outcomes for r in o)
    assert overlap.most == 2


def test_more_worker_processes_than_cores_all_download_under_the_one_cap(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    from tests.workers.processes import socket_owner

    # 4 processes of 2 threads each (8 / 4): nothing holds the count to the cores (2 on CI), and only
    # all four at once reach 8 downloads in flight.
    overlap, owners = srv.Overlap(0.3), []
    earlier = worker_processes()

    def handle(request: srv.Request) -> None:
        owners.append(socket_owner(request.client_address[1], worker_processes() - earlier))
        overlap(request)

    urls = [server.route(f"/o{n}", handle) for n in range(32)]
    with Fetcher(dest=tmp_path, max_concurrent=8, workers=4, state=False) as fetcher:
        mine = worker_processes() - earlier
        assert all(r.ok for r in fetcher.fetch(urls))
    assert len(mine) == 4 and set(owners) - {None} == mine
    assert overlap.most == 8


def test_max_concurrent_holds_over_hosts_in_worker_processes(
    server: srv.LoopbackServer, server_b: srv.LoopbackServer, tmp_path: Path
) -> None:
    overlap = srv.Overlap(0.1)
    urls = [s.route(f"/o{n}", overlap) for n in range(8) for s in (server, server_b)]
    with Fetcher(dest=tmp_path, max_concurrent=3, workers=2, state=False) as fetcher:
        assert all(r.ok for r in fetcher.fetch(urls))
    assert overlap.most == 3


def test_max_per_host_holds_in_worker_processes(
    server: srv.LoopbackServer, server_b: srv.LoopbackServer, tmp_path: Path
) -> None:
    on_a, on_b = srv.Overlap(0.1), srv.Overlap(0.1)
    urls = [url for n in range(8) for url in (server.route(f"/a{n}", on_a), server_b.route(f"/b{n}", on_b))]
    with Fetcher(dest=tmp_path, max_concurrent=4, max_per_host=2, workers=2, state=False) as fetcher:
        assert all(r.ok for r in fetcher.fetch(urls))
    assert (on_a.most, on_b.most) == (2, 2)


@pytest.mark.parametrize("state", [False, "elsewhere.db"], ids=["none", "a-path"])
def test_shared_state_comes_without_a_state_database(tmp_path: Path, state: bool | str) -> None:
    with pytest.raises(ConfigError, match="give either a state database .* or shared_state, not both"):
        Fetcher(dest=tmp_path, state=state, shared_state=True, redis="redis://127.0.0.1:1/0", cluster="c")
