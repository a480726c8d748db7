"""The fetcher command: options, messages, exit codes, signals."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fetcher._cli import main
from fetcher.state import DEFAULT_STATE_NAME
from tests import server as srv


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
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "out"


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
    statuses = [row["status"] for row in records(dest / "fetcher-report.jsonl")]
    assert sorted(statuses) == ["acquire-timeout", "acquire-timeout", "ok"]


def test_failures_and_acquire_timeouts_exit_1(server: srv.LoopbackServer, tmp_path: Path, dest: Path) -> None:
    urls = [server.route("/s", srv.body(b"", status=500, delay=1.0)), server.route("/t", srv.body(b"x"))]
    assert fetcher(url_list(tmp_path, *urls), "--max", "1", "--acquire-timeout", "0.2", "-d", dest, "--retries", "0") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max", "0"], "--max"),
        (["--max", "abc"], "--max"),
        (["--max", "100000"], "--max"),
        (["--timeout", "0"], "--timeout"),
        (["--acquire-timeout", "-1"], "--acquire-timeout"),
        (["--acquire-timeout", "nan"], "acquire_timeout"),
        (["--no-such-option"], "no-such-option"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert fetcher(url_list(tmp_path, "http://127.0.0.1:9/x"), *args, "-d", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("fetcher: error:") and message in err


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
    assert "cannot write report" in capsys.readouterr().err


def test_missing_argument_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher("--max", "2") == 2
    assert "URL_LIST" in capsys.readouterr().err


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher("--help") == 0
    out = capsys.readouterr().out
    for option in ("--max", "--dest", "--acquire-timeout", "--timeout", "--report", "--progress", "--quiet"):
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


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_download_exits_cleanly_and_leaves_no_partial_file(
    server: srv.LoopbackServer, tmp_path: Path, dest: Path, signum: int, code: int
) -> None:
    url = server.route("/big.iso", srv.stalled(b"x" * 1000, claimed=10_000_000, stall=8))
    process = spawn(url_list(tmp_path, url), "-d", dest, "--timeout", "20")
    deadline = time.monotonic() + 15
    while not any(p.name.endswith(".part") for p in dest.glob(".*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(p.name.endswith(".part") for p in dest.glob(".*")), "the download never started"
    os.kill(process.pid, signum)
    _, err = process.communicate(timeout=15)
    assert process.returncode == code
    assert "Traceback" not in err and "interrupted" in err
    assert listing(dest) == ["fetcher-report.jsonl"]
