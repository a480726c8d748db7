"""fetcher.state.seen: keys and their values, kept in a temporary database, with a Bloom filter in front."""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fetcher.state import seen as seen_module
from fetcher.state.seen import Bloom, Seen, fingerprint

ROOT = Path(__file__).resolve().parents[2]


def hashes(count: int, seed: int) -> list[int]:
    rnd = random.Random(seed)
    return [rnd.getrandbits(128) for _ in range(count)]


def test_a_bloom_filter_holds_every_key_added_as_it_grows() -> None:
    bloom = Bloom(first_bits=1024, last_bits=1 << 14)
    added = hashes(5000, seed=1)  # past the last layer's size: every layer, and then some
    for h in added:
        bloom.add(h, fingerprint(h))
    assert all(bloom.may_hold(h, fingerprint(h)) for h in added)


def test_a_bloom_filter_says_maybe_to_few_keys_never_added() -> None:
    bloom = Bloom(first_bits=1024)
    for h in hashes(20_000, seed=1):
        bloom.add(h, fingerprint(h))
    others = hashes(20_000, seed=2)
    assert sum(bloom.may_hold(h, fingerprint(h)) for h in others) < 0.06 * len(others)


def test_a_bloom_filter_made_for_a_count_holds_it_in_one_layer_of_the_bits_it_needs() -> None:
    bloom = Bloom.for_keys(100_000)
    for h in hashes(100_000, seed=1):
        bloom.add(h, fingerprint(h))
    assert len(bloom) == 256 << 10  # 2 ** 21 bits: the first power of two of 12 bits a key
    assert len(Bloom.for_keys(0)) == seen_module.FIRST_LAYER_BITS // 8
    assert len(Bloom.for_keys(10**9)) == seen_module.LAST_LAYER_BITS // 8


def test_a_key_added_is_found_with_its_value_after_it_went_to_disk() -> None:
    seen: Seen[int] = Seen("URLs", batch=8)
    for i in range(100):
        seen.add(f"https://a.example/{i}", i)
    assert [seen.get(f"https://a.example/{i}") for i in range(100)] == list(range(100))


def test_a_key_never_added_is_not_found() -> None:
    seen: Seen[int] = Seen("URLs", batch=8, bloom=Bloom(first_bits=64, last_bits=64))  # says maybe to most
    for i in range(100):
        seen.add(f"https://a.example/{i}", i)
    assert [seen.get(f"https://b.example/{i}") for i in range(100)] == [None] * 100


def test_setdefault_keeps_the_first_value_in_memory_and_on_disk() -> None:
    seen: Seen[int] = Seen("URLs", batch=8)
    first = [seen.setdefault(f"k{i % 30}", i) for i in range(60)]
    assert first == list(range(30)) * 2


def test_text_comes_back_exactly() -> None:
    seen: Seen[str] = Seen("file names", batch=2)
    values = ["plain.txt", "café.txt", 'q"uote\\d.txt', "bad\udc80byte.txt", "\ud800lone"]
    for i, value in enumerate(values):
        seen.add(f"\udcff{i}", value)
    assert [seen.get(f"\udcff{i}") for i in range(len(values))] == values


def test_a_batch_past_sqlites_limit_on_bound_values_goes_in_several_statements() -> None:
    seen: Seen[str] = Seen("file names", batch=8)
    seen.add("k", "first")
    seen._rows_per_statement = 3  # as an SQLite that allows 9 bound values leaves it
    for i in range(99):
        seen.add(f"k{i}", f"name{i}\udc80")
    assert seen._on_disk == 96
    assert seen.get("k") == "first"
    assert [seen.get(f"k{i}") for i in range(99)] == [f"name{i}\udc80" for i in range(99)]


def test_memory_holds_at_most_a_batch_of_keys() -> None:
    seen: Seen[int] = Seen("URLs", batch=64)
    for i in range(1000):
        seen.add(str(i), i)
    assert len(seen) == 1000
    assert len(seen._pending) < 64


def test_no_key_reaches_the_disk_as_written() -> None:
    seen: Seen[int] = Seen("URLs", batch=2)
    seen.add("https://user:secret@a.example/x", 1)
    seen.add("https://a.example/y", 2)
    assert seen._conn is not None
    rows = seen._conn.execute("SELECT * FROM seen").fetchall()
    assert sorted(row[2] for row in rows) == [1, 2]
    assert all(isinstance(value, int) for row in rows for value in row)


def test_the_temporary_database_has_no_name_on_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seen_module, "CACHE_KIB", 16)  # so that SQLite writes to its file
    seen: Seen[int] = Seen("URLs", batch=100)
    for i in range(2000):
        seen.add(str(i), i)
    opened = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            opened.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue  # the listing's own descriptor
    sqlite_temp = [path for path in opened if os.path.basename(path).startswith("etilqs_")]
    assert sqlite_temp
    assert all(path.endswith(" (deleted)") for path in sqlite_temp)
    seen.close()


def test_a_short_list_never_opens_a_database() -> None:
    seen: Seen[int] = Seen("URLs")
    for i in range(1000):
        seen.setdefault(str(i), i)
    assert seen._conn is None


def test_when_the_disk_fails_keys_stay_in_memory_and_every_key_added_may_be_held() -> None:
    # A real failing disk: the child may write only 16 KiB to any file, so SQLite's temporary
    # database fails once its small cache spills to it, and cannot read back what it wrote.
    script = textwrap.dedent(
        """
        import logging, resource, signal
        from fetcher.state import seen as seen_module
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))
        seen_module.CACHE_KIB = 16
        seen = seen_module.Seen("URLs", batch=100)
        for i in range(5000):
            seen.add(f"https://a.example/{i}", i)
        values = [seen.get(f"https://a.example/{i}") for i in range(5000)]
        print(all(value in (i, None) for i, value in enumerate(values)), values[-200:] == list(range(4800, 5000)),
              all(seen.may_hold(f"https://a.example/{i}") for i in range(5000)), seen._broken)
        """
    )
    child = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert child.stdout.split() == ["True"] * 4, child.stderr
    assert child.stderr.count("could not keep the URLs read so far in a temporary file") == 1


def test_a_write_that_failed_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    seen: Seen[int] = Seen("URLs", batch=2)
    seen.add("a", 1)
    seen.add("b", 2)  # written: the database is open
    assert seen._conn is not None
    seen._conn.execute("DROP TABLE seen")  # a database that refuses the next batch
    with caplog.at_level(logging.WARNING, logger="fetcher"):
        for i in range(10):
            seen.add(str(i), i)
    assert [seen.get(str(i)) for i in range(10)] == list(range(10))
    assert caplog.text.count("could not keep the URLs read so far") == 1
