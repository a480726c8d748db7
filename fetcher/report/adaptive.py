"""Each host's adaptive limit over a run (``--adaptive``), as its run record kept it.

The run record's ``adaptive`` maps a host (``name:port``) to its cap, the
limit it ended at, the lowest it went, and its changes over time (see
fetcher.report.runs).  ``host_limits`` reads that back into values; a run
record a person edited, or one from before ``--adaptive``, gives what it
can, and a host whose entry does not read as one is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True, slots=True)
class HostLimit:
    """One host's adaptive limit over a run."""

    cap: int
    final: int
    lowest: int
    #: (seconds since the run started, the limit from then on), one point per change.
    points: tuple[tuple[float, int], ...]


def host_limits(run_record: Mapping[str, Any] | None) -> dict[str, HostLimit]:
    """The hosts' adaptive limits in *run_record* (empty when it has none)."""
    kept = (run_record or {}).get("adaptive")
    if not isinstance(kept, Mapping):
        return {}
    out = {}
    for host, entry in kept.items():
        limit = _host_limit(entry)
        if limit is not None:
            out[str(host)] = limit
    return out


def _host_limit(entry: object) -> HostLimit | None:
    if not isinstance(entry, Mapping):
        return None
    numbers = [entry.get(name) for name in ("cap", "final", "lowest")]
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in numbers):
        return None
    points = []
    for point in entry.get("limits") or ():
        if (isinstance(point, list) and len(point) == 2 and isinstance(point[0], (int, float))
                and isinstance(point[1], int) and not isinstance(point[1], bool)):  # fmt: skip
            points.append((float(point[0]), point[1]))
    cap, final, lowest = numbers
    return HostLimit(cap=cap, final=final, lowest=lowest, points=tuple(points))  # type: ignore[arg-type]
