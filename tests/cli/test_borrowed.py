"""fetcher.cli.borrowed: what the options borrowed from wget, curl and aria2 turn into."""

from __future__ import annotations

import click
import pytest

from fetcher.cli.borrowed import OutputName, Tries

from .test_params import refusal


@pytest.mark.parametrize(("text", "retries"), [("1", 0), ("4", 3), ("101", 100)])
def test_tries_counts_every_attempt_so_it_is_one_more_than_retries(text: str, retries: int) -> None:
    assert Tries(100).convert(text, click.Option(["--tries", "-t"]), None) == retries


@pytest.mark.parametrize("text", ["0", "102", "inf"])
def test_tries_refuses_what_retries_cannot_do(text: str) -> None:
    assert refusal(Tries(100), text, "--tries").startswith("--tries must be a whole number from 1 to 101 (")


def test_an_output_name_is_a_plain_file_name() -> None:
    assert OutputName().convert("name.iso", click.Option(["--output", "-O"]), None) == "name.iso"
    assert refusal(OutputName(), " ", "--output") == "--output must be a file name, not ' '"
