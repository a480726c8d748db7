"""StepSeries: a step function (the slots in use, the URLs waiting) kept as two columns of numbers.

A run changes its count of slots in use about twice a URL; as a list of
(time, value) tuples that is about 150 bytes a URL, more than the run's
spans (fetcher.report.columns) and tally together.  Here it is 16 bytes a
change, in two arrays, read as the same (time, value) pairs.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from typing import overload


class StepSeries(Sequence[tuple[float, int]]):
    """(time, value from then on) pairs, times rising, from the arrays *times* and *values* of one length."""

    __slots__ = ("_times", "_values")

    def __init__(self, times: array[float], values: array[int]) -> None:
        if len(times) != len(values):
            raise ValueError(f"{len(times)} times but {len(values)} values")
        self._times, self._values = times, values

    def __len__(self) -> int:
        return len(self._times)

    @overload
    def __getitem__(self, index: int) -> tuple[float, int]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[float, int]]: ...

    def __getitem__(self, index: int | slice) -> tuple[float, int] | list[tuple[float, int]]:
        if isinstance(index, slice):
            return list(zip(self._times[index], self._values[index], strict=True))
        return self._times[index], self._values[index]

    def __iter__(self) -> Iterator[tuple[float, int]]:
        return zip(self._times, self._values, strict=True)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (StepSeries, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # compared by value, as a list is
