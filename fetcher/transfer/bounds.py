"""Bounds on one download's speed and size, and the time left before a deadline.

Pure logic: nothing here reads a clock, a socket or a file.  The caller
passes ``now`` (any monotonic clock, in seconds) and byte counts, and gets
back a yes/no or a reason that names the option, ready to go in a
DownloadError.  Raising, retrying and cleaning up are the download's job.

The guard against decompression bombs
-------------------------------------
With no ``--max-filesize``, a body sent with a Content-Encoding fails once
its decoded size passes *both* 128 MiB (``BOMB_FLOOR``) and 100 times the
bytes received for it (``BOMB_RATIO``).  Either alone would not do: a ratio
alone fails small files that compress very well, a size alone fails large
files that are simply large.

Why those numbers.  Gzip at level 6 (the default, and what servers use)
and at level 9 was run over real compressible files; the ratio of decoded to
sent bytes was taken over the whole file and over every prefix past 1 MiB,
since the guard judges a body as it arrives and a file's start may compress
better than the whole.  Highest, at level 9, whole (prefix): a PostgreSQL
data folder 9.1 (12.8), dpkg's log 11.4, 2.9 MiB of AWS API JSON 8.2 (8.2),
man pages 6.4 (8.7), freedesktop's MIME XML 7.1 (7.3), Debian copyright
files 6.7 (7.5), a tar of /usr/include 5.7 (6.9), SQLite 4.4 (6.0),
Debian's package index 4.3, Debian changelogs 3.4; RFC-like English text is
about 3 to 4.  No real file passed 13.  Deflate cannot pass about 1030 to 1,
and that is what a bomb uses: 3 MiB of gzip that becomes 3 GiB is 1024 to 1.
A ratio of 100 is more than seven times the most seen on real files and a
tenth of a deflate bomb's.  The floor stops a bomb after 128 MiB on disk (the
partial file is then deleted), and lets any body up to 128 MiB through
whatever its ratio.  A genuine file that passes both, such as a mostly empty
disk image served compressed, needs an explicit ``--max-filesize``, which
replaces the guard.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from .._units import format_duration, format_size
from .._validate import whole

#: Decoded bytes a body may always reach, whatever its compression ratio.
BOMB_FLOOR = 128 * 2**20
#: Past the floor, the most decoded bytes per byte received.
BOMB_RATIO = 100

#: Speed samples kept per window: memory stays constant, and the window a
#: decision looks at is at most 1/128 longer than asked, never shorter.
_SAMPLES_PER_WINDOW = 128

_MAX_BYTES = 1 << 62


class SpeedCheck:
    """curl's --speed-limit/--speed-time: under *limit* bytes/s on average for *window* seconds is too slow.

    One per attempt: *now* at construction is when the attempt began, and
    the byte counts passed to update() are counted from then.  Not
    thread-safe.  Keeps at most about 130 samples, whatever the window.
    """

    __slots__ = ("limit", "window", "_start", "_bucket", "_samples")

    def __init__(self, *, limit: int, window: float, now: float) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a whole number of bytes per second >= 1, not {limit!r}")
        if isinstance(window, bool) or not isinstance(window, (int, float)) or not 0 < window < math.inf:
            raise ValueError(f"window must be a finite number of seconds > 0, not {window!r}")
        self.limit = limit
        self.window = float(window)
        self._start = now
        self._bucket = self.window / _SAMPLES_PER_WINDOW
        # (time, total bytes) pairs, oldest first; the first is never later
        # than one window ago once a window has passed.
        self._samples: deque[tuple[float, int]] = deque([(now, 0)])

    def update(self, total_bytes: int, now: float) -> bool:
        """Record *total_bytes* received so far; True when the transfer is too slow.

        Too slow: at least a window has passed since the start, and the
        average speed over the last window is under the limit.  "The last
        window" reaches back to the latest sample at or before its start, so
        it is a little longer when updates are sparse: a speed is then never
        judged on less than a window.  Call it with unchanged totals too: a
        silent server is as slow as any.
        """
        samples = self._samples
        if now - samples[-1][0] >= self._bucket:
            samples.append((now, total_bytes))
        if now - self._start < self.window:
            return False
        cutoff = now - self.window
        # Drop samples only while the next one is still at or before the
        # cutoff, so the oldest kept is the base of a span of at least a window.
        while len(samples) > 1 and samples[1][0] <= cutoff:
            samples.popleft()
        since, base = samples[0]
        return total_bytes - base < self.limit * (now - since)

    @property
    def reason(self) -> str:
        """Why update() said too slow, naming the options."""
        return too_slow(self.limit, self.window)


@dataclass(frozen=True, kw_only=True, slots=True)
class SizeGuard:
    """What a body may grow to on disk: an explicit --max-filesize, or else the bomb guard.

    Sizes are decoded bytes, the bytes that reach the disk.  Raises
    ConfigError on a value it cannot use.
    """

    #: Bytes; when set, the only limit (the bomb guard is off).
    max_filesize: int | None = None
    #: Decoded bytes a body may reach whatever its ratio (the module docstring says why).
    bomb_floor: int = BOMB_FLOOR
    #: Past the floor, the most decoded bytes per byte received.
    bomb_ratio: int = BOMB_RATIO

    def __post_init__(self) -> None:
        if self.max_filesize is not None:
            whole(self, "max_filesize", 1, _MAX_BYTES)
        whole(self, "bomb_floor", 0, _MAX_BYTES)
        whole(self, "bomb_ratio", 1, 1 << 30)

    def check_length(self, content_length: int | None) -> str | None:
        """Why a response that declares *content_length* bytes must not be read, or None.

        For a body with a Content-Encoding the declared length is what is
        sent, not what is decoded; the decoded body is checked as it comes.
        """
        if self.max_filesize is None or content_length is None or content_length <= self.max_filesize:
            return None
        return (
            f"Content-Length of {format_size(content_length)} is over "
            f"the --max-filesize of {format_size(self.max_filesize)}"
        )

    def check_body(self, decoded: int, on_wire: int) -> str | None:
        """Why a body of *decoded* bytes so far, from *on_wire* bytes received, must stop, or None."""
        if self.max_filesize is not None:
            if decoded > self.max_filesize:
                return f"body passed the --max-filesize of {format_size(self.max_filesize)}"
            return None
        if decoded > self.bomb_floor and decoded > self.bomb_ratio * on_wire:
            return (
                f"decoded body grew past {self.bomb_ratio} times the {format_size(on_wire)} the server sent "
                "(a decompression bomb?); set --max-filesize to allow it"
            )
        return None


def too_slow(limit: int, window: float) -> str:
    """The reason a download under *limit* bytes/s for *window* seconds fails with."""
    return f"too slow: under {format_size(limit)}/s for {format_duration(window)} (--speed-limit, --speed-time)"


def time_left(deadline: float | None, now: float) -> float | None:
    """Seconds from *now* to *deadline* (never below 0), or None when there is no deadline."""
    if deadline is None:
        return None
    return max(deadline - now, 0.0)
