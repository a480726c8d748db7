"""quick_init: the same dataclass as @dataclass makes, built quicker."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass

import pytest

from fetcher import Result
from fetcher._frozen import quick_init


@dataclass(frozen=True, kw_only=True, slots=True)
class Plain:
    name: str
    size: int = 0
    tags: tuple[str, ...] = ()


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Quick:
    name: str
    size: int = 0
    tags: tuple[str, ...] = ()


def test_the_signature_is_the_dataclasses() -> None:
    assert str(inspect.signature(Quick)) == str(inspect.signature(Plain))


def test_values_and_defaults_are_set_as_the_dataclass_sets_them() -> None:
    assert dataclasses.astuple(Quick(name="a")) == dataclasses.astuple(Plain(name="a"))
    assert Quick(name="a", size=3, tags=("x",)) == Quick(name="a", size=3, tags=("x",))


def test_the_value_stays_frozen() -> None:
    value = Quick(name="a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.size = 1  # type: ignore[misc]


def test_a_missing_or_positional_field_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        Quick()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Quick("a")  # type: ignore[call-arg]


def test_replace_makes_a_new_value() -> None:
    assert dataclasses.replace(Quick(name="a"), size=2) == Quick(name="a", size=2)


def test_a_class_it_cannot_speed_up_is_refused_at_once() -> None:
    with pytest.raises(TypeError, match="__post_init__"):

        @quick_init
        @dataclass(frozen=True, kw_only=True, slots=True)
        class Checked:
            name: str

            def __post_init__(self) -> None:
                pass


def test_the_results_init_is_the_quick_one() -> None:
    assert Result.__init__.__qualname__ == "Result.__init__"
    assert "_set_run_id" in Result.__init__.__code__.co_names
