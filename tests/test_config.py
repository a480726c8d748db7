"""fetcher._config: FetcherConfig validates every setting once and never changes."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import certifi
import pytest

from fetcher._config import DEFAULT_USER_AGENT, MAX_CONCURRENT_LIMIT, MAX_RATE, FetcherConfig
from fetcher._errors import ConfigError


def test_defaults() -> None:
    config = FetcherConfig()
    assert config.max_concurrent == 3
    assert config.dest == Path(".")
    assert config.acquire_timeout is None
    assert config.timeout == 30.0
    assert config.max_redirects == 10
    assert config.chunk_size == 1 << 20
    assert config.read_ahead == 10_000
    assert config.user_agent == DEFAULT_USER_AGENT
    assert config.user_agent.startswith("fetcher/")


def test_config_is_frozen() -> None:
    config = FetcherConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_concurrent = 5  # type: ignore[misc]


def test_config_takes_keywords_only() -> None:
    with pytest.raises(TypeError):
        FetcherConfig(3)  # type: ignore[call-arg]  # deliberately positional: a TypeError


def test_dest_given_as_str_becomes_a_path() -> None:
    dest: Any = "downloads/rfcs"  # a str, where dest is typed Path: __post_init__ converts it
    config = FetcherConfig(dest=dest)
    assert config.dest == Path("downloads/rfcs")
    assert isinstance(config.dest, Path)


def test_dest_that_is_not_a_path_is_rejected() -> None:
    with pytest.raises(ConfigError, match="dest"):
        FetcherConfig(dest=42)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [1, 7, MAX_CONCURRENT_LIMIT])
def test_max_concurrent_accepts_whole_numbers_in_range(value: int) -> None:
    assert FetcherConfig(max_concurrent=value).max_concurrent == value


@pytest.mark.parametrize("value", [0, -1, True, 2.5, "3", None, MAX_CONCURRENT_LIMIT + 1])
def test_max_concurrent_rejects_bad_values(value: Any) -> None:
    with pytest.raises(ConfigError, match="max_concurrent"):
        FetcherConfig(max_concurrent=value)


@pytest.mark.parametrize("value", [None, 0, 0.0, 2.5, 10])
def test_acquire_timeout_accepts_none_zero_and_positive_numbers(value: float | None) -> None:
    assert FetcherConfig(acquire_timeout=value).acquire_timeout == value


@pytest.mark.parametrize("value", [-1, -0.5, math.nan, math.inf, -math.inf, True, "5"])
def test_acquire_timeout_rejects_bad_values(value: Any) -> None:
    with pytest.raises(ConfigError, match="acquire_timeout"):
        FetcherConfig(acquire_timeout=value)


@pytest.mark.parametrize("value", [0, 0.0, -1, math.nan, math.inf, None, True, "30"])
def test_timeout_rejects_bad_values(value: Any) -> None:
    with pytest.raises(ConfigError, match="timeout"):
        FetcherConfig(timeout=value)


@pytest.mark.parametrize("field", ["timeout", "acquire_timeout"])
def test_whole_seconds_become_floats(field: str) -> None:
    settings: dict[str, Any] = {field: 5}
    value = getattr(FetcherConfig(**settings), field)
    assert value == 5.0
    assert type(value) is float


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_redirects", -1),
        ("max_redirects", 101),
        ("chunk_size", 0),
        ("read_ahead", 0),
        ("read_ahead", 1.5),
    ],
)
def test_other_whole_number_settings_reject_out_of_range_values(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=field):
        FetcherConfig(**{field: value})


@pytest.mark.parametrize("value", ["agent\r\nX-Evil: 1", "agent\x00", 42])
def test_user_agent_must_be_printable_text(value: Any) -> None:
    with pytest.raises(ConfigError, match="user_agent"):
        FetcherConfig(user_agent=value)


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        FetcherConfig(max_concurrent=0)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("retries", -1, "retries must be a whole number from 0 to 100"),
        ("retries", 2.5, "retries must be a whole number from 0 to 100"),
        ("retry_wait_max", math.nan, "retry_wait_max must be a finite number of seconds >= 0"),
        ("retry_after_max", -1, "retry_after_max must be a finite number of seconds >= 0"),
        ("max_time", 0, "max_time must be a finite number of seconds > 0"),
        ("speed_limit", 0, "speed_limit must be a whole number from 1"),
        ("speed_time", math.inf, "speed_time must be a finite number of seconds > 0"),
        ("max_filesize", -5, "max_filesize must be a whole number from 1"),
        ("force", "yes", "force must be True or False"),
    ],
)
def test_cron_and_bound_settings_are_validated(field: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}"):
        FetcherConfig(**{field: value})


def test_force_and_skip_existing_cannot_both_be_set() -> None:
    with pytest.raises(ConfigError, match="force and skip_existing cannot both be set"):
        FetcherConfig(force=True, skip_existing=True)


def test_the_speed_check_takes_curls_defaults_for_the_half_not_given() -> None:
    assert FetcherConfig(speed_limit=1000).speed_check == (1000, 30.0)
    assert FetcherConfig(speed_time=5).speed_check == (1, 5.0)
    assert FetcherConfig().speed_check is None


# -- politeness ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 8, MAX_CONCURRENT_LIMIT])
def test_max_per_host_accepts_whole_numbers_in_range(value: int) -> None:
    assert FetcherConfig(max_per_host=value).max_per_host == value


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "2", MAX_CONCURRENT_LIMIT + 1])
def test_max_per_host_rejects_bad_values(value: Any) -> None:
    with pytest.raises(ConfigError, match="^max_per_host must be a whole number"):
        FetcherConfig(max_per_host=value)


@pytest.mark.parametrize("field", ["rate", "rate_per_host"])
@pytest.mark.parametrize("value", [0.5, 3, MAX_RATE])
def test_rates_accept_positive_numbers_and_store_floats(field: str, value: float) -> None:
    given: dict[str, Any] = {field: value}
    stored = getattr(FetcherConfig(**given), field)
    assert stored == value and type(stored) is float


@pytest.mark.parametrize("field", ["rate", "rate_per_host"])
@pytest.mark.parametrize("value", [math.nan, math.inf, 0, 0.0, -1, True, "5", MAX_RATE * 2])
def test_rates_reject_values_that_are_not_finite_and_positive(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"^{field} must be a number per second > 0"):
        FetcherConfig(**{field: value})


@pytest.mark.parametrize("value", [1, 400_000])
def test_limit_rate_accepts_whole_bytes_per_second(value: int) -> None:
    assert FetcherConfig(limit_rate=value).limit_rate == value


@pytest.mark.parametrize("value", [0, -1, 1.5, 1000.0, True, math.nan, "100"])
def test_limit_rate_rejects_anything_but_whole_bytes_per_second(value: Any) -> None:
    with pytest.raises(ConfigError, match="^limit_rate must be a whole number from 1"):
        FetcherConfig(limit_rate=value)


def test_a_limit_rate_below_the_speed_limit_is_rejected() -> None:
    with pytest.raises(ConfigError, match="^limit_rate is below speed_limit"):
        FetcherConfig(limit_rate=999, speed_limit=1000)


def test_a_limit_rate_equal_to_the_speed_limit_is_accepted() -> None:
    assert FetcherConfig(limit_rate=1000, speed_limit=1000).limit_rate == 1000


@pytest.mark.parametrize("value", ["", 7])
def test_shared_slots_must_be_a_name(value: Any) -> None:
    with pytest.raises(ConfigError, match="^shared_slots must be a name"):
        FetcherConfig(shared_slots=value)


def test_shared_slots_dir_given_as_str_becomes_a_path() -> None:
    assert FetcherConfig(shared_slots_dir="/tmp/slots").shared_slots_dir == Path("/tmp/slots")  # type: ignore[arg-type]


def test_a_ca_certificate_that_loads_is_kept_as_a_path() -> None:
    assert FetcherConfig(ca_certificate=Path(certifi.where())).ca_certificate == Path(certifi.where())


def test_a_missing_ca_certificate_is_one_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        FetcherConfig(ca_certificate=tmp_path / "ca.pem")
    assert str(raised.value) == f"ca_certificate '{tmp_path / 'ca.pem'}': cannot read it (No such file or directory)"


@pytest.mark.parametrize(
    "data", [b"", b"not a certificate\n", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_a_ca_certificate_with_no_pem_certificate_is_refused(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "ca.pem").write_bytes(data)
    with pytest.raises(ConfigError, match="is not a PEM certificate bundle$"):
        FetcherConfig(ca_certificate=tmp_path / "ca.pem")


def test_a_time_over_a_year_is_refused_before_it_overflows_a_socket_timeout() -> None:
    with pytest.raises(ConfigError, match="timeout must be at most 31536000 seconds"):
        FetcherConfig(timeout=99999999999999.0)


def test_adaptive_is_off_unless_asked_for_and_must_be_a_flag() -> None:
    assert FetcherConfig().adaptive is False
    with pytest.raises(ConfigError, match="adaptive"):
        FetcherConfig(adaptive="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"shared_state": "yes", "redis": "redis://r", "cluster": "c"}, "shared_state must be True or False"),
        ({"shared_state": True}, "shared_state keeps the state in a cluster's Redis: it needs redis and cluster"),
        ({"shared_state": True, "redis": "redis://r", "cluster": "c", "state": Path("s.db")},
         "give either a state database \\(state\\) or shared_state, not both"),
    ],
    ids=["not-a-flag", "no-cluster", "and-a-database"],
)  # fmt: skip
def test_shared_state_is_a_flag_that_needs_a_cluster_and_no_database(settings: dict[str, Any], message: str) -> None:
    assert FetcherConfig().shared_state is False
    with pytest.raises(ConfigError, match=f"^{message}"):
        FetcherConfig(**settings)
