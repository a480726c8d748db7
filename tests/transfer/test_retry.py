"""fetcher.transfer.retry: which failures are retried, and after how long (no test waits)."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from fetcher._errors import BodyError, ConfigError, DownloadError, HTTPStatusError, TransportError
from fetcher.transfer.retry import RETRY_AFTER_CEILING, Decision, RetryPolicy, parse_retry_after

URL = "https://files.example/rfc791.txt"
#: One minute before the date in RFC 9110's examples, "Sun, 06 Nov 1994 08:49:37 GMT".
NOW = datetime(1994, 11, 6, 8, 48, 37, tzinfo=timezone.utc)


def status(code: int, retry_after: str | None = None) -> HTTPStatusError:
    return HTTPStatusError(URL, code, "", retry_after=retry_after)


def stall() -> TransportError:
    return TransportError(URL, "server stalled: no data within the read timeout", transient=True)


def decide(policy: RetryPolicy, error: DownloadError, attempts: int = 1, random: float = 0.5) -> Decision:
    return policy.decide(error, attempts, now=NOW, random=random)


# -- what is retried --------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        status(404),
        status(403),
        status(413, retry_after="1"),
        BodyError(URL, "could not decode the compressed body"),
        TransportError(URL, "too many redirects"),
    ],
    ids=["404", "403", "413-with-retry-after", "undecodable-body", "redirect-loop"],
)
def test_an_error_that_is_not_transient_is_never_retried(error: DownloadError) -> None:
    assert decide(RetryPolicy(retries=100), error) == Decision(retry=False)


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(code: int) -> None:
    assert decide(RetryPolicy(), status(code)).retry


def test_a_transient_error_is_retried_until_the_budget_is_spent() -> None:
    policy = RetryPolicy(retries=3)
    answers = [decide(policy, stall(), attempts).retry for attempts in range(1, 6)]
    assert answers == [True, True, True, False, False]


def test_the_spent_budget_gives_no_reason_of_its_own() -> None:
    assert decide(RetryPolicy(retries=1), stall(), attempts=2).reason is None


def test_none_never_retries() -> None:
    policy = RetryPolicy.none()
    assert policy.retries == 0
    assert decide(policy, stall()) == Decision(retry=False)


# -- backoff ----------------------------------------------------------------------


def test_backoff_with_random_zero_is_no_wait() -> None:
    assert RetryPolicy().backoff(5, 0.0) == 0.0


def test_backoff_with_random_near_one_is_the_cap() -> None:
    assert RetryPolicy(wait_base=2.0).backoff(1, 0.999999) == pytest.approx(2.0, rel=1e-5)


def test_backoff_cap_doubles_per_attempt() -> None:
    policy = RetryPolicy(wait_base=0.5, wait_max=1000.0)
    assert [policy.backoff(n, 0.5) for n in range(1, 6)] == [0.25, 0.5, 1.0, 2.0, 4.0]


def test_backoff_is_capped_by_wait_max() -> None:
    policy = RetryPolicy(wait_base=1.0, wait_max=60.0)
    assert policy.backoff(7, 0.5) == 30.0  # 2**6 = 64 > 60
    assert policy.backoff(100, 0.5) == 30.0


def test_backoff_after_a_huge_number_of_attempts_is_the_cap_not_an_overflow() -> None:
    assert RetryPolicy(wait_max=10.0).backoff(10**6, 0.5) == 5.0


def test_backoff_with_wait_max_zero_never_waits() -> None:
    assert RetryPolicy(wait_max=0).backoff(3, 0.9) == 0.0


@pytest.mark.parametrize("random", [-0.1, 1.0, math.nan])
def test_backoff_rejects_random_outside_zero_to_one(random: float) -> None:
    with pytest.raises(ValueError, match="random"):
        RetryPolicy().backoff(1, random)


@pytest.mark.parametrize("attempts", [0, -1, True])
def test_attempts_below_one_are_rejected(attempts: Any) -> None:
    with pytest.raises(ValueError, match="attempts"):
        decide(RetryPolicy(), stall(), attempts=attempts)


def test_without_retry_after_the_delay_is_the_backoff() -> None:
    policy = RetryPolicy(wait_base=1.0)
    assert decide(policy, status(503), attempts=3, random=0.25) == Decision(retry=True, delay=1.0)


# -- Retry-After ------------------------------------------------------------------


def test_retry_after_seconds_are_obeyed_instead_of_backoff() -> None:
    decision = decide(RetryPolicy(wait_max=1.0), status(429, retry_after="120"), random=0.999)
    assert decision == Decision(retry=True, delay=120.0)


def test_retry_after_zero_retries_at_once() -> None:
    assert decide(RetryPolicy(), status(503, retry_after="0"), random=0.9) == Decision(retry=True, delay=0.0)


@pytest.mark.parametrize(
    "header",
    ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"],
    ids=["rfc1123", "rfc850", "asctime"],
)
def test_retry_after_http_date_is_measured_from_now(header: str) -> None:
    assert parse_retry_after(header, now=NOW) == 60.0


def test_retry_after_date_is_measured_from_an_aware_now_in_any_zone() -> None:
    now = NOW.astimezone(timezone(timedelta(hours=-5)))
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now=now) == 60.0


def test_retry_after_date_in_the_past_is_no_wait() -> None:
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now=NOW + timedelta(days=1)) == 0.0


def test_retry_after_date_is_obeyed_by_decide() -> None:
    assert decide(RetryPolicy(), status(503, retry_after="Sun, 06 Nov 1994 08:49:37 GMT")) == Decision(
        retry=True, delay=60.0
    )


@pytest.mark.parametrize("header", ["120", " 120 ", "0120"])
def test_retry_after_delta_seconds(header: str) -> None:
    assert parse_retry_after(header, now=NOW) == 120.0


@pytest.mark.parametrize(
    "header",
    [None, "", "soon", "-5", "1.5", "1e3", "\u0661\u0662", "Mon, 32 Jan 2024 08:49:37 GMT", "Sun, 06 Nov 1994"],
)
def test_retry_after_that_is_absent_or_unparseable_is_none(header: str | None) -> None:
    assert parse_retry_after(header, now=NOW) is None


def test_garbage_retry_after_falls_back_to_backoff() -> None:
    policy = RetryPolicy(wait_base=4.0)
    assert decide(policy, status(503, retry_after="later, please"), random=0.5) == Decision(retry=True, delay=2.0)


@pytest.mark.parametrize("header", ["9" * 5000, "99999999999", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_an_enormous_retry_after_is_read_as_the_ceiling(header: str) -> None:
    assert parse_retry_after(header, now=NOW) == RETRY_AFTER_CEILING


def test_retry_after_over_the_maximum_is_not_retried_and_says_both_numbers() -> None:
    decision = decide(RetryPolicy(retry_after_max=300), status(503, retry_after="3600"))
    assert decision == Decision(
        retry=False,
        reason="server asked to wait 3600s before retrying (more than the 300s --retry-after-max allows)",
    )


def test_retry_after_over_the_maximum_gives_a_fraction_only_when_there_is_one() -> None:
    decision = decide(RetryPolicy(retry_after_max=2.5), status(503, retry_after="Sun, 06 Nov 1994 08:49:37 GMT"))
    assert decision.reason == "server asked to wait 60s before retrying (more than the 2.5s --retry-after-max allows)"


def test_retry_after_equal_to_the_maximum_is_obeyed() -> None:
    assert decide(RetryPolicy(retry_after_max=300), status(429, retry_after="300")) == Decision(retry=True, delay=300.0)


def test_retry_after_over_the_maximum_with_the_budget_spent_gives_no_reason() -> None:
    policy = RetryPolicy(retries=1, retry_after_max=10)
    assert decide(policy, status(503, retry_after="3600"), attempts=2) == Decision(retry=False)


def test_a_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_retry_after("120", now=NOW.replace(tzinfo=None))


def test_decide_rejects_a_naive_now_even_without_retry_after() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        RetryPolicy().decide(stall(), 1, now=datetime(2024, 1, 1), random=0.5)


# -- the value --------------------------------------------------------------------


def test_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.retries, policy.wait_base, policy.wait_max, policy.retry_after_max) == (3, 1.0, 60.0, 300.0)


def test_seconds_given_as_int_are_stored_as_float() -> None:
    policy = RetryPolicy(wait_base=2, wait_max=0, retry_after_max=30)
    assert all(type(v) is float for v in (policy.wait_base, policy.wait_max, policy.retry_after_max))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("retries", -1, "retries must be a whole number from 0 to 100, not -1"),
        ("retries", 101, "retries must be a whole number from 0 to 100, not 101"),
        ("retries", True, "retries must be a whole number from 0 to 100, not True"),
        ("retries", 2.0, "retries must be a whole number from 0 to 100, not 2.0"),
        ("wait_base", 0, "wait_base must be a finite number of seconds > 0, not 0"),
        ("wait_base", math.nan, "wait_base must be a finite number of seconds > 0, not nan"),
        ("wait_max", -1.0, "wait_max must be a finite number of seconds >= 0, not -1.0"),
        ("wait_max", math.inf, "wait_max must be a finite number of seconds >= 0, not inf"),
        ("wait_max", False, "wait_max must be a finite number of seconds >= 0, not False"),
        ("retry_after_max", "300", "retry_after_max must be a finite number of seconds >= 0, not '300'"),
        ("retry_after_max", -math.inf, "retry_after_max must be a finite number of seconds >= 0, not -inf"),
    ],
)
def test_bad_values_are_rejected_with_a_message_naming_the_field(field: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RetryPolicy(**{field: value})
    assert str(caught.value) == message


def test_policy_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RetryPolicy().retries = 5  # type: ignore[misc]


def test_policy_is_hashable_and_equal_by_value() -> None:
    assert hash(RetryPolicy(retries=2)) == hash(RetryPolicy(retries=2))
    assert len({RetryPolicy(retries=2), RetryPolicy(retries=2), RetryPolicy.none()}) == 2


def test_policy_takes_keywords_only() -> None:
    with pytest.raises(TypeError):
        RetryPolicy(3)  # type: ignore[call-arg]


# -- host pauses ------------------------------------------------------------------


def test_a_429_pauses_its_host_for_its_retry_after_seconds() -> None:
    assert RetryPolicy().host_pause(status(429, retry_after="7"), now=NOW) == 7.0


def test_a_429_pauses_its_host_until_its_retry_after_date() -> None:
    assert RetryPolicy().host_pause(status(429, retry_after="Sun, 06 Nov 1994 08:49:37 GMT"), now=NOW) == 60.0


@pytest.mark.parametrize("header", [None, "soon"])
def test_a_429_without_a_usable_retry_after_pauses_for_wait_base(header: str | None) -> None:
    assert RetryPolicy(wait_base=2.5).host_pause(status(429, retry_after=header), now=NOW) == 2.5


def test_a_503_with_retry_after_pauses_its_host() -> None:
    assert RetryPolicy().host_pause(status(503, retry_after="5"), now=NOW) == 5.0


def test_a_503_without_retry_after_pauses_nothing() -> None:
    assert RetryPolicy().host_pause(status(503), now=NOW) is None


@pytest.mark.parametrize(
    "error",
    [status(500, retry_after="5"), status(502), status(404, retry_after="5"), stall()],
    ids=["500-with-retry-after", "502", "404-with-retry-after", "stall"],
)
def test_other_failures_pause_nothing(error: DownloadError) -> None:
    assert RetryPolicy().host_pause(error, now=NOW) is None


@pytest.mark.parametrize("code", [429, 503])
def test_a_pause_is_capped_at_retry_after_max(code: int) -> None:
    assert RetryPolicy(retry_after_max=30).host_pause(status(code, retry_after="3600"), now=NOW) == 30.0


def test_a_429_without_retry_after_is_capped_at_retry_after_max_too() -> None:
    assert RetryPolicy(wait_base=5, retry_after_max=1).host_pause(status(429), now=NOW) == 1.0


def test_a_host_pause_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        RetryPolicy().host_pause(status(429, retry_after="5"), now=NOW.replace(tzinfo=None))
