from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server import LoopbackServer


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    """A fresh loopback HTTP server, its counters at zero."""
    loopback = LoopbackServer().start()
    yield loopback
    loopback.stop()


@pytest.fixture
def server_b() -> Iterator[LoopbackServer]:
    """A second host (127.0.0.2): to a client's per-host limits, another host than ``server``."""
    loopback = LoopbackServer(host="127.0.0.2").start()
    yield loopback
    loopback.stop()
