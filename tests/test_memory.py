"""The trimmer: at most one ``malloc_trim`` a second, and what it gives back."""

from __future__ import annotations

import pytest

from fetcher._memory import Trimmer, _malloc_trim


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_tick_trims_only_once_the_interval_has_passed() -> None:
    clock = Clock()
    calls: list[int] = []  # what malloc_trim was called with
    trimmer = Trimmer(1.0, trim=calls.append, clock=clock)
    assert not trimmer.tick()  # made just now
    clock.now += 1.0
    assert trimmer.tick()
    assert not trimmer.tick()
    clock.now += 0.5
    assert not trimmer.tick()
    clock.now += 0.5
    assert trimmer.tick()
    assert calls == [0, 0]


def test_a_tick_does_nothing_where_the_c_library_cannot_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    import fetcher._memory

    monkeypatch.setattr(fetcher._memory, "_malloc_trim", lambda: None)
    clock = Clock()
    trimmer = Trimmer(1.0, clock=clock)
    clock.now += 5
    assert not trimmer.tick()


def _anonymous_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:"))


@pytest.mark.skipif(_malloc_trim() is None, reason="no malloc_trim: not glibc")
def test_a_trim_gives_back_the_holes_freed_blocks_leave_in_the_heap() -> None:
    # Blocks over 512 bytes come from the C heap; freeing every other one leaves holes below the top,
    # each of whole pages (16 KiB).
    kept, freed = [], []
    for _ in range(4_000):
        freed.append(bytearray(16 << 10))
        kept.append(bytearray(16 << 10))
    del freed
    before = _anonymous_kib()
    clock = Clock()
    trimmer = Trimmer(1.0, clock=clock)
    clock.now += 1
    assert trimmer.tick()
    assert before - _anonymous_kib() > 20_000  # of the 62.5 MiB freed
    assert len(kept) == 4_000
