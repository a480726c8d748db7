"""A cluster's final records as one report file: what ``fetcher cluster export`` writes and ``cluster report`` reads.

``export_to(url, cluster, path)`` writes the final records that the workers
kept in Redis (fetcher/cluster/queue.py) as a JSON Lines report, the format
fetcher/report/writer.py writes and ``fetcher report`` reads: one URL record
a line, then one run record.  The whole cluster is one run, ``cluster-NAME``:
each record's ``run_id`` (its worker's run) is replaced by it, so that
``fetcher report`` sums up every worker at once.  The run record says
``finished`` when no URL of the queue was waiting or in progress, else
``interrupted`` with how many were; its times are the earliest start and the
latest finish of the records, its ``max`` the cluster's while it lives.
``write_records(url, cluster, stream)`` writes the same to an open binary
stream (standard output).

The records are read with HSCAN, EXPORT_BATCH at a time, and each is written
as it comes, so memory stays flat however many there are.  Nothing is kept
to drop repeats: HSCAN may give an item twice only when the hash shrinks
between calls, and the records hash only grows while a run lasts (one
HSETNX per URL; only ``enqueue --again`` deletes it, between runs).  An
export taken while workers still run holds the URLs finished before it, and
may or may not hold those finished meanwhile.

The file is written beside *path* under a hidden temporary name and renamed
over *path* at the end: a failed or interrupted export leaves *path* as it
was.  URLs go out without their ``user:password@`` (the workers keep them so;
``redact`` again costs nothing).

What it is not: not CSV (the run record would need a side file, renamed
apart), not a merge of the workers' own reports (their run ids and run
records stay in those), and not a summary: ``fetcher report`` does that.
"""

from __future__ import annotations

import json
import os
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from .._errors import ConfigError
from .._result import FIELDS, Status
from .._text import escape, redact
from .._version import __version__
from ..limits.redis import cluster_keys
from ..limits.redis_link import redis_client
from ..report.runs import RunRecord
from ..report.writer import report_format
from .status import ClusterStatus, read_status

#: Records asked for per HSCAN call: what the export holds in memory at once.
EXPORT_BATCH = 1000

_SUCCEEDED = frozenset(status.value for status in Status if status.succeeded)


@dataclass(frozen=True, kw_only=True, slots=True)
class Exported:
    """What an export wrote: the run's id, its URL records, how it ended, and the records left out."""

    run_id: str
    records: int
    ended: str
    unreadable: int = 0  # values in the records hash that are not a JSON object: not written


def cluster_run_id(cluster: str) -> str:
    """The run id of the whole of *cluster* in an export."""
    return f"cluster-{cluster}"


def export_to(url: str, cluster: str, path: str | Path) -> Exported:
    """Write *cluster*'s final records as the report *path* (replaced whole at the end; see the module docs).

    A ConfigError, with *path* left as it was, when Redis cannot be used, the cluster has no final
    records, or *path* cannot be written.
    """
    path = Path(path)
    if report_format(path) == "csv":
        raise ConfigError(f"cannot export to {escape(str(path))}: an export is JSON Lines (name it .jsonl)")
    if path.is_dir():
        raise ConfigError(f"cannot write {escape(str(path))}: it is a folder")
    status = _with_records(url, cluster)  # before any file is made
    part = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        # Made with the permissions the umask gives, as the report is.
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise _cannot_write(str(path), exc) from None
    try:
        try:
            with open(fd, "wb") as stream:
                exported = _write(url, cluster, stream, status, str(path))
                os.fsync(stream.fileno())  # whole on disk before it takes the name
            os.replace(part, path)
        except OSError as exc:
            raise _cannot_write(str(path), exc) from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return exported


def write_records(url: str, cluster: str, stream: IO[bytes], *, name: str = "standard output") -> Exported:
    """Write *cluster*'s final records to *stream*, as ``export_to`` writes its file; *name* names it in errors."""
    return _write(url, cluster, stream, _with_records(url, cluster), name)


def _with_records(url: str, cluster: str) -> ClusterStatus:
    """The cluster's status; a ConfigError if Redis cannot be used or the cluster has no final records."""
    status = read_status(url, cluster)
    if status.done == 0:
        unfinished = status.waiting + status.in_progress
        why = f"{unfinished:,} URLs waiting or in progress" if unfinished else "nothing is queued under that name"
        raise ConfigError(f"cluster {escape(cluster)} at {status.redis} has no final records ({why})")
    return status


def _cannot_write(name: str, exc: OSError) -> ConfigError:
    return ConfigError(f"cannot write {escape(name)}: {exc.strerror or exc}")


def _write(url: str, cluster: str, stream: IO[bytes], status: ClusterStatus, name: str) -> Exported:
    """The URL records, each written as HSCAN gives it, then the run record; then *stream* is flushed."""
    run_id = cluster_run_id(cluster)
    run = _Run()
    with redis_client(url) as client:
        try:
            for _, value in client.hscan_iter(cluster_keys(cluster)["records"], count=EXPORT_BATCH):
                record = run.add(value, run_id)
                if record is not None:
                    stream.write(_line(record))
            stream.write(_line(run.record(run_id, url, cluster, status.waiting + status.in_progress, status.slots)))
            stream.flush()
        except OSError as exc:
            raise _cannot_write(name, exc) from None
    return Exported(run_id=run_id, records=run.records, ended=run.ended, unreadable=run.unreadable)


class _Run:
    """What the run record says, counted record by record (nothing kept but the counts)."""

    def __init__(self) -> None:
        self.records = self.unreadable = self.bytes = 0
        self.totals: Counter[str] = Counter()
        self.started: datetime | None = None
        self.finished: datetime | None = None
        self.ended = "finished"

    def add(self, value: bytes | str, run_id: str) -> dict[str, Any] | None:
        """*value* (a record as the queue keeps it) as a URL record of the run *run_id*; None if it is none."""
        try:
            kept = json.loads(value)
        except ValueError:
            kept = None
        if not isinstance(kept, dict) or not isinstance(kept.get("status"), str):
            self.unreadable += 1
            return None
        status: str = kept["status"]
        url = kept.get("url")
        record: dict[str, Any] = {**dict.fromkeys(FIELDS), **kept, "run_id": run_id}
        record["url"] = redact(url) if isinstance(url, str) else url
        self.records += 1
        self.totals[status] += 1
        if status in _SUCCEEDED and isinstance(record["bytes"], int):
            self.bytes += record["bytes"]
        self.started = _earliest(self.started, record["started_at"])
        self.finished = _latest(self.finished, record["finished_at"])
        return record

    def record(self, run_id: str, url: str, cluster: str, unfinished: int, slots: int | None) -> dict[str, Any]:
        now = datetime.now(timezone.utc)
        options: dict[str, Any] = {"list": f"cluster {cluster} at {redact(url)}"}
        if slots is not None:
            options["max"] = slots
        self.ended = "interrupted" if unfinished else "finished"
        return RunRecord(
            run_id=run_id,
            version=__version__,
            started_at=self.started or now,
            finished_at=self.finished or now,
            ended=self.ended,
            reason=f"exported with {unfinished:,} URLs still waiting or in progress" if unfinished else None,
            options=options,
            totals=dict(self.totals),
            bytes=self.bytes,
        ).to_record()


def _moment(text: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return moment if moment is not None and moment.utcoffset() is not None else None


def _earliest(so_far: datetime | None, text: Any) -> datetime | None:
    moment = _moment(text)
    return moment if so_far is None or (moment is not None and moment < so_far) else so_far


def _latest(so_far: datetime | None, text: Any) -> datetime | None:
    moment = _moment(text)
    return moment if so_far is None or (moment is not None and moment > so_far) else so_far


def _line(record: dict[str, Any]) -> bytes:
    # As the report writer writes a record: ensure_ascii, so no raw control character reaches a terminal.
    return (json.dumps(record, ensure_ascii=True) + "\n").encode()
