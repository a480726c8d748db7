"""The fetcher command: options, messages, exit codes, signals."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import pty
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import certifi
import pytest

from fetcher import Fetcher
from fetcher._errors import URLListError
from fetcher._parts import usable_cores
from fetcher._urllist import Entry
from fetcher.cli import get
from fetcher.cli.main import main
from fetcher.limits.shared import SharedGate, read_slots
from fetcher.state import DEFAULT_STATE_NAME
from tests import server as srv
from tests.workers.processes import forkers_of


def fetcher(*args: str | Path) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return int(exit_info.value.code or 0)


def url_list(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "urls.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def listing(folder: Path) -> list[str]:
    """The names in *folder*, without fetcher's state database."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(DEFAULT_STATE_NAME))


def records(path: Path) -> list[dict[str, object]]:
    """The URL records of a JSON Lines report (run records left out)."""
    return [record for record in everything(path) if "record" not in record]


def runs(path: Path) -> list[dict[str, object]]:
    """The run records of a JSON Lines report."""
    return [record for record in everything(path) if record.get("record") == "run"]


def everything(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def download_started(server: srv.LoopbackServer, path: str, dest: Path) -> bool:
    """Whether the download of *path* has begun: the server has its request and a partial file is in *dest*.

    A partial file alone does not tell: the Fetcher's start proves DEST writable with a temporary file of
    the same kind, there for an instant, which a poll can see before the run has begun.
    """
    return server.requests[path] > 0 and any(p.name.endswith(".part") for p in dest.glob(".*"))


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "out"


def assert_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], line: str) -> None:
    """The command with *args* exits 2 with *line* ('{list}' for the list's path) and makes nothing."""
    urls = url_list(tmp_path, "http://127.0.0.1:9/x")
    assert fetcher(urls, "-d", tmp_path / "out", *args) == 2
    assert capsys.readouterr().err == f"fetcher: error: {line.replace('{list}', str(urls))}\n"
    assert not (tmp_path / "out").exists()


# -- success ------------------------------------------------------------------------


def test_all_ok_exits_0_and_writes_the_report_in_dest(server: srv.LoopbackServer, tmp_path: Path, dest: Path) -> None:
    urls = [server.route(f"/rfc79{i}.txt", srv.body(b"rfc" * 100)) for i in range(1, 4)]
    assert fetcher(url_list(tmp_path, *urls), "--max", "2", "--dest", dest) == 0
    assert listing(dest) == [
        "fetcher-report.jsonl", "rfc791.txt", "rfc792.txt", "rfc793.txt",
    ]  # fmt: skip
    rows = records(dest / "fetcher-report.jsonl")
    assert [row["status"] for row in rows] == ["ok"] * 3
    assert len({row["run_id"] for row in rows}) == 1


def test_plain_output_has_a_line_per_url_and_a_summary(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = [server.route(f"/f{i}", srv.body(b"x")) for i in range(3)]
    fetcher(url_list(tmp_path, *urls), "-d", dest)
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 4 and lines[-1].startswith("fetcher: 3 URLs: 3 ok")
    assert "\r" not in err


def test_quiet_prints_nothing_when_everything_succeeded(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fetcher(url_list(tmp_path, server.route("/a", srv.body(b"x"))), "-q", "-d", dest) == 0
    assert capsys.readouterr() == ("", "")


def test_quiet_prints_only_the_failures_and_a_summary(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = server.route("/good", srv.body(b"x"))
    bad = server.route("/bad", srv.body(b"", status=404))
    assert fetcher(url_list(tmp_path, good, bad), "--quiet", "-d", dest) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("failed") and "/bad" in lines[0] and "HTTP 404" in lines[0]
    assert lines[1].startswith("fetcher: 2 URLs: 1 ok, 1 failed")


def test_an_empty_list_is_not_an_error(tmp_path: Path, dest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher(url_list(tmp_path, "# nothing yet", ""), "-d", dest) == 0
    assert "nothing to do" in capsys.readouterr().err


def test_an_empty_list_makes_no_dest_and_no_report(
    tmp_path: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fetcher(url_list(tmp_path, "# nothing yet", ""), "-d", dest, "--report", tmp_path / "r.jsonl") == 0
    assert capsys.readouterr().err == "fetcher: the list has no URLs; nothing to do\n"
    assert not dest.exists() and not (tmp_path / "r.jsonl").exists()


def test_a_url_instead_of_a_list_downloads_that_url(
    server: srv.LoopbackServer, dest: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    url = server.route("/one.txt", srv.body(b"one"))
    assert fetcher(url, "-q", "-d", dest) == 0
    assert (dest / "one.txt").read_bytes() == b"one"
    assert [(r["url"], r["line"]) for r in records(dest / "fetcher-report.jsonl")] == [(url, 1)]


def test_a_file_named_like_a_url_is_still_read_as_a_list(
    tmp_path: Path, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "http:").mkdir()
    (tmp_path / "http:" / "list").write_text("# empty\n")
    assert fetcher("http://list", "-d", dest) == 0  # "http://list" is the path http:/list
    assert not dest.exists()


def test_input_file_names_the_list(server: srv.LoopbackServer, tmp_path: Path, dest: Path) -> None:
    urls = url_list(tmp_path, server.route("/i.txt", srv.body(b"i")))
    assert fetcher("-i", urls, "-q", "-d", dest) == 0
    assert fetcher("--input-file", urls, "-q", "-d", tmp_path / "two") == 0
    assert (dest / "i.txt").exists() and (tmp_path / "two" / "i.txt").exists()


def test_a_compressed_list_is_one_usage_error_saying_how_to_read_it(
    tmp_path: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = tmp_path / "urls.txt.gz"
    listed.write_bytes(gzip.compress(b"http://127.0.0.1:9/x\n" * 100))
    assert fetcher(listed, "-d", dest) == 2
    assert capsys.readouterr().err == (
        f"fetcher: error: the URL list '{listed}' looks like gzip-compressed data, not text "
        f"(decompress it first: gunzip -c {listed} | fetcher -)\n"
    )
    assert not dest.exists()


class _Terminal(io.TextIOWrapper):
    def isatty(self) -> bool:
        return True


def test_reading_the_list_from_a_terminal_says_so_first(
    server: srv.LoopbackServer, dest: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server.route("/typed.txt", srv.body(b"x"))
    monkeypatch.setattr(sys, "stdin", _Terminal(io.BytesIO(f"{url}\n".encode())))
    assert fetcher("-", "-q", "-d", dest) == 0
    assert capsys.readouterr().err == "fetcher: reading URLs from standard input (end with Ctrl-D)\n"
    assert (dest / "typed.txt").exists()


def test_a_ca_certificate_that_loads_is_accepted(server: srv.LoopbackServer, tmp_path: Path, dest: Path) -> None:
    urls = url_list(tmp_path, server.route("/ca.txt", srv.body(b"x")))
    assert fetcher(urls, "--cacert", certifi.where(), "-q", "-d", dest) == 0


def test_a_ca_certificate_that_is_not_pem_is_one_usage_error(
    tmp_path: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "ca.der"
    bundle.write_bytes(b"\x30\x82\x01\x0a" + bytes(200))
    assert fetcher(url_list(tmp_path, "https://127.0.0.1:9/x"), "--ca-certificate", bundle, "-d", dest) == 2
    assert capsys.readouterr().err == (f"fetcher: error: --ca-certificate {bundle}: is not a PEM certificate bundle\n")
    assert not dest.exists()


def test_list_from_standard_input(server: srv.LoopbackServer, dest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    url = server.route("/stdin.txt", srv.body(b"x"))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(f"{url}\n".encode())))
    assert fetcher("-", "-d", dest) == 0
    assert (dest / "stdin.txt").exists()


# -- exit codes ------------------------------------------------------------------------


def test_a_failed_url_exits_1(server: srv.LoopbackServer, tmp_path: Path, dest: Path) -> None:
    assert fetcher(url_list(tmp_path, server.route("/x", srv.body(b"", status=500))), "-d", dest, "--retries", "0") == 1


def test_an_invalid_line_exits_1_and_the_good_lines_are_downloaded(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path
) -> None:
    good = server.route("/good.txt", srv.body(b"x"))
    assert fetcher(url_list(tmp_path, "ftp://x/y", good, "not a url"), "-d", dest) == 1
    rows = {row["line"]: row for row in records(dest / "fetcher-report.jsonl")}
    assert (rows[1]["status"], rows[2]["status"], rows[3]["status"]) == ("invalid", "ok", "invalid")
    assert (dest / "good.txt").exists()


def test_only_acquire_timeouts_exit_3(server: srv.LoopbackServer, tmp_path: Path, dest: Path) -> None:
    urls = [server.route(f"/s{i}", srv.body(b"x", delay=1.0)) for i in range(3)]
    assert fetcher(url_list(tmp_path, *urls), "--max", "1", "--acquire-timeout", "0.2", "-d", dest) == 3
    statuses = [cast(str, row["status"]) for row in records(dest / "fetcher-report.jsonl")]
    assert sorted(statuses) == ["acquire-timeout", "acquire-timeout", "ok"]


def test_failures_and_acquire_timeouts_exit_1(server: srv.LoopbackServer, tmp_path: Path, dest: Path) -> None:
    urls = [server.route("/s", srv.body(b"", status=500, delay=1.0)), server.route("/t", srv.body(b"x"))]
    assert (
        fetcher(url_list(tmp_path, *urls), "--max", "1", "--acquire-timeout", "0.2", "-d", dest, "--retries", "0") == 1
    )


_SIZE = "a size above 0 (500k, 2M, 1G: powers of 1024)"
_BYTES_PER_S = "bytes per second above 0 (500k, 2M: powers of 1024)"
_REQUESTS_PER_S = "requests per second above 0, at most 1000000 (0.5, 10, 30/m, 100/h)"
_DURATION = "a duration above 0 (90, 90s, 15m, 2h, 1h30m, 2d)"
_DURATION_OR_0 = "a duration, 0 or more (90, 90s, 15m, 2h, 1h30m, 2d)"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--max", "0"], "--max must be a whole number from 1 to 512, not 0"),
        (["-m", "abc"], "--max must be a whole number from 1 to 512, not 'abc'"),
        (["--max", "100000"], "--max must be a whole number from 1 to 512, not 100000"),
        (["--max-per-host", "0"], "--max-per-host must be a whole number from 1 to 512, not 0"),
        (["--rate", "0"], f"--rate must be {_REQUESTS_PER_S}, not 0"),
        (["--rate", "fast"], f"--rate must be {_REQUESTS_PER_S}, not 'fast'"),
        (["--rate", "1e9"], f"--rate must be {_REQUESTS_PER_S}, not 1e9"),
        (["--rate-per-host", "5/d"], f"--rate-per-host must be {_REQUESTS_PER_S}, not '5/d'"),
        (["--limit-rate", "0"], f"--limit-rate must be {_BYTES_PER_S}, not 0"),
        (["--shared-slots", ".hidden"], "--shared-slots: the shared slots name must be a plain file name (letters, "
         "digits, '.', '_', '-', not starting with a dot, at most 64 characters), not '.hidden'"),
        (["--dest="], "--dest must be a folder, not ''"),
        (["--acquire-timeout", "-1"], f"--acquire-timeout must be {_DURATION_OR_0}, not -1"),
        (["--acquire-timeout", "nan"], f"--acquire-timeout must be {_DURATION_OR_0}, not 'nan'"),
        (["--timeout", "0"], f"--timeout must be {_DURATION}, not 0"),
        (["--timeout", "abc"], f"--timeout must be {_DURATION}, not 'abc'"),
        (["--timeout", "inf"], f"--timeout must be {_DURATION}, not 'inf'"),
        (["--retries", "-1"], "--retries must be a whole number from 0 to 100, not -1"),
        (["--retries", "1.5"], "--retries must be a whole number from 0 to 100, not 1.5"),
        (["--retry-wait-max", "-1"], f"--retry-wait-max must be {_DURATION_OR_0}, not -1"),
        (["--retry-after-max", "nan"], f"--retry-after-max must be {_DURATION_OR_0}, not 'nan'"),
        (["--state", "."], "--state must be a file, not '.'"),
        (["--ca-certificate", "/no/ca.pem"], "--ca-certificate /no/ca.pem: cannot read it (No such file or directory)"),
        (["--max-time", "0"], f"--max-time must be {_DURATION}, not 0"),
        (["--speed-limit", "fast"], f"--speed-limit must be {_BYTES_PER_S}, not 'fast'"),
        (["--speed-time", "nan"], f"--speed-time must be {_DURATION}, not 'nan'"),
        (["--max-filesize", "12x"], f"--max-filesize must be {_SIZE}, not '12x'"),
        (["--max-filesize", "0"], f"--max-filesize must be {_SIZE}, not 0"),
        (["--deadline", "0"], f"--deadline must be {_DURATION}, not 0"),
        (["--deadline", "1w"], f"--deadline must be {_DURATION}, not '1w'"),
        (["--quota", "-1M"], f"--quota must be {_SIZE}, not '-1M'"),
        (["--report", "."], "--report must be a file, not '.'"),
        (["--no-such-option"], "no such option: --no-such-option (see 'fetcher --help')"),
        (["--maxx", "3"], "no such option: --maxx (did you mean --max?)"),
        (["--timeout"], "--timeout needs a value"),
        (["--force=yes"], "--force takes no value"),
        (["extra.txt"], "unexpected extra argument extra.txt (see 'fetcher --help')"),
        (["-i", "other.txt"], "two URL lists: '{list}' and -i 'other.txt' (give one: URL_LIST or -i FILE, not both)"),
        (["--force", "--skip-existing"], "--force and --skip-existing cannot be used together"),
        (["--limit-rate", "1k", "--speed-limit", "2k"],
         "--limit-rate 1.0 KiB/s is below --speed-limit 2.0 KiB/s: every download would be cut as too slow"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)  # fmt: skip
def test_each_usage_error_is_one_line_in_fetchers_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], line: str
) -> None:
    assert_refused(tmp_path, capsys, args, line)


def test_no_list_at_all_is_the_missing_list_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher("--max", "2") == 2
    assert capsys.readouterr().err == "fetcher: error: missing URL_LIST (see 'fetcher --help')\n"


def test_missing_list_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher(tmp_path / "nope.txt", "-d", tmp_path) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"fetcher: error: cannot read URL list '{tmp_path / 'nope.txt'}': No such file or directory"
    ]


def test_a_folder_as_the_list_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher(tmp_path, "-d", tmp_path / "out") == 2
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_dest_that_is_a_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    assert fetcher(url_list(tmp_path, "http://127.0.0.1:9/x"), "-d", tmp_path / "file") == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "not a folder" in err


def test_unwritable_report_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    assert fetcher(url_list(tmp_path, "junk"), "-d", tmp_path / "out", "--report", tmp_path / "file" / "r.jsonl") == 2
    report = tmp_path / "file" / "r.jsonl"
    assert capsys.readouterr().err == f"fetcher: error: cannot write report '{report}': Not a directory\n"
    assert not (tmp_path / "out").exists()


def test_a_report_that_is_the_url_list_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listed = url_list(tmp_path, "http://127.0.0.1:9/x")
    assert fetcher(listed, "-d", tmp_path / "out", "--report", listed) == 2
    assert capsys.readouterr().err == (
        f"fetcher: error: the report '{listed}' is the URL list itself (give --report another path)\n"
    )
    assert listed.read_text() == "http://127.0.0.1:9/x\n" and not (tmp_path / "out").exists()


def test_a_run_that_an_error_stops_is_recorded_as_failed(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = server.route("/a.txt", srv.body(b"a"))

    def breaking(source: str) -> Iterator[Entry]:  # a disk error after the first line
        yield Entry(url=url, line=1)
        raise URLListError(f"cannot read URL list '{source}': Input/output error")

    class Breaking:
        def __init__(self, source: str) -> None:
            self.source = source

        def __iter__(self) -> Iterator[Entry]:
            return breaking(self.source)

        def empty(self) -> bool:
            return False

        def close(self) -> None:
            pass

    monkeypatch.setattr(get, "open_url_list", Breaking)
    assert fetcher(url_list(tmp_path, url, url + "?2"), "-d", dest) == 2
    [run] = runs(dest / "fetcher-report.jsonl")
    assert run["ended"] == "failed"
    assert run["reason"] == f"cannot read URL list '{tmp_path / 'urls.txt'}': Input/output error"


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher("--help") == 0
    out = capsys.readouterr().out
    for option in ("--max", "--dest", "--acquire-timeout", "--timeout", "--report", "--progress", "--quiet",
                   "--input-file", "--ca-certificate, --cacert FILE"):  # fmt: skip
        assert option in out
    assert "Exit status" in out and "130" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher("--version") == 0
    assert capsys.readouterr().out.startswith("fetcher, version ")


# -- the report ------------------------------------------------------------------------


def test_csv_report_when_the_name_ends_in_csv(server: srv.LoopbackServer, tmp_path: Path, dest: Path) -> None:
    url = server.route("/a.txt", srv.body(b"x"))
    assert fetcher(url_list(tmp_path, url), "-d", dest, "--report", tmp_path / "report.csv") == 0
    with open(tmp_path / "report.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert rows[0]["status"] == "ok" and rows[0]["url"] == url


def test_runs_append_to_the_report_with_their_own_run_id(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path
) -> None:
    listing = url_list(tmp_path, server.route("/a.txt", srv.body(b"x")))
    fetcher(listing, "-d", dest)
    fetcher(listing, "-d", dest)
    rows = records(dest / "fetcher-report.jsonl")
    assert len(rows) == 2 and rows[0]["run_id"] != rows[1]["run_id"]


# -- hostile input ------------------------------------------------------------------------


def test_control_characters_from_the_list_are_escaped_on_the_terminal(
    tmp_path: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fetcher(url_list(tmp_path, "http://example.com/\x1b]0;pwned\x07x"), "-d", dest)
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert "\\x1b" in err


def test_passwords_are_never_printed_or_recorded(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = server.route("/p.txt", srv.body(b"x")).replace("http://", "http://me:s3cret@")
    bad = server.route("/q.txt", srv.body(b"", status=401)).replace("http://", "http://me:s3cret@")
    fetcher(url_list(tmp_path, good, bad, "me:s3cret@junk"), "-d", dest)
    assert "s3cret" not in capsys.readouterr().err
    assert "s3cret" not in (dest / "fetcher-report.jsonl").read_text()


def test_forced_progress_draws_bars_and_the_file_lines(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = [server.route(f"/b{i}", srv.body(b"x" * 1000, delay=0.4)) for i in range(2)]
    assert fetcher(url_list(tmp_path, *urls), "--progress", "-d", dest) == 0
    err = capsys.readouterr().err
    assert "slots" in err and "\r" in err
    assert "fetcher: 2 URLs: 2 ok" in err


# -- as a process: python -m, signals ----------------------------------------------------


def spawn(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fetcher", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_python_dash_m_runs_the_command(server: srv.LoopbackServer, tmp_path: Path, dest: Path) -> None:
    process = spawn(url_list(tmp_path, server.route("/m.txt", srv.body(b"x"))), "-q", "-d", dest)
    out, err = process.communicate(timeout=30)
    assert (process.returncode, out, err) == (0, "", "")


@pytest.mark.skipif(usable_cores() < 2, reason="one core: no worker processes by default")
@pytest.mark.parametrize(("from_stdin", "prepared"), [(False, False), (True, True)])
def test_worker_processes_are_prepared_only_for_a_list_that_may_reach_500_urls(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, from_stdin: bool, prepared: bool
) -> None:
    # A file of two URLs is known to be short; a list on stdin may be of any length.
    held = server.route("/held.iso", srv.stalled(b"x" * 1000, claimed=10_000_000, stall=8))
    listed = url_list(tmp_path, held, server.route("/b", srv.body(b"b")))
    with open(listed) as stdin:
        process = subprocess.Popen(
            [sys.executable, "-m", "fetcher", "-" if from_stdin else str(listed), "-d", str(dest), "--timeout", "20"],
            stdin=stdin if from_stdin else subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
    try:
        # The copy is made before the download starts, but a busy machine may run it later.
        for _ in range(300):  # bounded: the download starts within seconds
            started = download_started(server, "/held.iso", dest)
            if started and bool(forkers_of(process.pid)) == prepared:
                break
            time.sleep(0.05)
        assert started
        assert bool(forkers_of(process.pid)) == prepared
    finally:
        process.kill()
        process.communicate(timeout=15)


@pytest.mark.skipif(usable_cores() < 2, reason="one core: no worker processes by default")
@pytest.mark.parametrize(("quick", "one_core"), [(499, True), (1, False)], ids=["long list", "short list"])
def test_a_long_lists_run_keeps_the_deciding_process_to_one_core(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, quick: int, one_core: bool
) -> None:
    # Its threads hand every URL among themselves: on one core, without waking the other (workers/cores.py).
    cores = set(os.sched_getaffinity(0))
    held = server.route("/held.iso", srv.stalled(b"x" * 1000, claimed=10_000_000, stall=8))
    quick_url = server.route("/q", srv.body(b"q"))
    listed = url_list(tmp_path, *(f"{quick_url}?n={n}" for n in range(quick)), held)
    process = spawn(listed, "-q", "-d", dest, "--timeout", "20")
    try:
        for _ in range(300):  # bounded: the held download starts within seconds
            if download_started(server, "/held.iso", dest) or process.poll() is not None:
                break
            time.sleep(0.05)
        kept = os.sched_getaffinity(process.pid)  # its main thread, where the run's threads start
        assert (len(kept) == 1 and kept < cores) if one_core else kept == cores
    finally:
        process.kill()
        process.communicate(timeout=15)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_download_exits_cleanly_and_leaves_no_partial_file(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, signum: int, code: int
) -> None:
    url = server.route("/big.iso", srv.stalled(b"x" * 1000, claimed=10_000_000, stall=8))
    process = spawn(url_list(tmp_path, url), "-d", dest, "--timeout", "20")
    deadline = time.monotonic() + 30
    while not download_started(server, "/big.iso", dest) and time.monotonic() < deadline:
        if process.poll() is not None:
            break  # it ended before its download started: its stderr says why (below)
        time.sleep(0.05)
    started = download_started(server, "/big.iso", dest)
    process.send_signal(signum)  # nothing if it has ended
    _, err = process.communicate(timeout=15)
    assert started, f"the download never started; exit {process.returncode}, stderr: {err!r}"
    assert (process.returncode, listing(dest)) == (code, ["fetcher-report.jsonl"]), err
    assert "Traceback" not in err and "interrupted" in err


@pytest.mark.parametrize(("signum", "code", "reason"), [(signal.SIGINT, 130, "interrupted (Ctrl-C)"),
                                                       (signal.SIGTERM, 143, "terminated (SIGTERM)")])  # fmt: skip
def test_a_signal_gives_every_url_of_the_list_a_record_and_the_run_one(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, signum: int, code: int, reason: str
) -> None:
    stalled = server.route("/stalled.iso", srv.stalled(b"x" * 1000, claimed=10_000_000, stall=8))
    rest = [server.route(f"/later{n}", srv.body(b"x")) for n in range(20)]
    process = spawn(url_list(tmp_path, stalled, *rest), "--max", "1", "-d", dest, "--timeout", "20")
    for _ in range(300):  # bounded: the download starts within seconds
        if download_started(server, "/stalled.iso", dest):
            break
        time.sleep(0.05)
    os.kill(process.pid, signum)
    _, err = process.communicate(timeout=15)  # at once: the stalled read is cut, not waited for
    assert process.returncode == code
    report = dest / "fetcher-report.jsonl"
    assert sorted(r["line"] for r in records(report)) == list(range(1, 22))  # type: ignore[type-var]
    assert [(r["status"], r["error"]) for r in records(report) if r["line"] == 1] == [("cancelled", reason)]
    assert {r["status"] for r in records(report) if r["line"] != 1} == {"not-started"}
    [run] = runs(report)
    assert (run["ended"], run["reason"], run["totals"]) == ("interrupted", reason, {"cancelled": 1, "not-started": 20})
    assert "interrupted: 1 cancelled, 20 not-started" in err


def test_a_run_record_says_how_the_run_was_set_up_and_how_it_ended(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path
) -> None:
    urls = [server.route("/a", srv.body(b"x")), "ftp://nope"]
    assert fetcher(url_list(tmp_path, *urls), "--max", "2", "--acquire-timeout", "5", "-q", "-d", dest) == 1
    [run] = runs(dest / "fetcher-report.jsonl")
    assert run["ended"] == "finished" and run["reason"] is None
    assert run["totals"] == {"ok": 1, "invalid": 1} and run["bytes"] == 1
    options = cast(dict[str, object], run["options"])  # a JSON object
    assert (options["max"], options["acquire_timeout"], options["dest"]) == (2, 5.0, str(dest.resolve()))
    assert options["list"] == str((tmp_path / "urls.txt").resolve())
    assert [r["run_id"] for r in records(dest / "fetcher-report.jsonl")] == [run["run_id"]] * 2


def test_an_adaptive_run_records_each_hosts_limit(server: srv.LoopbackServer, tmp_path: Path, dest: Path) -> None:
    urls = [server.route(f"/a{n}", srv.body(b"x")) for n in range(5)]
    assert fetcher(url_list(tmp_path, *urls), "--max", "4", "--adaptive", "-q", "-d", dest) == 0
    [run] = runs(dest / "fetcher-report.jsonl")
    assert cast(dict[str, object], run["options"])["adaptive"] is True
    [(host, pace)] = cast(dict[str, dict[str, Any]], run["adaptive"]).items()
    assert f"http://{host}" == server.base and pace["cap"] == 4 and pace["limits"][0][1] == 2
    assert pace["limits"][0][0] >= 0.0


def test_a_run_without_adaptive_records_no_limits(server: srv.LoopbackServer, tmp_path: Path, dest: Path) -> None:
    assert fetcher(url_list(tmp_path, server.route("/a", srv.body(b"x"))), "-q", "-d", dest) == 0
    [run] = runs(dest / "fetcher-report.jsonl")
    assert run["adaptive"] == {} and cast(dict[str, object], run["options"])["adaptive"] is False


def test_a_cluster_run_records_its_redis_without_the_password(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, redis_server: str, cluster_name: str
) -> None:
    # The test server asks for none: its default user takes any password given with its name (redis-py 5.0
    # sends a password alone as AUTH hunter2, which the server refuses).
    with_password = redis_server.replace("redis://", "redis://default:hunter2@")
    listed = url_list(tmp_path, server.route("/a", srv.body(b"x")))
    assert fetcher(listed, "--redis", with_password, "--cluster", cluster_name, "-q", "-d", dest) == 0
    [run] = runs(dest / "fetcher-report.jsonl")
    options = cast(dict[str, object], run["options"])
    assert (options["redis"], options["cluster"]) == (redis_server, cluster_name)
    assert "hunter2" not in (dest / "fetcher-report.jsonl").read_text()


def test_a_fetcher_with_other_limits_than_its_cluster_is_one_usage_error_naming_them(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, redis_server: str, cluster_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    listed = url_list(tmp_path, server.route("/a", srv.body(b"x")))
    cluster = ["--redis", redis_server, "--cluster", cluster_name, "--max", "4"]
    with Fetcher(dest=tmp_path / "first", max_concurrent=4, rate=5.0, redis=redis_server, cluster=cluster_name):
        assert fetcher(listed, *cluster, "--rate", "6", "-q", "-d", dest) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == (f"fetcher: error: cluster '{cluster_name}' runs with --rate 5 (this fetcher: 6); "
                    "every fetcher of a cluster must give the same limits")  # fmt: skip


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--cluster", "c"], "redis and cluster (--redis URL, --cluster NAME) go together: give both, or neither"),
        (
            ["--redis", "redis://127.0.0.1:1/0", "--cluster", "c"],
            "cannot use Redis at redis://127.0.0.1:1/0: Error 111 connecting to 127.0.0.1:1. Connection refused.",
        ),
    ],
)
def test_a_cluster_that_cannot_work_is_one_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], line: str
) -> None:
    assert_refused(tmp_path, capsys, args, line)


def test_partial_files_left_by_a_killed_run_are_removed_and_the_summary_says_so(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (dest / f".fetcher-{dead.pid}-abc.part").write_bytes(b"x" * 3000)  # its writer is gone, nothing can resume it
    assert fetcher(url_list(tmp_path, server.route("/a", srv.body(b"x"))), "-d", dest) == 0
    err = capsys.readouterr().err
    assert "fetcher: removed 1 partial file (2.9 KiB) left by an interrupted run" in err
    [run] = runs(dest / "fetcher-report.jsonl")
    assert run["cleanup"] == {"removed": 1, "removed_bytes": 3000, "kept": 0, "kept_bytes": 0}


# -- cron-grade runs --------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_run_stopped_mid_download_is_resumed_by_the_next(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, signum: int
) -> None:
    body = bytes(range(256)) * (8 << 12)  # 8 MiB
    url = server.route("/big.iso", srv.Resource(body, rate=6 << 20))
    urls = url_list(tmp_path, url)
    process = spawn(urls, "-d", dest)
    deadline = time.monotonic() + 15
    while server.bytes_sent["/big.iso"] < 5 << 20 and time.monotonic() < deadline:  # about 60%
        time.sleep(0.02)
    os.kill(process.pid, signum)
    process.communicate(timeout=15)
    assert [p.name for p in dest.glob(".fetcher-*.part")], "the partial file was not kept"
    sent_before = server.bytes_sent["/big.iso"]
    assert fetcher(urls, "-d", dest, "-q") == 0
    assert (dest / "big.iso").read_bytes() == body
    assert server.bytes_sent["/big.iso"] - sent_before < len(body) // 2
    [last] = [r for r in records(dest / "fetcher-report.jsonl") if r["status"] == "ok"]
    # The socket buffers held some of what the server had sent when the run stopped.
    assert isinstance(last["resumed_from"], int) and last["resumed_from"] >= 4 << 20
    assert list(dest.glob(".fetcher-*.part")) == []


def test_two_overlapping_runs_leave_the_state_consistent(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path
) -> None:
    urls = url_list(tmp_path, *(server.route(f"/f{n}", srv.Resource(b"x" * n)) for n in range(40)))
    runs = [spawn(urls, "-d", dest, "-q", "--max", "4") for _ in range(2)]
    assert [p.communicate(timeout=30) and p.returncode for p in runs] == [0, 0]
    assert fetcher(urls, "-d", dest, "-q") == 0
    statuses = [r["status"] for r in records(dest / "fetcher-report.jsonl")]
    assert statuses[-40:] == ["unchanged"] * 40
    with sqlite3.connect(dest / DEFAULT_STATE_NAME) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_rerun_with_nothing_new_prints_nothing_with_quiet(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = url_list(tmp_path, server.route("/rfc791.txt", srv.Resource(b"ip")))
    assert fetcher(urls, "-d", dest, "-q") == 0
    assert fetcher(urls, "-d", dest) == 0
    assert "unchanged       http" in capsys.readouterr().err
    assert fetcher(urls, "-d", dest, "-q") == 0
    assert capsys.readouterr().err == ""


def test_the_summary_counts_urls_that_worked_after_a_retry(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flaky = srv.faulty([srv.status(503, headers={"Retry-After": "0"})], then=srv.body(b"x"))
    assert fetcher(url_list(tmp_path, server.route("/f", flaky)), "-d", dest) == 0
    err = capsys.readouterr().err
    assert "1 ok, 1 after a retry" in err and "2 attempts" in err
    [record] = records(dest / "fetcher-report.jsonl")
    assert (record["attempts"], record["error"]) == (2, None)


def test_force_with_skip_existing_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher(url_list(tmp_path, "http://x/y"), "--force", "--skip-existing") == 2
    assert "--force and --skip-existing cannot be used together" in capsys.readouterr().err


def test_a_state_file_that_is_not_a_database_is_a_usage_error(
    tmp_path: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "state.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    assert fetcher(url_list(tmp_path, "http://x/y"), "-d", dest / "deeper", "--state", junk) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a SQLite database" in err
    assert not dest.exists()  # the folders this run made are gone with it


def test_option_lines_in_the_list_check_the_file(server: srv.LoopbackServer, tmp_path: Path, dest: Path) -> None:
    url = server.route("/f", srv.body(b"tampered"))
    good = server.route("/g", srv.body(b"fine"))
    wrong = "0" * 64
    urls = url_list(tmp_path, url, f"  checksum=sha-256={wrong}", good, "  out=renamed.txt")
    assert fetcher(urls, "-d", dest) == 1
    by_line = {r["line"]: r for r in records(dest / "fetcher-report.jsonl")}
    assert by_line[1]["status"] == "failed" and str(by_line[1]["error"]).startswith("checksum mismatch")
    assert by_line[3]["status"] == "ok" and (dest / "renamed.txt").read_bytes() == b"fine"


# -- bounds -----------------------------------------------------------------------------------


def test_a_deadline_that_cuts_the_run_exits_4_and_says_why(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = [server.route("/slow", srv.body(b"x", delay=5)), *(server.route(f"/n{i}", srv.body(b"x")) for i in range(3))]
    assert fetcher(url_list(tmp_path, *urls), "-d", dest, "--max", "1", "--deadline", "0.5s", "-q") == 4
    err = capsys.readouterr().err
    assert not any(line.startswith("not-started") for line in err.splitlines())  # counted, not a line each
    assert "stopped early (the --deadline of 0.5s passed) after 4 URLs: 1 cancelled, 3 not-started" in err
    statuses = [cast(str, r["status"]) for r in records(dest / "fetcher-report.jsonl")]
    assert sorted(statuses) == ["cancelled", "not-started", "not-started", "not-started"]


def test_a_failure_outranks_a_cut_short_run(server: srv.LoopbackServer, tmp_path: Path, dest: Path) -> None:
    urls = [server.route("/gone", srv.body(b"", status=404)), server.route("/slow", srv.body(b"x", delay=5))]
    assert fetcher(url_list(tmp_path, *urls), "-d", dest, "--max", "1", "--deadline", "1", "-q") == 1


def test_shared_slots_in_use_with_another_count_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SharedGate("jobs", 2, directory=tmp_path / "slots"):
        code = fetcher(url_list(tmp_path, "http://127.0.0.1:9/x"), "--max", "3", "-d", tmp_path / "out",
                       "--shared-slots", tmp_path / "slots" / "jobs")  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "in use with 2 slots; this run asks for 3" in err
    assert not (tmp_path / "out").exists()  # nor the state database the run had opened in it


def test_the_politeness_options_reach_the_downloads(server: srv.LoopbackServer, tmp_path: Path, dest: Path) -> None:
    urls = [server.route(f"/p{i}", srv.body(b"x", delay=0.05)) for i in range(6)]
    code = fetcher(url_list(tmp_path, *urls), "--max", "4", "--max-per-host", "1", "--rate", "600/m",
                   "--limit-rate", "1M", "--shared-slots", tmp_path / "slots" / "cli", "-q", "-d", dest)  # fmt: skip
    assert code == 0
    assert server.max_in_flight == 1
    assert server.max_in_any_window(0.5) <= 6  # 10/s: at most 5 + 1 in any half second
    url_records = records(dest / "fetcher-report.jsonl")
    assert {record["waited_on"] for record in url_records[1:]} <= {"host", "rate", "shared"}


# -- slots shared by several processes ------------------------------------------------


@pytest.mark.parametrize("processes", [2, 4])
def test_fetchers_sharing_slots_never_run_more_downloads_together_than_the_slots(
    server: srv.LoopbackServer, tmp_path: Path, processes: int
) -> None:
    overlap = srv.Overlap(0.1)
    spawned = []
    for number in range(processes):
        folder = tmp_path / f"job{number}"
        folder.mkdir()
        urls = [server.route(f"/job{number}/{i}", overlap) for i in range(5)]
        spawned.append(spawn(url_list(folder, *urls), "--max", "2", "--shared-slots", tmp_path / "slots" / "jobs",
                             "-q", "-d", folder / "out"))  # fmt: skip
    for process in spawned:
        assert process.wait(60) == 0, process.communicate()
    assert overlap.most == 2


def test_a_killed_fetcher_gives_its_shared_slots_back_within_a_second(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    shared = tmp_path / "slots" / "jobs"
    slow = [server.route(f"/slow{i}", srv.stalled(b"x", claimed=1000, stall=8)) for i in range(2)]
    (tmp_path / "a").mkdir()
    holder = spawn(url_list(tmp_path / "a", *slow), "--max", "2", "--shared-slots", shared, "-q", "-d", tmp_path / "a")
    try:
        for _ in range(200):  # bounded: both requests reach the server within a few seconds
            if server.requests["/slow0"] and server.requests["/slow1"]:
                break
            time.sleep(0.05)
        assert server.requests["/slow0"] and server.requests["/slow1"]
        (tmp_path / "b").mkdir()
        waiter = spawn(url_list(tmp_path / "b", server.route("/next", srv.body(b"n"))), "--max", "2",
                       "--shared-slots", shared, "-q", "-d", tmp_path / "b")  # fmt: skip
        for _ in range(200):  # bounded: it shows as waiting once it has waited 50 ms
            snapshot = read_slots(shared.name, shared.parent)
            if snapshot is not None and any(w.pid == waiter.pid for w in snapshot.waiters):
                break
            time.sleep(0.05)
        assert not server.requests["/next"]
        killed = time.monotonic()
        holder.kill()
        assert waiter.wait(30) == 0
        [hit] = [hit for hit in server.log if hit.path == "/next"]
        assert hit.started - killed < 1.0
    finally:
        holder.kill()
        holder.wait(10)


def test_a_report_on_a_full_disk_loses_records_not_downloads_and_exits_1(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, small_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (small_disk / "filler").write_bytes(b"x" * (60 << 10))  # leaves about 4 KiB: room for a dozen records
    urls = [server.route(f"/f{n}", srv.body(b"x")) for n in range(40)]
    report = small_disk / "report.jsonl"
    assert fetcher(url_list(tmp_path, *urls), "-q", "-d", dest, "--report", report) == 1
    assert len(listing(dest)) == 40  # every download went on
    lines = report.read_text().splitlines()
    assert 0 < len(lines) < 41 and all(json.loads(line) for line in lines)  # whole records only
    err = capsys.readouterr().err
    assert f"cannot write the report {report}: No space left on device; " in err


def test_a_stop_records_the_last_url_of_a_pipe_that_stays_open(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path
) -> None:
    # The last URL read waits for its option lines, that is for the next URL line, which never comes.
    urls = [server.route(f"/{name}", srv.body(b"x")) for name in "abc"]
    process = subprocess.Popen(
        [sys.executable, "-m", "fetcher", "-", "-d", dest, "-q"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    process.stdin.write("".join(f"{url}\n" for url in urls))
    process.stdin.flush()  # and left open
    for _ in range(200):  # bounded: the first two are done within a second or two
        if server.requests["/a"] and server.requests["/b"]:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(20) == 143
    finally:
        process.stdin.close()
        process.kill()
    assert sorted((r["line"], r["status"]) for r in records(dest / "fetcher-report.jsonl")) == [
        (1, "ok"),
        (2, "ok"),
        (3, "not-started"),
    ]


def test_a_report_that_took_no_record_is_neither_left_empty_nor_named_in_the_summary(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, small_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (small_disk / "filler").write_bytes(b"x" * (64 << 10))  # not a byte left
    report = small_disk / "report.jsonl"
    assert fetcher(url_list(tmp_path, server.route("/a", srv.body(b"x"))), "-d", dest, "--report", report) == 1
    assert not report.exists()
    err = capsys.readouterr().err
    assert f"cannot write the report {report}: No space left on device; 2 records not written" in err
    assert "report:" not in err.splitlines()[-1]


def test_a_stop_with_nothing_left_to_start_does_not_say_it_records_urls_not_started(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path
) -> None:
    stalled = server.route("/stalled.iso", srv.stalled(b"x" * 1000, claimed=10_000_000, stall=8))
    process = spawn(url_list(tmp_path, stalled), "-d", dest, "--timeout", "20")
    for _ in range(300):  # bounded: the download starts within seconds
        if download_started(server, "/stalled.iso", dest):
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=15)
    assert process.returncode == 143
    assert "terminated (SIGTERM): stopping the downloads in flight (again to quit at once)" in err
    assert "not started" not in err and "not-started" not in err


def test_sigterm_hangs_up_a_request_waiting_for_its_headers_at_once(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path
) -> None:
    url = server.route("/held.iso", srv.held_headers())
    process = spawn(url_list(tmp_path, url), "-d", dest, "--timeout", "20")
    for _ in range(300):  # bounded: the request comes within seconds
        if server.requests["/held.iso"]:
            break
        time.sleep(0.05)
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 143
    assert time.monotonic() - began < 3  # not the --timeout of 20 s
    assert [(r["status"], r["error"]) for r in records(dest / "fetcher-report.jsonl")] == [
        ("cancelled", "terminated (SIGTERM)")
    ]


# -- durations, and options as wget, curl and aria2 spell them -----------------------------------------------------


def run_options(dest: Path) -> dict[str, Any]:
    """The options of the one run recorded in DEST's report."""
    [run] = [record for record in everything(dest / "fetcher-report.jsonl") if record.get("record") == "run"]
    return dict(run["options"])


def test_every_time_option_takes_a_duration_and_the_run_record_keeps_seconds(tmp_path: Path, dest: Path) -> None:
    times = ["--max-time", "1h", "--deadline", "23h", "--timeout", "1m30", "--acquire-timeout", "0",
             "--retry-wait-max", "2m", "--retry-after-max", "1d", "--speed-time", "1h30m"]  # fmt: skip
    assert fetcher(url_list(tmp_path, "junk"), "-d", dest, "-q", *times) == 1
    options = run_options(dest)
    recorded = {name: options[name] for name in ("max_time", "deadline", "timeout", "acquire_timeout", "speed_time")}
    assert recorded == {"max_time": 3600, "deadline": 82800, "timeout": 90, "acquire_timeout": 0, "speed_time": 5400}


@pytest.mark.parametrize(
    ("args", "retries"),
    [(["-t", "5"], 4), (["--tries", "1"], 0), (["-t", "5", "--retries", "1"], 1), (["--retries", "1", "-t", "5"], 4)],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_tries_counts_every_attempt_as_wget_does_and_the_last_given_wins(
    tmp_path: Path, dest: Path, args: list[str], retries: int
) -> None:
    assert fetcher(url_list(tmp_path, "junk"), "-d", dest, "-q", *args) == 1
    assert run_options(dest)["retries"] == retries


def test_wget_and_aria2_spellings_of_dest_and_max_are_aliases(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path
) -> None:
    url = server.route("/a.txt", srv.body(b"x"))
    assert fetcher(url_list(tmp_path, url), "-P", dest, "-j", "2", "-q") == 0
    assert (dest / "a.txt").read_bytes() == b"x"
    assert run_options(dest)["max"] == 2


@pytest.mark.parametrize("flag", ["-O", "--output", "--output-document"])
def test_output_names_the_file_of_the_one_url_given(
    server: srv.LoopbackServer, dest: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    url = server.route("/download", srv.body(b"iso")) + "?id=7"
    assert fetcher(url, flag, "name.iso", "-d", dest) == 0
    assert (dest / "name.iso").read_bytes() == b"iso"
    assert "-> name.iso" in capsys.readouterr().err


def test_continue_and_timestamping_are_accepted_and_said_to_be_always_on(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server.route("/a.txt", srv.body(b"x"))
    assert fetcher(url_list(tmp_path, url), "-c", "-N", "--continue", "-d", dest) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        "fetcher: --continue and --timestamping are always on: fetcher resumes partial downloads, "
        "and asks the server only for what changed since the last run"
    )
    assert not any("always on" in line for line in err[1:])


def test_continue_and_timestamping_print_nothing_under_quiet(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server.route("/a.txt", srv.body(b"x"))
    assert fetcher(url_list(tmp_path, url), "-c", "-N", "-q", "-d", dest) == 0
    assert capsys.readouterr().err == ""  # a cron run stays silent on success


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["-nc"], "no such option: -nc (wget's --no-clobber: use --skip-existing, which never requests a URL whose "
         "file already exists)"),
        (["--no-clobber"], "no such option: --no-clobber (wget's -nc: use --skip-existing, which never requests a URL "
         "whose file already exists)"),
        (["-o", "x.iso"], "no such option: -o (curl's -o FILE names the file: use -O FILE; wget's -o LOGFILE keeps a "
         "log: use 2>>LOGFILE for fetcher's messages, and --report for a record per URL)"),
        (["--output-file", "log"], "no such option: --output-file (wget's log file: use 2>>FILE for fetcher's "
         "messages, and --report for a record per URL)"),
        (["-O", "x.iso"], "--output names the file of one URL given as the argument, not of the URLs in '{list}' (in "
         "a URL list, write out=NAME under a URL)"),
        (["-O", "-"], "--output - (standard output) is not supported: fetcher writes each URL to a file in DEST"),
        (["-O", "sub/x.iso"], "--output takes a file name, not a path ('sub/x.iso'): give the folder with --dest"),
        (["-O", "https://example.org/x.iso"], "--output takes a file name, not a URL: to name the file after the URL, "
         "as curl's -O does, leave it out (fetcher always does that)"),
        (["-t", "0"], "--tries must be a whole number from 1 to 101 (every attempt, as wget counts them: -t 4 is "
         "--retries 3; fetcher never retries forever), not 0"),
        (["-N", "--force"], "--timestamping and --force cannot be used together (--force downloads every URL in full)"),
        (["-c", "--force"], "--continue and --force cannot be used together (--force downloads every URL in full)"),
        (["--skip-existing", "-N"], "--timestamping and --skip-existing cannot be used together (--skip-existing "
         "never asks about a file that exists)"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)  # fmt: skip
def test_other_tools_options_that_do_not_fit_are_refused_saying_what_to_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], line: str
) -> None:
    assert_refused(tmp_path, capsys, args, line)


def test_a_list_typed_on_a_terminal_is_read_to_its_end_before_anything_starts(
    server: srv.LoopbackServer, dest: Path
) -> None:
    url, second = server.route("/typed.txt", srv.body(b"x")), server.route("/second.txt", srv.body(b"x"))
    controller, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "fetcher", "-", "-d", str(dest)],
                               stdin=terminal, stdout=terminal, stderr=terminal)  # fmt: skip
    os.close(terminal)
    try:
        os.write(controller, f"{url}\n{second}\n".encode())
        time.sleep(1.0)  # time enough to start a download, were the list not still being typed
        assert not server.requests["/typed.txt"]
        os.write(controller, b"\x04")  # Ctrl-D, once
        assert process.wait(timeout=20) == 0
        assert server.requests["/typed.txt"] and (dest / "typed.txt").exists()
    finally:
        process.kill()
        process.wait()
        os.close(controller)


def test_many_threads_on_many_hosts_never_run_out_of_file_descriptors(tmp_path: Path) -> None:
    # 16 threads each keeping an idle connection to 8 hosts would hold 128 sockets: the whole limit.
    hosts = [srv.LoopbackServer().start() for _ in range(8)]
    try:
        for host in hosts:
            host.route("/f", srv.body(b"x" * 100))
        listed = tmp_path / "urls.txt"
        listed.write_text("".join(f"{hosts[i % 8].url('/f')}?{i}\n" for i in range(320)))

        # Soft and hard: the command cannot raise it.
        limited = "import resource, runpy; resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128)); " \
                  "runpy.run_module('fetcher', run_name='__main__')"  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-c", limited, listed, "--max", "16", "--workers", "0", "--dest", tmp_path / "dl",
             "--quiet", "--no-progress"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        for host in hosts:
            host.stop()
    assert (done.returncode, done.stderr) == (0, "")
    assert sum(host.requests["/f"] for host in hosts) == 320
