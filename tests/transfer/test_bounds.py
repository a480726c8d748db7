"""fetcher.transfer.bounds: too slow, too big, time left (no test waits: the clock is passed in)."""

from __future__ import annotations

import math

import pytest

from fetcher._errors import ConfigError
from fetcher.transfer.bounds import BOMB_FLOOR, BOMB_RATIO, SizeGuard, SpeedCheck, time_left

KiB, MiB, GiB = 2**10, 2**20, 2**30
START = 1000.0  # any monotonic reading: the check must not assume the clock starts at 0


def first_firing(check: SpeedCheck, totals: list[tuple[float, int]]) -> float | None:
    """The time of the first update that says too slow, given (seconds after START, total bytes) pairs."""
    for at, total in totals:
        if check.update(total, START + at):
            return at
    return None


def steady(rate: float, until: float, step: float = 0.1) -> list[tuple[float, int]]:
    return [(i * step, int(rate * i * step)) for i in range(1, round(until / step) + 1)]


# -- SpeedCheck ----------------------------------------------------------------------


def test_a_silent_transfer_is_not_too_slow_before_a_window_has_passed() -> None:
    check = SpeedCheck(limit=1000, window=5.0, now=START)
    assert not any(check.update(0, START + at / 10) for at in range(1, 50))


def test_a_silent_transfer_is_too_slow_once_a_window_has_passed() -> None:
    check = SpeedCheck(limit=1000, window=5.0, now=START)
    assert check.update(0, START + 5.0)


def test_a_trickle_of_one_byte_every_two_seconds_is_cut_after_the_window() -> None:
    check = SpeedCheck(limit=1000, window=5.0, now=START)
    # Updates come only when a byte does, as in the download loop.
    assert first_firing(check, [(2.0 * n, n) for n in range(1, 100)]) == 6.0


def test_a_transfer_above_the_limit_is_never_too_slow() -> None:
    check = SpeedCheck(limit=1000, window=5.0, now=START)
    assert first_firing(check, steady(1100, until=600)) is None


def test_a_transfer_just_under_the_limit_is_too_slow() -> None:
    check = SpeedCheck(limit=1000, window=5.0, now=START)
    assert first_firing(check, steady(990, until=60)) == pytest.approx(5.0)


def test_a_transfer_that_slows_down_is_cut_a_window_after_it_slowed() -> None:
    check = SpeedCheck(limit=1000, window=5.0, now=START)
    fast = steady(100_000, until=60)
    slow = [(60 + at, fast[-1][1] + int(10 * at)) for at, _ in steady(10, until=60)]
    fired = first_firing(check, fast + slow)
    # The last window holds 5000 bytes or more while any 0.05 s of the fast part is in it.
    assert fired is not None and 64.9 <= fired <= 65.2


def test_a_burst_then_silence_is_cut_a_window_after_the_burst() -> None:
    check = SpeedCheck(limit=1000, window=5.0, now=START)
    burst = [(0.1, 10 * MiB)]
    silence = [(at, 10 * MiB) for at, _ in steady(0, until=30)]
    fired = first_firing(check, burst + silence)
    assert fired is not None and 5.1 <= fired <= 5.3


def test_sparse_updates_judge_the_average_over_the_longer_span() -> None:
    check = SpeedCheck(limit=1000, window=5.0, now=START)
    # 800 bytes/s, reported every 10 s: over 5000 bytes per update, yet too slow.
    assert first_firing(check, [(10.0 * n, 8000 * n) for n in range(1, 10)]) == 10.0


def test_speed_check_keeps_a_bounded_number_of_samples() -> None:
    check = SpeedCheck(limit=1, window=5.0, now=START)
    for i in range(1, 100_001):
        check.update(i * 1000, START + i / 1000)
    assert len(check._samples) <= 130


def test_speed_check_reason_names_the_limit_the_window_and_the_options() -> None:
    check = SpeedCheck(limit=1024, window=30.0, now=START)
    assert check.reason == "too slow: under 1.0 KiB/s for 30s (--speed-limit, --speed-time)"


@pytest.mark.parametrize(
    ("limit", "window"),
    [(0, 5.0), (-1, 5.0), (1.5, 5.0), (True, 5.0), (1000, 0.0), (1000, -1.0), (1000, math.inf), (1000, math.nan)],
)
def test_speed_check_rejects_a_limit_or_window_it_cannot_use(limit: object, window: object) -> None:
    with pytest.raises(ValueError, match="must be a"):
        SpeedCheck(limit=limit, window=window, now=START)  # type: ignore[arg-type]


# -- SizeGuard: --max-filesize ---------------------------------------------------------


def test_a_declared_length_over_max_filesize_is_refused() -> None:
    guard = SizeGuard(max_filesize=GiB)
    assert guard.check_length(5 * GiB) == "Content-Length of 5.0 GiB is over the --max-filesize of 1.0 GiB"


def test_a_declared_length_at_max_filesize_is_allowed() -> None:
    assert SizeGuard(max_filesize=GiB).check_length(GiB) is None


def test_a_declared_length_under_max_filesize_is_allowed() -> None:
    assert SizeGuard(max_filesize=GiB).check_length(GiB - 1) is None


def test_a_missing_length_is_left_to_the_body_check() -> None:
    assert SizeGuard(max_filesize=GiB).check_length(None) is None


def test_without_max_filesize_any_declared_length_is_allowed() -> None:
    assert SizeGuard().check_length(2**62) is None


def test_a_body_at_max_filesize_is_allowed() -> None:
    assert SizeGuard(max_filesize=GiB).check_body(GiB, GiB) is None


def test_a_body_past_max_filesize_is_stopped() -> None:
    assert SizeGuard(max_filesize=GiB).check_body(GiB + 1, GiB + 1) == "body passed the --max-filesize of 1.0 GiB"


def test_max_filesize_counts_decoded_bytes_not_bytes_received() -> None:
    assert SizeGuard(max_filesize=10 * MiB).check_body(10 * MiB + 1, MiB) is not None


def test_an_explicit_max_filesize_replaces_the_bomb_guard() -> None:
    guard = SizeGuard(max_filesize=4 * GiB)
    assert guard.check_body(3 * GiB, 3 * MiB) is None


# -- SizeGuard: the bomb guard ---------------------------------------------------------


def test_three_mib_of_gzip_does_not_become_three_gib() -> None:
    guard = SizeGuard()
    # A deflate bomb decodes at about 1030:1; check after every 64 KiB written.
    fired = next((d for d in range(64 * KiB, 3 * GiB + 1, 64 * KiB) if guard.check_body(d, d // 1030)), None)
    assert fired is not None
    # Stopped at the first check past the floor: no more than the floor and one chunk on disk.
    assert BOMB_FLOOR < fired <= BOMB_FLOOR + 64 * KiB


def test_the_bomb_guard_reason_says_what_was_sent_and_how_to_allow_it() -> None:
    reason = SizeGuard().check_body(300 * MiB + 1, 3 * MiB)
    assert reason == (
        "decoded body grew past 100 times the 3.0 MiB the server sent (a decompression bomb?); "
        "set --max-filesize to allow it"
    )


def test_a_body_under_the_floor_passes_whatever_its_ratio() -> None:
    assert SizeGuard().check_body(BOMB_FLOOR, 1) is None


def test_a_body_at_the_ratio_passes_whatever_its_size() -> None:
    assert SizeGuard().check_body(BOMB_RATIO * 10 * GiB, 10 * GiB) is None


@pytest.mark.parametrize("decoded", [MiB, BOMB_FLOOR, BOMB_FLOOR + 1, 10 * GiB, 1024 * GiB])
def test_text_that_compresses_like_an_rfc_is_never_stopped(decoded: int) -> None:
    assert SizeGuard().check_body(decoded, decoded // 4) is None


def test_an_uncompressed_body_is_never_stopped_by_the_bomb_guard() -> None:
    assert SizeGuard().check_body(1024 * GiB, 1024 * GiB) is None


def test_the_bomb_guard_defaults_leave_a_wide_margin_over_real_files() -> None:
    # The highest ratio measured on real files was under 13 (the module docstring).
    assert BOMB_RATIO >= 5 * 13
    assert 64 * MiB <= BOMB_FLOOR <= 512 * MiB


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_filesize": 0}, "max_filesize must be a whole number from 1 to"),
        ({"max_filesize": 1.5}, "max_filesize must be a whole number"),
        ({"max_filesize": True}, "max_filesize must be a whole number"),
        ({"bomb_floor": -1}, "bomb_floor must be a whole number from 0 to"),
        ({"bomb_ratio": 0}, "bomb_ratio must be a whole number from 1 to"),
    ],
)
def test_size_guard_rejects_a_value_it_cannot_use(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SizeGuard(**fields)  # type: ignore[arg-type]


# -- time_left -------------------------------------------------------------------------


def test_no_deadline_leaves_no_bound() -> None:
    assert time_left(None, START) is None


def test_time_left_counts_down_to_the_deadline() -> None:
    assert time_left(START + 90.0, START + 30.0) == 60.0


def test_time_left_is_zero_once_the_deadline_has_passed() -> None:
    assert time_left(START, START + 5.0) == 0.0
