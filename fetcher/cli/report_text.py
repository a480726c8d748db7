"""The words of ``fetcher report``'s summary: what a person reads in ten seconds.

Apart from report.py so that the command's start (every fetcher command's)
does not import the summary's and the HTML page's modules.
"""

from __future__ import annotations

from .._text import escape
from .._units import format_size
from ..report.adaptive import HostLimit
from ..report.summary import NO_RUN_RECORD, NamedURL, Spread, Summary, busy_text, period_text, seconds_text

#: Hosts the text summary lists (all are in --json and --html), and URLs that gave up.
HOSTS_SHOWN = 10
GAVE_UP_SHOWN = 5


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
