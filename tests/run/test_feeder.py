"""fetcher._run.feeder: duplicates are found however far apart, with the URLs kept on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from fetcher import Fetcher, Status
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
