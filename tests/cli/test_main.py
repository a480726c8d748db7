"""fetcher.cli.main: the command group; `fetcher URL_LIST` still means `fetcher get URL_LIST`."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from fetcher.cli.main import COMMANDS, main
from tests import server as srv


def fetcher(*args: str | Path) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return int(exit_info.value.code or 0)


def url_list(path: Path, server: srv.LoopbackServer, name: str = "file.txt") -> Path:
    path.write_text(server.route(f"/{name}", srv.body(b"x")) + "\n")
    return path


def test_a_list_alone_is_downloaded(server: srv.LoopbackServer, tmp_path: Path) -> None:
    assert fetcher(url_list(tmp_path / "urls.txt", server), "-q", "-d", tmp_path / "out") == 0
    assert (tmp_path / "out" / "file.txt").read_bytes() == b"x"


def test_an_option_before_the_list_still_downloads_it(server: srv.LoopbackServer, tmp_path: Path) -> None:
    assert fetcher("--max", "3", "-d", tmp_path / "out", url_list(tmp_path / "urls.txt", server), "-q") == 0
    assert (tmp_path / "out" / "file.txt").exists()


def test_a_dash_reads_the_list_from_standard_input(
    server: srv.LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = server.route("/stdin.txt", srv.body(b"x"))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(f"{url}\n".encode())))
    assert fetcher("-", "-q", "-d", tmp_path / "out") == 0
    assert (tmp_path / "out" / "stdin.txt").exists()


def test_get_names_the_download_command_explicitly(server: srv.LoopbackServer, tmp_path: Path) -> None:
    assert fetcher("get", url_list(tmp_path / "urls.txt", server), "-q", "-d", tmp_path / "out") == 0
    assert (tmp_path / "out" / "file.txt").exists()


@pytest.mark.parametrize(
    "args", [["./slots", "-q"], ["get", "slots", "-q"], ["-q", "--", "slots"], ["--", "slots"]], ids=" ".join
)
def test_a_list_named_like_a_command_is_reachable(
    server: srv.LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    url_list(tmp_path / "slots", server)
    assert fetcher(*args) == 0
    assert (tmp_path / "file.txt").exists()


def test_a_command_name_first_runs_that_command_even_beside_a_file_of_that_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "slots").write_text("http://127.0.0.1:9/x\n")
    assert fetcher("slots", "pool") == 0
    assert "shared slots pool" in capsys.readouterr().out
    assert not (tmp_path / "fetcher-report.jsonl").exists()


def test_version_needs_no_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher("--version") == 0
    assert capsys.readouterr().out.startswith("fetcher, version ")


def test_help_shows_the_usage_every_command_and_every_download_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher("--help") == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: fetcher [get] URL_LIST [OPTIONS]\n")
    commands = out[out.index("Commands:") :]
    assert all(f"\n  {name} " in commands for name in COMMANDS)
    assert "./NAME" in commands
    for option in ("--max", "--dest", "--deadline", "--quota", "--report", "--quiet", "--version"):
        assert option in out


def test_an_unknown_option_still_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher("--no-such-option", "urls.txt") == 2
    assert capsys.readouterr().err == "fetcher: error: no such option: --no-such-option (see 'fetcher --help')\n"


def test_no_arguments_is_the_missing_list_error_it_always_was(capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher() == 2
    assert capsys.readouterr().err == "fetcher: error: missing URL_LIST (see 'fetcher --help')\n"


def test_a_usage_error_in_another_command_points_to_its_own_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher("slots") == 2
    assert capsys.readouterr().err == "fetcher: error: missing NAME (see 'fetcher slots --help')\n"


def test_a_group_given_no_command_prints_its_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher("cluster") == 2
    err = capsys.readouterr().err
    assert err.startswith("Usage: fetcher cluster [OPTIONS] COMMAND [ARGS]...")
    assert "status" in err and "export" in err


_WATCH = "a duration from 0.1s to 1h (2, 0.5, 30s, 5m)"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["slots", "pool", "--watch", "0"], f"--watch must be {_WATCH}, not 0"),
        (["slots", "pool", "--watch", "abc"], f"--watch must be {_WATCH}, not 'abc'"),
        (["slots", "pool", "--watch", "2h"], f"--watch must be {_WATCH}, not '2h'"),
        (["slots", "pool", "--json=yes"], "--json takes no value"),
        (["slots", "pool", "--wach", "1"], "no such option: --wach (did you mean --watch?)"),
    ],
    ids=" ".join,
)
def test_clicks_own_errors_in_another_command_are_said_in_fetchers_words(
    capsys: pytest.CaptureFixture[str], args: list[str], line: str
) -> None:
    assert fetcher(*args) == 2
    assert capsys.readouterr().err == f"fetcher: error: {line}\n"


@pytest.mark.parametrize(
    ("typed", "line"),
    [
        ("--timestampin", "no such option: --timestampin (did you mean --timestamping?)"),
        ("--quite", "no such option: --quite (did you mean --quiet?)"),
        ("--limitrate", "no such option: --limitrate (did you mean --limit-rate?)"),
        ("--skip-exist", "no such option: --skip-exist (did you mean --skip-existing?)"),
        ("--verbose", "no such option: --verbose (see 'fetcher --help')"),
        ("--header", "no such option: --header (see 'fetcher --help')"),
        ("--retry-max-time", "no such option: --retry-max-time (see 'fetcher --help')"),
    ],
    ids=lambda value: value if value.startswith("--") else "",
)
def test_did_you_mean_offers_only_what_the_option_could_be_a_typo_of(
    capsys: pytest.CaptureFixture[str], typed: str, line: str
) -> None:
    assert fetcher("urls.txt", typed) == 2
    assert capsys.readouterr().err == f"fetcher: error: {line}\n"

