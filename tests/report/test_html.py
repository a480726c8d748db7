"""fetcher.report.html: one run as a self-contained page, a bar per URL up to a limit, everything escaped."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from fetcher._result import Result, Status
from fetcher.report import html as page
from fetcher.report.summary import summarise
from fetcher.report.timeline import slots_in_use
from fetcher.report.which_run import pick_run, runs_in

from .samples import NOW, result, run_record
from .simulated import simulated_run


def render(*results: Result, max_slots: int | None = 3) -> str:
    records = [r.to_record() for r in results]
    if max_slots is not None:
        records.append(run_record(options={"max": max_slots}, finished_at=NOW + timedelta(seconds=30)).to_record())
    run = pick_run(runs_in(records))
    return page.render(run, summarise(run))


def sample(count: int, **options: Any) -> str:
    results, run = simulated_run(count, **options)
    chosen = pick_run(runs_in([*(r.to_record() for r in results), run.to_record()]))
    return page.render(chosen, summarise(chosen))


def test_a_page_and_summary_given_the_slots_in_use_are_those_made_without_them() -> None:
    results, run = simulated_run(40, acquire_timeout=3.0)
    chosen = pick_run(runs_in([*(r.to_record() for r in results), run.to_record()]))
    in_use = slots_in_use(chosen.spans)
    summary = summarise(chosen, in_use=in_use)
    assert summary == summarise(chosen)
    assert page.render(chosen, summary, in_use=in_use) == page.render(chosen, summary)


def test_each_url_has_one_bar() -> None:
    assert sample(50, acquire_timeout=3.0).count('<g class="bar">') == 50


def test_the_page_needs_nothing_from_outside_and_runs_no_script() -> None:
    text = sample(30)
    assert "<script" not in text.lower()
    assert not re.search(r"""\s(src|href)=|url\(|@import|@font-face""", text)
    assert f'content="{page.CSP}"' in text


def test_text_from_records_is_escaped() -> None:
    hostile = 'https://example.com/"><script>alert(1)</script>\x1b[2J'
    text = render(result(1, url=hostile, status=Status.FAILED, error="<b>bad</b>", started_at=NOW, finished_at=NOW))
    assert "<script>" not in text and "<b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\x1b[2J" in text


def test_the_number_of_slots_is_drawn_as_a_line() -> None:
    assert 'class="cap"' in render(result(1), max_slots=3)
    assert "--max 3" in render(result(1), max_slots=3)


def test_the_slots_label_stays_inside_the_chart_when_every_slot_was_used() -> None:
    text = sample(40)  # --max 4, all in use: the dashed line is the top of the chart
    label_y = float(re.search(r'class="cap-label"[^>]* y="([0-9.]+)"', text).group(1))  # type: ignore[union-attr]
    assert label_y >= 11  # its baseline at least a line of 11px text below the SVG's top edge


def test_the_slots_chart_reaches_the_number_of_slots_when_the_summary_says_every_slot_was_taken() -> None:
    # 3 slots, each taken by 10 URLs of 1.2 ms one after another: shorter than the records' milliseconds.
    results: list[Result] = []
    for slot in range(3):
        for turn in range(10):
            taken = NOW + timedelta(seconds=slot * 0.0004 + turn * 0.0012)
            released = taken + timedelta(seconds=0.0012)
            results.append(result(len(results) + 1, started_at=NOW, finished_at=released, slot_taken_at=taken,
                                  slot_released_at=released))  # fmt: skip
    text = render(*results, max_slots=3)
    chart = re.search(r'<svg class="chart slots".*?</svg>', text).group(0)  # type: ignore[union-attr]
    cap = float(re.search(r'class="cap" x1="[0-9.]+" y1="([0-9.]+)"', chart).group(1))  # type: ignore[union-attr]
    assert min(float(y) for y in re.findall(r"V([0-9.]+)", chart)) == cap
    assert ", all busy for 0.0112s" in text


def test_beyond_the_limit_urls_are_counted_per_slice_of_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(page, "BAR_LIMIT", 20)
    text = sample(60, acquire_timeout=3.0)
    assert '<g class="bar">' not in text
    assert 0 < text.count('<g class="bucket">') <= page.BUCKETS * len(page.COLOURS)
    assert "more than 20: counted per slice of time" in text


def test_a_busy_chart_is_drawn_from_the_peak_of_each_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(page, "POINT_LIMIT", 10)
    path = re.search(r'class="chart slots".*?<path class="area" d="([^"]*)"', sample(100)).group(1)  # type: ignore[union-attr]
    assert path.count("H") == page.BUCKETS + 1


def test_the_per_host_table_has_a_row_per_host() -> None:
    text = sample(45)  # line 41 is not a URL
    table = re.search(r'<table class="hosts">(.*?)</table>', text).group(1)  # type: ignore[union-attr]
    assert table.count("<tr>") == 1 + 4  # the head, three hosts and the invalid line
    assert "slow.example.com:443" in table


def test_statuses_of_a_later_version_get_a_colour_of_their_own() -> None:
    assert page.COLOURS.get("someday", page.OTHER_COLOUR) == page.OTHER_COLOUR
    text = render(result(1, started_at=NOW, finished_at=NOW + timedelta(seconds=1)))
    assert page.COLOURS["ok"] in text


def adaptive_sample(count: int = 30) -> str:
    """A simulated run of --adaptive: the slow host's limit came down to 1 and back to 3."""
    results, run = simulated_run(count)
    limits = {
        "slow.example.com:443": {"cap": 8, "final": 3, "lowest": 1, "limits": [[0.0, 2], [1.0, 1], [2.5, 3]]},
        "mirror.example.org:443": {"cap": 8, "final": 8, "lowest": 2, "limits": [[0.0, 2], [0.4, 8]]},
    }
    record = {**run.to_record(), "adaptive": limits}
    chosen = pick_run(runs_in([*(r.to_record() for r in results), record]))
    return page.render(chosen, summarise(chosen))


def test_each_adaptive_host_has_a_chart_of_its_limit_lowest_first() -> None:
    text = adaptive_sample()
    assert text.count('<svg class="chart limit"') == 2
    assert text.index("slow.example.com:443: ended at 3, lowest 1, cap 8") < text.index("mirror.example.org:443")
    assert text.count(">cap 8</text>") == 2


def test_a_run_without_adaptive_has_no_limit_charts() -> None:
    assert "Adaptive limit" not in sample(10)
