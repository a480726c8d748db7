"""SpanColumns: a run's spans (fetcher.report.timeline.Span) kept as columns of numbers.

A list of Spans costs about 400 bytes a URL (the tuple, six floats, another
tuple and a status string), and the small objects, freed among the read's
garbage, keep the heap from shrinking: ``fetcher report`` on a run of
1,000,000 URLs peaked at 805 MiB. Here each URL costs seven floats and two
small codes in arrays, 64 bytes, and a Span is made again when one is read
(about 0.2 µs). It is a read-only Sequence once filled (``append`` only
adds), so the timeline and the page read it as they read a list.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator, Sequence
from typing import overload

from .timeline import Span

_make = tuple.__new__  # a Span from its fields in order, as namedtuple's _make does
_NONE = math.nan  # a time a Span does not have (None); timeline.span() never gives a NaN


class SpanColumns(Sequence[Span]):
    """Spans in the order appended, seven arrays of floats and one of codes for the two strings."""

    __slots__ = ("_ready", "_waited", "_attempt", "_headers", "_finished", "_taken", "_released", "_codes", "_texts",
                 "_code_of")  # fmt: skip

    def __init__(self) -> None:
        self._ready, self._waited, self._finished = array("d"), array("d"), array("d")
        self._attempt, self._headers = array("d"), array("d")  # NaN: None
        self._taken, self._released = array("d"), array("d")  # NaN: no slot recorded
        # Two codes a span, its status's and its waited_on's: indexes into _texts (a run has a handful).
        self._codes = array("I")
        self._texts: list[str | None] = []
        self._code_of: dict[str | None, int] = {}

    def append(self, span: Span) -> None:
        self._ready.append(span.ready)
        self._waited.append(span.waited)
        self._attempt.append(_NONE if span.attempt is None else span.attempt)
        self._headers.append(_NONE if span.headers is None else span.headers)
        self._finished.append(span.finished)
        taken, released = (_NONE, _NONE) if span.slot is None else span.slot
        self._taken.append(taken)
        self._released.append(released)
        self._codes.append(self._code(span.status))
        self._codes.append(self._code(span.waited_on))

    def _code(self, text: str | None) -> int:
        code = self._code_of.get(text)
        if code is None:
            code = self._code_of[text] = len(self._texts)
            self._texts.append(text)
        return code

    def __len__(self) -> int:
        return len(self._ready)

    @overload
    def __getitem__(self, index: int) -> Span: ...

    @overload
    def __getitem__(self, index: slice) -> list[Span]: ...

    def __getitem__(self, index: int | slice) -> Span | list[Span]:
        if isinstance(index, slice):
            return [self._span(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("span index out of range")
        return self._span(index)

    def __iter__(self) -> Iterator[Span]:
        return (self._span(i) for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (SpanColumns, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, as a list

    def _span(self, i: int) -> Span:
        attempt, headers, taken = self._attempt[i], self._headers[i], self._taken[i]
        texts, codes = self._texts, self._codes
        # A NaN is the one float not equal to itself (see _NONE).
        return _make(Span, (
            self._ready[i], self._waited[i], None if attempt != attempt else attempt,
            None if headers != headers else headers, self._finished[i], texts[codes[2 * i]],
            None if taken != taken else (taken, self._released[i]), texts[codes[2 * i + 1]],
        ))  # fmt: skip
