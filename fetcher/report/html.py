"""One run as a self-contained HTML page: the slots in use, the URLs waiting, a bar per URL, the per-host table.

Inline SVG and CSS only: no script, no font, nothing fetched, so the page
looks the same with JavaScript off and from a mail attachment.  Every piece
of text from a record is escaped twice over: control characters as
fetcher._text.escape writes them, then HTML's own.  It builds the text of
the page; writing it to a file is the caller's.  The page's own
Content-Security-Policy forbids any script and any fetch, so a browser shows
it with JavaScript on exactly as with it off.

Each URL is one ``<g class="bar">`` (its ``<title>`` is the tooltip) up to
BAR_LIMIT URLs; beyond that, URLs are counted per slice of time and status
(``<g class="bucket">``), so a run of 100,000 URLs stays a page a browser
opens at once.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from .._text import escape
from .._units import format_size
from .summary import HostSummary, Spread, Summary, busy_text, period_text, seconds_text
from .timeline import Series, Span, bounds, bucket_peaks, slots_in_use, timestamp, waiting
from .which_run import RECORDS_KEPT, RunRecords, clock

#: Up to this many URLs, each has its own bar; beyond it they are counted per slice of time.
BAR_LIMIT = RECORDS_KEPT
#: Slices of time for the counted bars, and for a step chart with more changes than POINT_LIMIT.
BUCKETS = 240
POINT_LIMIT = 4000
#: Rows of the per-host table; the rest are counted in a last row.
HOST_ROWS = 100
#: Charts of a host's adaptive limit (--adaptive), the hosts held lowest first.
LIMIT_CHARTS = 12

#: Status -> colour of its bars (and legend).  Statuses a later version adds get OTHER_COLOUR.
COLOURS: dict[str, str] = {
    "ok": "#2f9e44",
    "unchanged": "#74b816",
    "duplicate": "#a9e34b",
    "skipped": "#adb5bd",
    "failed": "#e03131",
    "acquire-timeout": "#f08c00",
    "invalid": "#862e9c",
    "cancelled": "#c2255c",
    "not-started": "#868e96",
}
OTHER_COLOUR = "#495057"

#: The page's Content-Security-Policy: inline styles, and nothing else.
CSP = "default-src 'none'; style-src 'unsafe-inline'"

_WIDTH = 1200  # the SVGs' user units; they scale to the page's width
_LEFT, _RIGHT = 56, 16
_STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#212529;max-width:1300px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 6px}
.facts{color:#495057;margin:0 0 8px}.note{color:#868e96;font-size:13px;margin:4px 0}
svg{display:block;width:100%;height:auto;background:#fff}
svg text{font:11px system-ui,sans-serif;fill:#495057}
.grid{stroke:#e9ecef}.axis{stroke:#adb5bd}
.area{fill:#4dabf7;fill-opacity:.35;stroke:#1971c2;stroke-width:1.2}
.waiting .area{fill:#ffa94d;stroke:#e8590c}.limit .area{fill:#63e6be;stroke:#0c8599}
.cap{stroke:#e03131;stroke-width:1.5;stroke-dasharray:6 4}.cap-label{fill:#e03131}
.wait{fill:#ced4da}.given{fill-opacity:.3}.retry{fill:#e9ecef;stroke:#adb5bd;stroke-width:.5}.ttfb{fill-opacity:.45}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:3px 10px;text-align:right;border-bottom:1px solid #e9ecef}th{background:#f8f9fa}
td:first-child,th:first-child{text-align:left}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;margin:4px 0;font-size:13px;padding:0;list-style:none}
.legend span{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-1px;border-radius:2px}
ol{margin:4px 0;padding-left:24px}code{font-size:12px;word-break:break-all}
"""


def render(run: RunRecords, summary: Summary, *, in_use: Series | None = None) -> str:
    """The page for *run*, whose summary is *summary*; *in_use*: as ``summarise`` takes it."""
    start, end = clock(run)
    if run.spans:  # the axis holds every URL, though its run record's times say less
        first, last = bounds(run.spans)
        start, end = min(start, first), max(end, last)
    axis = _Axis(start, end)
    if in_use is None:
        in_use = slots_in_use(run.spans)
    waits = waiting(run.spans)
    top = max(summary.slots or 0, summary.peak_in_use, 1)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # No script may run and nothing may be fetched, in any browser: the page is the same with JavaScript off.
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>fetcher report: run {_text(summary.run_id)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>fetcher report: run {_text(summary.run_id)}</h1>",
        _facts(summary),
        '<h2>Slots in use</h2><p class="note">Slots held over time, the download semaphore\'s value: each URL '
        "from taking its slot to giving it back; the dashed line is the number of slots. A retried URL counts "
        "for its last attempt only.</p>",
        _step_chart(in_use, axis, top=top, cap=summary.slots, cap_label=_cap_label(summary), kind="slots"),
        '<h2>URLs waiting to start</h2><p class="note">URLs read from the list and not yet started: '
        "waiting for a slot, their host, a rate, or given up.</p>",
        _step_chart(waits, axis, top=None, cap=None, cap_label="", kind="waiting"),
        _bars_section(run, axis),
        _limits_section(summary, axis),
        _hosts_section(summary.hosts),
        _named_section(summary),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


class _Axis:
    """Seconds since the epoch to x in the SVGs' user units, and the ticks of a time axis."""

    def __init__(self, start: float, end: float) -> None:
        self.start = start
        self.seconds = max(end - start, 1e-3)
        self.width = _WIDTH - _LEFT - _RIGHT

    def x(self, time: float) -> float:
        return _LEFT + (time - self.start) / self.seconds * self.width

    def ticks(self) -> list[float]:
        """Offsets in seconds from the start, at a round step, 4 to 10 of them."""
        step = next((s for s in _STEPS if self.seconds / s <= 10), _STEPS[-1])
        return [i * step for i in range(int(self.seconds // step) + 1)]

    def grid(self, top: float, bottom: float) -> str:
        lines = []
        for offset in self.ticks():
            x = self.x(self.start + offset)
            lines.append(f'<line class="grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}"/>')
            lines.append(f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle">{_tick_text(offset)}</text>')
        return "".join(lines)


def _tick_text(offset: float) -> str:
    return f"{offset:.10g}s" if offset < 60 else seconds_text(offset)


_STEPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)


def _facts(summary: Summary) -> str:
    ended = summary.ended or "no run record"
    statuses = ", ".join(f"{count:,} {_text(status)}" for status, count in summary.statuses.items())
    slots = "-" if summary.slots is None else f"{summary.slots} ({'--max' if summary.slots_from == 'max' else 'peak'})"
    busy = _busy_text(summary)
    lines = [
        f'<p class="facts">{_text(ended)}{"" if not summary.reason else ": " + _text(summary.reason)}; '
        f"{_text(period_text(summary))}; slots {slots}{busy}</p>",
        f'<p class="facts">{summary.urls:,} URLs: {statuses or "none"}; {format_size(summary.bytes)}; '
        f"{summary.retried:,} retried; {summary.gave_up:,} gave up waiting</p>",
    ]
    if summary.waited_on:
        held = ", ".join(f"{_text(limit)} {count:,}" for limit, count in summary.waited_on.items())
        lines.append(f'<p class="facts">held back by: {held}</p>')
    return "\n".join(lines)


def _busy_text(summary: Summary) -> str:
    return f", {busy_text(summary)}" if summary.slots else ""


def _cap_label(summary: Summary) -> str:
    if summary.slots is None:
        return ""
    return f"--max {summary.slots}" if summary.slots_from == "max" else f"peak {summary.slots}"


def _step_chart(series: Series, axis: _Axis, *, top: int | None, cap: int | None, cap_label: str, kind: str) -> str:
    height, pad_top, pad_bottom = 150, 10, 22
    plot = height - pad_top - pad_bottom
    highest = max([top or 0, *(v for _, v in series)], default=0) or 1

    def y(value: float) -> float:
        return pad_top + plot - value / highest * plot

    base = y(0)
    end = axis.start + axis.seconds
    if len(series) > POINT_LIMIT:
        # The peak of each slice: a short burst to the cap must still show.
        peaks = bucket_peaks(series, axis.start, end, BUCKETS)
        width = axis.seconds / BUCKETS
        series = [(axis.start + i * width, value) for i, value in enumerate(peaks)]
    path = [f"M{axis.x(axis.start):.1f},{base:.1f}"]
    for time, value in series:
        path.append(f"H{axis.x(time):.1f}V{y(value):.1f}")
    path.append(f"H{axis.x(end):.1f}V{base:.1f}Z")
    labels = "".join(
        f'<text x="{_LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>' for v in _y_ticks(highest)
    )
    cap_line = ""
    if cap:
        # Above the line, unless the line is at the top of the chart (the usual case): there the
        # label would be cut off by the edge of the SVG, so it goes below.
        label_y = y(cap) - 4 if y(cap) - 4 >= 11 else y(cap) + 13
        cap_line = (
            f'<line class="cap" x1="{_LEFT}" y1="{y(cap):.1f}" x2="{_WIDTH - _RIGHT}" y2="{y(cap):.1f}"/>'
            f'<text class="cap-label" x="{_WIDTH - _RIGHT - 4}" y="{label_y:.1f}" text-anchor="end">'
            f"{_text(cap_label)}</text>"
        )
    return (
        f'<svg class="chart {kind}" viewBox="0 0 {_WIDTH} {height}" role="img" aria-label="{kind} over time">'
        f"{axis.grid(pad_top, base)}"
        f'<line class="axis" x1="{_LEFT}" y1="{base:.1f}" x2="{_WIDTH - _RIGHT}" y2="{base:.1f}"/>'
        f'{labels}<path class="area" d="{"".join(path)}"/>{cap_line}</svg>'
    )


def _y_ticks(highest: int) -> list[int]:
    """0 and round numbers up to *highest*, 2 to 5 of them."""
    step = next(s * scale for scale in (10**e for e in range(12)) for s in (1, 2, 5) if highest / (s * scale) <= 4)
    return list(range(0, highest + 1, step))


def _bars_section(run: RunRecords, axis: _Axis) -> str:
    spans = run.spans
    statuses = sorted({s.status for s in spans}, key=_status_order)
    if len(spans) <= BAR_LIMIT and len(run.urls) == len(spans):
        title = "<h2>Each URL</h2>"
        note = (
            '<p class="note">One bar per URL, in list order: waiting to start (grey, or in its status\'s colour if it '
            "never started), earlier attempts and retry waits (pale), time to first byte (light), download (dark). "
            "Hover a bar for its URL.</p>"
        )
        chart = _bars(run.urls, spans, axis)
    else:
        title = "<h2>URLs finishing over time</h2>"
        note = (
            f'<p class="note">{len(spans):,} URLs, more than {BAR_LIMIT:,}: counted per slice of time '
            "(when each finished) and by status rather than drawn one by one.</p>"
        )
        chart = _buckets(spans, axis, statuses)
    legend = "".join(f'<li><span style="background:{_colour(s)}"></span>{_text(s)}</li>' for s in statuses)
    return f'{title}{note}<ul class="legend">{legend}</ul>{chart}'


def _bars(urls: Sequence[dict[str, Any]], spans: Sequence[Span], axis: _Axis) -> str:
    row = max(3.0, min(12.0, 900 / max(len(spans), 1)))
    bar = row * 0.75
    height = row * len(spans) + 28
    out = [f'<svg class="bars" viewBox="0 0 {_WIDTH} {height:.0f}" role="img" aria-label="each URL over time">']
    out.append(axis.grid(4, height - 24))
    # In list order, not the file's (the order URLs finished): the picture is a waterfall.
    rows = sorted(zip(urls, spans, strict=True), key=lambda pair: (pair[0]["line"] or 0, pair[1].ready))
    for index, (record, s) in enumerate(rows):
        top = 4 + index * row
        colour = _colour(s.status)
        if s.attempt is None:
            # Nothing was requested: its wait (in its status's colour: it gave up, or was cut short), and a mark
            # where it ended.
            pieces = [_rect("given", axis, s.ready, s.waited, top, bar, colour)]
            pieces.append(_rect("end", axis, s.finished, s.finished, top, bar, colour, least=2.0))
        else:
            pieces = [_rect("wait", axis, s.ready, s.waited, top, bar, None)]
            if s.attempt > s.waited:
                pieces.append(_rect("retry", axis, s.waited, s.attempt, top, bar, None))
            headers = s.headers if s.headers is not None else s.attempt
            pieces.append(_rect("ttfb", axis, s.attempt, headers, top, bar, colour))
            pieces.append(_rect("dl", axis, headers, s.finished, top, bar, colour, least=1.5))
        tooltip = "&#10;".join(_text(line) for line in _tooltip(record))
        out.append(f'<g class="bar"><title>{tooltip}</title>{"".join(pieces)}</g>')
    out.append("</svg>")
    return "".join(out)


def _tooltip(record: dict[str, Any]) -> list[str]:
    """A bar's tooltip, line by line."""
    timings = ", ".join(
        f"{name} {seconds_text(record[key])}"
        for name, key in (("waited", "wait_s"), ("ttfb", "ttfb_s"), ("download", "download_s"), ("total", "total_s"))
        if record[key] is not None
    )
    attempts = f", {record['attempts']} attempts" if (record["attempts"] or 0) > 1 else ""
    error = f": {record['error']}" if record["error"] else ""
    return [f"line {record['line']}: {record['url']}", f"{record['status']}{error}", f"{timings}{attempts}"]


def _rect(kind: str, axis: _Axis, start: float, end: float, top: float, height: float, colour: str | None,
          least: float = 0.0) -> str:  # fmt: skip
    x = axis.x(start)
    width = max(axis.x(end) - x, least)
    fill = "" if colour is None else f' fill="{colour}"'
    return f'<rect class="{kind}" x="{x:.1f}" y="{top:.1f}" width="{width:.1f}" height="{height:.1f}"{fill}/>'


def _buckets(spans: Sequence[Span], axis: _Axis, statuses: Sequence[str]) -> str:
    counts: dict[str, list[int]] = {status: [0] * BUCKETS for status in statuses}
    for s in spans:
        index = min(BUCKETS - 1, int((s.finished - axis.start) / axis.seconds * BUCKETS))
        counts[s.status][max(0, index)] += 1
    highest = max((sum(c[i] for c in counts.values()) for i in range(BUCKETS)), default=1) or 1
    height, pad_top, pad_bottom = 220, 10, 22
    plot = height - pad_top - pad_bottom
    width = axis.width / BUCKETS
    out = [f'<svg class="bars" viewBox="0 0 {_WIDTH} {height}" role="img" aria-label="URLs finishing over time">']
    out.append(axis.grid(pad_top, height - pad_bottom))
    out.extend(
        f'<text x="{_LEFT - 6}" y="{pad_top + plot - v / highest * plot + 4:.1f}" text-anchor="end">{v:g}</text>'
        for v in _y_ticks(highest)
    )
    for index in range(BUCKETS):
        bottom = float(height - pad_bottom)
        x = _LEFT + index * width
        for status in statuses:
            count = counts[status][index]
            if not count:
                continue
            tall = count / highest * plot
            bottom -= tall
            out.append(
                f'<g class="bucket"><title>{count:,} {_text(status)}</title><rect x="{x:.1f}" y="{bottom:.1f}" '
                f'width="{max(width - 0.5, 0.5):.1f}" height="{tall:.1f}" fill="{_colour(status)}"/></g>'
            )
    out.append("</svg>")
    return "".join(out)


def _limits_section(summary: Summary, axis: _Axis) -> str:
    """With --adaptive: each host's limit over the run, the hosts held lowest first (LIMIT_CHARTS of them)."""
    limited = sorted((h for h in summary.hosts if h.limit is not None and h.limit.points),
                     key=lambda h: (h.limit.lowest if h.limit else 0, h.host))  # fmt: skip
    if not limited:
        return ""
    start = timestamp(summary.started_at) if summary.started_at else axis.start
    parts = [
        '<h2>Adaptive limit per host</h2><p class="note">Downloads each host was allowed in flight at once '
        "(--adaptive): it grows while the server answers as fast as unloaded and comes down when answers slow "
        "down or the server refuses; the dashed line is the host's cap.</p>"
    ]
    for host in limited[:LIMIT_CHARTS]:
        assert host.limit is not None
        series = [(start + t, limit) for t, limit in host.limit.points]
        parts.append(f'<p class="facts">{_text(host.host)}: ended at {host.limit.final}, lowest '
                     f"{host.limit.lowest}, cap {host.limit.cap}</p>")  # fmt: skip
        parts.append(_step_chart(series, axis, top=host.limit.cap, cap=host.limit.cap,
                                 cap_label=f"cap {host.limit.cap}", kind="limit"))  # fmt: skip
    if len(limited) > LIMIT_CHARTS:
        parts.append(f'<p class="note">and {len(limited) - LIMIT_CHARTS:,} more hosts (in --json)</p>')
    return "".join(parts)


def _hosts_section(hosts: Sequence[HostSummary]) -> str:
    head = (
        "<tr><th>host</th><th>URLs</th><th>bytes</th><th>wait median</th><th>wait p95</th>"
        "<th>ttfb median</th><th>ttfb p95</th><th>total median</th><th>total p95</th></tr>"
    )
    rows = [
        f"<tr><td>{_text(h.host)}</td><td>{h.urls:,}</td><td>{format_size(h.bytes)}</td>"
        f"{_spread_cells(h.wait_s)}{_spread_cells(h.ttfb_s)}{_spread_cells(h.total_s)}</tr>"
        for h in hosts[:HOST_ROWS]
    ]
    if len(hosts) > HOST_ROWS:
        rest = hosts[HOST_ROWS:]
        rows.append(f'<tr><td colspan="9">and {len(rest):,} more hosts, {sum(h.urls for h in rest):,} URLs</td></tr>')
    return f'<h2>Per host</h2><table class="hosts">{head}{"".join(rows)}</table>'


def _spread_cells(spread: Spread) -> str:
    return f"<td>{seconds_text(spread.median)}</td><td>{seconds_text(spread.p95)}</td>"


def _named_section(summary: Summary) -> str:
    parts = []
    if summary.slowest:
        items = "".join(
            f"<li>{seconds_text(u.total_s)} {_text(u.status)} <code>{_text(u.url)}</code></li>" for u in summary.slowest
        )
        parts.append(f"<h2>Slowest</h2><ol>{items}</ol>")
    if summary.gave_up:
        items = "".join(
            f"<li>line {u.line} <code>{_text(u.url)}</code>: waited {seconds_text(u.wait_s)} "
            f"for {_text(u.waited_on or 'a slot')}</li>"
            for u in summary.gave_up_urls
        )
        more = summary.gave_up - len(summary.gave_up_urls)
        tail = f'<p class="note">and {more:,} more</p>' if more > 0 else ""
        parts.append(f"<h2>Gave up waiting ({summary.gave_up:,})</h2><ul>{items}</ul>{tail}")
    return "".join(parts)


def _colour(status: str) -> str:
    return COLOURS.get(status, OTHER_COLOUR)


def _status_order(status: str) -> tuple[int, str]:
    order = list(COLOURS)
    return (order.index(status) if status in order else len(order), status)


def _text(text: str) -> str:
    return html.escape(escape(text))
