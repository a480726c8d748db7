"""What the command shows: lines, summaries, bars; always escaped."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

import pytest

import fetcher.cli.progress
from fetcher import Result, Stats, Status, Tally
from fetcher.cli.progress import BarDisplay, LineDisplay, describe, human_bytes, summarize

NOW = datetime(2026, 11, 22, tzinfo=timezone.utc)


def result(status: Status, **fields: object) -> Result:
    values: dict[str, object] = {
        "run_id": "r", "line": 3, "url": "https://h/rfc791.txt", "status": status,
        "started_at": NOW, "finished_at": NOW, "total_s": 0.5,
    }  # fmt: skip
    values.update(fields)
    return Result(**values)  # type: ignore[arg-type]


OK = result(Status.OK, path=Path("/out/rfc791.txt"), bytes=2048)
FAILED = result(Status.FAILED, error="HTTP 404 Not Found", http_status=404)


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 1023, 2048, 5 << 20, 3 << 30)] == [
        "0 B", "1023 B", "2.0 KiB", "5.0 MiB", "3.0 GiB",
    ]  # fmt: skip


def test_ok_line_names_the_url_the_file_and_the_size() -> None:
    line = describe(OK)
    assert line.startswith("ok ") and "https://h/rfc791.txt -> rfc791.txt" in line and "2.0 KiB" in line


def test_failed_line_gives_the_line_number_and_reason() -> None:
    assert describe(FAILED).endswith("https://h/rfc791.txt (line 3): HTTP 404 Not Found")


def test_invalid_line_quotes_the_text_of_the_line() -> None:
    line = describe(result(Status.INVALID, url="junk", error="not a URL"))
    assert line.startswith("invalid") and "line 3: 'junk': not a URL" in line


def test_descriptions_escape_control_characters_from_urls_and_servers() -> None:
    hostile = result(Status.FAILED, url="https://h/\x1b[2Jx", error="HTTP 500 \x1b[31mred\u202e")
    line = describe(hostile)
    assert "\x1b" not in line and "\u202e" not in line
    assert "\\x1b[2J" in line and "\\u202e" in line


def test_summary_counts_each_status_that_happened() -> None:
    tally = Tally()
    for item in (OK, OK, FAILED):
        tally.add(item)
    assert summarize(tally, 1.5) == "fetcher: 3 URLs: 2 ok, 1 failed (4.0 KiB in 1.50s)"


def test_summary_of_one_url_is_singular() -> None:
    tally = Tally()
    tally.add(FAILED)
    assert summarize(tally, 0.1).startswith("fetcher: 1 URL: 1 failed")


def test_summary_of_nothing_says_so() -> None:
    assert "nothing to do" in summarize(Tally(), 0.0)


def test_summary_of_an_interrupted_run_says_so() -> None:
    assert summarize(Tally(), 2.0, interrupted=True).startswith("fetcher: interrupted after 0 URLs")


def test_quiet_line_display_hides_successes_and_a_good_summary() -> None:
    stream = io.StringIO()
    display = LineDisplay(stream, quiet=True)
    tally = Tally()
    tally.add(OK)
    display.show(OK)
    display.summary(tally, 1.0)
    assert stream.getvalue() == ""


def test_quiet_line_display_shows_failures_and_the_summary() -> None:
    stream = io.StringIO()
    display = LineDisplay(stream, quiet=True)
    tally = Tally()
    for item in (OK, FAILED):
        tally.add(item)
        display.show(item)
    display.summary(tally, 1.0)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("failed") and lines[1].startswith("fetcher: 2 URLs")


def test_line_display_never_writes_carriage_returns() -> None:
    stream = io.StringIO()
    display = LineDisplay(stream)
    display.show(OK)
    display.show(FAILED)
    assert "\r" not in stream.getvalue() and len(stream.getvalue().splitlines()) == 2


def test_bar_display_counts_files_and_bytes() -> None:
    stream = io.StringIO()
    display = BarDisplay(stream, total=2)
    watcher = display.watch("https://h/rfc791.txt", "rfc791.txt", 2048)
    watcher.advance(2048)
    watcher.done()
    display.show(OK)
    display.show(FAILED)
    display.close()
    text = stream.getvalue()
    assert "2/2" in text and "2.0 KiB" in text
    assert "failed" in text  # the line about the failure is printed above the bar


def test_bar_display_escapes_file_names_in_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetcher.cli.progress, "BAR_DELAY_S", 0.0)
    stream = io.StringIO()
    display = BarDisplay(stream, total=1)
    watcher = display.watch("https://h/x", "evil\x1b[2J.txt", 10)
    watcher.advance(5)
    watcher.done()
    display.close()
    assert "\x1b[2J" not in stream.getvalue()


def test_bar_display_of_an_interrupted_run_keeps_its_real_total() -> None:
    stream = io.StringIO()
    display = BarDisplay(stream, total=20)
    display.show(OK)
    display.close(completed=False)
    final_render = stream.getvalue().rsplit("\r", 1)[-1]
    assert "1/20" in final_render and "100%" not in final_render


def test_bar_display_shows_urls_waiting_to_retry() -> None:
    stream = io.StringIO()
    display = BarDisplay(stream, total=3)
    display.follow(lambda: Stats(capacity=3, in_use=1, waiting=1, active_runs=1, retrying=2))
    display.show(OK)
    display.close()
    assert "slots 1/3 waiting 1 retrying 2" in stream.getvalue()


def test_ok_line_says_how_many_attempts_and_where_it_resumed() -> None:
    line = describe(result(Status.OK, path=Path("/out/big.iso"), bytes=4096, attempts=3, resumed_from=2048))
    assert line.endswith("(4.0 KiB, 0.50s, 3 attempts, resumed at 2.0 KiB)")


def test_unchanged_line_names_the_file() -> None:
    line = describe(result(Status.UNCHANGED, path=Path("/out/rfc791.txt"), http_status=304))
    assert line == "unchanged       https://h/rfc791.txt -> rfc791.txt"


def test_summary_counts_urls_that_succeeded_after_a_retry() -> None:
    tally = Tally()
    tally.add(result(Status.OK, path=Path("/out/a"), attempts=2))
    tally.add(result(Status.UNCHANGED, path=Path("/out/b")))
    assert summarize(tally, 1.0) == "fetcher: 2 URLs: 1 ok, 1 unchanged, 1 after a retry (0 B in 1.00s)"


def test_bar_display_shows_a_paused_host_and_the_rates_against_their_caps() -> None:
    stream = io.StringIO()
    display = BarDisplay(stream, total=4)
    stats = Stats(capacity=3, in_use=3, waiting=5, active_runs=1, paused={"example.org:443": 1.6},
                  request_rate=4.94, request_rate_cap=5.0, byte_rate=498_000.0, byte_rate_cap=512_000)  # fmt: skip
    display.follow(lambda: stats)
    display.show(OK)
    display.close()
    text = stream.getvalue()
    assert "paused example.org:443 2s" in text
    assert "4.9/5 req/s" in text
    assert "486.3 KiB/s of 500.0 KiB/s" in text


def test_bar_display_counts_several_paused_hosts() -> None:
    stream = io.StringIO()
    display = BarDisplay(stream, total=1)
    display.follow(lambda: Stats(capacity=3, in_use=0, waiting=0, active_runs=1, paused={"a:80": 1.0, "b:80": 2.0}))
    display.show(OK)
    display.close()
    assert "paused 2 hosts" in stream.getvalue()


def test_a_paused_host_name_is_escaped_on_the_bar() -> None:
    stream = io.StringIO()
    display = BarDisplay(stream, total=1)
    display.follow(lambda: Stats(capacity=1, in_use=0, waiting=0, active_runs=1, paused={"evil\x1b[2J:80": 1.0}))
    display.show(OK)
    display.close()
    assert "\x1b[2J" not in stream.getvalue()
