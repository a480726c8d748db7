"""README.md: every fetcher command line in it parses with the real options, so the README cannot drift from the CLI.

The command lines are found in code blocks and in inline code; each goes
through fetcher's own main() (command dispatch, click's parser, fetcher's
value types and option callbacks), with only the commands' bodies replaced,
so nothing is downloaded or read.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from fetcher.cli.main import COMMANDS, main

README = Path(__file__).resolve().parent.parent / "README.md"

_FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.DOTALL | re.MULTILINE)
_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
#: What may come before fetcher on a line: other commands and their plain words (`producer | `, a cron schedule,
#: `cd /srv/rfc && flock -n .fetcher.lock`), not prose such as an error message that quotes a command.
_SHELL_WORDS = re.compile(r"[\w./~*=+:-]+(?:\s+[\w./~*=+:-]+)*")
_OPERATOR = re.compile(r"\s+(?:\||&&|;)\s+")
#: The placeholders of the synopsis, as values the options take.
_SAMPLES = {
    "URL_LIST": "urls.txt", "REPORT": "fetcher-report.jsonl", "NAME": "mirror", "RUN_ID": "20240501T120000Z-5a1d0c",
    "FILE": "report.html", "PATH": "report.jsonl", "DIR": "rfcs", "N": "3", "R": "2", "SIZE": "1M",
    "SECONDS": "90", "DURATION": "15m",
}  # fmt: skip


def _candidates(text: str) -> Iterator[str]:
    """Each line of a code block, and each inline code span (on one line)."""
    for block in _FENCE.findall(text):
        yield from block.splitlines()
    for paragraph in re.split(r"\n[ \t]*\n", _FENCE.sub("", text)):
        for span in _SPAN.finditer(paragraph):
            yield " ".join(span[2].split())


def _command_line(candidate: str) -> str | None:
    """The fetcher command in *candidate*, from the program on, or None."""
    # The synopsis: [options] stands for all of them; [A | B] and [A] are written out.
    line = re.sub(r"\[([^\]]*)\]", lambda m: "" if m[1] == "options" else m[1].replace(" | ", " "), candidate)
    line = line.removeprefix("$ ")
    before = ""
    for segment in _OPERATOR.split(line):
        words = segment.split()
        for i, word in enumerate(words):
            is_program = word.endswith("/fetcher") or (i == 0 and word == "fetcher")
            if is_program and _SHELL_WORDS.fullmatch(f"{before} {' '.join(words[:i])}".strip() or "x"):
                return "fetcher " + " ".join(words[i + 1 :])
        before = f"{before} {segment}"
    return None


_REDIRECTION = re.compile(r"\d*(?:>>?|<)(?:&\d+|\S+)")


def readme_commands() -> list[list[str]]:
    """Every fetcher command line in the README, as arguments, placeholders filled in.

    A bare command name (`fetcher report`) names the command; it is no command line.
    """
    found: dict[str, list[str]] = {}
    for candidate in _candidates(README.read_text(encoding="utf-8")):
        line = _command_line(candidate)
        if line is None:
            continue
        # Redirections (2>&1, 2>>log) are the shell's, not fetcher's.
        args = [_SAMPLES.get(arg, arg) for arg in shlex.split(line)[1:] if not _REDIRECTION.fullmatch(arg)]
        if args and not (len(args) == 1 and args[0] in COMMANDS):
            found.setdefault(line, args)
    return list(found.values())


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Each command's body replaced by one that keeps what it was given: the options, parsed."""
    calls: list[tuple[str, dict[str, Any]]] = []
    for name, command in COMMANDS.items():

        def body(_name: str = name, **params: Any) -> int:
            calls.append((_name, params))
            return 0

        monkeypatch.setattr(command, "callback", body)
    return calls


def test_the_readme_has_command_lines_the_cron_line_among_them() -> None:
    commands = readme_commands()
    assert len(commands) >= 10
    assert any("--deadline" in args and "--quiet" in args for args in commands)


@pytest.mark.parametrize("args", readme_commands(), ids=" ".join)
def test_each_command_line_of_the_readme_parses(
    parsed: list[tuple[str, dict[str, Any]]], capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert (exit_info.value.code or 0, capsys.readouterr().err) == (0, "")
    assert len(parsed) == 1 or args[0] in ("--help", "-h", "--version", "-V")


def test_the_cron_line_gives_its_durations_in_seconds(parsed: list[tuple[str, dict[str, Any]]]) -> None:
    cron = next(args for args in readme_commands() if "--deadline" in args and "--quiet" in args)
    with pytest.raises(SystemExit):
        main(cron)
    [(command, params)] = parsed
    assert (command, params["max_time"], params["deadline"]) == ("get", 3600.0, 82800.0)


def _option_names(command: click.Command) -> set[str]:
    return {name for param in command.params for name in [*param.opts, *param.secondary_opts]} | {"-h", "--help"}


def test_every_option_in_the_readmes_option_table_is_an_option_of_get() -> None:
    text = README.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `-")]
    named = {span.split()[0].rstrip(",") for row in rows for span in re.findall(r"`(-[^`]+)`", row.split(" | ")[0])}
    assert len(named) > 20
    assert named - _option_names(COMMANDS["get"]) == set()
