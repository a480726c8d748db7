"""fetcher.report.runs: RunRecord, one run as the report records it."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from fetcher._errors import ConfigError
from fetcher._result import Status
from fetcher.report import RUN_FIELDS

from .samples import run_record


def test_the_record_has_every_run_field_in_order_and_is_plain_json() -> None:
    record = run_record(options={"max": 3, "dest": "/dest"}, totals={Status.OK: 2}, cleanup={"removed": 1}).to_record()
    assert tuple(record) == RUN_FIELDS
    assert json.loads(json.dumps(record)) == record


def test_each_adaptive_hosts_limit_is_kept_as_given() -> None:
    limits = {"a:80": {"cap": 8, "final": 3, "lowest": 1, "limits": [[0.0, 2], [1.5, 1], [3.0, 3]]}}
    assert run_record(adaptive=limits).to_record()["adaptive"] == limits
    assert run_record().to_record()["adaptive"] == {}


def test_times_are_iso_8601_with_milliseconds() -> None:
    assert run_record().to_record()["started_at"] == "2024-05-01T12:00:00.123+00:00"


def test_status_keys_become_their_values() -> None:
    assert run_record(totals={Status.NOT_STARTED: 37}).to_record()["totals"] == {"not-started": 37}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"ended": "stopped"}, "ended"),
        ({"started_at": datetime(2024, 5, 1)}, "started_at"),
        ({"run_id": ""}, "run_id"),
        ({"totals": {"ok": -1}}, "totals"),
        ({"report_lost": -1}, "report_lost"),
        ({"options": {"dest": Path("/dest")}}, "options"),
        ({"adaptive": {"a:80": {"limits": [(float("nan"), 2)]}}}, "adaptive"),
        ({"adaptive": {"a:80": 3}}, "adaptive"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field} "):
        run_record(**changes)
