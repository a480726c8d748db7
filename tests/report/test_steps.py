"""StepSeries: a step function as two columns, read as (time, value) pairs."""

from __future__ import annotations

from array import array

import pytest

from fetcher.report.steps import StepSeries


def test_the_columns_read_as_time_value_pairs_in_order() -> None:
    series = StepSeries(array("d", [0.0, 1.5, 2.0]), array("q", [1, 2, 0]))
    assert list(series) == [(0.0, 1), (1.5, 2), (2.0, 0)]
    assert len(series) == 3 and series[-1] == (2.0, 0) and series[1:] == [(1.5, 2), (2.0, 0)]


def test_it_equals_the_list_of_the_same_pairs() -> None:
    series = StepSeries(array("d", [0.0, 1.0]), array("q", [1, 0]))
    assert series == [(0.0, 1), (1.0, 0)] and series != [(0.0, 1)]
    assert StepSeries(array("d"), array("q")) == []


def test_columns_of_two_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="2 times but 1 values"):
        StepSeries(array("d", [0.0, 1.0]), array("q", [1]))
