"""Run parfive (the aiohttp-based downloader) on a URL list, as its docs show.

    python bench/parfive_baseline.py LIST N DEST

``Downloader(max_conn=N, max_splits=1, progress=False)``, one
``enqueue_file(url, path=DEST)`` per line of LIST, then ``download()``.
``max_splits=1``: one connection per file, as every other tool here
(parfive's default splits a file over 5 ranged requests when the server
accepts ranges). The file name is parfive's own choice: the last path
segment (no Content-Disposition here). Files already in DEST are skipped
(parfive's default, ``overwrite=False``), which is its re-run mode.

parfive asks for every file twice: a HEAD (to learn the name, size and range
support), then the GET. Exit status 1 if any download failed (parfive
reports failures in ``Results.errors`` rather than raising).
"""

from __future__ import annotations

import sys
from pathlib import Path

from parfive import Downloader  # type: ignore[import-untyped]


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: parfive_baseline.py LIST N DEST", file=sys.stderr)
        return 2
    urls = [line.strip() for line in Path(argv[0]).read_text().splitlines() if line.strip()]
    dest = Path(argv[2])
    dest.mkdir(parents=True, exist_ok=True)
    downloader = Downloader(max_conn=int(argv[1]), max_splits=1, progress=False)
    for url in urls:
        downloader.enqueue_file(url, path=dest)
    results = downloader.download()
    for error in results.errors:
        print(f"{error.url}: {error.exception!r}", file=sys.stderr)
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
