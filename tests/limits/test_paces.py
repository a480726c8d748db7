"""fetcher.limits.paces: every host's adaptive limit and its history, with bounded memory."""

from __future__ import annotations

import pytest

from fetcher.limits import paces
from fetcher.limits.adaptive import AdaptiveLimit
from fetcher.limits.paces import HostPaces
from tests.limits.test_rate import FakeClock


def test_a_host_is_listed_from_its_first_download_with_its_start() -> None:
    clock = FakeClock(50.0)
    table = HostPaces(8, clock, wall=lambda: 1_000.0)
    table.law("a:80")
    [pace] = table.history()
    assert (pace.final, pace.lowest, pace.cap, pace.limits) == (2, 2, 8, ((1_000.0, 2),))


def test_each_change_of_a_hosts_limit_is_a_point_in_wall_time() -> None:
    clock = FakeClock(50.0)
    table = HostPaces(8, clock, wall=lambda: 1_000.0)
    table.law("a:80")
    clock.advance(1.5)
    table.set("a:80", AdaptiveLimit(cap=8, limit=5.0, lowest=2))
    clock.advance(1.0)
    table.set("a:80", AdaptiveLimit(cap=8, limit=5.5, lowest=2))  # the same whole limit: no point
    [pace] = table.history()
    assert pace.limits == ((1_000.0, 2), (1_001.5, 5))
    assert pace.to_record(since=999.0) == {"cap": 8, "final": 5, "lowest": 2, "limits": [[1.0, 2], [2.5, 5]]}


def test_a_long_history_is_thinned_not_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paces, "MAX_POINTS", 10)
    clock = FakeClock()
    table = HostPaces(64, clock, wall=lambda: 0.0)
    for limit in range(1, 40):
        clock.advance(1.0)
        table.set("a:80", AdaptiveLimit(cap=64, limit=float(limit), lowest=1))
    [pace] = table.history()
    assert len(pace.limits) <= 10
    assert pace.limits[-1][1] == 39 and pace.final == 39 and pace.lowest == 1


def test_hosts_past_the_listed_ones_are_counted_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paces, "MAX_LISTED", 3)
    table = HostPaces(8, FakeClock())
    for n in range(5):
        table.law(f"h{n}:80")
        table.set(f"h{n}:80", AdaptiveLimit(cap=8, limit=1.0, lowest=1))
    assert len(table.history()) == 3 and table.unlisted == 2


def test_idle_hosts_laws_are_forgotten_past_the_most_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paces, "MAX_LAWS", 10)
    table = HostPaces(8, FakeClock())
    for n in range(20):
        table.law(f"h{n}:80")
    table.prune(busy={"h3:80"})
    assert list(table._laws) == ["h3:80"]


def test_only_hosts_below_their_cap_are_shown() -> None:
    table = HostPaces(2, FakeClock())
    table.law("full:80")
    table.set("low:80", AdaptiveLimit(cap=2, limit=1.0, lowest=1))
    assert table.below_cap() == {"low:80": (1, 2)}
