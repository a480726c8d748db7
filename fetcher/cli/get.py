"""``fetcher get``, the download (and default) command: parse its options, call the library, pick the exit code.

It is not the dispatch between commands, the error messages or the signal handling: those are main.py's.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .._config import MAX_CONCURRENT_LIMIT
from .._errors import ConfigError, FetcherError
from .._fetcher import Fetcher
from ..report import DEFAULT_REPORT_NAME, ReportWriter
from .._result import Tally
from .._units import format_size, parse_duration, parse_rate, parse_size
from .._urllist import count_entries, open_url_list
from .._version import __version__
from ..limits.shared import locate
from ..state import DEFAULT_STATE_NAME
from .exits import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated
from .progress import BarDisplay, LineDisplay

EPILOG = """\b
Exit status:
  0    every URL was downloaded (or was unchanged, or skipped as asked)
  1    a URL failed (HTTP error, network error, bad body, invalid line),
       or the report could not be written
  2    usage error: bad option, unreadable URL list, unusable DEST
  3    nothing failed, but some URLs gave up waiting for a slot or their host's turn
  4    nothing failed, but --deadline or --quota stopped the run early
  130  interrupted (Ctrl-C); 143 terminated (SIGTERM)
When several apply, the first in the order 1, 4, 3 wins.
"""


def _parsed(parse: Callable[[str], float], least: str) -> Callable[[click.Context, click.Parameter, str | None], Any]:
    """A click callback reading a value with *parse*; zero and less are refused with *least*."""

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        try:
            parsed = parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
        if parsed <= 0:
            raise click.BadParameter(least, ctx=ctx, param=param)
        return parsed

    return callback


_size = _parsed(parse_size, "must be at least 1 byte")
_duration = _parsed(parse_duration, "must be longer than 0s")
_rate = _parsed(parse_rate, "must be more than 0 per second")


def _finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """Reject nan and inf, which click's FloatRange lets through."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of seconds", ctx=ctx, param=param)
    return value


class _DefaultCommand(click.Command):
    """The command that may be left out: its help says so, and lists the other commands.

    ``fetcher --help`` reaches this help too, so it must show every download
    option as well as what else the group offers.
    """

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if ctx.parent is None:
            super().format_usage(ctx, formatter)
        else:
            formatter.write_usage(ctx.parent.command_path, f"[{ctx.info_name}] URL_LIST [OPTIONS]")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_options(ctx, formatter)
        if ctx.parent is not None and isinstance(ctx.parent.command, click.Group):
            ctx.parent.command.format_commands(ctx.parent, formatter)


@click.command(
    "get",
    cls=_DefaultCommand,
    short_help="Download every URL in URL_LIST (the default command).",
    epilog=EPILOG,
)
@click.argument("url_list", metavar="URL_LIST")
@click.option(
    "--max",
    "-m",
    "max_concurrent",
    type=click.IntRange(min=1, max=MAX_CONCURRENT_LIMIT),
    default=3,
    show_default=True,
    help="Downloads in flight at once.",
)
@click.option(
    "--max-per-host",
    type=click.IntRange(min=1, max=MAX_CONCURRENT_LIMIT),
    default=None,
    metavar="N",
    help="Downloads of one host (name and port) in flight at once.  [default: only --max]",
)
@click.option(
    "--rate",
    default=None,
    metavar="R",
    callback=_rate,
    help="Requests started per second over all hosts (0.5, 10, 30/m), evenly spaced: at most R+1 in any "
    "second.  Redirects and retries count.",
)
@click.option(
    "--rate-per-host",
    default=None,
    metavar="R",
    callback=_rate,
    help="Requests started per second to any one host, as --rate.",
)
@click.option(
    "--limit-rate",
    default=None,
    metavar="SIZE",
    callback=_size,
    help="Bandwidth cap over all downloads together, in bytes/s (500k, 2M; powers of 1024).",
)
@click.option(
    "--shared-slots",
    default=None,
    metavar="NAME",
    help="Share the --max slots with every fetcher on this machine that names the same set; the first "
    "to use it fixes the count.  A NAME with a / is a folder (for several users).  See 'fetcher slots NAME'.",
)
@click.option(
    "--dest",
    "-d",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default="current folder",
    help="Folder for the files; created if missing.",
)
@click.option(
    "--acquire-timeout",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    callback=_finite,
    help="Give up a URL that has waited this long to start, for a slot or its host's turn (recorded as "
    "acquire-timeout). "
    "Default: wait as long as it takes.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    callback=_finite,
    help="Connect timeout, and how long a server may send nothing mid-body.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0, max=100),
    default=3,
    show_default=True,
    metavar="N",
    help="Extra attempts for a transient failure (connection error, stall, body cut short, HTTP 408, 429, 5xx).",
)
@click.option(
    "--retry-wait-max",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    callback=_finite,
    help="Longest wait between attempts (exponential backoff from 1 s, with full jitter).",
)
@click.option(
    "--retry-after-max",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    metavar="SECONDS",
    callback=_finite,
    help="Longest Retry-After obeyed; a server that asks for more fails the URL.",
)
@click.option(
    "--state",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help=f"State database that makes re-runs conditional and resumes partial downloads. "
    f"[default: DEST/{DEFAULT_STATE_NAME}]",
)
@click.option("--force", is_flag=True, help="Download every URL in full, whatever the state database says.")
@click.option("--skip-existing", is_flag=True, help="Never request a URL whose file already exists.")
@click.option(
    "--remote-time/--no-remote-time",
    default=True,
    show_default=True,
    help="Give each file the server's Last-Modified time.",
)
@click.option(
    "--max-time",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    callback=_finite,
    help="Longest a URL may take, from its first request to its record, retries included.",
)
@click.option(
    "--speed-limit",
    default=None,
    metavar="SIZE",
    callback=_size,
    help="Cut (and retry) a download slower than SIZE bytes/s for --speed-time seconds (K, M, G allowed).",
)
@click.option(
    "--speed-time",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    callback=_finite,
    help="How long a download may stay under --speed-limit.  [default: 30 with --speed-limit]",
)
@click.option(
    "--max-filesize",
    default=None,
    metavar="SIZE",
    callback=_size,
    help="Largest file to save, decoded (K, M, G: powers of 1024).  [default: only a guard against "
    "decompression bombs]",
)
@click.option(
    "--deadline",
    default=None,
    metavar="DURATION",
    callback=_duration,
    help="Stop the run after this long (90s, 15m, 2h): cancel what is in flight, start nothing more; exit 4.",
)
@click.option(
    "--quota",
    default=None,
    metavar="SIZE",
    callback=_size,
    help="Start no new download once the files saved add up to SIZE; those in flight finish; exit 4.",
)
@click.option(
    "--report",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help=f"Per-URL report, appended; CSV if it ends in .csv, else JSON Lines. [default: DEST/{DEFAULT_REPORT_NAME}]",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show progress bars on stderr.  [default: only when stderr is a terminal and not --quiet]",
)
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="Print nothing if every URL succeeded; otherwise only the failures and a summary.",
)
@click.version_option(__version__, "--version", "-V", prog_name="fetcher")
def get(
    url_list: str,
    max_concurrent: int,
    max_per_host: int | None,
    rate: float | None,
    rate_per_host: float | None,
    limit_rate: int | None,
    shared_slots: str | None,
    dest: Path,
    acquire_timeout: float | None,
    timeout: float,
    retries: int,
    retry_wait_max: float,
    retry_after_max: float,
    state: Path | None,
    force: bool,
    skip_existing: bool,
    remote_time: bool,
    max_time: float | None,
    speed_limit: int | None,
    speed_time: float | None,
    max_filesize: int | None,
    deadline: float | None,
    quota: int | None,
    report: Path | None,
    progress: bool | None,
    quiet: bool,
) -> int:
    """Download every URL in URL_LIST (a file, or - for standard input), at most --max at a time.

    The list has one URL per line; blank lines and lines starting with # are skipped.
    An indented line under a URL gives options for it: "  checksum=sha-256=HEX" (also sha-1,
    sha-512, md5) and "  out=NAME".

    A second run asks the server only for what changed (the state database), retries what
    failed for a passing reason, and resumes partial downloads.
    """
    if force and skip_existing:
        raise click.UsageError("--force and --skip-existing cannot be used together")
    if limit_rate is not None and speed_limit is not None and limit_rate < speed_limit:
        raise click.UsageError(
            f"--limit-rate {format_size(limit_rate)}/s is below --speed-limit {format_size(speed_limit)}/s: "
            "every download would be cut as too slow"
        )
    entries = open_url_list(url_list)
    report_path = report if report is not None else dest / DEFAULT_REPORT_NAME
    if progress is None:
        progress = sys.stderr.isatty() and not quiet
    display: LineDisplay
    if progress:
        display = BarDisplay(sys.stderr, quiet=quiet, total=count_entries(url_list))
    else:
        display = LineDisplay(sys.stderr, quiet=quiet)
    reserved = [report_path.name] if _same_folder(report_path.parent, dest) else []
    tally = Tally()
    began = time.monotonic()
    interrupted: BaseException | None = None
    completed = False
    try:
        with (
            Fetcher(
                max_concurrent=max_concurrent,
                max_per_host=max_per_host,
                rate=rate,
                rate_per_host=rate_per_host,
                limit_rate=limit_rate,
                **_shared_slots(shared_slots),
                dest=dest,
                acquire_timeout=acquire_timeout,
                timeout=timeout,
                retries=retries,
                retry_wait_max=retry_wait_max,
                retry_after_max=retry_after_max,
                state=True if state is None else state,
                force=force,
                skip_existing=skip_existing,
                remote_time=remote_time,
                max_time=max_time,
                speed_limit=speed_limit,
                speed_time=speed_time,
                max_filesize=max_filesize,
                watch=display.watch if isinstance(display, BarDisplay) else None,
                reserved_names=reserved,
            ) as fetcher,
            _open_report(report_path) as writer,
        ):
            if isinstance(display, BarDisplay):
                display.follow(fetcher.stats)
            for result in fetcher.as_completed(entries, deadline=deadline, quota=quota):
                tally.add(result)
                display.show(result)
                try:
                    writer.write(result)
                except OSError as exc:
                    raise FetcherError(_cannot_write_report(report_path, exc)) from exc
        completed = True
    except (KeyboardInterrupt, Terminated) as exc:
        interrupted = exc
    finally:
        display.close(completed=completed)
    display.summary(tally, time.monotonic() - began, interrupted=interrupted is not None)
    if interrupted is not None:
        return EXIT_TERMINATED if isinstance(interrupted, Terminated) else EXIT_INTERRUPTED
    return tally.exit_code


def _shared_slots(value: str | None) -> dict[str, Any]:
    """--shared-slots as the Fetcher takes it."""
    if value is None:
        return {}
    name, folder = locate(value, os.environ)
    return {"shared_slots": name, "shared_slots_dir": folder}


def _open_report(path: Path) -> ReportWriter:
    """Open the report, or raise ConfigError (exit 2: the run never started)."""
    try:
        return ReportWriter(path)
    except OSError as exc:
        raise ConfigError(_cannot_write_report(path, exc)) from exc


def _cannot_write_report(path: Path, exc: OSError) -> str:
    return f"cannot write report '{path}': {exc.strerror or exc}"


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
