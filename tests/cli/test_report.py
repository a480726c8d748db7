"""fetcher.cli.report: `fetcher report REPORT` prints what a run did, as text or JSON, and draws it with --html."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from fetcher.cli.main import main
from fetcher.report import ReportWriter, read_report
from fetcher.report.summary import NO_RUN_RECORD, summarise
from fetcher.report.timeline import slots_in_use
from fetcher.report.which_run import pick_run, runs_in
from tests import server as srv
from tests.report.samples import NOW, result
from tests.report.simulated import simulated_run


def fetcher(*args: str | Path) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return int(exit_info.value.code or 0)


@pytest.fixture
def two_runs(tmp_path: Path) -> Path:
    """A report of two runs: 'yesterday' (10 URLs) and the latest (40 URLs, --max 4, some gave up)."""
    path = tmp_path / "fetcher-report.jsonl"
    with ReportWriter(path) as writer:
        for run_id, count, start in (("yesterday", 10, NOW - timedelta(days=1)), ("today", 40, NOW)):
            results, run = simulated_run(count, run_id=run_id, start=start, acquire_timeout=3.0)
            for item in results:
                writer.write(item)
            writer.write_run(run)
    return path


def downloaded(tmp_path: Path, urls: list[str], *options: str) -> Path:
    """Download *urls* with the real command, ``--max 3``; the report it appends to (DEST's)."""
    listed = tmp_path / "urls.txt"
    listed.write_text("\n".join(urls) + "\n")
    dest = tmp_path / "out"
    assert fetcher(listed, "--max", "3", "-d", dest, "-q", *options) == 0
    return dest / "fetcher-report.jsonl"


def summary_of(report: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], str]:
    """The summary of the report's last run, as JSON and as text."""
    capsys.readouterr()
    assert fetcher("report", report, "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert fetcher("report", report) == 0
    return summary, capsys.readouterr().out


def waited_without_every_slot_taken(report: Path) -> list[int]:
    """The lines of the last run that waited on slots although every slot was never taken while they waited."""
    run = pick_run(runs_in(read_report(report)))
    series = slots_in_use(run.spans)
    slots = summarise(run).slots
    changes = zip(series, series[1:], strict=False)
    full = [(time, following) for (time, value), (following, _) in changes if value == slots]
    return [
        record["line"]
        for record, span in zip(run.urls, run.spans, strict=True)
        if record["waited_on"] == "slots" and not any(a < span.waited and b > span.ready for a, b in full)
    ]


def killed_run(path: Path, *, cut: str) -> Path:
    """A report of 12 URLs, no run record, and *cut*: the start of a 13th, as a kill leaves it."""
    results, _ = simulated_run(12)
    with ReportWriter(path) as writer:
        for item in results:
            writer.write(item)
    with open(path, "a") as stream:
        stream.write(cut)
    return path


def test_the_last_run_is_summarised_on_stdout(two_runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher("report", two_runs) == 0
    out, err = capsys.readouterr()
    assert out.startswith("run today: finished, fetcher 0.2.0\n")
    assert "URLs      40: " in out
    assert "slots     --max 4: all busy for " in out
    assert "gave up   " in out and "slow.example.com:443" in out
    assert err == ""


def test_the_per_host_columns_line_up_whatever_the_width_of_the_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "report.jsonl"
    with ReportWriter(path) as writer:
        writer.write(result(1, url="https://a.example/1", wait_s=0.00419, ttfb_s=0.00856, total_s=0.0123))
        writer.write(result(2, url="https://b.example/2", wait_s=1.0, ttfb_s=2.0, total_s=3.0))
    assert fetcher("report", path) == 0
    out = capsys.readouterr().out
    table = out[out.index("per host") :].splitlines()
    assert len(table) == 3
    assert len({len(line) for line in table}) == 1, table


def test_run_picks_a_run_by_its_id(two_runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher("report", two_runs, "--run", "yesterday") == 0
    assert "URLs      10: " in capsys.readouterr().out


def test_an_unknown_run_is_one_line_naming_the_runs_there_are(
    two_runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fetcher("report", two_runs, "--run", "tomorrow") == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", "fetcher: error: no run 'tomorrow' in the report; its last runs: yesterday, today\n")


def test_run_and_last_together_are_a_usage_error(two_runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher("report", two_runs, "--run", "today", "--last") == 2
    assert "--run and --last cannot be given together" in capsys.readouterr().err


def test_a_missing_report_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher("report", tmp_path / "nothing.jsonl") == 2
    err = capsys.readouterr().err
    assert err.startswith("fetcher: error: cannot read the report ") and err.count("\n") == 1


def test_a_url_list_given_for_a_report_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = tmp_path / "urls.txt"
    listed.write_text("https://example.com/a.iso\nhttps://example.com/b.iso\n")
    assert fetcher("report", listed) == 2
    assert capsys.readouterr() == (
        "",
        f"fetcher: error: {listed} does not look like a report: none of its lines is a record\n",
    )


def test_an_empty_report_is_one_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    assert fetcher("report", tmp_path / "empty.jsonl") == 2
    assert capsys.readouterr().err == (
        f"fetcher: error: {tmp_path / 'empty.jsonl'} does not look like a report: it has no records\n"
    )


def test_a_killed_run_says_it_left_no_run_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = killed_run(tmp_path / "report.csv", cut="20240501T120000Z-5a1d0c,13,https://cut")
    assert fetcher("report", path) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"run 20240501T120000Z-5a1d0c: {NO_RUN_RECORD}\n")
    assert "(the peak in use; no --max)" in out
    assert "skipped   1 line of the report not whole records, 0 records of this run without usable times" in out


def test_a_cut_line_is_warned_about_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = killed_run(
        tmp_path / "report.jsonl", cut='{"run_id": "20240501T120000Z-5a1d0c", "line": 13, "url": "https://cu'
    )
    assert fetcher("report", path, "--json") == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["skipped_lines"] == 1
    assert err == (
        f"fetcher: warning: {path}: lines skipped that are not whole records: 1 "
        "(a run killed while writing one, or not a report)\n"
    )


def test_json_prints_the_summary_as_one_object(two_runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher("report", two_runs, "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["run_id"], summary["urls"], summary["slots"], summary["slots_from"]) == ("today", 40, 4, "max")
    assert {"statuses", "bytes", "wall_s", "all_busy_s", "hosts", "slowest", "gave_up", "gave_up_urls"} <= set(summary)


def test_runs_written_in_turns_are_summarised_as_a_read_of_the_whole_report_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two overlapping runs appending to one report, their records in turns: the command reads it twice.
    path = tmp_path / "fetcher-report.jsonl"
    earlier, earlier_run = simulated_run(30, run_id="earlier", start=NOW - timedelta(minutes=1), acquire_timeout=3.0)
    later, later_run = simulated_run(30, run_id="later", start=NOW, acquire_timeout=3.0)
    with ReportWriter(path) as writer:
        for mine, theirs in zip(later, earlier, strict=True):
            writer.write(mine)
            writer.write(theirs)
        writer.write_run(earlier_run)
        writer.write_run(later_run)
    for run_id in (None, "earlier"):
        asked = () if run_id is None else ("--run", run_id)
        assert fetcher("report", path, "--json", *asked) == 0
        whole = summarise(pick_run(runs_in(read_report(path)), run_id)).to_record()
        assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(whole))


def test_html_writes_the_page_and_still_prints_the_summary(
    two_runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "run.html"
    assert fetcher("report", two_runs, "--html", page) == 0
    assert page.read_text().count('<g class="bar">') == 40
    assert capsys.readouterr().out.startswith("run today: ")


def test_an_html_file_that_cannot_be_written_is_one_line(two_runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher("report", two_runs, "--html", two_runs.parent) == 2
    assert capsys.readouterr().err.startswith(f"fetcher: error: cannot write {two_runs.parent}: ")


def test_a_list_named_report_is_still_reachable_as_dot_slash_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "report").write_text("")  # an empty list: nothing to do, exit 0
    assert fetcher("./report") == 0
    assert fetcher("report", "report") == 2  # the command, given a file that is no report


# -- real runs: slots in use are the slots taken and given back ------------------------------------------------------


def test_a_run_of_downloads_queued_for_every_slot_reads_as_all_busy(
    server: srv.LoopbackServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 9 answers of 50-90 ms for 3 slots: from the first start to the last three, every slot is taken.
    urls = [server.route(f"/slow{i}", srv.body(b"x" * 100, delay=0.05 + 0.01 * (i % 5))) for i in range(9)]
    report = downloaded(tmp_path, urls)
    summary, text = summary_of(report, capsys)
    assert (summary["peak_in_use"], summary["waited_on"]) == (3, {"slots": 6})
    assert summary["all_busy_s"] > 0.6 * summary["wall_s"], summary  # 82-86% measured: the start and tail are not
    assert "slots     --max 3: all busy for " in text and "never more than" not in text
    assert waited_without_every_slot_taken(report) == []


def test_a_run_of_short_304_answers_queued_for_every_slot_reads_as_all_busy(
    server: srv.LoopbackServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A millisecond or two per URL: a slot is taken and given back within the records' milliseconds.
    urls = [server.route(f"/same{i}", srv.Resource(b"x" * 100)) for i in range(28)]
    downloaded(tmp_path, urls)
    report = downloaded(tmp_path, urls)  # the second run: every file unchanged
    summary, text = summary_of(report, capsys)
    assert summary["statuses"] == {"unchanged": 28} and summary["waited_on"]["slots"] > 20
    assert summary["peak_in_use"] == 3 and "never more than" not in text
    # Between one URL and the next a slot is free for a few tenths of a millisecond, until the dispatcher
    # takes it for the next URL waiting: that hand-over counts as busy.  Measured 78-84% of the run.
    assert summary["all_busy_s"] > 0.5 * summary["wall_s"], summary
    assert waited_without_every_slot_taken(report) == []


def test_an_adaptive_run_shows_each_hosts_limit_in_a_column(
    tmp_path: Path, server: srv.LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = [server.route(f"/a/{n}", srv.body(b"x" * 100)) for n in range(6)]
    summary, text = summary_of(downloaded(tmp_path, urls, "--adaptive"), capsys)
    [host] = summary["hosts"]
    assert host["limit"]["cap"] == 3 and 1 <= host["limit"]["lowest"] <= host["limit"]["final"] <= 3
    table = text[text.index("per host") :].splitlines()
    assert table[0].endswith("limit end/low/cap")
    assert table[1].endswith(f"{host['limit']['final']}/{host['limit']['lowest']}/3")
    assert len({len(line) for line in table[:2]}) == 1, table


def test_a_run_without_adaptive_has_no_limit_column(
    tmp_path: Path, server: srv.LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    summary, text = summary_of(downloaded(tmp_path, [server.route("/a", srv.body(b"x"))]), capsys)
    assert summary["hosts"][0]["limit"] is None and "limit" not in text


def test_the_commands_start_without_the_summary_or_the_html_page() -> None:
    # Every command imports the report command's module at its start: what only `fetcher report` uses waits.
    check = "import sys, fetcher.cli.main; print(sorted(m for m in sys.modules if m.startswith('fetcher.report.')))"
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True)
    assert "summary" not in loaded.stdout and "html" not in loaded.stdout, loaded.stdout
