"""Job: what the dispatcher makes of one as it takes a slot."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from pathlib import Path

from fetcher._run.jobs import Job
from fetcher._urllist import Entry
from fetcher.transfer.validators import PartialFile, Validators


def test_a_job_taking_a_slot_is_the_job_replace_would_make() -> None:
    # Every field set to a value of its own, so a field with_slot forgets cannot go unseen.
    partial = PartialFile(path=Path("/d/.part"), if_range='"e"', total=10, validators=Validators(etag='"e"'))
    job = Job(
        seq=3, entry=Entry(url="http://h/x", line=4), target=Path("/d/x"), host="h:80", ready=1.5,
        ready_at=datetime(2026, 1, 2, tzinfo=timezone.utc), expires=9.5, waited_on="slots", attempts=2,
        wait_s=0.25, partial=partial, began=1.75, last_error="timed out",
        slot_taken_at=datetime(2026, 1, 3, tzinfo=timezone.utc),
    )  # fmt: skip
    changes = {"slot_taken_at": datetime(2026, 1, 4, tzinfo=timezone.utc), "wait_s": 0.5, "waited_on": None,
               "began": 2.0}  # fmt: skip
    assert job.with_slot(**changes) == dataclasses.replace(job, **changes)  # type: ignore[arg-type]



def test_with_slot_is_told_of_every_field() -> None:
    # A field added to Job must be passed on by with_slot too; then add it here (and to the test above).
    assert [field.name for field in dataclasses.fields(Job)] == [
        "seq", "entry", "target", "host", "ready", "ready_at", "expires", "waited_on", "attempts", "wait_s",
        "partial", "began", "last_error", "slot_taken_at",
    ]  # fmt: skip
