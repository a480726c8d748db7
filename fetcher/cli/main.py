"""The ``fetcher`` command group: which command runs, and how any error becomes one line and an exit status.

``fetcher URL_LIST`` predates the subcommands and keeps working: when the first
argument is not the name of a command, the arguments go to ``get``.  It is not
any command's options or work: those live in a module per command.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Iterable
from types import FrameType
from typing import TYPE_CHECKING

import click

from .._errors import ConfigError, FetcherError, URLListError
from .._openfiles import raise_soft_limit
from .._text import escape
from .cluster import NoCommandGiven, cluster_group, enqueue, work
from .exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, EXIT_USAGE, Terminated
from .get import get
from .params import option_name
from .report import report
from .slots import slots
from .stderr import say

# Every name here is taken: a URL list file with one of them as its path must
# be given as ./NAME, `fetcher get NAME` or `fetcher -- NAME`.
COMMANDS: dict[str, click.Command] = {
    "get": get, "report": report, "slots": slots, "enqueue": enqueue, "work": work, "cluster": cluster_group,
}  # fmt: skip
DEFAULT_COMMAND = "get"

if TYPE_CHECKING:
    from click.exceptions import NoArgsIsHelpError as _ShowsHelp
else:
    # A group given no command: click 8.2 raises this, and main() prints the help with exit status 2.
    # click 8.1, which pyproject allows, has none: fetcher's one group checks for itself (NoCommandGiven).
    _ShowsHelp = getattr(click.exceptions, "NoArgsIsHelpError", None) or type("_NeverRaised", (Exception,), {})


class _Commands(click.Group):
    """A group whose default command may be left out."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Only the first argument decides, so `fetcher --max 3 slots` still
        # downloads the list named slots, and `-h`, `--version` and `--` (which
        # are not command names) go to get as they always did.
        if not args or args[0] not in self.commands:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # the default first, then in the order they were added

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_commands(ctx, formatter)
        names = ", ".join(self.commands)
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text(
                f"'{DEFAULT_COMMAND}' may be left out. Each command has its own --help. To read a URL list "
                f"whose name is a command ({names}), write it as ./NAME, or after '{DEFAULT_COMMAND}' or '--'."
            )


cli = _Commands(
    "fetcher",
    commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def _hint(ctx: click.Context | None) -> str:
    """Where to read more: the download command's help is the group's, so it keeps today's hint."""
    if ctx is None or ctx.parent is None or ctx.info_name == DEFAULT_COMMAND:
        return " (see 'fetcher --help')"
    return f" (see '{ctx.command_path} --help')"


def usage_line(exc: click.UsageError) -> str:
    """click's error in fetcher's words: lower case, the option as typed, a next step where there is one.

    The command's own value types (params.py) already speak so; this rewords
    what click itself raises (an unknown option, a missing value or argument,
    click's built-in types in other commands).
    """
    # click's parser raises some errors with no context, so no way to tell which command's help to name.
    hint = "" if exc.ctx is None else _hint(exc.ctx)
    if isinstance(exc, click.NoSuchOption):
        likely = _likely(exc.option_name, exc.possibilities or ())
        if likely:
            return f"no such option: {exc.option_name} (did you mean {' or '.join(likely)}?)"
        return f"no such option: {exc.option_name}{hint}"
    if isinstance(exc, click.MissingParameter):
        return f"missing {option_name(exc.param)}{hint}"
    if isinstance(exc, click.BadParameter):
        if exc.message.startswith(option_name(exc.param)):
            return exc.message  # fetcher's own wording (params.py)
        return _bad_value(exc)
    message = exc.message
    needs = _NEEDS_VALUE.fullmatch(message)
    if needs:
        return f"{needs[1]} needs a value{hint}"
    takes_none = _TAKES_NO_VALUE.fullmatch(message)
    if takes_none:
        return f"{takes_none[1]} takes no value{hint}"
    extra = _EXTRA.fullmatch(message)
    if extra:
        return f"unexpected extra argument {extra[1]}{hint}"
    return _lower(message)


def _likely(typed: str, possibilities: Iterable[str]) -> list[str]:
    """Those of click's suggestions that *typed* could be a typo of, closest first.

    click offers whatever looks alike (--timestamping: --skip-existing or
    --timeout); a typo is at most one slip per four letters of the option
    (a letter left out, added, changed, or two swapped), and no fewer than one.
    """
    word = typed.lstrip("-")
    slips = {name: _slips(word, name.lstrip("-")) for name in possibilities}
    close = [name for name, count in slips.items() if count <= max(1, len(name.lstrip("-")) // 4)]
    return sorted(close, key=lambda name: (slips[name], name))


def _slips(a: str, b: str) -> int:
    """The fewest letters left out, added, changed or swapped with the next that turn *a* into *b*."""
    before: list[int] = []  # the row two letters of *a* back, for a swap
    previous = list(range(len(b) + 1))
    for i, char in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, other in enumerate(b, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (char != other))
            if i > 1 and j > 1 and char == b[j - 2] and a[i - 2] == other:
                row[j] = min(row[j], before[j - 2] + 1)
        before, previous = previous, row
    return previous[-1]


_NEEDS_VALUE = re.compile(r"Option '(.+)' requires an argument\.?")
_TAKES_NO_VALUE = re.compile(r"Option '(.+)' does not take a value\.?")
_EXTRA = re.compile(r"Got unexpected extra arguments? \((.*)\)\.?")
_CLICK_VALUE = re.compile(r"(.*?) is not (?:a valid [\w ]+|in the range .*)\.?")


def _bad_value(exc: click.BadParameter) -> str:
    """A bad value for one of click's own types, said as params.py says it."""
    name, kind = option_name(exc.param), None if exc.param is None else exc.param.type
    value = _CLICK_VALUE.fullmatch(exc.message)
    if value and isinstance(kind, (click.IntRange, click.FloatRange)):
        return f"{name} must be {_range(kind)}, not {value[1]}"
    if value and isinstance(kind, (click.types.IntParamType, click.types.FloatParamType)):
        what = "a whole number" if isinstance(kind, click.types.IntParamType) else "a number"
        return f"{name} must be {what}, not {value[1]}"
    return f"{name}: {_lower(exc.message)}"


def _range(kind: click.IntRange | click.FloatRange) -> str:
    what = "a whole number" if isinstance(kind, click.IntRange) else "a number"
    low, high = kind.min, kind.max
    if low is not None and high is not None and not kind.min_open and not kind.max_open:
        return f"{what} from {low:g} to {high:g}"
    bounds = []
    if low is not None:
        bounds.append(f"above {low:g}" if kind.min_open else f"{low:g} or more")
    if high is not None:
        bounds.append(f"below {high:g}" if kind.max_open else f"at most {high:g}")
    return f"{what} {' and '.join(bounds)}"


def _lower(message: str) -> str:
    """click's sentence as one of fetcher's: no capital (unless an acronym), no full stop."""
    message = message.rstrip(".")
    if message[:2].istitle():
        message = message[0].lower() + message[1:]
    return message


def main(argv: list[str] | None = None) -> None:
    """Run a command; turn every error into one line and an exit status."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = cli.main(args=argv, prog_name="fetcher", standalone_mode=False)
    except (_ShowsHelp, NoCommandGiven) as exc:
        say(exc.ctx.get_help() if exc.ctx else str(exc))
        code = EXIT_USAGE
    except click.UsageError as exc:
        say(f"fetcher: error: {escape(usage_line(exc))}")
        code = EXIT_USAGE
    except (URLListError, ConfigError) as exc:
        say(f"fetcher: error: {escape(str(exc))}")
        code = EXIT_USAGE
    except FetcherError as exc:
        say(f"fetcher: error: {escape(str(exc))}")
        code = EXIT_FAILED
    except click.exceptions.Abort:
        code = EXIT_INTERRUPTED
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except Terminated:
        code = EXIT_TERMINATED
    finally:
        signal.signal(signal.SIGTERM, previous)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


#: The soft limit on open files the command raises its own to, as far as the hard limit allows: enough for
#: the download threads of a process to keep idle connections to many hosts (transfer/session.py's hosts_kept).
#: Its worker processes inherit it; the library leaves the limit to its caller.
WANTED_DESCRIPTORS = 8192


def entry() -> None:
    """The console script and ``python -m fetcher``: main(), then a fast exit.

    By the time main() returns, the report and the display are closed and
    the workers are stopped; what is left is interpreter teardown (freeing
    every object, closing idle connections one by one), which takes 50 to
    100 ms with many threads and changes nothing the OS does not do anyway.
    """
    raise_soft_limit(WANTED_DESCRIPTORS)
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else EXIT_OK
    else:
        code = EXIT_OK
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
