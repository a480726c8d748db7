"""The value types of the command's options, each refusing a bad value with fetcher's own sentence.

Every refusal is one complete line naming the option as the user knows it:
``--max must be a whole number from 1 to 512, not 0``.  main.py prints it
after ``fetcher: error: ``.  Also here: what the options borrowed from wget,
curl and aria2 do (``-t``, ``-O``, ``-c``, ``-N``, and those refused with
advice, ``-nc``, ``-o``).  Not here: the options themselves (get.py) and the
rewording of click's own errors (main.py).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
from click.core import ParameterSource

from .._config import MAX_RATE, ca_bundle_problem
from .._errors import ConfigError
from .._units import DURATION_EXAMPLES, format_duration, parse_duration, parse_rate, parse_size
from .._validate import MAX_SECONDS
from ..limits.shared import locate

#: A value shown bare when it reads as a number, else in quotes.
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def option_name(param: click.Parameter | None) -> str:
    """The option's first long name (``--max`` for ``-m`` too), or an argument's metavar."""
    if param is None:
        return "the value"
    if isinstance(param, click.Option) and param.opts:
        return next((opt for opt in param.opts if opt.startswith("--")), max(param.opts, key=len))
    return param.human_readable_name


def shown(value: object) -> str:
    text = str(value)
    return text if _NUMBER.fullmatch(text) else f"'{text}'"


class _Refusing(click.ParamType[Any, Any]):
    """A type whose failures read ``OPTION must be WANTED, not VALUE``."""

    wanted = "a valid value"

    def refuse(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> NoReturn:
        raise click.BadParameter(f"{option_name(param)} must be {self.wanted}, not {shown(value)}", ctx, param)


class Whole(_Refusing):
    name = "whole"

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high
        self.wanted = f"a whole number from {low} to {high}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            number = value if isinstance(value, int) else int(str(value).strip())
        except ValueError:
            self.refuse(value, param, ctx)
        if not self.low <= number <= self.high:
            self.refuse(value, param, ctx)
        return number


class Duration(_Refusing):
    """A duration as parse_duration reads it ("90", "15m", "1h30m", "2d"), in seconds, within the option's range.

    Every option that takes a time takes this one grammar; each keeps its
    own range: above 0, 0 or more, or from *low* to *high*.
    """

    name = "duration"

    def __init__(
        self, *, allow_zero: bool = False, low: float = 0.0, high: float = math.inf, examples: str = DURATION_EXAMPLES
    ) -> None:
        self.allow_zero, self.low, self.high = allow_zero, low, high
        if math.isfinite(high):
            self.wanted = f"a duration from {format_duration(low)} to {format_duration(high)} ({examples})"
        elif allow_zero:
            self.wanted = f"a duration, 0 or more ({examples})"
        else:
            self.wanted = f"a duration above 0 ({examples})"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)  # a default, already in seconds
        else:
            try:
                number = parse_duration(str(value))
            except ValueError:
                self.refuse(value, param, ctx)
        if not math.isfinite(number) or not self.low <= number <= self.high or (number == 0 and not self.allow_zero):
            self.refuse(value, param, ctx)
        if number > MAX_SECONDS:
            raise click.BadParameter(
                f"{option_name(param)} must be at most {format_duration(MAX_SECONDS)}, not {shown(value)}", ctx, param
            )
        return number


class Parsed(_Refusing):
    """A value read by one of fetcher's parsers (sizes, rates); it must come out above 0."""

    name = "parsed"

    def __init__(self, parse: Callable[[str], float], wanted: str, *, high: float = math.inf) -> None:
        self.parse, self.wanted, self.high = parse, wanted, high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            number = self.parse(str(value))
        except ValueError:
            self.refuse(value, param, ctx)
        if not 0 < number <= self.high:
            self.refuse(value, param, ctx)
        return number


SIZE = Parsed(parse_size, "a size above 0 (500k, 2M, 1G: powers of 1024)")
BYTE_RATE = Parsed(parse_size, "bytes per second above 0 (500k, 2M: powers of 1024)")
REQUEST_RATE = Parsed(parse_rate, f"requests per second above 0, at most {MAX_RATE:.0f} (0.5, 10, 30/m, 100/h)",
                      high=MAX_RATE)  # fmt: skip


class Folder(_Refusing):
    name = "folder"
    wanted = "a folder"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        if not str(value):
            self.refuse(value, param, ctx)
        return Path(value)


class File(_Refusing):
    """A file to write or read; a folder or an empty name is refused."""

    name = "file"
    wanted = "a file"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        if not str(value) or Path(value).is_dir():
            self.refuse(value, param, ctx)
        return Path(value)


class CABundle(click.ParamType[Path, Any]):
    """A CA bundle, checked now: a bad one is one usage error, not a failure for every HTTPS URL."""

    name = "ca_bundle"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        problem = ca_bundle_problem(Path(value))
        if problem is not None:
            raise click.BadParameter(f"{option_name(param)} {value}: {problem}", ctx, param)
        return Path(value)


class SharedSlots(click.ParamType[Any, Any]):
    """--shared-slots as (name, folder)."""

    name = "shared_slots"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            return locate(str(value), os.environ)
        except ConfigError as exc:
            raise click.BadParameter(f"{option_name(param)}: {exc}", ctx, param) from None


# -- Options borrowed from wget, curl and aria2 ---------------------------------------------------------------------
# Each is taken on its merits: an alias where it means what a fetcher option
# means, accepted with a note where fetcher does it anyway, refused with
# advice where it means something else.  What a callback learns waits in
# ctx.meta until the command has all its options (borrowed_note, output_name).

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


class OutputName(_Refusing):
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
