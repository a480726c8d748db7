"""The fixtures of the state package's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fetcher.state import DEFAULT_STATE_NAME, StateStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore(tmp_path / DEFAULT_STATE_NAME, clock=lambda: 1234.5) as opened:
        yield opened
