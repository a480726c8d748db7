"""RunRecord: what one run was asked to do and how it ended, as the report records it.

A value only: the command fills it in at the end of a run and the writer
appends it (see fetcher.report.writer for where).  It does not count results
or time the run itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .._errors import ConfigError

#: How a run can end: it went through its whole list (whatever each URL's status), it was
#: stopped by Ctrl-C or SIGTERM, or it stopped on an error of its own (say, the list could not be read).
ENDED: tuple[str, ...] = ("finished", "interrupted", "failed")

#: The keys of a run record, in the order they are written.
RUN_FIELDS: tuple[str, ...] = (
    "record", "run_id", "version", "started_at", "finished_at", "ended", "reason",
    "options", "totals", "bytes", "cleanup", "report_lost", "display_lost", "adaptive",
)  # fmt: skip


@dataclass(frozen=True, kw_only=True, slots=True)
class RunRecord:
    """One run of fetcher, as recorded in the report.

    Fields (the record's keys, with ``"record": "run"`` first):

    - ``run_id``: the run's id, the same as in each of its URL records.
    - ``version``: the fetcher version that ran.
    - ``started_at``, ``finished_at``: timezone-aware datetimes; recorded as
      ISO 8601 with milliseconds, as in URL records.
    - ``ended``: ``finished``, ``interrupted`` or ``failed`` (see ENDED).
    - ``reason``: a short reason when ``ended`` is not ``finished`` (``SIGTERM``,
      the error that stopped the run); None otherwise.
    - ``options``: the options that shape the run, by name, as plain JSON values
      (str, int, float, bool, None, lists and dicts of those): max, max_per_host,
      rate, rate_per_host, limit_rate, shared_slots, acquire_timeout, timeout,
      retries, max_time, deadline, quota, dest, list, state, shared_state, report
      (``shared_state``: the state was the cluster's, in its Redis; ``state``,
      the database's path, is then None).
    - ``totals``: URL records by status value (``"ok"``, ``"failed"``, ...) -> count.
    - ``bytes``: bytes of the URLs that succeeded.
    - ``cleanup``: what the start-of-run cleanup of partial files did, e.g.
      ``{"removed": 3, "removed_bytes": 514850816, "kept": 1, "kept_bytes": 1024}``;
      empty when none ran.
    - ``report_lost``: URL records this run could not write to the report (a full disk).
    - ``display_lost``: why the command stopped printing (``"Broken pipe"``: stderr went away, as
      with ``| head``); None while it could print.  The downloads went on regardless.
    - ``adaptive``: with ``--adaptive``, each host's limit, by host name and port:
      ``{"cap": 16, "final": 4, "lowest": 1, "limits": [[0.0, 2], [0.41, 3], ...]}``,
      ``limits`` being (seconds since ``started_at``, the limit from then on) at each
      change; empty without ``--adaptive``.
    """

    run_id: str
    version: str
    started_at: datetime
    finished_at: datetime
    ended: str
    reason: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    totals: Mapping[str, int] = field(default_factory=dict)
    bytes: int = 0
    cleanup: Mapping[str, int] = field(default_factory=dict)
    report_lost: int = 0
    display_lost: str | None = None
    adaptive: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.run_id:
            raise ConfigError("run_id must not be empty")
        for name in ("started_at", "finished_at"):
            if getattr(self, name).utcoffset() is None:
                raise ConfigError(f"{name} must be a timezone-aware datetime")
        if self.ended not in ENDED:
            raise ConfigError(f"ended must be one of {', '.join(ENDED)}, not {self.ended!r}")
        for name in ("totals", "cleanup"):
            if any(not isinstance(count, int) or count < 0 for count in getattr(self, name).values()):
                raise ConfigError(f"{name} must map names to counts of 0 or more")
        for name in ("bytes", "report_lost"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 or more")
        if not all(isinstance(pace, Mapping) for pace in self.adaptive.values()):
            raise ConfigError("adaptive must map hosts to their limits")
        for name in ("options", "adaptive"):
            try:
                json.dumps(dict(getattr(self, name)), allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{name} must hold plain JSON values: {exc}") from exc

    def to_record(self) -> dict[str, Any]:
        """The run as plain JSON-ready values, keys in RUN_FIELDS order."""
        return {
            "record": "run",
            "run_id": self.run_id,
            "version": self.version,
            "started_at": self.started_at.isoformat(timespec="milliseconds"),
            "finished_at": self.finished_at.isoformat(timespec="milliseconds"),
            "ended": self.ended,
            "reason": self.reason,
            "options": dict(self.options),
            # str(): a Status key becomes its value ("ok"), a plain string stays as it is.
            "totals": {str(status): count for status, count in self.totals.items()},
            "bytes": self.bytes,
            "cleanup": dict(self.cleanup),
            "report_lost": self.report_lost,
            "display_lost": self.display_lost,
            "adaptive": {host: dict(pace) for host, pace in self.adaptive.items()},
        }
