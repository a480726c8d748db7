"""What the command shows while it runs: bars on a terminal, lines elsewhere.

Everything taken from a URL or a server is escaped before it is shown.  All
output goes to stderr; the report file is the machine-readable output.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from tqdm import tqdm

from .._fetcher import Stats
from .._result import Result, Status, Tally
from .._text import escape, shown
from .._units import format_size

# A download gets its own bar only once it has run this long, so thousands of
# small files do not make the screen flicker with bars that live 5 ms.
BAR_DELAY_S = 0.3


def human_bytes(count: float) -> str:
    """Bytes (or bytes per second) as a person reads them: 2.0 KiB, 5.0 MiB."""
    return format_size(int(count))


def describe(result: Result) -> str:
    """One line about one finished URL, safe for a terminal."""
    status = f"{result.status.value:<15} "
    if result.status is Status.OK and result.path is not None:
        size = human_bytes(result.bytes)
        extra = "".join(_notes(result))
        return f"{status}{shown(result.url)} -> {escape(result.path.name)} ({size}, {result.total_s:.2f}s{extra})"
    if result.status in (Status.UNCHANGED, Status.SKIPPED) and result.path is not None:
        return f"{status}{shown(result.url)} -> {escape(result.path.name)}"
    if result.status is Status.INVALID:
        return f"{status}line {result.line}: '{shown(result.url)[:200]}': {escape(result.error or '')}"
    return f"{status}{shown(result.url)} (line {result.line}): {escape(result.error or '')}"


def _notes(result: Result) -> list[str]:
    notes = []
    if result.attempts > 1:
        notes.append(f", {result.attempts} attempts")
    if result.resumed_from:
        notes.append(f", resumed at {human_bytes(result.resumed_from)}")
    return notes


def summarize(tally: Tally, elapsed_s: float, *, interrupted: bool = False) -> str:
    if tally.total == 0 and not interrupted:
        return "fetcher: the list has no URLs; nothing to do"
    parts = [f"{count} {status.value}" for status, count in tally.counts.items() if count]
    if tally.retried:
        parts.append(f"{tally.retried} after a retry")
    head = "interrupted after " if interrupted else ""
    if tally.cut_short and not interrupted:
        head = f"stopped early ({tally.cut_short}) after "
    counts = ", ".join(parts) or "none finished"
    urls = "URL" if tally.total == 1 else "URLs"
    return f"fetcher: {head}{tally.total} {urls}: {counts} ({human_bytes(tally.bytes)} in {elapsed_s:.2f}s)"


class LineDisplay:
    """No bars, no carriage returns: a line per finished URL and a summary.

    With ``quiet``, only the URLs that did not succeed, and the summary only
    if something did not succeed: a cron job that went well prints nothing.
    """

    def __init__(self, stream: TextIO, *, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet

    def show(self, result: Result) -> None:
        # URLs a deadline or quota left unstarted are counted in the summary
        # and recorded in the report; a line each would bury the rest.
        if not (self.quiet and result.ok) and result.status is not Status.NOT_STARTED:
            self.message(describe(result))

    def summary(self, tally: Tally, elapsed_s: float, *, interrupted: bool = False) -> None:
        if not self.quiet or tally.exit_code or interrupted:
            self.message(summarize(tally, elapsed_s, interrupted=interrupted))

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def close(self, *, completed: bool = True) -> None:
        pass


class BarDisplay(LineDisplay):
    """A bar for the whole run and one per long-running download."""

    def __init__(self, stream: TextIO, *, quiet: bool = False, total: int | None = None) -> None:
        super().__init__(stream, quiet=quiet)
        # Imported here: only a terminal run needs tqdm, and a cron run
        # should not pay for importing it.
        from tqdm import tqdm

        self._tqdm = tqdm
        self._stats: Callable[[], Stats] | None = None
        self._lock = threading.Lock()
        self._bytes = 0
        self._started = time.monotonic()
        self._last_refresh = 0.0
        self._overall = self._tqdm(
            total=total, unit="file", desc="fetcher", file=stream, dynamic_ncols=True, position=0, leave=True
        )

    def follow(self, stats: Callable[[], Stats]) -> None:
        """Where to read the slots in use and the URLs waiting from (``Fetcher.stats``)."""
        self._stats = stats

    def watch(self, url: str, name: str, total: int | None) -> _FileBar:
        return _FileBar(self, escape(name), total)

    def show(self, result: Result) -> None:
        super().show(result)
        with self._lock:
            self._overall.update(1)
            self._refresh(force=True)

    def message(self, text: str) -> None:
        self._tqdm.write(text, file=self.stream)

    def close(self, *, completed: bool = True) -> None:
        with self._lock:
            if completed and self._overall.total is not None and self._overall.n != self._overall.total:
                self._overall.total = self._overall.n  # duplicates were counted in the total
            self._refresh(force=True)
            self._overall.close()

    def _add_bytes(self, n: int) -> None:
        with self._lock:
            self._bytes += n
            self._refresh(force=False)

    def _refresh(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_refresh < 0.5:
            return
        self._last_refresh = now
        rate = self._bytes / max(now - self._started, 1e-6)
        text = f"{human_bytes(self._bytes)} {human_bytes(rate)}/s"
        if self._stats is not None:
            stats = self._stats()
            if stats.byte_rate_cap is not None:
                cap = human_bytes(stats.byte_rate_cap)
                text = f"{human_bytes(self._bytes)} {human_bytes(stats.byte_rate)}/s of {cap}/s"
            text += f" slots {stats.in_use}/{stats.capacity} waiting {stats.waiting}"
            if stats.retrying:
                text += f" retrying {stats.retrying}"
            text += _limits_text(stats)
        self._overall.set_postfix_str(text, refresh=True)


def _limits_text(stats: Stats) -> str:
    """The politeness limits at work: hosts paused, requests per second against --rate."""
    text = ""
    if stats.paused:
        if len(stats.paused) == 1:
            [(host, left)] = stats.paused.items()
            text += f" paused {escape(host)} {left:.0f}s"
        else:
            text += f" paused {len(stats.paused)} hosts"
    if stats.request_rate_cap is not None:
        text += f" {stats.request_rate:.1f}/{stats.request_rate_cap:g} req/s"
    return text


class _FileBar:
    """One download's bar, made only if the download lasts BAR_DELAY_S."""

    def __init__(self, display: BarDisplay, name: str, total: int | None) -> None:
        self._display = display
        self._name = name if len(name) <= 30 else name[:29] + "…"
        self._total = total
        self._began = time.monotonic()
        self._bytes = 0
        self._bar: tqdm | None = None

    def advance(self, n: int) -> None:
        self._bytes += n
        self._display._add_bytes(n)
        if self._bar is None:
            if time.monotonic() - self._began < BAR_DELAY_S:
                return
            self._bar = self._display._tqdm(
                total=self._total, initial=self._bytes - n, unit="B", unit_scale=True, unit_divisor=1024,
                desc=self._name, file=self._display.stream, dynamic_ncols=True, leave=False, mininterval=0.2,
            )  # fmt: skip
        self._bar.update(n)

    def done(self) -> None:
        if self._bar is not None:
            self._bar.close()
