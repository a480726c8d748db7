"""fetcher.cli.params: the value types of the options, each refusing a bad value in fetcher's words."""

from __future__ import annotations

import click
import pytest

from fetcher.cli.params import Duration, option_name

_EXAMPLES = "(90, 90s, 15m, 2h, 1h30m, 2d)"


def refusal(kind: click.ParamType[object, object], value: str, name: str = "--max-time") -> str:
    with pytest.raises(click.BadParameter) as caught:
        kind.convert(value, click.Option([name]), None)
    return caught.value.message


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("1.5h", 5400.0), ("1h30m", 5400.0), ("1h30", 5400.0),
     ("2d", 172800.0), ("2d12h", 216000.0), ("0.5", 0.5)],
)  # fmt: skip
def test_a_duration_is_read_in_seconds(text: str, seconds: float) -> None:
    assert Duration().convert(text, click.Option(["--max-time"]), None) == seconds


def test_a_default_already_in_seconds_is_taken_as_it_is() -> None:
    assert Duration().convert(30.0, click.Option(["--timeout"]), None) == 30.0


@pytest.mark.parametrize(
    ("text", "shown"),
    [("0", "0"), ("0s", "'0s'"), ("abc", "'abc'"), ("-1", "-1"), ("inf", "'inf'"), ("1w", "'1w'"), ("1e3", "1e3")],
)
def test_a_duration_above_0_refuses_zero_and_what_is_no_duration_as_typed(text: str, shown: str) -> None:
    assert refusal(Duration(), text) == f"--max-time must be a duration above 0 {_EXAMPLES}, not {shown}"


def test_a_duration_that_may_be_zero_takes_zero_and_still_refuses_a_negative() -> None:
    assert Duration(allow_zero=True).convert("0", click.Option(["--acquire-timeout"]), None) == 0.0
    assert refusal(Duration(allow_zero=True), "-1", "--acquire-timeout") == (
        f"--acquire-timeout must be a duration, 0 or more {_EXAMPLES}, not -1"
    )


@pytest.mark.parametrize("text", ["0", "0.05", "1h1s", "2h"])
def test_a_duration_with_bounds_refuses_what_is_outside_them_as_typed(text: str) -> None:
    kind = Duration(low=0.1, high=3600, examples="2, 30s")
    shown = text if text[0].isdigit() and text[-1].isdigit() else f"'{text}'"
    assert refusal(kind, text, "--watch") == f"--watch must be a duration from 0.1s to 1h (2, 30s), not {shown}"


def test_a_duration_with_bounds_takes_its_bounds() -> None:
    kind = Duration(low=0.1, high=3600)
    assert [kind.convert(text, None, None) for text in ("0.1", "1h")] == [0.1, 3600.0]


def test_an_option_is_named_by_its_first_long_name() -> None:
    dest = click.Option(["--dest", "-d", "-P", "--directory-prefix"])
    assert option_name(dest) == "--dest"
    assert option_name(click.Option(["-nc"])) == "-nc"



def test_a_duration_over_a_year_is_refused_before_it_overflows_a_timeout() -> None:
    assert refusal(Duration(), "99999999999999", "--timeout") == "--timeout must be at most 365d, not 99999999999999"
    assert Duration().convert("365d", click.Option(["--deadline"]), None) == 365 * 86400
