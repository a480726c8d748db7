"""``fetcher report REPORT``: what one run in a report did, in a few lines, as JSON, or drawn as an HTML page.

Reads the report, picks the run, has fetcher.report.summary count and
fetcher.report.html draw; its own work is the wording of the summary.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .._errors import ConfigError
from .._text import escape
from .._units import format_size
from ..report import read_report
from ..report.adaptive import HostLimit
from ..report.html import render
from ..report.summary import (
    NO_RUN_RECORD,
    NamedURL,
    Spread,
    Summary,
    busy_text,
    period_text,
    pick_run,
    runs_in,
    seconds_text,
    summarise,
)
from .exits import EXIT_OK

#: Hosts the text summary lists (all are in --json and --html), and URLs that gave up.
HOSTS_SHOWN = 10
GAVE_UP_SHOWN = 5


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
    if run_id is not None and last:
        raise click.UsageError("--run and --last cannot be given together", click.get_current_context())
    source = read_report(path)
    try:
        records = list(source)
    except OSError as exc:
        raise ConfigError(f"cannot read the report {path}: {exc.strerror or exc}") from None
    runs = runs_in(records)
    if not runs:
        # A URL list given by mistake, or an empty file: say which file, not only that it has no records.
        what = "none of its lines is a record" if source.skipped else "it has no records"
        raise ConfigError(f"{escape(path)} does not look like a report: {what}")
    run = pick_run(runs, run_id)
    if source.skipped:
        # The library only logs, and the command sets up no logging: say it here, where scripts reading
        # --json see it too.
        click.echo(
            f"fetcher: warning: {escape(path)}: lines skipped that are not whole records: {source.skipped:,} "
            "(a run killed while writing one, or not a report)",
            err=True,
        )
    summary = summarise(run, skipped_lines=source.skipped)
    if html_path is not None:
        try:
            Path(html_path).write_text(render(run, summary), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {html_path}: {exc.strerror or exc}") from None
    click.echo(json.dumps(summary.to_record()) if as_json else as_text(summary))
    return EXIT_OK


def as_text(summary: Summary) -> str:
    """The summary as a person reads it in ten seconds."""
    lines = [f"run {escape(summary.run_id)}: {_ended(summary)}", f"  {period_text(summary)}"]
    statuses = ", ".join(f"{count:,} {status}" for status, count in summary.statuses.items()) or "none"
    retried = f"; {summary.retried:,} retried" if summary.retried else ""
    lines.append(f"URLs      {summary.urls:,}: {escape(statuses)}{retried}")
    lines.append(f"bytes     {format_size(summary.bytes)} (of the URLs that succeeded)")
    lines.append(f"slots     {_slots(summary)}")
    if summary.waited_on:
        held = ", ".join(f"{limit} {count:,}" for limit, count in summary.waited_on.items())
        lines.append(f"waited on {escape(held)} (URLs the limit held back)")
    if summary.gave_up:
        lines.append(f"gave up   {summary.gave_up:,} waited too long to start (acquire-timeout):")
        lines.extend(f"  {_gave_up(url)}" for url in summary.gave_up_urls[:GAVE_UP_SHOWN])
        if summary.gave_up > GAVE_UP_SHOWN:
            lines.append(f"  and {summary.gave_up - GAVE_UP_SHOWN:,} more")
    if summary.slowest:
        lines.append("slowest")
        lines.extend(f"  {_slow(url)}" for url in summary.slowest)
    if summary.hosts:
        lines.extend(_hosts(summary))
    if summary.unusable or summary.skipped_lines:
        lines.append(
            f"skipped   {_count(summary.skipped_lines, 'line')} of the report not whole records, "
            f"{_count(summary.unusable, 'record')} of this run without usable times"
        )
    return "\n".join(lines)


def _count(count: int, thing: str) -> str:
    return f"{count:,} {thing}{'' if count == 1 else 's'}"


def _ended(summary: Summary) -> str:
    if not summary.run_record:
        return NO_RUN_RECORD
    reason = f": {escape(summary.reason)}" if summary.reason else ""
    version = f", fetcher {escape(summary.version)}" if summary.version else ""
    return f"{escape(summary.ended or '?')}{reason}{version}"


def _slots(summary: Summary) -> str:
    if summary.slots is None:
        return "none used"
    where = f"--max {summary.slots}" if summary.slots_from == "max" else f"{summary.slots} (the peak in use; no --max)"
    text = f"{where}: {busy_text(summary)}"
    if summary.slots_from == "max" and summary.peak_in_use < summary.slots:
        text += f"; never more than {summary.peak_in_use} in use"
    return text


def _slow(url: NamedURL) -> str:
    waited = f"waited {seconds_text(url.wait_s)}" if url.wait_s else ""
    return f"{seconds_text(url.total_s):>7}  {escape(url.status):<15} {waited:<14} {escape(url.url)}"


def _gave_up(url: NamedURL) -> str:
    limit = url.waited_on or "a slot"
    return f"line {url.line}: waited {seconds_text(url.wait_s)} for {escape(limit)}  {escape(url.url)}"


def _hosts(summary: Summary) -> list[str]:
    shown = summary.hosts[:HOSTS_SHOWN]
    width = min(40, max(len("per host"), *(len(escape(h.host)) + 2 for h in shown)))
    spreads = [[_spread(h.wait_s), _spread(h.ttfb_s), _spread(h.total_s)] for h in shown]
    # As wide as the widest cell: "0.00419s / 0.00856s" is wider than the heading.
    cell = max(len("total p50/p95"), *(len(text) for row in spreads for text in row))
    # --adaptive: each host's limit, where it ended / the lowest it went / its cap.
    adaptive = any(h.limit is not None for h in summary.hosts)
    limit_head = f"  {'limit end/low/cap':>17}" if adaptive else ""
    lines = [
        f"{'per host':<{width}}  {'URLs':>7} {'bytes':>10}  {'wait p50/p95':>{cell}}  {'ttfb p50/p95':>{cell}}"
        f"  {'total p50/p95':>{cell}}{limit_head}"
    ]
    for host, (wait, ttfb, total) in zip(shown, spreads, strict=True):
        limit = "" if not adaptive else f"  {_limit(host.limit):>17}"
        lines.append(
            f"  {escape(host.host):<{width - 2}}  {host.urls:>7,} {format_size(host.bytes):>10}  "
            f"{wait:>{cell}}  {ttfb:>{cell}}  {total:>{cell}}{limit}"
        )
    if len(summary.hosts) > HOSTS_SHOWN:
        lines.append(f"  and {len(summary.hosts) - HOSTS_SHOWN:,} more hosts (all are in --json and --html)")
    return lines


def _limit(limit: HostLimit | None) -> str:
    return "-" if limit is None else f"{limit.final}/{limit.lowest}/{limit.cap}"


def _spread(spread: Spread) -> str:
    if spread.count == 0:
        return "-"
    return f"{seconds_text(spread.median)} / {seconds_text(spread.p95)}"
