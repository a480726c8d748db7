"""The ``fetcher`` command group: which command runs, and how any error becomes one line and an exit status.

``fetcher URL_LIST`` predates the subcommands and keeps working: when the first
argument is not the name of a command, the arguments go to ``get``.  It is not
any command's options or work: those live in a module per command.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

import click

from .._errors import ConfigError, FetcherError, URLListError
from .._text import escape
from .exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, EXIT_USAGE, Terminated
from .get import get
from .slots import slots

# Every name here is taken: a URL list file with one of them as its path must
# be given as ./NAME, `fetcher get NAME` or `fetcher -- NAME`.
COMMANDS: dict[str, click.Command] = {"get": get, "slots": slots}
DEFAULT_COMMAND = "get"


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


def main(argv: list[str] | None = None) -> None:
    """Run a command; turn every error into one line and an exit status."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = cli.main(args=argv, prog_name="fetcher", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc), err=True)
        code = EXIT_USAGE
    except click.UsageError as exc:
        click.echo(f"fetcher: error: {escape(exc.format_message())}{_hint(exc.ctx)}", err=True)
        code = EXIT_USAGE
    except (URLListError, ConfigError) as exc:
        click.echo(f"fetcher: error: {escape(str(exc))}", err=True)
        code = EXIT_USAGE
    except FetcherError as exc:
        click.echo(f"fetcher: error: {escape(str(exc))}", err=True)
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


def entry() -> None:
    """The console script and ``python -m fetcher``: main(), then a fast exit.

    By the time main() returns, the report and the display are closed and
    the workers are stopped; what is left is interpreter teardown (freeing
    every object, closing idle connections one by one), which takes 50 to
    100 ms with many threads and changes nothing the OS does not do anyway.
    """
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else EXIT_OK
    else:
        code = EXIT_OK
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
