"""Baseline downloader: one thread per URL, a semaphore caps how many run at once.

This is the classic tutorial pattern the benchmark compares ``fetcher`` with::

    python bench/urllib_baseline.py LIST N DEST

Every URL in LIST (one per line) gets its own thread; each thread does
``with sem: data = urlopen(url).read()`` and writes ``DEST/<last path
segment>``. Exit status 1 if any download failed.
"""

from __future__ import annotations

import sys
import threading
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit


def download(url: str, dest: Path, sem: threading.Semaphore, errors: list[str]) -> None:
    try:
        with sem:
            data = urllib.request.urlopen(url, timeout=60).read()
        name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        (dest / name).write_bytes(data)
    except Exception as exc:  # report every failure, never crash a thread silently
        errors.append(f"{url}: {exc!r}")


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: urllib_baseline.py LIST N DEST", file=sys.stderr)
        return 2
    urls = [line.strip() for line in Path(argv[0]).read_text().splitlines() if line.strip()]
    sem = threading.Semaphore(int(argv[1]))
    dest = Path(argv[2])
    dest.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    threads = [threading.Thread(target=download, args=(u, dest, sem, errors)) for u in urls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for err in errors:
        print(err, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
