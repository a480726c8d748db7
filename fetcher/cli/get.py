"""``fetcher get``, the download (and default) command: parse its options, call the library, pick the exit code.

It is not the dispatch between commands, the error messages or the signal handling: those are main.py's.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .._config import MAX_CONCURRENT_LIMIT, MAX_WORKERS
from .._errors import ConfigError, FetcherError
from .._fetcher import DEFAULT_READ_AHEAD, Fetcher, new_run_id
from .._result import Tally
from .._run.attempt import LONG_LIST
from .._text import redact
from .._units import format_size
from .._urllist import Entry, count_entries, open_url_list
from .._version import __version__
from ..limits import HostPace

if TYPE_CHECKING:
    from ..cluster import ClusterQueue
from ..report import DEFAULT_REPORT_NAME, ReportWriter, RunRecord
from ..state import DEFAULT_STATE_NAME
from ..transfer.tempfiles import Cleanup
from ..workers.cores import kept_to, parent_core
from .borrowed import (
    OutputName,
    Tries,
    always_on,
    borrowed_note,
    output_given,
    output_name,
    refused,
    retries_or_tries,
    tries_given,
)
from .exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, Terminated
from .params import BYTE_RATE, REQUEST_RATE, SIZE, CABundle, Duration, File, Folder, SharedSlots, Whole
from .progress import BarDisplay, LineDisplay, cleanup_line, report_lost_line
from .signals import StopOnSignal
from .stderr import BestEffortStream, say

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
@click.argument("url_list", metavar="URL_LIST", required=False)
@click.option(
    "--input-file",
    "-i",
    default=None,
    metavar="FILE",
    help="The URL list, as wget and aria2 take it (instead of URL_LIST).",
)
@click.option(
    "--max",
    "-m",
    "-j",
    "max_concurrent",
    type=Whole(1, MAX_CONCURRENT_LIMIT),
    metavar="N",
    default=3,
    show_default=True,
    help="Downloads in flight at once.",
)
@click.option(
    "--max-per-host",
    type=Whole(1, MAX_CONCURRENT_LIMIT),
    default=None,
    metavar="N",
    help="Downloads of one host (name and port) in flight at once.  [default: only --max]",
)
@click.option(
    "--adaptive",
    is_flag=True,
    default=False,
    help="Give each host a limit of its own that follows its server: from 1 up to --max-per-host (else --max), "
    "growing while answers come as fast as unloaded, cut when they slow down or on a 429, 503, reset or timeout.",
)
@click.option(
    "--rate",
    default=None,
    metavar="R",
    type=REQUEST_RATE,
    help="Requests started per second over all hosts (0.5, 10, 30/m), evenly spaced: at most R+1 in any "
    "second.  Redirects and retries count.",
)
@click.option(
    "--rate-per-host",
    default=None,
    metavar="R",
    type=REQUEST_RATE,
    help="Requests started per second to any one host, as --rate.",
)
@click.option(
    "--limit-rate",
    default=None,
    metavar="SIZE",
    type=BYTE_RATE,
    help="Bandwidth cap over all downloads together, in bytes/s (500k, 2M; powers of 1024).",
)
@click.option(
    "--shared-slots",
    type=SharedSlots(),
    default=None,
    metavar="NAME",
    help="Share the --max slots with every fetcher on this machine that names the same set; the first "
    "to use it fixes the count.  A NAME with a / is a folder (for several users).  See 'fetcher slots NAME'.",
)
@click.option(
    "--redis",
    "redis_url",
    default=None,
    metavar="URL",
    help="A Redis server (redis://HOST:6379/0) that the fetchers of a --cluster share; needs "
    "pip install 'fetcher[redis]'.",
)
@click.option(
    "--cluster",
    default=None,
    metavar="NAME",
    help="Share every limit (--max, --max-per-host, the rates, host pauses, --adaptive) with every fetcher, "
    "on any machine, that gives the same --redis and NAME; the first fixes the limits.  The state (validators, "
    "partial files, file names) is the cluster's too, in that Redis, unless --state FILE is given.",
)
@click.option(
    "--lease",
    type=Duration(allow_zero=False),
    default=10.0,
    show_default="10s",
    metavar="DURATION",
    help="With --cluster: how long the slots (and, for 'fetcher work', the URLs) of a fetcher that died stay "
    "taken before the others may have them.",
)
@click.option(
    "--workers",
    type=Whole(0, MAX_WORKERS),
    default=None,
    metavar="N",
    help="Processes that a long list's downloads are spread over; every limit stays exact.  0: all in one "
    "process.  [default: one per core]",
)
@click.option(
    "--dest",
    "-d",
    "-P",
    "--directory-prefix",
    type=Folder(),
    metavar="DIR",
    default=Path("."),
    show_default="current folder",
    help="Folder for the files; created if missing.",
)
@click.option(
    "--output",
    "-O",
    "--output-document",
    type=OutputName(),
    default=None,
    expose_value=False,
    callback=output_given,
    metavar="NAME",
    help="The file name for the one URL given as the argument (in a list: out=NAME under the URL).",
)
@click.option(
    "--acquire-timeout",
    type=Duration(allow_zero=True),
    default=None,
    metavar="DURATION",
    help="Give up a URL that has waited this long to start, for a slot or its host's turn (recorded as "
    "acquire-timeout). "
    "Default: wait as long as it takes.",
)
@click.option(
    "--timeout",
    type=Duration(),
    default="30s",
    show_default=True,
    metavar="DURATION",
    help="Connect timeout, and how long a server may send nothing mid-body.",
)
@click.option(
    "--retries",
    type=Whole(0, 100),
    default=3,
    show_default=True,
    metavar="N",
    callback=retries_or_tries,
    help="Extra attempts for a transient failure (connection error, stall, body cut short, HTTP 408, 429, 5xx).",
)
@click.option(
    "--tries",
    "-t",
    type=Tries(100),
    default=None,
    expose_value=False,
    callback=tries_given,
    metavar="N",
    help="Every attempt, as wget counts them: --retries N-1.",
)
@click.option(
    "--retry-wait-max",
    type=Duration(allow_zero=True),
    default="1m",
    show_default=True,
    metavar="DURATION",
    help="Longest wait between attempts (exponential backoff from 1 s, with full jitter).",
)
@click.option(
    "--retry-after-max",
    type=Duration(allow_zero=True),
    default="5m",
    show_default=True,
    metavar="DURATION",
    help="Longest Retry-After obeyed; a server that asks for more fails the URL.",
)
@click.option(
    "--state",
    type=File(),
    metavar="FILE",
    default=None,
    help=f"State database that makes re-runs conditional and resumes partial downloads. "
    f"[default: DEST/{DEFAULT_STATE_NAME}; with --cluster, the cluster's, in its Redis]",
)
@click.option(
    "--ca-certificate",
    "--cacert",
    type=CABundle(),
    default=None,
    metavar="FILE",
    help="Trust the CAs in FILE (PEM) for HTTPS, for a private CA.  [default: the system's]",
)
@click.option("--force", is_flag=True, help="Download every URL in full, whatever the state database says.")
@click.option("--skip-existing", is_flag=True, help="Never request a URL whose file already exists.")
@click.option(
    "--continue",
    "-c",
    is_flag=True,
    expose_value=False,
    callback=always_on,
    help="Accepted for wget's sake: fetcher always resumes partial downloads.",
)
@click.option(
    "--timestamping",
    "-N",
    is_flag=True,
    expose_value=False,
    callback=always_on,
    help="Accepted for wget's sake: a re-run always asks only for what changed.",
)
@click.option(
    "--remote-time/--no-remote-time",
    default=True,
    show_default=True,
    help="Give each file the server's Last-Modified time.",
)
@click.option(
    "--max-time",
    type=Duration(),
    default=None,
    metavar="DURATION",
    help="Longest a URL may take, from its first request to its record, retries included.",
)
@click.option(
    "--speed-limit",
    default=None,
    metavar="SIZE",
    type=BYTE_RATE,
    help="Cut (and retry) a download slower than SIZE bytes/s for --speed-time (K, M, G allowed).",
)
@click.option(
    "--speed-time",
    type=Duration(),
    default=None,
    metavar="DURATION",
    help="How long a download may stay under --speed-limit.  [default: 30 with --speed-limit]",
)
@click.option(
    "--max-filesize",
    default=None,
    metavar="SIZE",
    type=SIZE,
    help="Largest file to save, decoded (K, M, G: powers of 1024).  [default: only a guard against "
    "decompression bombs]",
)
@click.option(
    "--deadline",
    default=None,
    metavar="DURATION",
    type=Duration(),
    help="Stop the run after this long (90s, 15m, 1h30m, 2d): cancel what is in flight, start nothing more; exit 4.",
)
@click.option(
    "--quota",
    default=None,
    metavar="SIZE",
    type=SIZE,
    help="Start no new download once the files saved add up to SIZE; those in flight finish; exit 4.",
)
@click.option(
    "--report",
    type=File(),
    metavar="PATH",
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
# Other tools' options that mean something else here: refused, saying what to use instead.
@click.option("-nc", is_flag=True, hidden=True, expose_value=False, callback=refused)
@click.option("--no-clobber", is_flag=True, hidden=True, expose_value=False, callback=refused)
@click.option("-o", hidden=True, expose_value=False, callback=refused)
@click.option("--output-file", hidden=True, expose_value=False, callback=refused)
@click.version_option(__version__, "--version", "-V", prog_name="fetcher")
def get(
    url_list: str | None,
    input_file: str | None,
    max_concurrent: int,
    max_per_host: int | None,
    adaptive: bool,
    rate: float | None,
    rate_per_host: float | None,
    limit_rate: int | None,
    shared_slots: tuple[str, Path] | None,
    redis_url: str | None,
    cluster: str | None,
    lease: float,
    workers: int | None,
    dest: Path,
    acquire_timeout: float | None,
    timeout: float,
    retries: int,
    retry_wait_max: float,
    retry_after_max: float,
    state: Path | None,
    ca_certificate: Path | None,
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
    queue: ClusterQueue | None = None,
) -> int:
    """Download every URL in URL_LIST (a file, - for standard input, or one http(s) URL), at most --max at a time.

    The list has one URL per line; blank lines and lines starting with # are skipped.
    Indented lines under a URL give options for it (sha-1, sha-512, md5 also work):

    \b
      https://example.com/release.tar.gz
        checksum=sha-256=HEX
        out=release-latest.tar.gz

    A second run asks the server only for what changed (the state database), retries what
    failed for a passing reason, and resumes partial downloads.
    """
    source = _the_list(url_list, input_file)
    if force and skip_existing:
        raise click.UsageError("--force and --skip-existing cannot be used together")
    if limit_rate is not None and speed_limit is not None and limit_rate < speed_limit:
        raise click.UsageError(
            f"--limit-rate {format_size(limit_rate)}/s is below --speed-limit {format_size(speed_limit)}/s: "
            "every download would be cut as too slow"
        )
    began = time.monotonic()
    report_path = report if report is not None else dest / DEFAULT_REPORT_NAME
    if source != "-" and _same_file(report_path, Path(source)):
        # Appending records to the list would turn them into invalid URL lines for the next run.
        raise click.UsageError(f"the report '{report_path}' is the URL list itself (give --report another path)")
    # The writer creates nothing before its first record, so a --report that
    # cannot be written fails here, before DEST is made.  One in DEST is as
    # writable as DEST, which the Fetcher checks first (and says so better).
    early_writer = None if report is None else _open_report(report)
    # `fetcher work` (cli/cluster.py): the URLs come from the cluster's queue, a few at a time.
    entries, total = (queue.entries(), None) if queue is not None else _open_list(source)
    if workers is None and total is not None and total < LONG_LIST:
        # Such a list never starts worker processes: the Fetcher need not prepare them (its fork costs ~10 ms).
        workers = 0
    note = borrowed_note(click.get_current_context())  # once the list opened: a refused run has nothing to note
    if note is not None:
        say(note)
    if entries is None:  # an empty list: no DEST, no report, nothing to clean up
        LineDisplay(sys.stderr, quiet=quiet).summary(Tally(), time.monotonic() - began)
        return EXIT_OK
    # Everything the run prints goes through this stream: a stderr that is gone or stops draining
    # must not fail or stall the downloads (see cli/stderr.py).
    stderr = BestEffortStream(sys.stderr)
    try:
        if progress is None:
            progress = stderr.isatty() and not quiet
        display: LineDisplay
        if progress:
            display = BarDisplay(stderr, quiet=quiet, total=total)
        else:
            display = LineDisplay(stderr, quiet=quiet)
        reserved = [report_path.name] if _same_folder(report_path.parent, dest) else []
        made = _missing_folders(dest)
        tally = Tally()
        interrupted: BaseException | None = None
        completed = False
        stopper: StopOnSignal | None = None
        lost_line: str | None = None
        cleanup_text: str | None = None
        try:
            with (
                Fetcher(
                    max_concurrent=max_concurrent,
                    max_per_host=max_per_host,
                    adaptive=adaptive,
                    rate=rate,
                    rate_per_host=rate_per_host,
                    limit_rate=limit_rate,
                    **_shared_slots(shared_slots),
                    redis=redis_url,
                    cluster=cluster,
                    cluster_lease=lease,
                    workers=workers,
                    dest=dest,
                    acquire_timeout=acquire_timeout,
                    timeout=timeout,
                    retries=retries,
                    retry_wait_max=retry_wait_max,
                    retry_after_max=retry_after_max,
                    state=True if state is None else state,
                    shared_state=_shared_state(cluster, state),
                    ca_certificate=ca_certificate,
                    force=force,
                    skip_existing=skip_existing,
                    remote_time=remote_time,
                    max_time=max_time,
                    speed_limit=speed_limit,
                    speed_time=speed_time,
                    max_filesize=max_filesize,
                    watch=display.watch if isinstance(display, BarDisplay) else None,
                    reserved_names=reserved,
                    # A worker of a cluster takes from the queue only what it can start soon: the rest stays
                    # there for the other workers.
                    read_ahead=2 * max_concurrent if queue is not None else DEFAULT_READ_AHEAD,
                ) as fetcher,
                early_writer or _open_report(report_path) as writer,
            ):
                made = []  # the run has begun: what it made is its own now
                if isinstance(display, BarDisplay):
                    display.follow(fetcher.stats)
                cleanup = fetcher.cleanup
                # Before the first URL's line: it is about what this run found when it began.
                cleanup_text = cleanup_line(cleanup.removed, cleanup.removed_bytes)
                if cleanup_text is not None and not quiet:
                    display.message(f"fetcher: {cleanup_text}")
                options = _options(click.get_current_context().params, source=source, report=report_path,
                                   queued=queue is not None)  # fmt: skip
                run = _RunRecorder(options=options, cleanup=cleanup)
                try:
                    stopping = _Stopping(display, fetcher, tally, total, writer)
                    # A long list's run keeps this process's threads to one core, its workers to theirs
                    # (workers/cores.py); the threads of the run start inside and inherit it.
                    long_list = total is not None and total >= LONG_LIST
                    with StopOnSignal(stopping) as stopper, kept_to(parent_core(fetcher.worker_processes)
                                                                     if long_list else None):  # fmt: skip
                        for result in fetcher.as_completed(entries, run_id=run.run_id, deadline=deadline, quota=quota):
                            # The record first: a second signal may end the loop anywhere, and the
                            # summary must not count what the report lacks.  It is written with the
                            # others of its batch; one it cannot write is counted in writer.lost.
                            writer.write(result)
                            if queue is not None:
                                queue.finished(result)  # the cluster's record, once it is in the report
                            tally.add(result)
                            display.show(result)
                            if stopper.noticed():
                                # Again, now that the run is surely under way: a signal that came
                                # before its first result may have found no run to stop.
                                fetcher.stop(stopper.reason or "interrupted")
                                display.message(stopping.message(stopper.reason))
                finally:
                    # Even when a second signal or an error cut the run short: what happened is worth a record.
                    ended, reason = _how_it_ended(stopper, sys.exc_info()[1])
                    writer.flush()  # the records waiting, so that report_lost counts them too
                    writer.write_run(run.record(tally, ended=ended, reason=reason, report_lost=writer.lost,
                                                display_lost=stderr.lost,
                                                adaptive=fetcher.adaptive_limits()))  # fmt: skip
                if writer.lost:
                    lost_line = report_lost_line(report_path, writer.lost, writer.first_error or "unknown error")
            completed = stopper is None or stopper.signal is None
            if stopper is not None and stopper.signal is not None:
                interrupted = Terminated() if stopper.signal == signal.SIGTERM else KeyboardInterrupt()
        except (KeyboardInterrupt, Terminated) as exc:
            interrupted = exc
        except FetcherError:
            _remove_made(made, default_state=state is None)
            raise
        finally:
            display.close(completed=completed)
        if cleanup_text is not None and quiet and (tally.exit_code or interrupted is not None):
            display.message(f"fetcher: {cleanup_text}")  # cron mails this run's output: say what it found
        if lost_line is not None:
            display.message(f"fetcher: {lost_line}")
        written = report_path if _has_records(report_path) else None
        display.summary(tally, time.monotonic() - began, interrupted=interrupted is not None, report=written)
        if interrupted is not None:
            return EXIT_TERMINATED if isinstance(interrupted, Terminated) else EXIT_INTERRUPTED
        return EXIT_FAILED if lost_line is not None else tally.exit_code
    finally:
        stderr.close()


def _how_it_ended(stopper: StopOnSignal | None, error: BaseException | None) -> tuple[str, str | None]:
    """The run record's ``ended`` and ``reason``, given the exception that is ending the run (if any)."""
    if stopper is not None and stopper.signal is not None:
        return "interrupted", stopper.reason
    if isinstance(error, (KeyboardInterrupt, Terminated)):
        return "interrupted", "interrupted (Ctrl-C)" if isinstance(error, KeyboardInterrupt) else "terminated (SIGTERM)"
    if error is not None:  # the list could not be read to its end, say
        return "failed", str(error) or type(error).__name__
    return "finished", None


class _Stopping:
    """What a signal calls: freeze the display, note whether any URL is left to start, stop the Fetcher,
    write the report's records waiting.

    In this order: stopping empties the queue at once, and the bars must not
    show ``waiting 0`` when URLs were waiting.
    """

    def __init__(
        self, display: LineDisplay, fetcher: Fetcher, tally: Tally, total: int | None, writer: ReportWriter
    ) -> None:
        self._display, self._fetcher, self._tally, self._total = display, fetcher, tally, total
        self._writer = writer
        self.left_to_start = True  # until known otherwise

    def __call__(self, reason: str) -> None:
        self._display.freeze()
        try:
            stats = self._fetcher.stats()
        except Exception:  # noqa: BLE001 - the stop matters more than the message
            stats = None
        if stats is not None:
            # Neither finished, nor in flight or waiting to retry: waiting, or not read yet.
            unread = 0 if self._total is None else self._total - self._tally.total - stats.in_use - stats.retrying
            self.left_to_start = stats.waiting > 0 or unread > 0
        self._fetcher.stop(reason)
        # The records of what finished so far go to disk now: a second signal may end the run at once.
        self._writer.flush()

    def message(self, reason: str | None) -> str:
        what = "recording the URLs not started" if self.left_to_start else "stopping the downloads in flight"
        return f"fetcher: {reason}: {what} (again to quit at once)"


class _RunRecorder:
    """What the run record needs from the start of the run, then the record itself at its end."""

    def __init__(self, *, options: dict[str, Any], cleanup: Cleanup) -> None:
        self.run_id = new_run_id()
        self.started_at = datetime.now(timezone.utc)
        self.options = options
        self.cleanup = cleanup

    def record(
        self, tally: Tally, *, ended: str, reason: str | None, report_lost: int, display_lost: str | None,
        adaptive: Iterable[HostPace] = (),
    ) -> RunRecord:
        cleanup = self.cleanup
        return RunRecord(
            run_id=self.run_id,
            version=__version__,
            started_at=self.started_at,
            finished_at=datetime.now(timezone.utc),
            ended=ended,
            reason=reason or tally.cut_short,
            options=self.options,
            totals={status.value: count for status, count in tally.counts.items() if count},
            bytes=tally.bytes,
            cleanup={"removed": cleanup.removed, "removed_bytes": cleanup.removed_bytes,
                     "kept": cleanup.kept, "kept_bytes": cleanup.kept_bytes},
            report_lost=report_lost,
            display_lost=display_lost,
            adaptive={pace.host: pace.to_record(since=self.started_at.timestamp()) for pace in adaptive},
        )  # fmt: skip


#: The options a run record keeps: those that shape a run, under their option names.
_RECORDED_OPTIONS = {
    "max": "max_concurrent", "max_per_host": "max_per_host", "rate": "rate", "rate_per_host": "rate_per_host",
    "limit_rate": "limit_rate", "acquire_timeout": "acquire_timeout", "timeout": "timeout", "retries": "retries",
    "max_time": "max_time", "speed_limit": "speed_limit", "speed_time": "speed_time",
    "max_filesize": "max_filesize", "deadline": "deadline", "quota": "quota", "force": "force",
    "skip_existing": "skip_existing", "adaptive": "adaptive",
}  # fmt: skip


def _options(given: dict[str, Any], *, source: str, report: Path, queued: bool = False) -> dict[str, Any]:
    """The run record's options, from the command's parsed options: plain JSON values, paths absolute."""
    options = {name: given[param] for name, param in _RECORDED_OPTIONS.items()}
    shared = given["shared_slots"]
    options["shared_slots"] = None if shared is None else str(Path(shared[1]) / shared[0])
    options["redis"] = None if given["redis_url"] is None else redact(given["redis_url"])
    options["cluster"] = given["cluster"]
    dest = Path(given["dest"]).resolve()
    options["dest"] = str(dest)
    options["list"] = source if source == "-" or queued else _absolute(source)
    options["shared_state"] = shared = _shared_state(given["cluster"], given["state"])
    if shared:
        options["state"] = None  # in the cluster's Redis
    else:
        options["state"] = str(dest / DEFAULT_STATE_NAME if given["state"] is None else Path(given["state"]).resolve())
    options["report"] = str(report.resolve())
    return options


def _shared_state(cluster: str | None, state: Path | None) -> bool:
    """Whether the run keeps its state in the cluster's Redis: with --cluster, unless --state FILE says where."""
    return cluster is not None and state is None


def _absolute(source: str) -> str:
    """The list as the run record keeps it: a file's absolute path, or a URL argument without its credentials."""
    return redact(source) if _URL_ARGUMENT.match(source) and not os.path.exists(source) else str(Path(source).resolve())


#: What `fetcher -` says first on a terminal, where nothing else shows that it waits for input.
READING_STDIN = "fetcher: reading URLs from standard input (end with Ctrl-D)"

_URL_ARGUMENT = re.compile(r"https?://", re.IGNORECASE)


def _the_list(url_list: str | None, input_file: str | None) -> str:
    """The one URL list given, as URL_LIST or -i; none or both is a usage error.

    Also that -O, borrowed from wget, comes with one URL (get's first step, so
    before anything is made).
    """
    if url_list is not None and input_file is not None:
        raise click.UsageError(
            f"two URL lists: '{redact(url_list)}' and -i '{input_file}' (give one: URL_LIST or -i FILE, not both)"
        )
    ctx = click.get_current_context()
    if url_list is None and input_file is None:
        argument = next(param for param in ctx.command.params if param.name == "url_list")
        raise click.MissingParameter(ctx=ctx, param=argument)
    source: str = url_list if url_list is not None else input_file  # type: ignore[assignment]
    if output_name(ctx) is not None and not _one_url(source):
        where = "standard input" if source == "-" else f"'{source}'"
        raise click.UsageError(
            f"--output names the file of one URL given as the argument, not of the URLs in {where} "
            "(in a URL list, write out=NAME under a URL)"
        )
    return source


def _one_url(source: str) -> bool:
    """Whether the list given is one http(s) URL (and not the name of a file)."""
    return bool(_URL_ARGUMENT.match(source)) and not os.path.exists(source)


def _open_list(source: str) -> tuple[Iterator[Entry] | None, int | None]:
    """The list's entries (None for a list with no URL) and how many there are, if known.

    An http(s) URL that is not the name of a file is a list of that one URL,
    as wget, curl and aria2 take it, named as -O says if it was given.
    """
    if _one_url(source):
        return iter([Entry(url=source, line=1, out=output_name(click.get_current_context()))]), 1
    if source == "-" and sys.stdin.isatty():
        # Typed by hand: read it all first, so no bar or line is drawn into the line being typed.
        say(READING_STDIN)
        typed = list(open_url_list(source))
        return (iter(typed), len(typed)) if typed else (None, None)
    entries = open_url_list(source)
    if entries.empty():
        entries.close()
        return None, None
    total = count_entries(source)
    if total is not None:
        entries.length_hint = total  # so a long list's worker processes start with the run
    return entries, total


def _missing_folders(folder: Path) -> list[Path]:
    """*folder* and the parents of it that do not exist yet, deepest first."""
    missing = []
    for level in (folder, *folder.parents):
        if level.exists() or level == level.parent:
            break
        missing.append(level)
    return missing


def _remove_made(made: list[Path], *, default_state: bool) -> None:
    """Undo the folders a run made before it failed to start, so that it leaves nothing behind.

    Only the state database the Fetcher opens there by default can be in them
    (nothing else was written yet); anything else keeps its folder.
    """
    if made and default_state:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(OSError):
                (made[0] / (DEFAULT_STATE_NAME + suffix)).unlink()
    for folder in made:
        try:
            folder.rmdir()
        except OSError:
            return


def _shared_slots(value: tuple[str, Path] | None) -> dict[str, Any]:
    """--shared-slots as the Fetcher takes it."""
    if value is None:
        return {}
    name, folder = value
    return {"shared_slots": name, "shared_slots_dir": folder}


def _open_report(path: Path) -> ReportWriter:
    """Open the report, or raise ConfigError (exit 2: the run never started)."""
    try:
        return ReportWriter(path)
    except OSError as exc:
        raise ConfigError(_cannot_write_report(path, exc)) from exc


def _cannot_write_report(path: Path, exc: OSError) -> str:
    return f"cannot write report '{path}': {exc.strerror or exc}"


def _has_records(report: Path) -> bool:
    try:
        return report.stat().st_size > 0
    except OSError:
        return False


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
