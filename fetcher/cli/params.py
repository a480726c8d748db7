"""The value types of the command's options, each refusing a bad value with fetcher's own sentence.

Every refusal is one complete line naming the option as the user knows it:
``--max must be a whole number from 1 to 512, not 0``.  main.py prints it
after ``fetcher: error: ``.  Not here: the options themselves (get.py), the
options borrowed from wget, curl and aria2 (borrowed.py) and the rewording of
click's own errors (main.py).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .._config import MAX_RATE, ca_bundle_problem
from .._errors import ConfigError
from .._units import DURATION_EXAMPLES, format_duration, parse_duration, parse_rate, parse_size
from .._validate import MAX_SECONDS

if TYPE_CHECKING:
    # click 8.5 made ParamType generic in its value and its input, and 8.4 in its value only; before 8.4 it
    # is not subscriptable at all. pyproject allows click 8.1, so the subscript is for mypy alone.
    _AnyType = click.ParamType[Any, Any]
    _PathType = click.ParamType[Path, Any]
else:
    _AnyType = _PathType = click.ParamType

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


class Refusing(_AnyType):
    """A type whose failures read ``OPTION must be WANTED, not VALUE``."""

    wanted = "a valid value"

    def refuse(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> NoReturn:
        raise click.BadParameter(f"{option_name(param)} must be {self.wanted}, not {shown(value)}", ctx, param)


class Whole(Refusing):
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


class Duration(Refusing):
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


class Parsed(Refusing):
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


class Folder(Refusing):
    name = "folder"
    wanted = "a folder"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        if not str(value):
            self.refuse(value, param, ctx)
        return Path(value)


class File(Refusing):
    """A file to write or read; a folder or an empty name is refused."""

    name = "file"
    wanted = "a file"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        if not str(value) or Path(value).is_dir():
            self.refuse(value, param, ctx)
        return Path(value)


class CABundle(_PathType):
    """A CA bundle, checked now: a bad one is one usage error, not a failure for every HTTPS URL."""

    name = "ca_bundle"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        problem = ca_bundle_problem(Path(value))
        if problem is not None:
            raise click.BadParameter(f"{option_name(param)} {value}: {problem}", ctx, param)
        return Path(value)


class SharedSlots(_AnyType):
    """--shared-slots as (name, folder)."""

    name = "shared_slots"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        from ..limits.shared import locate  # only a run given --shared-slots needs its module

        try:
            return locate(str(value), os.environ)
        except ConfigError as exc:
            raise click.BadParameter(f"{option_name(param)}: {exc}", ctx, param) from None
