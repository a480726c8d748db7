"""fetcher._units: sizes and durations as people write them, read and written back."""

from __future__ import annotations

import math

import pytest

from fetcher._units import format_duration, format_size, parse_duration, parse_rate, parse_size

KiB, MiB, GiB, TiB = 2**10, 2**20, 2**30, 2**40

# -- parse_size ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1048576", 1048576),
        ("0", 0),
        ("500k", 500 * KiB),
        ("500K", 500 * KiB),
        ("1.5M", 3 * MiB // 2),
        ("2G", 2 * GiB),
        ("1T", TiB),
        ("500KiB", 500 * KiB),
        ("500kib", 500 * KiB),
        ("2GB", 2 * GiB),
        ("512B", 512),
        ("1.5 MiB", 3 * MiB // 2),
        (" 2G\n", 2 * GiB),
        (".5K", 512),
        ("5.", 5),
    ],
)
def test_parse_size_reads_bytes_and_powers_of_1024(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_parse_size_drops_a_fraction_of_a_byte_left_after_scaling() -> None:
    assert parse_size("1.0001K") == 1024  # 1024.1024 bytes
    assert parse_size("0.5") == 0


def test_parse_size_is_exact_to_the_byte_for_large_fractions() -> None:
    assert parse_size("1.1T") == (11 * TiB) // 10


def test_parse_size_reads_a_number_too_long_for_a_float() -> None:
    assert parse_size("9" * 400) == int("9" * 400)


@pytest.mark.parametrize(
    "text",
    ["12x", "", "   ", "nan", "inf", "1e6", "K", "1.5.5M", "5Ki", "5iB", "1 000", "1_000", "0x10", "+5", "5MM", "١٢"],
)
def test_parse_size_rejects_what_is_not_a_size(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_size(text)
    assert str(caught.value) == f"{text!r} is not a size (a number of bytes, or with K, M, G or T)"


@pytest.mark.parametrize("text", ["-1", "-5M", " -0"])
def test_parse_size_rejects_a_negative_size(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a size: a size cannot be negative$"):
        parse_size(text)


# -- parse_duration ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("2h", 7200.0),
        ("1.5h", 5400.0),
        ("1h30m", 5400.0),
        ("1h30m15s", 5415.0),
        ("1h15s", 3615.0),
        ("2m30s", 150.0),
        ("0.5s", 0.5),
        (".5", 0.5),
        ("0", 0.0),
        ("2H", 7200.0),
        (" 15m\n", 900.0),
        ("2d", 172800.0),
        ("2d12h", 216000.0),
        ("1d1h1m1s", 90061.0),
        ("0.5d", 43200.0),
    ],
)
def test_parse_duration_reads_seconds_minutes_hours_and_days(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h30", 5400.0), ("2d12", 216000.0), ("1m30", 90.0), ("1d1h30", 91800.0)],
)
def test_parse_duration_reads_a_number_after_the_last_unit_in_the_next_unit_down(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["15x", "", "  ", "nan", "inf", "1e3", "h", "30s5", "1h30m5s6", "30m1h", "1h1h", "1w", "1h 30m", "1.5.5s", "+5",
     "١٢"],
)  # fmt: skip
def test_parse_duration_rejects_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert str(caught.value) == (
        f"{text!r} is not a duration (seconds, or with d, h, m and s: 90, 90s, 15m, 2h, 1h30m, 2d)"
    )


@pytest.mark.parametrize("text", ["-1", "-15m", " -0s"])
def test_parse_duration_rejects_a_negative_duration(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration: a duration cannot be negative$"):
        parse_duration(text)


def test_parse_duration_rejects_a_duration_too_long_for_a_float() -> None:
    with pytest.raises(ValueError, match=r"is not a duration: it is too long$"):
        parse_duration("9" * 400 + "h")


# -- format_size -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (3 * MiB // 2, "1.5 MiB"),
        (MiB - 1, "1.0 MiB"),
        (3 * GiB, "3.0 GiB"),
        (5 * TiB // 2, "2.5 TiB"),
        (2048 * TiB, "2048.0 TiB"),
    ],
)
def test_format_size_uses_binary_units_with_one_decimal(size: int, text: str) -> None:
    assert format_size(size) == text


# -- format_duration ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.5, "0.5s"),
        (30, "30s"),
        (60, "1m"),
        (90, "90s"),
        (100, "100s"),
        (120, "2m"),
        (900, "15m"),
        (3601, "1h1s"),
        (5400, "1h30m"),
        (7200, "2h"),
        (45.25, "45.25s"),
        (5400.5, "5400.5s"),
        (0.1 + 0.2, "0.3s"),
        (86400, "1d"),
        (90000, "1d1h"),
        (86399, "86399s"),
    ],
)
def test_format_duration_gives_the_shortest_exact_form(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [-1.0, math.nan, math.inf])
def test_format_duration_rejects_what_is_not_a_duration(seconds: float) -> None:
    with pytest.raises(ValueError, match="seconds must be a finite number >= 0"):
        format_duration(seconds)


def test_format_duration_is_read_back_by_parse_duration() -> None:
    pytest.importorskip("hypothesis")
    import hypothesis
    from hypothesis import strategies as st

    @hypothesis.settings(max_examples=200, deadline=None, database=None)
    @hypothesis.given(st.floats(min_value=0, max_value=1e9, allow_nan=False) | st.integers(0, 10**7).map(float))
    def round_trip(seconds: float) -> None:
        assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=1e-6)

    round_trip()


def test_format_size_above_bytes_is_read_back_by_parse_size_to_within_its_rounding() -> None:
    for size in (1024, 1536, 10 * MiB + 12345, 7 * GiB // 3, 3 * TiB):
        assert parse_size(format_size(size)) == pytest.approx(size, rel=0.05)


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("5", 5.0), ("0.5", 0.5), (".5", 0.5), ("2/s", 2.0), ("30/m", 0.5), ("30/min", 0.5), ("360/h", 0.1),
     (" 3 / M ", 0.05)],
)  # fmt: skip
def test_parse_rate_reads_per_second_minute_and_hour(text: str, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("text", ["", "fast", "-1", "5/d", "5/", "1e3", "nan"])
def test_parse_rate_rejects_what_is_not_a_rate(text: str) -> None:
    with pytest.raises(ValueError, match="is not a rate"):
        parse_rate(text)
