"""Make docs/report-screenshot.png: the page of ``fetcher report --html`` for a made-up run, drawn by headless Chromium.

Run from the repository: ``.venv/bin/python scripts/screenshot_report.py``.
Needs Chromium (on Debian: ``apt-get install chromium``).  The run is
tests/report/simulated.py's: 36 URLs on three hosts, ``--max 4``,
``--acquire-timeout 4.5``, so the picture has every kind of bar.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fetcher.report import ReportWriter, read_report  # noqa: E402
from fetcher.report.html import render  # noqa: E402
from fetcher.report.summary import pick_run, runs_in, summarise  # noqa: E402
from tests.report.simulated import simulated_run  # noqa: E402

OUT = ROOT / "docs" / "report-screenshot.png"


def main() -> int:
    browser = next(
        (found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None
    )
    if browser is None:
        print("no Chromium found (on Debian: apt-get install chromium)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "fetcher-report.jsonl"
        results, run = simulated_run(36, slots=4, acquire_timeout=4.5)
        with ReportWriter(report) as writer:  # through the file, as `fetcher report` reads it
            for result in results:
                writer.write(result)
            writer.write_run(run)
        chosen = pick_run(runs_in(read_report(report)))
        page = Path(folder) / "report.html"
        page.write_text(render(chosen, summarise(chosen)), encoding="utf-8")
        OUT.parent.mkdir(exist_ok=True)
        subprocess.run(
            [browser, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={folder}/profile",
             "--hide-scrollbars", f"--screenshot={OUT}", "--window-size=1400,1230", page.as_uri()],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    print(f"{OUT.relative_to(ROOT)}: {OUT.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
