"""Sample values for the report's tests: a Result and a RunRecord, with any field changed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fetcher._result import Result, Status
from fetcher.report import RunRecord

NOW = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)


def result(line: int = 1, **changes: Any) -> Result:
    values: dict[str, Any] = {
        "run_id": "run-1",
        "line": line,
        "url": f"https://example.com/{line}.txt",
        "status": Status.OK,
        "path": Path(f"/dest/{line}.txt"),
        "http_status": 200,
        "bytes": 42,
        "wait_s": 0.25,
        "started_at": NOW,
        "finished_at": NOW,
    }
    values.update(changes)
    return Result(**values)


def run_record(**changes: Any) -> RunRecord:
    values: dict[str, Any] = {
        "run_id": "run-1",
        "version": "0.2.0",
        "started_at": NOW,
        "finished_at": NOW,
        "ended": "finished",
        "options": {"max": 3, "dest": "/dest"},
        "totals": {"ok": 2},
        "bytes": 84,
    }
    values.update(changes)
    return RunRecord(**values)


def at(seconds: float) -> Any:
    return NOW + timedelta(seconds=seconds)


def download(line: int, start: float, wait: float, took: float, **changes: Any) -> dict[str, Any]:
    """The record of a URL ready at *start* that waited *wait* and then downloaded for *took* seconds."""
    values: dict[str, Any] = {
        "started_at": at(start),
        "finished_at": at(start + wait + took),
        "wait_s": wait,
        "ttfb_s": took / 2,
        "download_s": took / 2,
        "total_s": wait + took,
        "waited_on": "slots" if wait else None,
    }
    values.update(changes)
    return result(line, **values).to_record()
