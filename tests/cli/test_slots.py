"""fetcher.cli.slots: `fetcher slots NAME` shows who holds the shared slots and who waits."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fetcher.cli.main import main
from fetcher.limits.shared import SharedGate, read_slots


def fetcher(*args: str | Path) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return int(exit_info.value.code or 0)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "fetcher" / "slots"


@pytest.fixture
def held(cache: Path) -> Iterator[SharedGate]:
    """The shared slots 'nightly' (3 of them), one held for a URL with a password in it."""
    with SharedGate("nightly", 3, directory=cache) as gate:
        slot = gate.acquire(timeout=0)
        assert slot is not None
        gate.describe(slot, "https://user:secret@example.org/rfc795.txt")
        yield gate
        slot.release()


def test_a_holder_shows_with_its_pid_and_url_and_no_password(
    held: SharedGate, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fetcher("slots", "nightly") == 0
    out = capsys.readouterr().out
    assert "1/3 in use, none waiting" in out
    assert f"pid {os.getpid()}" in out
    assert "https://example.org/rfc795.txt" in out
    assert "secret" not in out


def test_json_gives_the_same_snapshot_for_scripts(held: SharedGate, capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher("slots", "nightly", "--json") == 0
    record = json.loads(capsys.readouterr().out)
    assert record["capacity"] == 3
    assert [(h["pid"], h["url"]) for h in record["holders"]] == [(os.getpid(), "https://example.org/rfc795.txt")]
    assert record["waiters"] == []


def test_a_process_waiting_for_a_slot_is_shown(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with SharedGate("busy", 1, directory=cache) as gate:
        slot = gate.acquire(timeout=0)
        waiter = threading.Thread(target=gate.acquire, kwargs={"timeout": 1.0})
        waiter.start()
        try:
            pause = threading.Event()
            for _ in range(100):  # bounded: the waiter registers within milliseconds
                snapshot = read_slots("busy", cache)
                if snapshot is not None and snapshot.waiters:
                    break
                pause.wait(0.01)
            assert fetcher("slots", "busy") == 0
        finally:
            assert slot is not None
            slot.release()
            waiter.join(5)
    assert f"waiting  pid {os.getpid()}" in capsys.readouterr().out


def test_a_name_nobody_used_says_so_and_exits_0(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher("slots", "never-used") == 0
    assert "not in use" in capsys.readouterr().out


def test_a_name_with_a_slash_is_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with SharedGate("jobs", 2, directory=tmp_path / "shared"):
        assert fetcher("slots", tmp_path / "shared" / "jobs") == 0
    assert "0/2 in use" in capsys.readouterr().out


def test_a_bad_name_is_one_usage_error(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fetcher("slots", "..") == 2
    err = capsys.readouterr().err
    assert err.startswith("fetcher: error: ") and err.count("\n") == 1


def test_watch_takes_a_duration(
    cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # stands in for the wait, and for the Ctrl-C that ends --watch
        waits.append(seconds)
        raise KeyboardInterrupt

    monkeypatch.setattr("fetcher.cli.slots.time.sleep", sleep)
    assert fetcher("slots", "never-used", "--watch", "1m30") == 0
    assert waits == [90.0]
