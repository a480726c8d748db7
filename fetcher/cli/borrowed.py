"""Options borrowed from wget, curl and aria2, each taken on its merits.

An alias where it means what a fetcher option means (``-t N`` is
``--retries N-1``), accepted with a note where fetcher does it anyway (``-c``,
``-N``), refused with advice where it means something else (``-nc``, ``-o``).
``-O NAME`` names the file of the one URL given as the argument.  What a
callback learns waits in ctx.meta until the command has all its options
(``borrowed_note``, ``output_name``).  Not here: the options themselves
(get.py) and the value types of fetcher's own options (params.py).
"""

from __future__ import annotations

import os
import re
from typing import Any

import click
from click.core import ParameterSource

from .params import Refusing, Whole, option_name, shown

_TRIES = "fetcher.tries"
_OUTPUT = "fetcher.output"
_ALWAYS = "fetcher.always"

#: The wget options for what fetcher always does, and what that is.
ALWAYS_ON = {
    "--continue": "resumes partial downloads",
    "--timestamping": "asks the server only for what changed since the last run",
}
#: Options that undo what fetcher always does: with them, asking for it is a contradiction.
_UNDONE_BY = {
    "--continue": {"force": "--force downloads every URL in full"},
    "--timestamping": {
        "force": "--force downloads every URL in full",
        "skip_existing": "--skip-existing never asks about a file that exists",
    },
}


class Tries(Whole):
    """wget's ``-t N``, which counts every attempt, as fetcher's --retries N-1.

    wget's 0 and ``inf`` (try forever) have no equal: --retries stops at its
    most, so they are refused with the numbers that work.
    """

    name = "tries"

    def __init__(self, most_retries: int) -> None:
        super().__init__(1, most_retries + 1)
        self.wanted = (
            f"a whole number from 1 to {most_retries + 1} (every attempt, as wget counts them: "
            f"-t 4 is --retries 3; fetcher never retries forever)"
        )

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        return super().convert(value, param, ctx) - 1


def tries_given(ctx: click.Context, param: click.Parameter, retries: int | None) -> None:
    """-t N: --retries N-1.  Of -t and --retries the last given wins, as with any option given twice.

    click handles the options in the order they were given, then those not
    given: so either of the two may be handled first, and each looks for
    the other (retries_or_tries).
    """
    if retries is None:
        return
    ctx.meta[_TRIES] = retries
    if "retries" in ctx.params:  # --retries came first: processed already, so -t overrides it here
        ctx.params["retries"] = retries


def retries_or_tries(ctx: click.Context, param: click.Parameter, retries: int) -> int:
    """--retries, unless only -t was given (or -t came first and --retries was not given at all)."""
    if _TRIES in ctx.meta and ctx.get_parameter_source("retries") is not ParameterSource.COMMANDLINE:
        return int(ctx.meta[_TRIES])
    return retries


_URL = re.compile(r"https?://", re.IGNORECASE)


class OutputName(Refusing):
    """-O NAME: the file name for the one URL given as the argument (checked against the list by get.py)."""

    name = "output"
    wanted = "a file name"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text, name = str(value), option_name(param)
        if text == "-":
            raise click.BadParameter(
                f"{name} - (standard output) is not supported: fetcher writes each URL to a file in DEST", ctx, param
            )
        if _URL.match(text):
            raise click.BadParameter(
                f"{name} takes a file name, not a URL: to name the file after the URL, as curl's -O does, "
                "leave it out (fetcher always does that)",
                ctx,
                param,
            )
        if "/" in text or os.sep in text:
            raise click.BadParameter(
                f"{name} takes a file name, not a path ({shown(text)}): give the folder with --dest", ctx, param
            )
        if not text.strip():
            self.refuse(value, param, ctx)
        return text


def output_given(ctx: click.Context, param: click.Parameter, name: str | None) -> None:
    if name is not None:
        ctx.meta[_OUTPUT] = name


def output_name(ctx: click.Context) -> str | None:
    """The -O NAME given, if any."""
    name = ctx.meta.get(_OUTPUT)
    return None if name is None else str(name)


def always_on(ctx: click.Context, param: click.Parameter, given: bool) -> None:
    """-c, -N: accepted; borrowed_note says once that they are always on."""
    if given:
        ctx.meta.setdefault(_ALWAYS, {})[option_name(param)] = None  # a dict: in order, once each


def borrowed_note(ctx: click.Context) -> str | None:
    """The line that says -c or -N is always on (None when not given, or with --quiet).

    Raises UsageError when an option given with them undoes what they ask for.
    """
    names = list(ctx.meta.get(_ALWAYS, {}))
    for name in names:
        for param, why in _UNDONE_BY[name].items():
            if ctx.params.get(param):
                other = "--" + param.replace("_", "-")
                raise click.UsageError(f"{name} and {other} cannot be used together ({why})", ctx)
    if not names or ctx.params.get("quiet"):
        return None
    are = "is" if len(names) == 1 else "are"
    does = ", and ".join(ALWAYS_ON[name] for name in names)
    return f"fetcher: {' and '.join(names)} {are} always on: fetcher {does}"


#: Options of other tools that mean something else here, and what to use instead.
REFUSED = {
    "-nc": "wget's --no-clobber: use --skip-existing, which never requests a URL whose file already exists",
    "--no-clobber": "wget's -nc: use --skip-existing, which never requests a URL whose file already exists",
    "-o": "curl's -o FILE names the file: use -O FILE; wget's -o LOGFILE keeps a log: use 2>>LOGFILE for "
    "fetcher's messages, and --report for a record per URL",
    "--output-file": "wget's log file: use 2>>FILE for fetcher's messages, and --report for a record per URL",
}


def refused(ctx: click.Context, param: click.Parameter, value: object) -> None:
    """An option of REFUSED, one name each: refused with its advice, under the name typed."""
    if value is not None and value is not False:
        name = param.opts[0]
        raise click.UsageError(f"no such option: {name} ({REFUSED[name]})", ctx)
