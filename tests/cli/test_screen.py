"""What the command's bars show on a real terminal: the real command in a pseudo-terminal.

The screen is read at two moments while a server stalls mid-body: the clock
must move and the stalled download must keep its bar.  Linux and macOS only
(``pty``); each read is bounded by ``select`` and a deadline, and the child is
killed at the end whatever happened.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import server as srv

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
CLOCK = re.compile(r" (\d\d:\d\d) ")


class Screen:
    """The command run with its stderr on a pseudo-terminal *columns* wide."""

    def __init__(self, args: list[str], columns: int) -> None:
        self._fd, child = pty.openpty()
        fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        env = {**os.environ, "COLUMNS": str(columns)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fetcher", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=child, env=env, close_fds=True,
        )  # fmt: skip
        os.close(child)
        self.output = ""

    def read_for(self, seconds: float) -> str:
        """What the command painted during the next *seconds*."""
        start = len(self.output)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self._fd], [], [], left)
            if not ready:
                break
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:  # the child is gone (EIO on Linux)
                break
            if not chunk:
                break
            self.output += chunk.decode("utf-8", "replace")
        return self.output[start:]

    def read_until(self, wanted: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while wanted not in ANSI.sub("", self.output) and time.monotonic() < deadline:
            self.read_for(0.1)
        return wanted in ANSI.sub("", self.output)

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
        os.close(self._fd)


def lines(painted: str) -> list[str]:
    """Each line painted (a repaint after \\r counts as a line), ANSI escapes stripped."""
    return [line.rstrip() for line in re.split(r"[\r\n]", ANSI.sub("", painted)) if line.strip()]


def overall(painted: str) -> list[str]:
    return [line for line in lines(painted) if line.startswith("fetcher")]


@pytest.fixture
def stalling_list(server: srv.LoopbackServer, tmp_path: Path) -> Path:
    """Two downloads that stall for 6 s after 200 KiB (both slots of --max 2), three more waiting."""
    urls = [server.route(f"/stall{i}.iso", srv.stalled(b"x" * 200_000, claimed=1_000_000, stall=6)) for i in range(2)]
    urls += [server.route(f"/f{i}.txt", srv.body(b"x")) for i in range(3)]
    path = tmp_path / "urls.txt"
    path.write_text("\n".join(urls) + "\n")
    return path


@pytest.fixture
def screen(request: pytest.FixtureRequest, stalling_list: Path, tmp_path: Path) -> Iterator[Screen]:
    shown = Screen([str(stalling_list), "--max", "2", "-d", str(tmp_path / "out")], columns=request.param)
    try:
        yield shown
    finally:
        shown.close()


@pytest.mark.parametrize("screen", [100], indirect=True)
def test_during_a_stall_the_clock_moves_and_the_stalled_download_keeps_its_bar(screen: Screen) -> None:
    assert screen.read_until("stall1.iso", timeout=5), f"no bar for the stalled download: {screen.output!r}"
    first = screen.read_for(0.3)
    second = screen.read_for(1.2)
    clocks = [CLOCK.findall(line)[0] for line in overall(first)[-1:] + overall(second)[-1:]]
    assert len(clocks) == 2 and clocks[0] != clocks[1], f"the clock did not move: {clocks}"
    assert any(line.lstrip().startswith("stall0.iso") for line in lines(second))
    assert any(line.lstrip().startswith("stall1.iso") for line in lines(second))
    assert "slots 2/2 waiting 3" in overall(second)[-1]


@pytest.mark.parametrize("screen", [60], indirect=True)
def test_at_60_columns_the_gauge_shows_and_no_line_is_wider(screen: Screen) -> None:
    assert screen.read_until("slots 2/2", timeout=5), f"no gauge: {screen.output!r}"
    screen.read_for(1.0)
    assert "slots 2/2 waiting 3" in overall(screen.output)[-1]
    assert max(len(line) for line in lines(screen.output)) <= 60


@pytest.mark.parametrize("screen", [100], indirect=True)
def test_after_ctrl_c_the_bar_keeps_the_urls_that_were_waiting_until_the_run_ends(screen: Screen) -> None:
    assert screen.read_until("slots 2/2 waiting 3", timeout=5), f"no gauge: {screen.output!r}"
    screen.process.send_signal(signal.SIGINT)
    assert screen.read_until("fetcher: interrupted:", timeout=5), f"no summary: {screen.output!r}"
    bars = [line for line in overall(screen.output) if not line.startswith("fetcher:")]
    assert bars[-1].startswith("fetcher interrupted 0/5") and "slots 0/2 waiting 0" in bars[-1], bars[-1]
    # While the stop records the URLs, the gauge keeps what was waiting; only the end shows none.
    assert not any("waiting 0" in line and "slots 0/2" not in line for line in bars)
