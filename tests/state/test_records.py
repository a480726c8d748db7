"""fetcher.state.records: a record with a bad field is refused, naming the field; time stamps are floats."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fetcher._errors import ConfigError
from fetcher.state import StateStore
from tests.state.helpers import URL, partial_record, saved_record


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: saved_record(size=-1), "size"),
        (lambda: saved_record(size=True), "size"),
        (lambda: saved_record(path="relative/file"), "path"),
        (lambda: saved_record(url=""), "url"),
        (lambda: saved_record(etag=b'"v1"'), "etag"),
        (lambda: saved_record(saved_at=float("nan")), "saved_at"),
        (lambda: partial_record(total=-5), "total"),
        (lambda: partial_record(updated_at="now"), "updated_at"),
    ],
)
def test_a_record_with_a_bad_field_is_refused_naming_it(make: Callable[[], object], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field} must be"):
        make()


def test_timestamps_are_stored_as_floats(store: StateStore) -> None:
    store.record_saved(saved_record(saved_at=1000))
    record = store.saved(URL)
    assert record is not None and type(record.saved_at) is float
