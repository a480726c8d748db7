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
