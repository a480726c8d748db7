"""Whole fetcher processes of one cluster, run side by side against the loopback server (for the cluster tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.server import Handler, LoopbackServer


def run_side_by_side(
    server: LoopbackServer, tmp_path: Path, handler: Handler, *options: str, processes: int, urls: int
) -> None:
    """*processes* fetchers, each with a list of *urls* of its own (``/p{k}/{n}``, answered by *handler*)
    and the given options (the cluster's among them), at once; each must exit 0 within a minute."""
    runs = []
    for k in range(processes):
        listing = tmp_path / f"urls{k}.txt"
        listing.write_text("".join(server.route(f"/p{k}/{n}", handler) + "\n" for n in range(urls)))
        command = [sys.executable, "-m", "fetcher", str(listing), "-d", str(tmp_path / f"out{k}"), "-q", *options]
        runs.append(subprocess.Popen(command, stderr=subprocess.PIPE, text=True))
    try:
        for run in runs:
            assert run.wait(60) == 0, run.stderr.read() if run.stderr else ""
    finally:
        for run in runs:
            run.kill()
            run.wait(10)
