"""SpanColumns: a run's spans as columns, read back as the Spans they were."""

from __future__ import annotations

import pytest

from fetcher.report.columns import SpanColumns
from fetcher.report.timeline import Span

SPANS = [
    Span(
        ready=1.0, waited=1.5, attempt=1.5, headers=1.6, finished=2.0, status="ok", slot=(1.5, 2.0), waited_on="slots"
    ),
    Span(ready=1.1, waited=3.0, attempt=None, headers=None, finished=3.0, status="acquire-timeout"),
    Span(ready=1.2, waited=1.2, attempt=1.3, headers=None, finished=1.9, status="failed", waited_on="host"),
]


def filled(spans: list[Span]) -> SpanColumns:
    columns = SpanColumns()
    for span in spans:
        columns.append(span)
    return columns


def test_each_span_reads_back_as_it_was_appended_nones_and_all() -> None:
    columns = filled(SPANS)
    assert len(columns) == 3
    assert list(columns) == SPANS
    assert [columns[i] for i in range(3)] == SPANS


def test_it_is_indexed_as_a_list_is() -> None:
    columns = filled(SPANS)
    assert columns[-1] == SPANS[-1]
    assert columns[1:] == SPANS[1:]
    assert columns == SPANS and columns != SPANS[:2]
    with pytest.raises(IndexError):
        columns[3]


def test_an_empty_one_is_empty() -> None:
    columns = SpanColumns()
    assert not columns and list(columns) == [] and columns == []
