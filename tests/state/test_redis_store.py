"""fetcher.state.redis_store: a cluster's state, in a real Redis-protocol server (valkey-server)."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from fetcher._errors import StateError
from fetcher._naming import Namer, name_key
from fetcher.limits.redis_link import Link, cluster_keys
from fetcher.state import Partial, Saved
from fetcher.state.redis_store import RedisStateStore

URL = "https://files.example/rfc791.txt"
#: Where one machine mounts the shared DEST, and where another does.
HERE, THERE = os.path.abspath("/mnt/here"), os.path.abspath("/srv/there")

NewStore = Callable[..., RedisStateStore]


@pytest.fixture
def new_store(redis_server: str, cluster_name: str) -> Iterator[NewStore]:
    """Makes stores of the test's cluster, each on a Link of its own (a fetcher on a machine of its own)."""
    made: list[tuple[Link, RedisStateStore]] = []

    def make(dest: str = HERE, *, url: str = redis_server, **options: Any) -> RedisStateStore:
        link = Link(url, cluster_name)
        made.append((link, RedisStateStore(link, dest, **options)))
        return made[-1][1]

    yield make
    for link, store in made:
        store.close()
        link.close()


@pytest.fixture
def raw(redis_server: str, cluster_name: str) -> Iterator[Callable[[str], dict[str, Any]]]:
    """Reads one of the cluster's state hashes as stored: field -> value (JSON decoded where it is JSON)."""
    client: Any = redis.Redis.from_url(redis_server)  # Any: redis-py types each reply as a union

    def read(kind: str) -> dict[str, Any]:
        found = client.hgetall(cluster_keys(cluster_name)[kind])
        return {k.decode(): json.loads(v) if v[:1] in b"{[" else v.decode() for k, v in found.items()}

    yield read
    client.close()


def saved_record(url: str = URL, dest: str = HERE, **changes: object) -> Saved:
    values: dict[str, object] = {
        "url": url, "path": os.path.join(dest, "rfc791.txt"), "size": 98_765, "mtime_ns": 1_700_000_000_123_456_789,
        "etag": '"5f1b-3e2a"', "last_modified": "Tue, 15 Nov 1994 08:12:31 GMT", "checksum": None, "saved_at": 1000.25,
    }  # fmt: skip
    return Saved(**{**values, **changes})  # type: ignore[arg-type]


def partial_record(url: str = URL, dest: str = HERE, **changes: object) -> Partial:
    values: dict[str, object] = {
        "url": url, "path": os.path.join(dest, ".fetcher-1-ab-0.part"), "etag": '"5f1b-3e2a"',
        "last_modified": None, "total": 1 << 20, "updated_at": 999.5,
    }  # fmt: skip
    return Partial(**{**values, **changes})  # type: ignore[arg-type]


def refuse_every_call(store: RedisStateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, anything *store* would ask Redis fails the test."""

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("asked Redis")

    for name in ("hget", "hmget", "hset", "hdel", "hgetall", "pipeline"):
        monkeypatch.setattr(store.link.client, name, refused)


# -- saved files ------------------------------------------------------------------------------


def test_a_saved_record_is_answered_at_once_and_written_behind(new_store: NewStore) -> None:
    store = new_store()
    store.record_saved(saved_record())
    assert store.saved(URL) == saved_record()
    store.flush()
    assert new_store().saved(URL) == saved_record()


def test_a_path_under_dest_is_kept_relative_and_read_under_the_readers_dest(
    new_store: NewStore, raw: Callable[[str], dict[str, Any]]
) -> None:
    here = new_store(HERE)
    here.record_saved(saved_record())
    here.flush()
    assert raw("saved")[URL]["path"] == "rfc791.txt"
    there = new_store(THERE)
    assert there.saved(URL) == saved_record(dest=THERE)


def test_a_path_outside_dest_is_kept_as_it_is(new_store: NewStore, raw: Callable[[str], dict[str, Any]]) -> None:
    store = new_store(HERE)
    elsewhere = saved_record(path=os.path.abspath("/elsewhere/rfc791.txt"))
    store.record_saved(elsewhere)
    store.flush()
    assert raw("saved")[URL]["path"] == os.path.abspath("/elsewhere/rfc791.txt")
    assert new_store(THERE).saved(URL) == elsewhere


def test_saved_many_answers_the_urls_that_have_a_record(new_store: NewStore) -> None:
    store = new_store()
    others = [f"https://files.example/{n}" for n in range(3)]
    for url in [URL, others[0]]:
        store.record_saved(saved_record(url))
    store.flush()
    found = new_store().saved_many([URL, *others])
    assert found == {URL: saved_record(), others[0]: saved_record(others[0])}


def test_saved_many_reads_the_partial_files_ahead_so_partial_asks_nothing_more(
    new_store: NewStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_store().record_partial(partial_record())
    store = new_store()
    store.saved_many([URL, "https://files.example/none"])
    refuse_every_call(store, monkeypatch)
    assert store.partial(URL) == partial_record()
    assert store.partial("https://files.example/none") is None


def test_a_urls_state_comes_with_its_name_so_the_look_ahead_asks_nothing_more(
    new_store: NewStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = new_store()
    writer.record_saved(saved_record())
    writer.flush()
    writer.record_partial(partial_record())  # after: a saved record forgets an older partial
    store = new_store()
    Namer(store=store.names(HERE)).name_for(URL)  # the name, and the URL's saved record and partial file with it
    refuse_every_call(store, monkeypatch)
    assert store.saved_many([URL]) == {URL: saved_record()}
    assert store.partial(URL) == partial_record()


def test_many_saved_records_are_written_by_a_few_scripts(new_store: NewStore, redis_server: str) -> None:
    store = new_store()
    client = redis.Redis.from_url(redis_server)
    before = client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    for n in range(1000):
        store.record_saved(saved_record(f"https://files.example/{n}"))
    store.flush()
    scripts = client.info("commandstats")["cmdstat_evalsha"]["calls"] - before
    client.close()
    assert 1 <= scripts <= 6  # 500 a script; a batch gathers for WRITE_EVERY_S
    assert len(new_store().saved_many([f"https://files.example/{n}" for n in range(1000)])) == 1000


def test_a_closed_store_refuses_a_record(new_store: NewStore) -> None:
    store = new_store()
    store.close()
    with pytest.raises(StateError, match="is closed"):
        store.record_saved(saved_record())


def test_a_value_that_is_not_a_record_is_no_record(
    new_store: NewStore, redis_server: str, cluster_name: str
) -> None:
    client = redis.Redis.from_url(redis_server)
    client.hset(cluster_keys(cluster_name)["saved"], URL, "not json")
    client.hset(cluster_keys(cluster_name)["partials"], URL, '{"path": 5}')
    client.close()
    store = new_store()
    assert (store.saved(URL), store.partial(URL), store.saved_many([URL])) == (None, None, {})


# -- partial files --------------------------------------------------------------------------


def test_a_partial_file_is_recorded_read_listed_and_forgotten(new_store: NewStore) -> None:
    store = new_store()
    store.record_partial(partial_record())
    store.record_partial(partial_record("https://a.example/first"))
    there = new_store(THERE)
    assert there.partial(URL) == partial_record(dest=THERE)
    assert [p.url for p in there.partials()] == ["https://a.example/first", URL]
    store.forget_partial(URL)
    assert there.partial(URL) is None


def test_forgetting_a_partial_this_store_never_saw_asks_nothing(
    new_store: NewStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = new_store()
    refuse_every_call(store, monkeypatch)
    store.forget_partial(URL)


def test_a_saved_record_forgets_an_older_partial_of_its_url(new_store: NewStore) -> None:
    store = new_store()
    store.record_partial(partial_record(updated_at=999.0))
    store.record_saved(saved_record(saved_at=1000.0))
    store.flush()
    assert new_store().partial(URL) is None


def test_a_saved_record_keeps_a_partial_recorded_after_it_was_made(new_store: NewStore) -> None:
    saver, other = new_store(), new_store()
    saver.record_saved(saved_record(saved_at=1000.0))  # made now, written behind
    time.sleep(0.05)  # "since": by more than the write's round trip, the precision of "when it was made"
    other.record_partial(partial_record(updated_at=999.0))  # another machine's, recorded since
    saver.flush()
    assert new_store().partial(URL) == partial_record(updated_at=999.0)


def test_which_came_first_is_the_servers_say_not_the_machines_clocks(new_store: NewStore) -> None:
    store = new_store()
    store.record_partial(partial_record(updated_at=5_000_000_000.0))  # a machine whose clock is years ahead
    store.record_saved(saved_record(saved_at=1000.0))
    store.flush()
    assert new_store().partial(URL) is None


# -- names ------------------------------------------------------------------------------------


def test_a_free_name_is_claimed_with_the_lookup_of_the_urls_name(
    new_store: NewStore, raw: Callable[[str], dict[str, Any]]
) -> None:
    names = new_store().names(HERE)
    assert names.known_or_claim("RFC791.txt", URL) == "RFC791.txt"
    assert raw("names") == {"rfc791.txt": URL}
    assert raw("named") == {URL: {"name": "RFC791.txt", "folded": "rfc791.txt"}}
    assert names.known_or_claim("other.txt", URL) == "RFC791.txt"  # its name on record, whatever is asked


def test_a_name_another_url_has_is_not_claimed(new_store: NewStore) -> None:
    one, two = new_store().names(HERE), new_store(THERE).names(THERE)
    assert one.known_or_claim("rfc791.txt", URL) == "rfc791.txt"
    assert two.known_or_claim("RFC791.TXT", "https://mirror.example/rfc791.txt") is None
    assert two.claim("rfc791.txt", "https://mirror.example/rfc791.txt") is False
    assert two.owner_of("rfc791.txt") == URL


def test_a_urls_new_name_frees_its_old_one(new_store: NewStore) -> None:
    names = new_store().names(HERE)
    assert names.known_or_claim("old.txt", URL) == "old.txt"
    assert names.claim("new.txt", URL) is True
    assert (names.name_of(URL), names.owner_of("old.txt"), names.owner_of("new.txt")) == ("new.txt", None, URL)


def test_two_namers_of_a_cluster_give_one_basename_two_names_and_keep_them(new_store: NewStore) -> None:
    urls = ["https://a.example/pub/data.csv", "https://b.example/data.csv"]
    one, two = Namer(store=new_store().names(HERE)), Namer(store=new_store(THERE).names(THERE))
    first, second = one.name_for(urls[0]), two.name_for(urls[1])
    assert first == "data.csv" and second.startswith("data-") and second.endswith(".csv")
    again = Namer(store=new_store().names(HERE))
    assert (again.name_for(urls[1]), again.name_for(urls[0])) == (second, first)


def test_a_reserved_name_is_not_claimed(new_store: NewStore) -> None:
    store = new_store()
    name = Namer(["fetcher-report.jsonl"], store=store.names(HERE)).name_for("https://a.example/fetcher-report.jsonl")
    assert name != "fetcher-report.jsonl"
    assert store.names(HERE).name_of(name_key("https://a.example/fetcher-report.jsonl")) == name


# -- Redis unreachable ------------------------------------------------------------------------

DOWN = "redis://:secret@127.0.0.1:1/0"


def test_a_lookup_without_redis_answers_none_and_says_so_once(
    new_store: NewStore, caplog: pytest.LogCaptureFixture
) -> None:
    store = new_store(url=DOWN)
    with caplog.at_level(logging.WARNING, logger="fetcher"):
        assert (store.saved(URL), store.saved_many([URL]), store.partial(URL)) == (None, {}, None)
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("Redis at redis://127.0.0.1:1/0 is unreachable") and "secret" not in line


def test_a_name_without_redis_is_a_state_error(new_store: NewStore) -> None:
    names = new_store(url=DOWN).names(HERE)
    with pytest.raises(StateError, match="could not look up a file name in Redis at redis://127.0.0.1:1/0: "):
        names.known_or_claim("rfc791.txt", URL)


@pytest.mark.parametrize("call", ["record_partial", "partials"])
def test_a_partial_file_write_or_listing_without_redis_is_one_line(new_store: NewStore, call: str) -> None:
    store = new_store(url=DOWN)
    with pytest.raises(StateError) as error:
        store.record_partial(partial_record()) if call == "record_partial" else store.partials()
    message = str(error.value)
    assert "redis://127.0.0.1:1/0" in message and "secret" not in message and "\n" not in message


def test_saved_records_redis_refuses_are_dropped_and_flush_returns(
    new_store: NewStore, caplog: pytest.LogCaptureFixture
) -> None:
    store = new_store(url=DOWN)
    with caplog.at_level(logging.WARNING, logger="fetcher"):
        store.record_saved(saved_record())
        store.flush()
    assert store.saved(URL) is None  # not answered from memory any more: the next run downloads it in full
    assert any("is unreachable" in r.getMessage() for r in caplog.records)


def test_a_full_queue_of_records_waits_for_the_writer(new_store: NewStore) -> None:
    store = new_store(max_pending=2)
    for n in range(10):
        store.record_saved(saved_record(f"https://files.example/{n}"))
    store.flush()
    assert len(new_store().saved_many([f"https://files.example/{n}" for n in range(10)])) == 10


def test_repr_names_the_cluster_and_redis_without_its_password(new_store: NewStore, cluster_name: str) -> None:
    text = repr(new_store(url=DOWN))
    assert cluster_name in text and "redis://127.0.0.1:1/0" in text and "secret" not in text


def test_the_names_are_the_clusters_whatever_the_folder(new_store: NewStore) -> None:
    store = new_store()
    assert store.names(HERE).known_or_claim("a.txt", URL) == "a.txt"
    assert store.names(Path(THERE)).name_of(URL) == "a.txt"
