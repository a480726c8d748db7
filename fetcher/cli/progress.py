"""What the command shows while it runs: bars on a terminal, lines elsewhere.

Everything taken from a URL or a server is escaped before it is shown.  All
output goes to stderr; the report file is the machine-readable output.  Sizes
and rates are binary everywhere (KiB, MiB, MiB/s), as ``_units`` writes them.

On a terminal, a ticker thread repaints every bar TICK_S apart whether or not
bytes arrive, so a stall reads as a clock that moves and a rate (over the last
RATE_WINDOW_S) that falls to 0, never as a frozen screen.  Each bar is laid out
to fit the terminal's width: the least useful parts go first (the bar graphic,
then the rate), the slots gauge last.  Not here: what is recorded (the report)
and the wording of errors (``cli/get.py``).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tqdm import tqdm

from .._fetcher import Stats
from .._result import Result, Status, Tally
from .._text import escape, shown
from .._units import format_size

log = logging.getLogger("fetcher")

#: A download gets its own bar once it has run this long (and keeps it until it
#: ends, bytes or not), so thousands of small files do not make the screen
#: flicker with bars that live 5 ms.
BAR_DELAY_S = 0.3
#: How often the bars are repainted on a terminal, bytes or not.
TICK_S = 0.2
#: The rates shown are over this recent window, not the run's average, so a stall shows as 0 B/s.
RATE_WINDOW_S = 2.5
#: A download's bar says "no data for 5s" once nothing has come for this long.
STALLED_AFTER_S = 2.0
#: Below this many cells the bar graphic says nothing; the text gets the room instead.
_MIN_BAR_CELLS = 10
_MAX_BAR_CELLS = 40
_NAME_WIDTH = 30
_SHOW_REPAINT_S = 0.05


class Stream(Protocol):
    """Where a display writes: stderr, as the command wraps it (cli/stderr.py), or a test's StringIO."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...

    def fileno(self) -> int: ...


def human_bytes(count: float) -> str:
    """Bytes as a person reads them: 2.0 KiB, 5.0 MiB."""
    return format_size(int(count))


def human_rate(per_s: float) -> str:
    """Bytes per second in the same units: 340.0 KiB/s."""
    return f"{format_size(int(per_s))}/s"


def clock_text(seconds: float) -> str:
    """Elapsed time as a clock: 00:07, 12:34, 1:02:03."""
    minutes, secs = divmod(int(max(0.0, seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def status_text(status: Status) -> str:
    """A status as the report writes it ("acquire-timeout"), so that a count in a summary can be looked up."""
    return status.value


def describe(result: Result) -> str:
    """One line about one finished URL, safe for a terminal."""
    status = f"{result.status.value:<15} "
    if result.status is Status.OK and result.path is not None:
        size = human_bytes(result.bytes)
        extra = "".join(_notes(result))
        took = download_seconds(result)
        return f"{status}{shown(result.url)} -> {escape(result.path.name)} ({size} in {took:.2f}s{extra})"
    if result.status in (Status.UNCHANGED, Status.SKIPPED) and result.path is not None:
        return f"{status}{shown(result.url)} -> {escape(result.path.name)}"
    if result.status is Status.INVALID:
        return f"{status}line {result.line}: '{shown(result.url)[:200]}': {escape(result.error or '')}"
    # A failure mailed by cron is often all a user sees of it: say whether retries were tried.
    tries = f" ({result.attempts} attempts)" if result.attempts > 1 else ""
    return f"{status}{shown(result.url)} (line {result.line}): {escape(result.error or '')}{tries}"


def download_seconds(result: Result) -> float:
    """How long the download itself took: the last attempt's request to its last byte, no queue wait."""
    if result.ttfb_s is not None and result.download_s is not None:
        return result.ttfb_s + result.download_s
    return max(0.0, result.total_s - (result.wait_s or 0.0))


def _notes(result: Result) -> list[str]:
    notes = []
    if result.wait_s is not None and result.wait_s >= 0.01:
        notes.append(f", queued {result.wait_s:.2f}s")
    if result.attempts > 1:
        notes.append(f", {result.attempts} attempts")
    if result.resumed_from:
        notes.append(f", resumed at {human_bytes(result.resumed_from)}")
    return notes


def summarize(tally: Tally, elapsed_s: float, *, interrupted: bool = False, report: Path | None = None) -> str:
    """The last line of a run: what happened to its URLs, and the report it wrote (if given)."""
    where = "" if report is None else f"; report: {escape(str(report))}"
    if tally.total == 0 and not interrupted:
        return f"fetcher: the list has no URLs; nothing to do{where}"
    parts = [f"{count} {status_text(status)}" for status, count in tally.counts.items() if count]
    if tally.retried:
        parts.append(f"{tally.retried} after a retry")
    if tally.resumed:
        parts.append(f"{tally.resumed} resumed")
    totals = f"({human_bytes(tally.bytes)} in {elapsed_s:.2f}s){where}"
    if interrupted:
        return f"fetcher: interrupted: {', '.join(parts) or 'nothing finished'} {totals}"
    head = f"stopped early ({tally.cut_short}) after " if tally.cut_short else ""
    urls = "URL" if tally.total == 1 else "URLs"
    return f"fetcher: {head}{tally.total} {urls}: {', '.join(parts) or 'none finished'} {totals}"


def cleanup_line(removed: int, removed_bytes: int) -> str | None:
    """What the start-up clean-up removed of the partial files of earlier runs; None if nothing.

    The partial files it kept are not announced: whether one is resumed is
    known only once its URL's server answers, and the URL's own line and the
    summary say so then ("resumed at 40.0 MiB", "1 resumed").
    """
    if not removed:
        return None
    files = f"{removed} partial file{'' if removed == 1 else 's'}"
    return f"removed {files} ({human_bytes(removed_bytes)}) left by an interrupted run"


def report_lost_line(path: Path, lost: int, error: OSError | str) -> str:
    """The report could not be written: where, why, and how many records it lacks."""
    reason = error if isinstance(error, str) else (error.strerror or str(error))
    records = f"{lost} record{'' if lost == 1 else 's'}"
    return (
        f"cannot write the report {escape(str(path))}: {escape(reason)}; {records} not written "
        "(free some space, or give --report another path)"
    )


@dataclass(frozen=True, slots=True)
class Piece:
    """A part of a bar's line.  ``drop``: 0 never dropped, else the higher, the sooner it goes
    when the line is too wide.  A piece with ``fill`` set is the bar graphic: that fraction done."""

    text: str
    drop: int = 0
    fill: float | None = None


def lay_out(pieces: Sequence[Piece], width: int | None, *, unicode: bool = True) -> str:
    """The pieces joined by spaces, in their order, in at most *width* columns (None: the width is unknown).

    The pieces that are never dropped come first; then each other piece,
    lowest ``drop`` first, if it still fits.  What is left is cut at
    *width*.  The bar graphic takes the room left, up to _MAX_BAR_CELLS, and
    needs _MIN_BAR_CELLS.
    """
    from tqdm.utils import disp_len, disp_trim

    def cells(piece: Piece) -> int:
        return _MIN_BAR_CELLS + 2 if piece.fill is not None else int(disp_len(piece.text))

    def line_width(items: Sequence[Piece]) -> int:
        return sum(cells(p) for p in items) + max(0, len(items) - 1)

    kept = [p for p in pieces if not p.drop]
    for piece in sorted((p for p in pieces if p.drop), key=lambda p: p.drop):
        if width is None or line_width([*kept, piece]) <= width:
            kept.append(piece)
    kept.sort(key=pieces.index)
    spare = _MAX_BAR_CELLS - _MIN_BAR_CELLS if width is None else width - line_width(kept)
    texts = []
    for piece in kept:
        if piece.fill is None:
            texts.append(piece.text)
        else:
            texts.append(_bar_graphic(piece.fill, min(_MAX_BAR_CELLS, _MIN_BAR_CELLS + spare), unicode=unicode))
    line = " ".join(texts)
    return line if width is None or disp_len(line) <= width else disp_trim(line, width)


def _bar_graphic(fraction: float, cells: int, *, unicode: bool) -> str:
    fraction = min(1.0, max(0.0, fraction))
    if not unicode:
        full = int(fraction * cells)
        return "|" + "#" * full + " " * (cells - full) + "|"
    eighths = int(fraction * cells * 8)
    full, part = divmod(eighths, 8)
    partial = " ▏▎▍▌▋▊▉"[part] if full < cells else ""
    return "|" + ("█" * full + partial).ljust(cells) + "|"


class RecentRate:
    """Bytes per second over about the last RATE_WINDOW_S, from counts sampled as bars repaint."""

    def __init__(self, now: float) -> None:
        self._samples: deque[tuple[float, int]] = deque([(now, 0)])

    def rate(self, now: float, count: int) -> float:
        if now - self._samples[-1][0] >= TICK_S / 2:
            self._samples.append((now, count))
        # Keep the newest sample at or before the window's start, so the span covers the whole window.
        while len(self._samples) > 2 and self._samples[1][0] <= now - RATE_WINDOW_S:
            self._samples.popleft()
        began, before = self._samples[0]
        return (count - before) / max(now - began, TICK_S)


def _terminal_columns(stream: Stream) -> Callable[[], int | None]:
    def columns() -> int | None:
        try:
            return os.get_terminal_size(stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            return None  # not a terminal (a test's StringIO): no width to keep to

    return columns


def _literal(text: str) -> str:
    """*text* as a tqdm bar_format that prints it as it is."""
    return text.replace("{", "{{").replace("}", "}}")


class LineDisplay:
    """No bars, no carriage returns: a line per finished URL and a summary.

    With ``quiet``, only the URLs that did not succeed, and the summary only
    if something did not succeed: a cron job that went well prints nothing.
    """

    def __init__(self, stream: Stream, *, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet

    def show(self, result: Result) -> None:
        line = self._line(result)
        if line is not None:
            self.message(line)

    def summary(self, tally: Tally, elapsed_s: float, *, interrupted: bool = False, report: Path | None = None) -> None:
        if not self.quiet or tally.exit_code or interrupted:
            self.message(summarize(tally, elapsed_s, interrupted=interrupted, report=report))

    def message(self, text: str) -> None:
        # One write: the command's stream (cli/stderr.py) gathers the lines of a batch of URLs into one.
        self.stream.write(text + "\n")
        self.stream.flush()

    def freeze(self) -> None:
        """The run is being interrupted (nothing to keep on a plain stream)."""

    def close(self, *, completed: bool = True) -> None:
        pass

    def _line(self, result: Result) -> str | None:
        """The line to show for *result*, if any."""
        # URLs a deadline or quota left unstarted are counted in the summary
        # and recorded in the report; a line each would bury the rest.
        if (self.quiet and result.ok) or result.status is Status.NOT_STARTED:
            return None
        return describe(result)


class BarDisplay(LineDisplay):
    """A bar for the whole run and one per download that runs longer than BAR_DELAY_S.

    A daemon thread repaints them every *tick_s* (None: no thread; ``tick()``
    repaints, for tests with a fake *clock*).  *columns* gives the terminal's
    width (default: the stream's terminal; None from it: no limit).
    """

    def __init__(
        self,
        stream: Stream,
        *,
        quiet: bool = False,
        total: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        tick_s: float | None = TICK_S,
        columns: Callable[[], int | None] | None = None,
    ) -> None:
        super().__init__(stream, quiet=quiet)
        # Imported here: only a terminal run needs tqdm, and a cron run
        # should not pay for importing it.
        from tqdm import tqdm

        class Bar(tqdm):  # type: ignore[misc]
            # No tqdm monitor thread: it tunes miniters for bars that update themselves, which these
            # do not (they are repainted here), and it walks every bar while the ticker adds one.
            monitor_interval = 0

        self._tqdm = Bar
        self._clock = clock
        self._columns = columns or _terminal_columns(stream)
        self._unicode = (getattr(stream, "encoding", None) or "utf-8").lower().replace("-", "").startswith("utf")
        self._stats: Callable[[], Stats] | None = None
        self._lock = threading.Lock()  # every tqdm call, and the counts
        self._run = _RunFigures(total, clock())  # under the lock
        self._files: list[_FileBar] = []
        self._lines: list[str] = []  # the lines of finished URLs, printed above the bars at the next repaint
        self._closed = False
        self._painted_at = -math.inf
        fit = self._fit()
        text = _literal(lay_out(self._run.pieces(self._run.started), fit, unicode=self._unicode))
        self._overall = self._tqdm(total=total, file=stream, position=0, leave=True, ncols=fit, bar_format=text)
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if tick_s is not None:
            self._ticker = threading.Thread(target=self._tick_loop, args=(tick_s,), name="fetcher-bars", daemon=True)
            self._ticker.start()

    def follow(self, stats: Callable[[], Stats]) -> None:
        """Where to read the slots in use and the URLs waiting from (``Fetcher.stats``)."""
        self._stats = stats

    def watch(self, url: str, name: str, total: int | None) -> _FileBar:
        """A download's headers are in (the Fetcher's ``watch``): its bar shows once it has run BAR_DELAY_S."""
        file = _FileBar(self, escape(name), total, self._clock())
        with self._lock:
            self._files.append(file)
        return file

    def show(self, result: Result) -> None:
        line = self._line(result)
        with self._lock:
            if line is not None:
                # Printed with the next repaint, with the others that finished meanwhile: printing a
                # line clears and redraws every bar, which is worth doing a few times a second, not per URL.
                self._lines.append(line)
            # Once interrupted, the URLs the stop ends are not done: the bar keeps what finished.
            if not (self._run.frozen and result.status in (Status.CANCELLED, Status.NOT_STARTED)):
                self._run.done += 1
            # Thousands of small files finish in a second: count each, repaint a few times a second.
            if self._clock() - self._painted_at < _SHOW_REPAINT_S:
                return
        self.tick()

    def message(self, text: str) -> None:
        with self._lock:
            self._lines.append(text)  # after the lines of the URLs that finished before it
            self._print_lines()

    def freeze(self) -> None:
        """The run is being interrupted: keep the gauge at its last true values and say so.

        Call it before the Fetcher stops: stopping empties the queue, and
        ``waiting 0`` would not be what happened.  It only sets flags (the
        ticker repaints): a signal's stop must go through even if a repaint
        were stuck.
        """
        self._run.frozen = self._run.interrupted = True

    def tick(self) -> None:
        """Repaint: bars for downloads past BAR_DELAY_S, the clock, the rates, the gauge."""
        snapshot = self._read_stats()
        with self._lock:
            if self._closed:
                return
            self._run.take(snapshot)
            self._paint(self._clock())

    def close(self, *, completed: bool = True) -> None:
        """Stop the ticker, clear the downloads' bars and leave the overall bar's last state.

        The gauge shows the end's truth (no slot in use, nothing waiting), even
        after an interruption; not *completed*, the count keeps what finished.
        """
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2.0)
        self._run.frozen = False  # the run is over: what is in use and waiting now is the truth (none of either)
        snapshot = self._read_stats()
        with self._lock:
            if self._closed:
                return
            run = self._run
            run.frozen = True
            if snapshot is not None:
                run.gauge = snapshot
            if completed and run.total is not None and run.done != run.total:
                run.total = run.done  # duplicates were counted in the total
            for file in self._files:
                if file.bar is not None:
                    file.bar.close()
                    file.bar = None
            self._files.clear()
            self._paint(self._clock(), files=False)
            self._overall.close()
            self._closed = True

    # -- inside the display ---------------------------------------------------------------

    def _tick_loop(self, tick_s: float) -> None:
        while not self._stop.wait(tick_s):
            try:
                self.tick()
            except Exception:  # a display must never end a run; the next tick tries again
                log.debug("repainting the bars failed", exc_info=True)

    def _read_stats(self) -> Stats | None:
        # Outside the display's lock: Stats takes the Fetcher's locks, and a
        # download thread may hold those while it reports its bytes.
        if self._stats is None or self._run.frozen:
            return None
        try:
            return self._stats()
        except Exception:  # a closing Fetcher: keep the last snapshot
            log.debug("reading the Fetcher's load failed", exc_info=True)
            return None

    def _advance(self, file: _FileBar, n: int) -> None:
        now = self._clock()
        with self._lock:
            file.bytes += n
            self._run.bytes += n
            if n:
                file.last_byte_at = now

    def _finish(self, file: _FileBar) -> None:
        with self._lock:
            if file in self._files:
                self._files.remove(file)
            if file.bar is not None:
                file.bar.close()  # leave=False: its line is cleared
                file.bar = None

    def _fit(self) -> int | None:
        """The widest line to paint: one column short of the terminal, as a line that fills the
        last column wraps on some terminals and the next repaint leaves its tail behind."""
        width = self._columns()
        return None if width is None else max(1, width - 1)

    def _print_lines(self) -> None:
        """Print the lines waiting above the bars, in one write (under the lock)."""
        if self._lines:
            self._tqdm.write("\n".join(self._lines), file=self.stream)
            self._lines.clear()

    def _paint(self, now: float, *, files: bool = True) -> None:
        self._print_lines()
        self._painted_at = now
        fit = self._fit()
        self._overall.ncols = fit
        self._overall.bar_format = _literal(lay_out(self._run.pieces(now), fit, unicode=self._unicode))
        self._overall.refresh()
        if not files:
            return
        for file in self._files:
            if file.bar is None and now - file.began < BAR_DELAY_S:
                continue
            text = _literal(lay_out(file.pieces(now), fit, unicode=self._unicode))
            if file.bar is None:
                file.bar = self._tqdm(total=file.total, file=self.stream, leave=False, ncols=fit, bar_format=text)
            else:
                file.bar.ncols = fit
                file.bar.bar_format = text
                file.bar.refresh()

class _RunFigures:
    """What the overall bar shows: the URLs done of the total, the bytes, the time, and the Fetcher's load."""

    def __init__(self, total: int | None, started: float) -> None:
        self.total = total
        self.done = 0
        self.bytes = 0
        self.started = started
        self.rate = RecentRate(started)
        self.gauge: Stats | None = None  # the last true snapshot of the Fetcher's load
        self.frozen = False  # the gauge keeps its last values
        self.interrupted = False  # and the bar says why

    def take(self, snapshot: Stats | None) -> None:
        """A snapshot of the Fetcher's load, unless the gauge is frozen."""
        if snapshot is None or self.frozen:
            return
        # Once a run has been seen, a snapshot without one is a Fetcher
        # closing or cancelling: its empty queue is not what happened.
        if snapshot.active_runs or self.gauge is None or not self.gauge.active_runs:
            self.gauge = snapshot

    def pieces(self, now: float) -> list[Piece]:
        pieces = [Piece("fetcher interrupted" if self.interrupted else "fetcher")]
        if self.total:
            pieces += [
                Piece(f"{self.done}/{self.total}"),
                Piece("", drop=5, fill=self.done / self.total),
                Piece(f"{100 * self.done / self.total:3.0f}%", drop=3),
            ]
        else:
            pieces.append(Piece(f"{self.done}/{self.total}" if self.total == 0 else f"{self.done} done"))
        pieces.append(Piece(human_bytes(self.bytes), drop=2))
        gauge = self.gauge
        rate = self.rate.rate(now, self.bytes)
        if gauge is not None and gauge.byte_rate_cap is not None:
            pieces.append(Piece(f"{human_rate(gauge.byte_rate)} of {human_rate(gauge.byte_rate_cap)}", drop=4))
        else:
            pieces.append(Piece(human_rate(rate), drop=4))
        pieces.append(Piece(clock_text(now - self.started)))
        if gauge is not None:
            text = f"slots {gauge.in_use}/{gauge.capacity} waiting {gauge.waiting}"
            if gauge.retrying:
                text += f" retrying {gauge.retrying}"
            pieces.append(Piece(text))
            if limits := _limits_text(gauge):
                pieces.append(Piece(limits, drop=1))
        return pieces


def _limits_text(stats: Stats) -> str:
    """The politeness limits at work: hosts paused, requests per second against --rate."""
    parts = []
    if stats.paused:
        if len(stats.paused) == 1:
            [(host, left)] = stats.paused.items()
            parts.append(f"paused {escape(host)} {left:.0f}s")
        else:
            parts.append(f"paused {len(stats.paused)} hosts")
    if stats.host_limits:
        # --adaptive: the hosts held lowest below their cap, as "example.org 3/16".
        lowest = sorted(stats.host_limits.items(), key=lambda item: (item[1][0], item[0]))
        parts += [f"{escape(_short_host(host))} {limit}/{cap}" for host, (limit, cap) in lowest[:2]]
        if len(lowest) > 2:
            parts.append(f"+{len(lowest) - 2} hosts below cap")
    if stats.request_rate_cap is not None:
        parts.append(f"{stats.request_rate:.1f}/{stats.request_rate_cap:g} req/s")
    return " ".join(parts)


def _short_host(host: str) -> str:
    """A host key without its port when the port is HTTP's or HTTPS's own."""
    name, _, port = host.rpartition(":")
    return name if port in ("80", "443") and name else host


class _FileBar:
    """One download (a ``Watcher``): its counts, and its bar once it has run BAR_DELAY_S."""

    def __init__(self, display: BarDisplay, name: str, total: int | None, began: float) -> None:
        self._display = display
        self.name = name if len(name) <= _NAME_WIDTH else name[: _NAME_WIDTH - 1] + "…"
        self.total = total
        self.began = began
        self.last_byte_at = began
        self.bytes = 0
        self.rate = RecentRate(began)
        self.bar: tqdm | None = None  # made by the display, under its lock

    def advance(self, n: int) -> None:
        self._display._advance(self, n)

    def done(self) -> None:
        self._display._finish(self)

    def pieces(self, now: float) -> list[Piece]:
        pieces = [Piece(f"  {self.name}")]
        if self.total:
            fraction = self.bytes / self.total
            pieces += [
                Piece(f"{human_bytes(self.bytes)}/{human_bytes(self.total)}"),
                Piece(f"{100 * fraction:3.0f}%", drop=3),
                Piece("", drop=5, fill=fraction),
            ]
        else:
            pieces.append(Piece(human_bytes(self.bytes)))
        rate = self.rate.rate(now, self.bytes)
        pieces += [Piece(human_rate(rate), drop=4), Piece(clock_text(now - self.began), drop=2)]
        if now - self.last_byte_at >= STALLED_AFTER_S:
            # Whole seconds cut down, as the clock beside it is: the silence never reads longer than the download.
            pieces.append(Piece(f"no data for {int(now - self.last_byte_at)}s", drop=1))
        return pieces
