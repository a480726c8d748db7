"""``fetcher report REPORT``: what one run in a report did, in a few lines, as JSON, or drawn as an HTML page.

Reads the report, picks the run, has fetcher.report.summary count and
fetcher.report.html draw; the wording of the summary is in report_text.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .._errors import ConfigError
from .._text import escape
from ..report import Report, read_report
from .exits import EXIT_OK

if TYPE_CHECKING:
    from ..report.which_run import RunRead


@click.command("report", short_help="Summarise a run from a report: counts, hosts, slots; --html draws it.")
@click.argument("path", metavar="REPORT")
@click.option("--run", "run_id", metavar="RUN_ID", default=None, help="The run to summarise (default: the last).")
@click.option("--last", is_flag=True, help="The run that started last (the default).")
@click.option(
    "--html",
    "html_path",
    metavar="FILE",
    default=None,
    help="Also write the run as one self-contained HTML page: slots in use, URLs waiting, a bar per URL.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def report(path: str, run_id: str | None, last: bool, html_path: str | None, as_json: bool) -> int:
    """Summarise one run of the report REPORT (JSON Lines or CSV, as fetcher wrote it).

    Prints counts by status, bytes, wall time, how long every download slot was busy,
    per host the median and 95th percentile of wait, time to first byte and total time,
    the slowest URLs and those that gave up waiting for a slot.  Lines that are not
    whole records (a killed run) are skipped with a warning.  Exit status 0; 2 when
    the report cannot be read, is no report (no line of it is a record), or has no run RUN_ID.
    """
    # Here, not at the top: every fetcher command imports this module at its start (8 ms).
    from ..report.html import render
    from ..report.summary import summarise
    from ..report.timeline import slots_in_use
    from ..report.which_run import read_run
    from .report_text import as_text

    if run_id is not None and last:
        raise click.UsageError("--run and --last cannot be given together", click.get_current_context())
    source = read_report(path)
    # One run's records at a time, not the report's: a cron job's report holds a run a night.
    found = _read(source, path, lambda records: read_run(records, run_id))
    if found.chosen is None:
        # A URL list given by mistake, or an empty file: say which file, not only that it has no records.
        what = "none of its lines is a record" if source.skipped else "it has no records"
        raise ConfigError(f"{escape(path)} does not look like a report: {what}")
    run = found.run
    if run is None:  # that read could not keep all of the chosen run's records: read them alone
        chosen = found.chosen
        run = _read(source, path, lambda records: read_run(records, only=chosen)).run
        if run is None:
            raise ConfigError(f"the report {escape(path)} changed while it was read; try again")
    if source.skipped:
        # The library only logs, and the command sets up no logging: say it here, where scripts reading
        # --json see it too.
        click.echo(
            f"fetcher: warning: {escape(path)}: lines skipped that are not whole records: {source.skipped:,} "
            "(a run killed while writing one, or not a report)",
            err=True,
        )
    # The page draws the slots in use that the summary counts: worked out once for both.
    in_use = slots_in_use(run.spans) if html_path is not None else None
    summary = summarise(run, skipped_lines=source.skipped, in_use=in_use)
    if html_path is not None:
        try:
            Path(html_path).write_text(render(run, summary, in_use=in_use), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {html_path}: {exc.strerror or exc}") from None
    click.echo(json.dumps(summary.to_record()) if as_json else as_text(summary))
    return EXIT_OK


def _read(source: Report, path: str, read: Callable[[Iterable[dict[str, Any]]], RunRead]) -> RunRead:
    """*read* over the records of *source*, once; OSError said as a ConfigError naming *path*."""
    try:
        return read(source)
    except OSError as exc:
        raise ConfigError(f"cannot read the report {path}: {exc.strerror or exc}") from None

