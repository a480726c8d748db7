"""TimeLimits: how long one attempt's reads may wait, never past its --max-time or the run's --deadline.

A request's socket timeout is --timeout, cut to the time left before the
URL's --max-time (``Ask.deadline``) or the run's --deadline
(``Ask.stop_at``), and to the --speed-time window when that is shorter (a
server that sends nothing is as slow as can be).  The timeout given with the
request holds for every read of its body, so it is cut again as the body
comes (``shrink``), or a read late in a transfer could overrun by that much.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._config import FetcherConfig
from .._errors import TransportError
from .._units import format_duration
from .bounds import SpeedCheck, time_left


class TimeLimits:
    """One attempt's: its clock, its ends, and the socket timeout it set last."""

    __slots__ = ("clock", "config", "deadline", "read_timeout", "speed_window", "stop_at", "url")

    def __init__(
        self, config: FetcherConfig, url: str, clock: Callable[[], float], deadline: float | None, stop_at: float | None
    ) -> None:
        # deadline: when the URL's --max-time runs out; stop_at: when the run's --deadline comes (as in Ask).
        self.config, self.url, self.clock, self.deadline, self.stop_at = config, url, clock, deadline, stop_at
        self.read_timeout = config.timeout  # what the socket's timeout is now
        self.speed_window: tuple[int, float] | None = None  # set when the socket timeout is the --speed-time window

    @property
    def bounded(self) -> bool:
        """Whether an end is set (then each chunk of a body checks the time)."""
        return self.deadline is not None or self.stop_at is not None

    def request_timeout(self) -> float:
        """The socket timeout for a request; ``over_time()`` raised if the --max-time has run out."""
        if self.past_max_time():
            raise self.over_time()
        timeout = self.config.timeout
        if (left := self._left(self.clock())) is not None:
            timeout = min(timeout, left)
        speed = self.config.speed_check
        if speed is not None and speed[1] < timeout:
            timeout = speed[1]
            self.speed_window = speed
        self.read_timeout = timeout
        return timeout

    def speed_check(self) -> SpeedCheck | None:
        """A --speed-limit check of a body that starts now, if one is set."""
        speed = self.config.speed_check
        return None if speed is None else SpeedCheck(limit=speed[0], window=speed[1], now=self.clock())

    def shrink(self, response: Any) -> None:
        """Let the next read of *response* (requests') wait no longer than the time left before an end."""
        left = self._left(self.clock())
        if left is not None and left < self.read_timeout:
            sock = getattr(getattr(response.raw, "connection", None), "sock", None)
            if sock is not None:
                sock.settimeout(left)  # urllib3 sets it afresh for the connection's next request
                self.read_timeout = left

    def _left(self, now: float) -> float | None:
        """Seconds to the nearer of the two ends, at least 1 ms; None when neither is set."""
        lefts = [left for end in (self.deadline, self.stop_at) if (left := time_left(end, now)) is not None]
        return max(min(lefts), 0.001) if lefts else None

    def past_max_time(self) -> bool:
        return self.deadline is not None and self.clock() >= self.deadline

    def over_time(self) -> TransportError:
        """The error of an attempt whose --max-time ran out."""
        limit = format_duration(self.config.max_time or 0)
        return TransportError(self.url, f"took longer than the --max-time of {limit}")
