"""TimeLimits: an attempt's socket timeout, cut to the time left before --max-time and --deadline."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from fetcher._config import FetcherConfig
from fetcher._errors import TransportError
from fetcher.transfer.timelimits import TimeLimits

URL = "https://example.com/a.bin"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def limits(tmp_path: Path, clock: Clock, *, deadline: float | None = None, stop_at: float | None = None,
           **config: object) -> TimeLimits:  # fmt: skip
    settings = FetcherConfig(dest=tmp_path, **config)  # type: ignore[arg-type]
    return TimeLimits(settings, URL, clock, deadline, stop_at)


@pytest.fixture
def connected() -> Iterator[socket.socket]:
    left, right = socket.socketpair()
    left.settimeout(30.0)
    yield left
    left.close()
    right.close()


def response_on(sock: socket.socket) -> SimpleNamespace:
    """What TimeLimits.shrink reads of a requests response: its raw connection's socket."""
    return SimpleNamespace(raw=SimpleNamespace(connection=SimpleNamespace(sock=sock)))


def test_without_an_end_the_timeout_is_the_timeout_option(tmp_path: Path, clock: Clock) -> None:
    assert limits(tmp_path, clock, timeout=30.0).request_timeout() == 30.0


def test_the_timeout_never_reaches_past_the_max_time(tmp_path: Path, clock: Clock) -> None:
    assert limits(tmp_path, clock, timeout=30.0, deadline=clock.now + 4.0).request_timeout() == 4.0


def test_the_timeout_never_reaches_past_the_runs_deadline(tmp_path: Path, clock: Clock) -> None:
    assert limits(tmp_path, clock, timeout=30.0, stop_at=clock.now + 2.5).request_timeout() == 2.5


def test_a_shorter_speed_window_is_the_timeout_and_is_remembered(tmp_path: Path, clock: Clock) -> None:
    limited = limits(tmp_path, clock, timeout=30.0, speed_limit=1000, speed_time=5.0)
    assert (limited.request_timeout(), limited.speed_window) == (5.0, (1000, 5.0))


def test_a_request_after_the_max_time_ran_out_fails_naming_it(tmp_path: Path, clock: Clock) -> None:
    limited = limits(tmp_path, clock, max_time=10.0, deadline=clock.now)
    with pytest.raises(TransportError, match="--max-time of 10"):
        limited.request_timeout()


def test_shrink_cuts_the_sockets_timeout_to_the_time_left(
    tmp_path: Path, clock: Clock, connected: socket.socket
) -> None:
    limited = limits(tmp_path, clock, timeout=30.0, deadline=clock.now + 20.0)
    limited.request_timeout()
    clock.now += 17.0
    limited.shrink(response_on(connected))
    assert (connected.gettimeout(), limited.read_timeout) == (3.0, 3.0)


def test_shrink_leaves_the_socket_alone_without_an_end(tmp_path: Path, clock: Clock, connected: socket.socket) -> None:
    limited = limits(tmp_path, clock, timeout=30.0)
    limited.request_timeout()
    limited.shrink(response_on(connected))
    assert connected.gettimeout() == 30.0
