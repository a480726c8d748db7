"""Checks shared by the frozen settings values (FetcherConfig, RetryPolicy).

Each check reads one field of a frozen dataclass, raises ConfigError with a
message that names the field, and may store the value back normalised.
"""

from __future__ import annotations

import math

from ._errors import ConfigError


def whole(value_holder: object, name: str, low: int, high: int) -> None:
    value = getattr(value_holder, name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}, not {value!r}")


#: The longest time any setting takes: a year.  Past it a socket timeout or a
#: deadline overflows the platform's time_t, and no run means it.
MAX_SECONDS = 365 * 86400.0


def seconds(value_holder: object, name: str, *, allow_zero: bool) -> None:
    """A number of seconds up to MAX_SECONDS, stored back as a float."""
    value = getattr(value_holder, name)
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and (value >= 0 if allow_zero else value > 0)
    )
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be a finite number of seconds {bound}, not {value!r}")
    if value > MAX_SECONDS:
        raise ConfigError(f"{name} must be at most {MAX_SECONDS:.0f} seconds (a year), not {value!r}")
    object.__setattr__(value_holder, name, float(value))


def flag(value_holder: object, name: str) -> None:
    if not isinstance(getattr(value_holder, name), bool):
        raise ConfigError(f"{name} must be True or False, not {getattr(value_holder, name)!r}")


def per_second(value_holder: object, name: str, high: float) -> None:
    """A finite rate > 0 and <= *high*, stored back as a float."""
    value = getattr(value_holder, name)
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and 0 < value <= high
    if not ok:
        raise ConfigError(f"{name} must be a number per second > 0 and <= {high:g}, not {value!r}")
    object.__setattr__(value_holder, name, float(value))
