"""The report's HTML page in a real browser: headless Chromium draws it, with scripts forbidden by the page.

Skipped where no Chromium is installed (``apt-get install chromium`` on
Debian).  Chromium's own switches to turn JavaScript off make its headless
mode print nothing at all, so the page's Content-Security-Policy does it: the
page the browser draws is the page with JavaScript off.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from fetcher._result import Result, Status
from fetcher.report.html import render
from fetcher.report.summary import summarise
from fetcher.report.which_run import pick_run, runs_in

from .simulated import simulated_run

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((found for name in BROWSERS if (found := shutil.which(name))), None)

pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium found (on Debian: apt-get install chromium)")


def chromium(profile: Path, *args: str) -> str:
    assert BROWSER is not None
    done = subprocess.run(
        [BROWSER, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """A page of 60 URLs, one of them hostile, and how many URLs it has."""
    folder = tmp_path_factory.mktemp("browser")
    results, run = simulated_run(59, acquire_timeout=4.0)
    hostile = Result(
        run_id=run.run_id,
        line=60,
        url='https://example.com/"><script>document.title="pwned"</script>',
        status=Status.FAILED,
        started_at=run.started_at,
        finished_at=run.started_at,
        error="<img src=x onerror=alert(1)>",
    )
    chosen = pick_run(runs_in([*(r.to_record() for r in [*results, hostile]), run.to_record()]))
    page = folder / "report.html"
    page.write_text(render(chosen, summarise(chosen)), encoding="utf-8")
    yield page, 60


def test_the_browser_draws_one_bar_per_url(drawn: tuple[Path, int], tmp_path: Path) -> None:
    page, count = drawn
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.count('<g class="bar">') == count
    assert "<title>fetcher report: run" in dom  # the record's <script> stayed text
    assert "<img" not in dom and "pwned" not in dom.split("</title>", 1)[0]


def test_the_screenshot_shows_the_charts(drawn: tuple[Path, int], tmp_path: Path) -> None:
    page, _ = drawn
    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,900", page.as_uri())
    width, height, colours = png_colours(shot.read_bytes(), rows=260)
    assert (width, height) == (1400, 900)
    # The top of the page: the headings' text and the slots chart, filled light blue (#4dabf7 at 35% on white).
    assert len(colours) > 20
    assert any(abs(r - 193) + abs(g - 226) + abs(b - 252) <= 6 for r, g, b in colours)


def png_colours(data: bytes, *, rows: int) -> tuple[int, int, set[tuple[int, int, int]]]:
    """Width, height and the RGB colours in the first *rows* rows of an 8-bit RGB or RGBA PNG (as Chromium writes).

    Decoding in Python is slow (a second for the whole screenshot): the top of the page is enough.
    """
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks, header = 8, [], b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        offset += 12 + length
    width, height, depth, colour_type = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour_type in (2, 6)
    step = 3 if colour_type == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * step
    previous = bytearray(stride)
    colours: set[tuple[int, int, int]] = set()
    for row in range(min(rows, height)):
        start = row * (stride + 1)
        line = bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(raw[start], line, previous, step)
        colours.update(zip(line[0::step], line[1::step], line[2::step], strict=True))
        previous = line
    return width, height, colours


def _unfilter(kind: int, line: bytearray, above: bytearray, step: int) -> None:
    for i in range(len(line)):
        left = line[i - step] if i >= step else 0
        up = above[i]
        corner = above[i - step] if i >= step else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 2:
            line[i] = (line[i] + up) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            guess = left + up - corner
            near = min((abs(guess - left), 0, left), (abs(guess - up), 1, up), (abs(guess - corner), 2, corner))
            line[i] = (line[i] + near[2]) & 0xFF


def test_the_browser_draws_each_adaptive_hosts_limit(tmp_path: Path) -> None:
    from .test_html import adaptive_sample

    page = tmp_path / "adaptive.html"
    page.write_text(adaptive_sample(), encoding="utf-8")
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.count('<svg class="chart limit"') == 2
    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,4000", page.as_uri())
    _, _, colours = png_colours(shot.read_bytes(), rows=4000)
    # The limit's area, #63e6be at 35% on white.
    assert any(abs(r - 200) + abs(g - 246) + abs(b - 232) <= 6 for r, g, b in colours)
