"""Baseline downloader: requests, N worker threads, one Session per thread.

The tutorial script fetcher grew from, in its faster honest form::

    python bench/requests_baseline.py LIST N DEST [--thread-per-url]

By default a ``ThreadPoolExecutor`` of N threads downloads the URLs of LIST
(one per line); each thread keeps its own ``requests.Session`` (a Session is
not documented as thread-safe), so each thread reuses one kept-alive
connection. Every body is read whole (``response.content``) and written to
``DEST/<last path segment>``.

``--thread-per-url`` is the other tutorial form: one thread per URL, each
doing ``with sem: data = session.get(url).content`` under a
``threading.Semaphore(N)``, all sharing one Session (its pool keeps up to
10 connections per host, enough for N <= 10). bench/README.md says which
form was faster. Exit status 1 if any download failed.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests


def target(url: str, dest: Path) -> Path:
    return dest / unquote(urlsplit(url).path.rsplit("/", 1)[-1])


def fetch(session: requests.Session, url: str, dest: Path) -> None:
    response = session.get(url, timeout=60)
    response.raise_for_status()
    target(url, dest).write_bytes(response.content)


def pool_of_sessions(urls: list[str], n: int, dest: Path) -> list[str]:
    local = threading.local()
    errors: list[str] = []

    def download(url: str) -> None:
        try:
            session = getattr(local, "session", None)
            if session is None:
                session = local.session = requests.Session()
            fetch(session, url, dest)
        except Exception as exc:  # report every failure, never lose one in a future
            errors.append(f"{url}: {exc!r}")

    with ThreadPoolExecutor(max_workers=n) as pool:
        for _ in pool.map(download, urls):
            pass
    return errors


def thread_per_url(urls: list[str], n: int, dest: Path) -> list[str]:
    sem = threading.Semaphore(n)
    session = requests.Session()
    errors: list[str] = []

    def download(url: str) -> None:
        try:
            with sem:
                fetch(session, url, dest)
        except Exception as exc:
            errors.append(f"{url}: {exc!r}")

    threads = [threading.Thread(target=download, args=(u,)) for u in urls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def main(argv: list[str]) -> int:
    per_url = "--thread-per-url" in argv
    args = [a for a in argv if a != "--thread-per-url"]
    if len(args) != 3:
        print("usage: requests_baseline.py LIST N DEST [--thread-per-url]", file=sys.stderr)
        return 2
    urls = [line.strip() for line in Path(args[0]).read_text().splitlines() if line.strip()]
    dest = Path(args[2])
    dest.mkdir(parents=True, exist_ok=True)
    errors = (thread_per_url if per_url else pool_of_sessions)(urls, int(args[1]), dest)
    for err in errors:
        print(err, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
