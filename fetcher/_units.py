"""Sizes and durations as people write them: "500K", "1.5G", "15m", "1h30m", "2d".

Parsing for the command line and the library alike, and the matching
formatting for messages that name a limit.  Sizes are powers of 1024, as
curl reads ``--max-filesize``; durations are days, hours, minutes and
seconds.  Neither checks a range beyond "not negative": the settings that
use them do.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fractions import Fraction

_SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE_HELP = "a number of bytes, or with K, M, G or T"
_NUMBER = r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+"
# A unit letter may carry "B" or "iB" ("500KiB", "2GB"); a bare "B" means bytes.
_SIZE = re.compile(rf"(?P<number>{_NUMBER}) ?(?:(?P<unit>[KMGT])(?:I?B)?|B)?", re.ASCII | re.IGNORECASE)

DURATION_EXAMPLES = "90, 90s, 15m, 2h, 1h30m, 2d"
_DURATION_HELP = f"seconds, or with d, h, m and s: {DURATION_EXAMPLES}"
_DURATION_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
# Each unit at most once, largest first; a number after the last unit is in
# the next unit down ("1h30" is 1h30m), as people write it.
_DURATION = re.compile(
    rf"(?P<bare>{_NUMBER})|"
    + "".join(rf"(?:(?P<{unit}>{_NUMBER}){unit})?" for unit in _DURATION_UNITS)
    + rf"(?P<rest>{_NUMBER})?",
    re.ASCII | re.IGNORECASE,
)

_BINARY_PREFIXES = ("B", "KiB", "MiB", "GiB", "TiB")


def parse_size(text: str) -> int:
    """Bytes from "1048576", "500k", "1.5M", "2G", "1T", "500KiB", "2GB" (powers of 1024).

    A fraction of a byte left after scaling is dropped.  Raises ValueError
    with a message fit to show after the option's name.
    """
    stripped = text.strip()
    if stripped.startswith("-"):
        raise ValueError(f"{text!r} is not a size: a size cannot be negative")
    match = _SIZE.fullmatch(stripped)
    if match is None:
        raise ValueError(f"{text!r} is not a size ({_SIZE_HELP})")
    scale = _SIZE_UNITS[(match["unit"] or "").upper()]
    return math.floor(_exact(match["number"]) * scale)


_RATE = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?:/\s*(?P<per>s|m|h|sec|min|hour))?", re.IGNORECASE)
_PER = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}


def parse_rate(text: str) -> float:
    """Per second from "5", "0.5", "5/s", "30/m", "100/h" (as curl's --rate writes them).

    Raises ValueError with a message fit to show after the option's name.
    """
    match = _RATE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a rate (a number per second, or N/s, N/m, N/h: 0.5, 10, 30/m)")
    return float(match["number"]) / _PER[(match["per"] or "s").lower()]


def parse_duration(text: str) -> float:
    """Seconds from "90", "90s", "15m", "2h", "1.5h", "1h30m", "2d12h", "0.5s", and "1h30" (1h30m).

    Days, hours, minutes and seconds may be combined, each once and in that
    order; a bare number after the last unit counts in the next unit down
    ("1h30" is 1h30m, "2d12" is 2d12h, "1m30" is 1m30s).  Raises ValueError
    with a message fit to show after the option's name.
    """
    stripped = text.strip()
    if stripped.startswith("-"):
        raise ValueError(f"{text!r} is not a duration: a duration cannot be negative")
    match = _DURATION.fullmatch(stripped)
    if match is None or not stripped or (match["rest"] is not None and not _rest_unit(match)):
        raise ValueError(f"{text!r} is not a duration ({_DURATION_HELP})")
    total: int | Fraction
    if match["bare"] is not None:
        total = _exact(match["bare"])
    else:
        given = {unit: match[unit] for unit in _DURATION_UNITS if match[unit]}
        if match["rest"] is not None:
            given[_rest_unit(match)] = match["rest"]
        total = sum((_exact(number) * _DURATION_UNITS[unit] for unit, number in given.items()), 0)
    try:
        return float(total)
    except OverflowError:
        raise ValueError(f"{text!r} is not a duration: it is too long") from None


def _exact(number: str) -> int | Fraction:
    """*number* ("12", "1.5", ".5") exactly: not a float, so "1.1T" is exact to the byte and a long
    string of digits does not turn into inf.

    A Fraction only for a decimal point: fractions, and the decimal module it
    imports, cost 1.5 ms of a start, and the defaults are whole numbers.
    """
    if "." not in number:
        return int(number)
    from fractions import Fraction

    return Fraction(number)


def _rest_unit(match: re.Match[str]) -> str:
    """The unit of a bare number after the last unit: the next one down; "" after seconds or with no unit."""
    units = list(_DURATION_UNITS)
    last = max((units.index(unit) for unit in units if match[unit]), default=len(units) - 1)
    return units[last + 1] if last + 1 < len(units) else ""


def format_size(n: int) -> str:
    """512 as "512 B", 1572864 as "1.5 MiB": one decimal above bytes, up to TiB."""
    count = float(n)
    for unit in _BINARY_PREFIXES:
        # Compare the rounded figure, so that 1048575 bytes reads "1.0 MiB", not "1024.0 KiB".
        shown = round(count) if unit == "B" else round(count, 1)
        if shown < 1024 or unit == _BINARY_PREFIXES[-1]:
            return f"{shown:.0f} {unit}" if unit == "B" else f"{shown:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    """The shortest form parse_duration reads back, to the microsecond: "90s", "15m", "2h", "1h30m", "2d", "0.5s".

    Plain seconds or days-hours-minutes-seconds, whichever is shorter; on a
    tie the latter, which is easier to read ("1h30m", not "5400s").
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be a finite number >= 0, not {seconds!r}")
    micros = round(seconds * 1_000_000)
    plain = _seconds_text(micros) + "s"
    parts: list[str] = []
    rest = micros
    for unit, factor in _DURATION_UNITS.items():
        if unit == "s":
            parts.append(f"{_seconds_text(rest)}s" if rest else "")
        else:
            count, rest = divmod(rest, factor * 1_000_000)
            parts.append(f"{count}{unit}" if count else "")
    split = "".join(parts) or plain
    return plain if len(plain) < len(split) else split


def _seconds_text(micros: int) -> str:
    whole, fraction = divmod(micros, 1_000_000)
    return f"{whole}.{fraction:06d}".rstrip("0").rstrip(".")
