"""fetcher.transfer.validators: the headers of a re-run and of a resume, and when a body may be continued."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from requests.structures import CaseInsensitiveDict

from fetcher.transfer.validators import (
    PartialFile,
    Validators,
    conditional_headers,
    content_range,
    last_modified_ns,
    resumable,
    resume_headers,
)

#: RFC 9110 §5.6.7's example date, and the same instant a day later.
MODIFIED = "Sun, 06 Nov 1994 08:49:37 GMT"
MODIFIED_TS = 784111777
A_DAY_LATER = "Mon, 07 Nov 1994 08:49:37 GMT"


def answer(**fields: str) -> CaseInsensitiveDict[str]:
    """A resumable 200's headers (as requests hands them over), with *fields* changed; "" removes one."""
    headers = {"Accept-Ranges": "bytes", "ETag": '"v1"', "Last-Modified": MODIFIED, "Date": A_DAY_LATER}
    headers.update({name.replace("_", "-"): value for name, value in fields.items()})
    return CaseInsensitiveDict({name: value for name, value in headers.items() if value})


# -- Validators ---------------------------------------------------------------------


def test_validators_are_false_when_empty() -> None:
    assert not Validators()
    assert not Validators(etag="", last_modified="")
    assert Validators(etag='"v1"')
    assert Validators(last_modified=MODIFIED)


# -- conditional_headers --------------------------------------------------------------


def test_conditional_headers_send_both_validators_exactly_as_saved() -> None:
    saved = Validators(etag='W/"abc-123"', last_modified=MODIFIED)
    assert conditional_headers(saved) == {"If-None-Match": 'W/"abc-123"', "If-Modified-Since": MODIFIED}


def test_conditional_headers_send_only_what_was_saved() -> None:
    assert conditional_headers(Validators(etag='"v1"')) == {"If-None-Match": '"v1"'}
    assert conditional_headers(Validators(last_modified=MODIFIED)) == {"If-Modified-Since": MODIFIED}
    assert conditional_headers(Validators()) == {}


# -- resume_headers -------------------------------------------------------------------


def test_resume_headers_ask_for_the_rest_if_unchanged_and_unencoded(tmp_path: Path) -> None:
    partial = PartialFile(path=tmp_path / "p", if_range='"v1"', total=1000, validators=Validators(etag='"v1"'))
    assert resume_headers(partial, 400) == {"Range": "bytes=400-", "If-Range": '"v1"', "Accept-Encoding": "identity"}


# -- resumable ------------------------------------------------------------------------


def test_a_strong_etag_is_the_if_range_value() -> None:
    assert resumable(answer(), 1000) == ('"v1"', Validators(etag='"v1"', last_modified=MODIFIED))


def test_header_names_are_matched_in_any_case() -> None:
    headers = CaseInsensitiveDict({"accept-ranges": "Bytes", "etag": '"v1"'})
    assert resumable(headers, 10) == ('"v1"', Validators(etag='"v1"'))


@pytest.mark.parametrize("weak", ['W/"v1"', 'w/"v1"', ' W/"v1"'])
def test_a_weak_etag_falls_back_on_a_strong_date(weak: str) -> None:
    assert resumable(answer(ETag=weak), 1000) == (MODIFIED, Validators(etag=weak, last_modified=MODIFIED))


def test_without_an_etag_a_strong_date_is_the_if_range_value() -> None:
    assert resumable(answer(ETag=""), 1000) == (MODIFIED, Validators(last_modified=MODIFIED))


def test_a_date_exactly_one_second_before_the_response_date_is_strong() -> None:
    one_second_later = "Sun, 06 Nov 1994 08:49:38 GMT"
    assert resumable(answer(ETag="", Date=one_second_later), 1000) == (MODIFIED, Validators(last_modified=MODIFIED))


@pytest.mark.parametrize(
    "date",
    [
        MODIFIED,  # modified in the second it was sent: a second change could hide in it
        "Sun, 06 Nov 1994 08:49:30 GMT",  # before Last-Modified (a clock that went back)
        "",  # no Date: nothing says the date is strong
        "not a date",
    ],
)
def test_a_weak_date_with_no_strong_etag_is_not_resumable(date: str) -> None:
    assert resumable(answer(ETag='W/"v1"', Date=date), 1000) is None
    assert resumable(answer(ETag="", Date=date), 1000) is None


@pytest.mark.parametrize("last_modified", ["", "yesterday"])
def test_a_weak_etag_without_a_usable_date_is_not_resumable(last_modified: str) -> None:
    assert resumable(answer(ETag='W/"v1"', Last_Modified=last_modified), 1000) is None


def test_no_validator_at_all_is_not_resumable() -> None:
    assert resumable(answer(ETag="", Last_Modified=""), 1000) is None


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate", "gzip, identity"])
def test_an_encoded_body_is_not_resumable(encoding: str) -> None:
    assert resumable(answer(Content_Encoding=encoding), 1000) is None


@pytest.mark.parametrize("encoding", ["identity", " Identity "])
def test_an_identity_encoding_is_resumable(encoding: str) -> None:
    assert resumable(answer(Content_Encoding=encoding), 1000) is not None


@pytest.mark.parametrize("accept_ranges", ["", "none"])
def test_without_accept_ranges_bytes_it_is_not_resumable(accept_ranges: str) -> None:
    assert resumable(answer(Accept_Ranges=accept_ranges), 1000) is None


def test_without_a_length_it_is_not_resumable() -> None:
    # The joined file could not be checked against anything.
    assert resumable(answer(), None) is None


# -- content_range --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "span"),
    [
        ("bytes 400-999/1000", (400, 999, 1000)),
        ("bytes 0-0/1", (0, 0, 1)),
        ("bytes 400-999/*", (400, 999, None)),
        ("  BYTES 400-999/1000 ", (400, 999, 1000)),
    ],
)
def test_content_range_reads_first_last_and_total(value: str, span: tuple[int, int, int | None]) -> None:
    assert content_range(value) == span


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "bytes */1000",  # a 416's unsatisfied range
        "bytes 500-400/1000",  # last before first
        "bytes 400-1000/1000",  # last at the total
        "bytes 400-1200/1000",  # last past the total
        "bytes 400-/1000",
        "bytes -999/1000",
        "bytes=400-999/1000",
        "items 400-999/1000",
        "bytes 400-999",
        "bytes 400-999/1000, 0-1/1000",
        "bytes 0x10-0x20/1000",
    ],
)
def test_an_unusable_content_range_is_none(value: str | None) -> None:
    assert content_range(value) is None


# -- last_modified_ns -----------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        MODIFIED,  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850 form
        "Sun Nov  6 08:49:37 1994",  # obsolete asctime form, GMT by definition
    ],
)
def test_last_modified_ns_reads_every_http_date_form(value: str) -> None:
    assert last_modified_ns(value) == MODIFIED_TS * 1_000_000_000


@pytest.fixture
def local_time_not_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone set five hours behind UTC."""
    monkeypatch.setenv("TZ", "EST+05")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("value", ["Sun Nov  6 08:49:37 1994", "Sun, 06 Nov 1994 08:49:37 -0000"])
@pytest.mark.usefixtures("local_time_not_utc")
def test_a_date_without_a_zone_is_gmt_whatever_the_local_time_zone(value: str) -> None:
    # RFC 9110 §5.6.7: every HTTP date is in GMT, the asctime form included.
    assert time.timezone != 0
    assert last_modified_ns(value) == MODIFIED_TS * 1_000_000_000


@pytest.mark.parametrize(
    "value", [None, "", "yesterday", "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Nov 99999 08:49 GMT"]
)
def test_an_unusable_last_modified_is_none(value: str | None) -> None:
    assert last_modified_ns(value) is None
