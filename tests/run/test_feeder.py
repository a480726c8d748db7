"""fetcher._run.feeder: duplicates are found however far apart, with the URLs kept on disk; the window."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from fetcher import Fetcher, Status
from fetcher._run.feeder import Window
from fetcher.state import seen


def test_a_duplicate_is_found_after_the_first_line_went_to_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lines that are no URL need no server; a repeated one is a duplicate of the first, like a URL.
    monkeypatch.setattr(seen, "BATCH", 4)
    lines = [f"junk{i}" for i in range(40)] + ["junk3", "junk39"]
    with Fetcher(dest=tmp_path, state=False) as fetcher:
        results = list(fetcher.fetch(lines))
    assert [r.status for r in results[:40]] == [Status.INVALID] * 40
    assert [(r.status, r.error) for r in results[40:]] == [
        (Status.DUPLICATE, "same as line 4"),
        (Status.DUPLICATE, "same as line 40"),
    ]


def test_a_window_gives_as_many_places_as_it_has_up_to_those_asked_for() -> None:
    window, cancelled = Window(10), threading.Event()
    assert window.take_some(4, cancelled) == 4
    assert window.take_some(20, cancelled) == 6


def test_a_full_window_gives_no_place_once_cancelled() -> None:
    window, cancelled = Window(2), threading.Event()
    assert window.take_some(2, cancelled) == 2
    cancelled.set()
    assert window.take_some(1, cancelled) == 0
