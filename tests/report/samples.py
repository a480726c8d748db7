"""Sample values for the report's tests: a Result and a RunRecord, with any field changed."""

from __future__ import annotations

from datetime import datetime, timezone
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
