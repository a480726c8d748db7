"""What the command shows: lines, summaries, bars; always escaped."""

from __future__ import annotations

import dataclasses
import io
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

import fetcher.cli.progress
from fetcher import Result, Stats, Status, Tally
from fetcher.cli.progress import (
    BAR_DELAY_S,
    RATE_WINDOW_S,
    BarDisplay,
    LineDisplay,
    Piece,
    RecentRate,
    cleanup_line,
    describe,
    human_bytes,
    lay_out,
    report_lost_line,
    summarize,
)

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


def test_summary_of_a_run_interrupted_before_any_result_says_so() -> None:
    assert summarize(Tally(), 2.0, interrupted=True) == "fetcher: interrupted: nothing finished (0 B in 2.00s)"


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
    assert line.endswith("(4.0 KiB in 0.50s, 3 attempts, resumed at 2.0 KiB)")


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


def test_bar_display_shows_the_hosts_held_lowest_below_their_adaptive_cap() -> None:
    stream = io.StringIO()
    display = BarDisplay(stream, total=1)
    limits = {"example.org:443": (3, 16), "b.example:8080": (1, 16), "c.example:80": (9, 16)}
    display.follow(lambda: Stats(capacity=16, in_use=4, waiting=9, active_runs=1, host_limits=limits))
    display.show(OK)
    display.close()
    assert "b.example:8080 1/16 example.org 3/16 +1 hosts below cap" in stream.getvalue()


def test_an_adaptive_host_name_is_escaped_on_the_bar() -> None:
    stream = io.StringIO()
    display = BarDisplay(stream, total=1)
    display.follow(lambda: Stats(capacity=4, in_use=0, waiting=0, active_runs=1, host_limits={"e\x1b[2J:80": (1, 4)}))
    display.show(OK)
    display.close()
    assert "\x1b[2J" not in stream.getvalue()


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


# -- the ok line, the summary and the helper lines, to the letter --------------------------


def test_ok_line_shows_the_download_time_and_the_queue_wait_apart() -> None:
    item = result(Status.OK, path=Path("/out/big.iso"), bytes=256 << 20, wait_s=16.11, ttfb_s=0.12, download_s=1.8,
                  total_s=18.03)  # fmt: skip
    assert describe(item) == "ok              https://h/rfc791.txt -> big.iso (256.0 MiB in 1.92s, queued 16.11s)"


def test_ok_line_without_attempt_timings_takes_the_wait_from_the_total() -> None:
    item = result(Status.OK, path=Path("/out/a"), bytes=1024, wait_s=2.0, total_s=3.5)
    assert describe(item).endswith("(1.0 KiB in 1.50s, queued 2.00s)")


def test_ok_line_leaves_out_a_queue_wait_under_10_ms() -> None:
    item = result(Status.OK, path=Path("/out/a"), bytes=1024, wait_s=0.009, ttfb_s=0.1, download_s=0.2, total_s=0.31)
    assert describe(item).endswith("(1.0 KiB in 0.30s)")


def interrupted_tally() -> Tally:
    tally = Tally()
    for status, count in ((Status.OK, 12), (Status.CANCELLED, 3), (Status.NOT_STARTED, 37)):
        for _ in range(count):
            tally.add(result(status, path=Path("/out/a"), bytes=(1 << 20) // 10 if status is Status.OK else 0))
    return tally


def test_interrupted_summary_says_what_did_not_happen() -> None:
    line = summarize(interrupted_tally(), 4.03, interrupted=True)
    assert line == "fetcher: interrupted: 12 ok, 3 cancelled, 37 not-started (1.2 MiB in 4.03s)"


def test_summary_spells_statuses_as_the_report_does() -> None:
    tally = Tally()
    tally.add(result(Status.ACQUIRE_TIMEOUT, error="no slot"))
    tally.add(result(Status.NOT_STARTED))
    assert summarize(tally, 1.0) == "fetcher: 2 URLs: 1 acquire-timeout, 1 not-started (0 B in 1.00s)"


def test_summary_names_the_report_it_wrote() -> None:
    tally = Tally()
    tally.add(OK)
    line = summarize(tally, 4.03, report=Path("fetcher-report.jsonl"))
    assert line == "fetcher: 1 URL: 1 ok (2.0 KiB in 4.03s); report: fetcher-report.jsonl"


def test_interrupted_summary_names_the_report_too() -> None:
    line = summarize(interrupted_tally(), 4.03, interrupted=True, report=Path("out/r.jsonl"))
    assert line.endswith("(1.2 MiB in 4.03s); report: out/r.jsonl")


def test_summary_escapes_the_report_path() -> None:
    assert summarize(Tally(), 0.0, report=Path("r\x1b[2J.jsonl".replace("\\x1b", "\x1b"))).endswith(
        "; report: r\\x1b[2J.jsonl"
    )


def test_display_summary_passes_the_report_on() -> None:
    stream = io.StringIO()
    tally = Tally()
    tally.add(OK)
    LineDisplay(stream).summary(tally, 1.0, report=Path("fetcher-report.jsonl"))
    assert stream.getvalue().endswith("; report: fetcher-report.jsonl\n")


def test_cleanup_line_is_none_when_nothing_was_removed() -> None:
    assert cleanup_line(0, 0) is None


def test_cleanup_line_counts_the_partial_files_removed() -> None:
    line = cleanup_line(3, 491 << 20)
    assert line == "removed 3 partial files (491.0 MiB) left by an interrupted run"


def test_cleanup_line_with_one_file_is_singular() -> None:
    assert cleanup_line(1, 12 << 20) == "removed 1 partial file (12.0 MiB) left by an interrupted run"


def test_summary_counts_the_urls_that_resumed_a_partial_file() -> None:
    tally = Tally()
    tally.add(dataclasses.replace(OK, resumed_from=1 << 20))
    assert summarize(tally, 1.0) == "fetcher: 1 URL: 1 ok, 1 resumed (2.0 KiB in 1.00s)"


def test_a_failure_line_says_how_many_attempts_it_took() -> None:
    line = describe(result(Status.FAILED, error="HTTP 503 Service Unavailable", attempts=4))
    assert line.endswith(": HTTP 503 Service Unavailable (4 attempts)")


def test_a_failure_at_the_first_attempt_says_nothing_of_attempts() -> None:
    assert describe(result(Status.FAILED, error="HTTP 404 Not Found", attempts=1)).endswith(": HTTP 404 Not Found")


def test_report_lost_line_says_where_why_and_how_many() -> None:
    error = OSError(28, "No space left on device")
    line = report_lost_line(Path("out/fetcher-report.jsonl"), 12, error)
    assert line == (
        "cannot write the report out/fetcher-report.jsonl: No space left on device; 12 records not written "
        "(free some space, or give --report another path)"
    )


# -- laying a bar out in the terminal's width --------------------------------------------

GAUGE = [Piece("fetcher"), Piece("12/52"), Piece("", drop=5, fill=0.25), Piece(" 23%", drop=3),
         Piece("1.2 MiB", drop=2), Piece("340.0 KiB/s", drop=4), Piece("00:04"),
         Piece("slots 3/3 waiting 43"), Piece("paused example.org:443 2s", drop=1)]  # fmt: skip


def test_a_wide_line_keeps_every_piece_and_a_bar() -> None:
    line = lay_out(GAUGE, 140)
    assert line.startswith("fetcher 12/52 |██████████") and line.endswith(
        "slots 3/3 waiting 43 paused example.org:443 2s"
    )
    assert len(line) <= 140


def test_a_narrow_line_drops_the_bar_and_the_rate_first_and_keeps_the_gauge() -> None:
    line = lay_out(GAUGE, 59)
    assert line == "fetcher 12/52  23% 1.2 MiB 00:04 slots 3/3 waiting 43"


def test_a_line_too_narrow_for_the_kept_pieces_is_cut_at_the_width() -> None:
    line = lay_out(GAUGE, 30)
    assert line == "fetcher 12/52 00:04 slots 3/3 "


def test_a_line_of_unknown_width_keeps_everything() -> None:
    assert "340.0 KiB/s" in lay_out(GAUGE, None)


def test_a_bar_graphic_without_unicode_is_ascii() -> None:
    assert "|#####" in lay_out([Piece("a"), Piece("", fill=0.5)], 30, unicode=False)


# -- the rate over a recent window -------------------------------------------------------


def test_the_rate_falls_to_zero_during_a_stall() -> None:
    rate = RecentRate(0.0)
    rates = [rate.rate(t / 10, min(t, 20) * 1024) for t in range(1, 60)]
    assert rates[10] == pytest.approx(10 * 1024, rel=0.05)  # 1 KiB each 0.1 s
    assert rates[25] < rates[20] and rates[-1] == 0.0  # the last byte came at 2 s


# -- the bars: ticks, clock and stalls (a fake clock, no ticker thread) --------------------

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def renders(stream: io.StringIO) -> list[str]:
    """Every line painted, in order, ANSI escapes stripped."""
    return [line.rstrip() for line in re.split(r"[\r\n]", ANSI.sub("", stream.getvalue())) if line.strip()]


def last(stream: io.StringIO, prefix: str) -> str:
    return [line for line in renders(stream) if line.lstrip().startswith(prefix)][-1]


LOAD = Stats(capacity=3, in_use=3, waiting=43, active_runs=1)


def bars(total: int = 52, columns: int | None = 100) -> tuple[io.StringIO, Clock, BarDisplay]:
    stream, clock = io.StringIO(), Clock()
    display = BarDisplay(stream, total=total, clock=clock, tick_s=None, columns=lambda: columns)
    display.follow(lambda: LOAD)
    return stream, clock, display


def test_the_clock_moves_while_no_byte_arrives() -> None:
    stream, clock, display = bars()
    display.watch("https://h/a.iso", "a.iso", 4096).advance(1024)
    clock.now += 1.0
    display.tick()
    first = last(stream, "fetcher")
    clock.now += 1.0
    display.tick()
    assert "00:01" in first and "00:02" in last(stream, "fetcher")


def test_the_shown_rate_falls_to_zero_during_a_stall() -> None:
    stream, clock, display = bars()
    watcher = display.watch("https://h/a.iso", "a.iso", 10 << 20)
    for _ in range(10):
        clock.now += 0.2
        watcher.advance(100 << 10)
        display.tick()
    assert "500.0 KiB/s" in last(stream, "fetcher")
    clock.now += RATE_WINDOW_S + 0.5
    display.tick()
    assert " 0 B/s " in last(stream, "fetcher") and " 0 B/s " in last(stream, "a.iso")


def test_a_download_gets_its_bar_once_it_has_run_the_delay_without_a_new_byte() -> None:
    stream, clock, display = bars()
    display.watch("https://h/a.iso", "a.iso", 4096).advance(1024)
    display.tick()
    assert not any("a.iso" in line for line in renders(stream))
    clock.now += BAR_DELAY_S + 0.01
    display.tick()
    assert last(stream, "a.iso").startswith("  a.iso 1.0 KiB/4.0 KiB  25% |")


def test_a_stalled_download_says_how_long_no_data_came() -> None:
    stream, clock, display = bars()
    display.watch("https://h/a.iso", "a.iso", 4096).advance(1024)
    clock.now += 5.2
    display.tick()
    assert last(stream, "a.iso").endswith("no data for 5s")


def test_the_silence_never_reads_longer_than_the_download_clock() -> None:
    stream, clock, display = bars()
    display.watch("https://h/a.iso", "a.iso", 4096)  # no byte yet: silent since it began
    clock.now += 3.6
    display.tick()
    assert last(stream, "a.iso").endswith("00:03 no data for 3s")


def test_a_download_bar_is_cleared_when_it_ends() -> None:
    stream, clock, display = bars()
    watcher = display.watch("https://h/a.iso", "a.iso", 4096)
    clock.now += 1.0
    display.tick()
    watcher.done()
    assert display._files == [] and "a.iso" in stream.getvalue()


def test_at_60_columns_the_gauge_stays_and_no_line_is_wider() -> None:
    stream, clock, display = bars(columns=60)
    display.watch("https://h/a.iso", "a-file-with-a-rather-long-name-for-the-bar.iso", 10 << 30).advance(1 << 20)
    clock.now += 1.0
    display.tick()
    display.close()
    assert "slots 3/3 waiting 43" in last(stream, "fetcher")
    assert max(len(line) for line in renders(stream)) < 60


def test_sizes_and_rates_on_the_bars_are_binary() -> None:
    stream, clock, display = bars()
    watcher = display.watch("https://h/a.iso", "a.iso", 10 << 20)
    clock.now += 1.0
    watcher.advance(3 << 20)
    display.tick()
    text = " ".join(renders(stream))
    assert "3.0 MiB/s" in text and "3.0 MiB/10.0 MiB" in text
    assert not re.search(r"[0-9.]+ ?[kMG]B\b|[kMG]B/s|it/s", text)


def test_after_an_interrupt_the_gauge_keeps_its_last_values() -> None:
    stream, clock, display = bars()
    loads = [LOAD]
    display.follow(lambda: loads[-1])
    display.tick()
    display.freeze()
    loads.append(Stats(capacity=3, in_use=0, waiting=0, active_runs=1))
    clock.now += 1.0
    display.tick()
    final = last(stream, "fetcher")
    assert final.startswith("fetcher interrupted 0/52") and "slots 3/3 waiting 43" in final
    assert not any("waiting 0" in line for line in renders(stream))


def test_the_last_bar_of_an_interrupted_run_shows_nothing_waiting() -> None:
    stream, clock, display = bars()
    loads = [LOAD]
    display.follow(lambda: loads[-1])
    display.tick()
    display.freeze()
    loads.append(Stats(capacity=3, in_use=0, waiting=0, active_runs=0))  # every URL recorded
    clock.now += 1.0
    display.close(completed=False)
    final = last(stream, "fetcher")
    assert final.startswith("fetcher interrupted 0/52") and "slots 0/3 waiting 0" in final


def test_a_fetcher_without_runs_does_not_empty_the_gauge() -> None:
    stream, clock, display = bars()
    loads = [LOAD]
    display.follow(lambda: loads[-1])
    display.tick()
    loads.append(Stats(capacity=3, in_use=0, waiting=0, active_runs=0))  # cancelling, closing
    display.tick()
    assert "slots 3/3 waiting 43" in last(stream, "fetcher")


def test_a_completed_run_shows_the_final_load() -> None:
    stream, clock, display = bars(total=1)
    loads = [LOAD]
    display.follow(lambda: loads[-1])
    display.show(OK)
    loads.append(Stats(capacity=3, in_use=0, waiting=0, active_runs=0))
    display.close()
    assert last(stream, "fetcher").startswith("fetcher 1/1") and "slots 0/3 waiting 0" in last(stream, "fetcher")


def test_the_ticker_repaints_without_being_asked_and_stops_on_close() -> None:
    stream = io.StringIO()
    display = BarDisplay(stream, total=2, tick_s=0.01, columns=lambda: 100)
    before = len(stream.getvalue())
    deadline = time.monotonic() + 5
    while len(stream.getvalue()) == before and time.monotonic() < deadline:
        time.sleep(0.01)
    display.close()
    assert len(stream.getvalue()) > before
    assert display._ticker is not None and not display._ticker.is_alive()


def test_many_quick_results_are_all_counted_with_few_repaints() -> None:
    stream, clock = io.StringIO(), Clock()
    display = BarDisplay(stream, quiet=True, total=1000, clock=clock, tick_s=None, columns=lambda: 100)
    for _ in range(1000):
        display.show(OK)
    painted = len(overall_lines := [line for line in renders(stream) if line.startswith("fetcher")])
    display.close()
    assert painted < 10 and overall_lines[0].startswith("fetcher 0/1000")
    assert last(stream, "fetcher").startswith("fetcher 1000/1000")


# -- the lines of finished URLs, in batches ------------------------------------------------------


class Writes(io.StringIO):
    """A stream that keeps each write apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_a_line_display_gives_each_line_to_its_stream_in_one_write() -> None:
    stream = Writes()
    display = LineDisplay(stream)
    display.show(OK)
    display.show(FAILED)
    assert stream.writes == [describe(OK) + "\n", describe(FAILED) + "\n"]


def test_the_bars_print_the_lines_of_the_urls_finished_since_the_last_repaint_in_one_write() -> None:
    stream, clock = Writes(), Clock()
    display = BarDisplay(stream, total=10, clock=clock, tick_s=None, columns=lambda: 100)
    display.tick()
    failures = [result(Status.FAILED, line=n, error=f"HTTP 50{n}") for n in range(3)]
    for failure in failures:
        display.show(failure)  # within the same repaint interval: no repaint, no line yet
    assert not any("HTTP 50" in text for text in stream.writes)
    clock.now += 1.0
    display.tick()
    assert "\n".join(describe(failure) for failure in failures) in stream.writes


def test_a_message_comes_after_the_lines_still_waiting_for_a_repaint() -> None:
    stream, clock = Writes(), Clock()
    display = BarDisplay(stream, total=10, clock=clock, tick_s=None, columns=lambda: 100)
    display.tick()
    display.show(FAILED)
    display.message("fetcher: interrupted (Ctrl-C): stopping the downloads in flight (again to quit at once)")
    text = stream.getvalue()
    assert describe(FAILED) in text
    assert text.index(describe(FAILED)) < text.index("fetcher: interrupted (Ctrl-C)")


def test_closing_the_bars_prints_the_lines_still_waiting() -> None:
    stream, clock = Writes(), Clock()
    display = BarDisplay(stream, total=10, clock=clock, tick_s=None, columns=lambda: 100)
    display.tick()
    display.show(FAILED)
    display.close()
    assert describe(FAILED) in stream.getvalue()
