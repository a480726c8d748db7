"""A made-up run, as fetcher would have recorded it: URLs queued for a few slots on hosts of different speeds.

For the tests of ``fetcher report`` and the README's screenshot: deterministic
(a seeded random), any size, with every kind of record a real run leaves
(failures, retries, unchanged files, acquire timeouts, invalid lines).  The
slots are a heap of free times, so the records agree with each other as a
real run's do: a slot given back at a moment is taken again at that moment.
"""

from __future__ import annotations

import heapq
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fetcher._result import Result, Status
from fetcher.report import RunRecord

START = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
#: Host -> (seconds to first byte, bytes per second): one slow host among quick ones.
HOSTS = {"mirror.example.org": (0.08, 4e6), "files.example.net": (0.15, 2e6), "slow.example.com": (0.6, 4e5)}


def simulated_run(
    count: int,
    *,
    slots: int = 4,
    acquire_timeout: float | None = None,
    run_id: str = "20240501T120000Z-5a1d0c",
    start: datetime = START,
    seed: int = 9,
) -> tuple[list[Result], RunRecord]:
    """*count* URL results and the run record of a run with ``--max slots``, every URL ready at *start*."""
    rng = random.Random(seed)
    free = [0.0] * slots  # when each slot is next free, in seconds from start
    queue: list[tuple[float, int, int]] = []  # (ready, line, attempt): FIFO by ready time, as the semaphore is
    first_start: dict[int, float] = {}
    results = []
    hosts = list(HOSTS)
    for line in range(1, count + 1):
        if line % 41 == 0:
            url = f"htps//{hosts[line % len(hosts)]}/data/{line:06d}.bin"
            results.append(_result(run_id, line, url, Status.INVALID, start, 0.0, 0.0, attempts=0))
        else:
            queue.append((0.0, line, 1))
    heapq.heapify(queue)
    while queue:
        ready, line, attempt = heapq.heappop(queue)
        host = hosts[line % len(hosts)]
        url = f"https://{host}/data/{line:06d}.bin"
        held = max(heapq.heappop(free), ready)
        if attempt == 1 and acquire_timeout is not None and held > acquire_timeout:
            heapq.heappush(free, held)
            results.append(
                _result(run_id, line, url, Status.ACQUIRE_TIMEOUT, start, acquire_timeout, acquire_timeout,
                        attempts=0, waited_on="slots", error=f"no slot within {acquire_timeout:g}s")
            )  # fmt: skip
            continue
        first_start.setdefault(line, held)
        retries = 2 if line % 17 == 0 else 1 if line % 11 == 0 else 0
        if attempt <= retries:
            # A connection reset, then a second's retry wait holding no slot.
            heapq.heappush(free, held + 0.05)
            heapq.heappush(queue, (held + 1.05, line, attempt + 1))
            continue
        ttfb_base, speed = HOSTS[host]
        ttfb = ttfb_base * rng.uniform(0.5, 2.0)
        size = int(rng.lognormvariate(13, 1))
        download = size / speed
        status, error, http = Status.OK, None, 200
        if line % 13 == 0:
            status, size, download, http = Status.UNCHANGED, 0, 0.0, 304
        elif line % 17 == 0:
            status, error, http, size, download = Status.FAILED, "HTTP 503 Service Unavailable", 503, 0, 0.01
        finish = held + ttfb + download
        heapq.heappush(free, finish)
        waited = first_start[line]
        results.append(
            _result(run_id, line, url, status, start, waited, finish, attempts=attempt,
                    waited_on="slots" if waited else None, error=error, http_status=http, size=size, ttfb=ttfb,
                    download=download, slot=(held, finish))
        )  # fmt: skip
    results.sort(key=lambda r: r.finished_at)  # a report is written as URLs finish
    finished = max((r.finished_at for r in results), default=start) + timedelta(milliseconds=5)
    totals: dict[str, int] = {}
    for r in results:
        totals[r.status.value] = totals.get(r.status.value, 0) + 1
    record = RunRecord(
        run_id=run_id,
        version="0.2.0",
        started_at=start - timedelta(milliseconds=20),
        finished_at=finished,
        ended="finished",
        options={"max": slots, "acquire_timeout": acquire_timeout},
        totals=totals,
        bytes=sum(r.bytes for r in results if r.ok),
    )
    return results, record


def _result(
    run_id: str,
    line: int,
    url: str,
    status: Status,
    start: datetime,
    waited: float,
    finish: float,
    *,
    attempts: int,
    waited_on: str | None = None,
    error: str | None = None,
    http_status: int | None = None,
    size: int = 0,
    ttfb: float | None = None,
    download: float | None = None,
    slot: tuple[float, float] | None = None,
) -> Result:
    return Result(
        run_id=run_id,
        line=line,
        url=url,
        status=status,
        path=Path(f"/data/{line:06d}.bin") if status.succeeded else None,
        http_status=http_status,
        bytes=size,
        wait_s=waited if status is not Status.INVALID else None,
        ttfb_s=ttfb,
        download_s=download,
        total_s=finish,
        started_at=start,
        finished_at=start + timedelta(seconds=finish),
        error=error if status is not Status.INVALID else "not an http(s) URL",
        attempts=attempts,
        waited_on=waited_on,
        slot_taken_at=None if slot is None else start + timedelta(seconds=slot[0]),
        slot_released_at=None if slot is None else start + timedelta(seconds=slot[1]),
    )
