"""RetryPolicy: whether a failed download is tried again, and after how long.

A value with pure methods, in the manner of urllib3's ``Retry``: it reads no
clock and draws no random numbers (the caller passes ``now`` and ``random``),
so every decision can be tested without waiting.  It does not wait, does not
schedule and does not count attempts: the run does that, and puts a URL back
in the queue rather than holding a download slot through the wait.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

from .._errors import DownloadError, HTTPStatusError
from .._validate import seconds, whole
from .validators import parse_http_date

#: The most a Retry-After is taken to mean, in seconds.  RFC 9111 §1.2.2 has
#: caches read any larger delta-seconds as 2**31; it also keeps reasons short.
RETRY_AFTER_CEILING = float(2**31)

_DELTA_SECONDS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after a failed attempt."""

    retry: bool
    #: Seconds to wait before the next attempt, when ``retry`` is True.
    delay: float = 0.0
    #: Why the policy itself said no (the server asked for too long a wait),
    #: as a phrase to append to the error; None when the error says it all.
    reason: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How often and how patiently a transient failure is retried.

    Raises ConfigError on a value it cannot use.
    """

    #: Extra attempts after the first.
    retries: int = 3
    #: Seconds: the longest wait before the first retry; it doubles for each one after.
    wait_base: float = 1.0
    #: Seconds: the cap on a backoff wait.
    wait_max: float = 60.0
    #: Seconds: the longest Retry-After obeyed; a server asking for more fails the URL.
    retry_after_max: float = 300.0

    def __post_init__(self) -> None:
        whole(self, "retries", 0, 100)
        seconds(self, "wait_base", allow_zero=False)
        seconds(self, "wait_max", allow_zero=True)
        seconds(self, "retry_after_max", allow_zero=True)

    @classmethod
    def none(cls) -> RetryPolicy:
        """A policy that never retries."""
        return cls(retries=0)

    def backoff(self, attempts: int, random: float) -> float:
        """Full jitter: ``random * min(wait_max, wait_base * 2 ** (attempts - 1))``.

        *attempts* (>= 1) is how many attempts have been made; *random* is in [0, 1).
        Full rather than added jitter, so that clients that failed together
        do not come back together.
        """
        _check_attempts(attempts)
        if not 0.0 <= random < 1.0:
            raise ValueError(f"random must be in [0, 1), not {random!r}")
        try:
            ceiling = min(self.wait_max, math.ldexp(self.wait_base, attempts - 1))
        except OverflowError:
            ceiling = self.wait_max
        return random * ceiling

    def decide(self, error: DownloadError, attempts: int, *, now: datetime, random: float) -> Decision:
        """Whether to try again after *attempts* attempts ended in *error*, and after how long.

        *now* (timezone-aware) is what a Retry-After date is measured from.
        """
        _check_attempts(attempts)
        _check_aware(now)
        if not error.transient or attempts > self.retries:
            return Decision(retry=False)
        if isinstance(error, HTTPStatusError):
            asked = parse_retry_after(error.retry_after, now=now)
            if asked is not None:
                if asked > self.retry_after_max:
                    return Decision(
                        retry=False,
                        reason=(
                            f"server asked to wait {_seconds_text(asked)} before retrying "
                            f"(more than the {_seconds_text(self.retry_after_max)} --retry-after-max allows)"
                        ),
                    )
                return Decision(retry=True, delay=asked)
        return Decision(retry=True, delay=self.backoff(attempts, random))

    def host_pause(self, error: DownloadError, *, now: datetime) -> float | None:
        """Seconds to start nothing more on the host that answered *error*, if it asked for a pause.

        A 429 pauses its host for its Retry-After, or ``wait_base`` without
        one; a 503 only with a Retry-After (without one it may be a single
        broken file).  The pause is never longer than ``retry_after_max``.
        *now* (timezone-aware) is what a Retry-After date is measured from.
        """
        if not isinstance(error, HTTPStatusError) or error.status_code not in (429, 503):
            return None
        asked = parse_retry_after(error.retry_after, now=now)
        if asked is None:
            return min(self.wait_base, self.retry_after_max) if error.status_code == 429 else None
        return min(asked, self.retry_after_max)


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from *now*, as a ``Retry-After`` header asks.

    Takes delta-seconds ("120") or an HTTP-date in any of RFC 9110's three
    formats (RFC 1123, RFC 850, asctime); a date without a zone is GMT, as
    every HTTP-date is.  A date in the past gives 0.0.  Absent or unparseable
    gives None, and then ordinary backoff applies.  Anything longer than
    RETRY_AFTER_CEILING gives that.
    """
    _check_aware(now)
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        digits = text.lstrip("0") or "0"
        # Length first: a server may send thousands of digits, which float() would make inf.
        if len(digits) > len(str(int(RETRY_AFTER_CEILING))):
            return RETRY_AFTER_CEILING
        return min(float(digits), RETRY_AFTER_CEILING)
    when = parse_http_date(text)
    if when is None:
        return None
    seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_CEILING)


def _check_attempts(attempts: int) -> None:
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"attempts must be a whole number >= 1, not {attempts!r}")


def _check_aware(now: datetime) -> None:
    # A naive now is most likely local time: subtracting it from a GMT date
    # would be off by the UTC offset, silently.
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")


def _seconds_text(seconds: float) -> str:
    """3600.0 as "3600s", 2.5 as "2.5s": whole seconds without a fraction."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
