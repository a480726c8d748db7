"""fetcher._naming: name_from_url() makes one safe file name; Namer keeps names distinct, and stable with a store."""

from __future__ import annotations

import os
import random
import re
import threading
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import hypothesis
import pytest
from hypothesis import strategies as st

from fetcher._errors import StateError
from fetcher._naming import FALLBACK_NAME, MAX_NAME_BYTES, Namer, name_from_url, name_key, safe_name
from fetcher.state import StateStore, seen


def _assert_safe(name: str, dest: Path) -> None:
    assert name not in ("", ".", "..")
    assert not any(bad in name for bad in ("/", "\\", "\0"))
    assert name.isprintable()
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert not name.startswith(".")
    inside = os.path.realpath(os.path.join(dest, name))
    assert os.path.dirname(inside) == os.path.realpath(dest)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a/b/file.txt", "file.txt"),
        ("https://example.com/my%20file.txt", "my file.txt"),
        ("https://example.com/f.txt?x=1&y=/etc/passwd", "f.txt"),
        ("https://example.com/f.txt#../../frag", "f.txt"),
        ("https://example.com/caf%C3%A9.txt", "café.txt"),
    ],
)
def test_name_is_the_percent_decoded_last_segment(url: str, expected: str) -> None:
    assert name_from_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com",
        "https://example.com/",
        "https://example.com/dir/",
        "https://example.com/..",
        "https://example.com/.",
        "https://example.com/...",
        "https://example.com/%2e%2e",
        "https://example.com/%2E",
        "https://example.com/%20",
    ],
)
def test_a_url_without_a_usable_last_segment_gets_the_fallback_name(url: str) -> None:
    assert name_from_url(url) == FALLBACK_NAME


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a%2F..%2F..%2Fetc%2Fpasswd",
        "https://example.com/%2e%2e%2f%2e%2e%2fetc",
        "https://example.com/..%5C..%5Cwindows",
        "https://example.com/a%5Cb",
    ],
)
def test_encoded_separators_never_survive(url: str) -> None:
    name = name_from_url(url)
    assert "/" not in name
    assert "\\" not in name


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a%00b", "a_b"),
        ("https://example.com/a%1b[2Jb", "a_[2Jb"),
        ("https://example.com/a%0d%0ab", "a__b"),
        ("https://example.com/a%e2%80%aeb", "a_b"),
    ],
)
def test_nul_and_control_characters_are_replaced(url: str, expected: str) -> None:
    assert name_from_url(url) == expected


def test_a_leading_dot_is_replaced_so_the_file_is_not_hidden() -> None:
    assert name_from_url("https://example.com/.bashrc") == "_bashrc"


def test_windows_forbidden_characters_are_replaced() -> None:
    assert name_from_url("https://example.com/a%3Cb%3E%3A%22%7C%3F%2A.txt") == "a_b______.txt"


def test_a_very_long_name_is_cut_to_255_bytes_keeping_the_extension() -> None:
    name = name_from_url("https://example.com/" + "a" * 400 + ".txt")
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert name.endswith(".txt")
    assert name.startswith("aaaa")


def test_cutting_a_long_name_never_splits_a_multibyte_character() -> None:
    name = name_from_url("https://example.com/" + quote("é" * 200) + ".txt")
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert name.endswith(".txt")
    assert set(name[: -len(".txt")]) == {"é"}


def test_cutting_a_long_name_without_extension_keeps_whole_characters() -> None:
    name = name_from_url("https://example.com/" + "日" * 100)
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert set(name) == {"日"}


HOSTILE = [
    "",
    "/",
    ".",
    "..",
    "...",
    "....//",
    "%2e",
    "%2e%2e",
    "%2e%2e%2f",
    "%2F",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%5C..%5C..%5C",
    "..\\..\\windows\\system32",
    "%00",
    "a%00.txt",
    "%00..",
    "%1b[2J%1b]0;pwned%07",
    "%0d%0a",
    "%7f",
    "%c2%9b",
    "%e2%80%ae.exe",
    "%e2%80%8b",
    "%ef%bb%bf",
    "%ff%fe%fd",
    "%",
    "%%%",
    "%zz",
    " ",
    "%20%20",
    "%20.hidden",
    ". .",
    ".%20.",
    ".hidden",
    "..hidden",
    'CON<>:"|?*',
    "~",
    "a" * 1000,
    "é" * 300,
    "日" * 300 + ".txt",
    "a." + "b" * 400,
    "x" * 300 + "." + "日" * 10,
    "\ud800",
    "\U000e0001tag",
]


@pytest.mark.parametrize("segment", HOSTILE)
@pytest.mark.parametrize("prefix", ["https://example.com/", "https://example.com/dir/sub/", ""])
def test_name_from_hostile_input_is_always_safe(prefix: str, segment: str, tmp_path: Path) -> None:
    _assert_safe(name_from_url(prefix + segment), tmp_path)


def _name_by_urlsplit(url: str) -> str:
    """name_from_url as it was before its fast path: urlsplit's path for every URL."""
    try:
        path = urlsplit(url).path
    except ValueError:
        path = ""
    return safe_name(unquote(path.rpartition("/")[2], errors="replace"))


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a/b.txt", "HTTPS://Example.COM:8443/a/b.txt?x=1#y", "https://example.com",
        "https://example.com?q=/a/b.txt", "https://example.com#/a/b.txt", "https://example.com/a#b?c/d.txt",
        "https://example.com/a?b#c/d.txt", "http:///only/path.txt", "http://user:pw@host/x%2Fy.txt",
        "http://host\\back/slash.txt", "http://[::1]:80/v6.txt", "http://[bad/x.txt", "http://host/a\tb.txt",
        "http://host/a\nb.txt", " http://host/lead.txt", "http://host/trail.txt ", "http://host/%00nul.txt",
        "http://host/\x01ctl.txt", "http://host:99999/port.txt", "ftp://host/other.txt", "http:/one/slash.txt",
        "http://h\u00f6st/nonascii.txt", "http://host/r\u00e9sum\u00e9.txt",
    ],
)  # fmt: skip
def test_the_name_comes_from_the_path_urlsplit_finds(url: str) -> None:
    assert name_from_url(url) == _name_by_urlsplit(url)


@pytest.mark.parametrize("junk", ["http://[bad/x", "http://host:99999/x", "::::", "\0\0", "javascript:alert(1)"])
def test_name_from_junk_that_is_not_a_url_is_still_safe(junk: str, tmp_path: Path) -> None:
    _assert_safe(name_from_url(junk), tmp_path)


def test_name_from_generated_input_is_always_safe(tmp_path: Path) -> None:
    segments = st.one_of(st.text(), st.binary().map(lambda raw: quote(raw, safe="")))

    @hypothesis.settings(max_examples=100, deadline=None, database=None)
    @hypothesis.given(segments)
    def check(segment: str) -> None:
        _assert_safe(name_from_url("https://example.com/" + segment), tmp_path)

    check()


def test_the_name_of_a_generated_url_comes_from_the_path_urlsplit_finds() -> None:
    pieces = st.text(alphabet="aZ09:/?#@[]%.-_ \t\n\\\x00\u00e9", max_size=20)
    urls = st.tuples(st.sampled_from(["http://", "HTTPS://", "http:/", " http://", ""]), pieces).map("".join)

    @hypothesis.settings(max_examples=300, deadline=None, database=None)
    @hypothesis.given(urls)
    def check(url: str) -> None:
        assert name_from_url(url) == _name_by_urlsplit(url)

    check()


def test_namer_gives_the_same_url_the_same_name_every_time() -> None:
    namer = Namer()
    first = namer.name_for("https://a.example/file.txt")
    namer.name_for("https://b.example/file.txt")
    assert namer.name_for("https://a.example/file.txt") == first


def test_namer_gives_the_first_url_the_plain_name_and_a_later_one_a_hashed_name() -> None:
    namer = Namer()
    assert namer.name_for("https://a.example/file.txt") == "file.txt"
    assert re.fullmatch(r"file-[0-9a-f]{8}\.txt", namer.name_for("https://b.example/file.txt"))


def test_namer_gives_every_colliding_url_a_distinct_name() -> None:
    namer = Namer()
    names = [namer.name_for(f"https://host{i}.example/file.txt") for i in range(50)]
    assert len({name.casefold() for name in names}) == 50


def test_namer_is_deterministic_for_the_same_order_of_urls() -> None:
    urls = [f"https://host{i % 7}.example/dir{i}/file{i % 3}.txt" for i in range(30)]
    first, second = Namer(), Namer()
    assert [first.name_for(url) for url in urls] == [second.name_for(url) for url in urls]


def test_namer_treats_names_differing_only_in_case_as_colliding() -> None:
    namer = Namer()
    upper = namer.name_for("https://a.example/A.txt")
    lower = namer.name_for("https://b.example/a.txt")
    assert upper == "A.txt"
    assert lower.casefold() != upper.casefold()


@pytest.mark.parametrize("url", ["https://a.example/fetcher-report.jsonl", "https://a.example/FETCHER-REPORT.JSONL"])
def test_namer_never_hands_out_a_reserved_name(url: str) -> None:
    namer = Namer(reserved=["fetcher-report.jsonl"])
    assert namer.name_for(url).casefold() != "fetcher-report.jsonl"


def test_namer_keeps_a_colliding_name_with_a_long_extension_within_255_bytes() -> None:
    namer = Namer()
    segment = "a." + "b" * 253
    namer.name_for("https://a.example/" + segment)
    assert len(namer.name_for("https://b.example/" + segment).encode()) <= MAX_NAME_BYTES


def test_namer_is_thread_safe_when_all_names_collide() -> None:
    namer = Namer()
    urls = [f"https://host{i}.example/data.bin" for i in range(200)]
    seen: list[dict[str, str]] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        order = random.Random(seed).sample(urls, len(urls))
        names = {url: namer.name_for(url) for url in order}
        with lock:
            seen.append(names)

    threads = [threading.Thread(target=worker, args=(seed,), daemon=True) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10.0)
    assert not any(thread.is_alive() for thread in threads)
    assert len(seen) == 8
    assert all(names == seen[0] for names in seen)
    assert len({name.casefold() for name in seen[0].values()}) == 200


def test_without_a_store_names_kept_on_disk_are_the_names_kept_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    urls = [f"https://host{i % 13}.example/dir{i}/file{i % 4}.txt" for i in range(300)]
    reference = Namer()
    in_memory = [reference.name_for(url) for url in urls]  # fewer than a batch: nothing written
    monkeypatch.setattr(seen, "BATCH", 4)
    namer = Namer()
    assert [namer.name_for(url) for url in urls] == in_memory
    assert namer._seen._conn is not None


def test_without_a_store_a_url_keeps_its_first_name_after_it_went_to_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seen, "BATCH", 4)
    namer = Namer()
    first = namer.name_for(A, preferred="first.txt")
    for i in range(50):
        namer.name_for(f"https://a.example/{i}/first.txt")
    assert namer.name_for(A, preferred="other.txt") == first == "first.txt"


def test_without_a_store_a_url_given_its_plain_name_keeps_it_when_asked_with_an_out_name() -> None:
    namer = Namer()
    assert namer.name_for(A) == "rfc795.txt"
    assert namer.name_for(A, preferred="other.txt") == "rfc795.txt"
    assert namer.name_for("https://c.example/other.txt") == "other.txt"


def test_without_a_store_a_url_given_its_plain_name_costs_one_entry() -> None:
    namer = Namer()
    for i in range(100):
        namer.name_for(f"https://a.example/{i}/file{i}.txt")
    namer.name_for("https://b.example/0/file0.txt")  # a collision: its name and its URL's entry
    assert len(namer._seen) == 102


# -- names kept from run to run in a state database ---------------------------------------

A = "https://a.example/rfc795.txt"
B = "https://b.example/rfc795.txt"


def _run(db: Path, urls: list[str], **kwargs: object) -> list[str]:
    """The names one run with the state database at *db* gives *urls*, in order."""
    with StateStore(db) as store:
        namer = Namer(store=store.names(db.parent), **kwargs)  # type: ignore[arg-type]
        return [namer.name_for(url) for url in urls]


def test_without_a_store_swapping_two_lines_swaps_their_names() -> None:
    assert Namer().name_for(A) == "rfc795.txt"
    assert Namer().name_for(B) == "rfc795.txt"


def test_names_are_stable_across_runs_with_the_lines_swapped(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    first = _run(db, [A, B])
    assert _run(db, [B, A]) == first[::-1]
    assert first[0] == "rfc795.txt"


def test_a_name_another_url_has_on_record_is_not_given_to_a_new_url(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    _run(db, [A])
    assert re.fullmatch(r"rfc795-[0-9a-f]{8}\.txt", _run(db, [B])[0])


def test_a_store_gives_the_same_first_names_as_no_store(tmp_path: Path) -> None:
    urls = [f"https://host{i % 5}.example/file{i % 3}.txt" for i in range(20)]
    namer = Namer()
    assert _run(tmp_path / "state.db", urls) == [namer.name_for(url) for url in urls]


def test_equivalent_spellings_of_a_url_keep_one_name(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    first = _run(db, ["https://a.example/other/ünï.txt", "http://bücher.test/ünï.txt"])
    assert _run(db, ["HTTP://xn--bcher-kva.test:80/%C3%BCn%C3%AF.txt"]) == first[1:]


def test_a_changed_out_name_is_given_and_recorded(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with StateStore(db) as store:
        namer = Namer(store=store.names(tmp_path))
        assert namer.name_for(A, preferred="old.txt") == "old.txt"
        assert namer.name_for(A, preferred="new.txt") == "new.txt"
        assert namer.name_for(B, preferred="old.txt") == "old.txt"


def test_a_name_on_record_that_is_now_reserved_is_not_given(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    _run(db, ["https://a.example/report.jsonl"])
    assert _run(db, ["https://a.example/report.jsonl"], reserved=["REPORT.jsonl"]) != ["report.jsonl"]


def test_a_store_backed_namer_keeps_no_url_in_memory(tmp_path: Path) -> None:
    with StateStore(tmp_path / "state.db") as store:
        namer = Namer(store=store.names(tmp_path))
        for i in range(50):
            namer.name_for(f"https://a.example/{i}.txt")
        assert len(namer._seen) == 0


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("HTTPS://A.example:443/x#f", "https://a.example/x"),
        ("https://:secret@a.example/me.json", "https://a.example/me.json"),
    ],
)
def test_name_key_is_the_normal_form(url: str, key: str) -> None:
    assert name_key(url) == key


def test_name_key_records_neither_a_user_name_nor_a_password() -> None:
    key = name_key("https://alice:secret@a.example/me.json")
    assert key.startswith("https://a.example/me.json#user=")
    assert "alice" not in key and "secret" not in key


def test_name_key_keeps_two_users_apart_and_one_users_passwords_together() -> None:
    alice = name_key("https://alice:one@a.example/me.json")
    assert alice != name_key("https://bob:one@a.example/me.json")
    assert alice == name_key("https://alice:two@a.example/me.json") == name_key("https://alice@a.example/me.json")


def test_a_suffix_is_no_hash_of_a_password() -> None:
    # Two passwords of one user are one URL: the same suffix, from the key and not from what was written.
    names = [Namer(["me.json"]).name_for(f"https://alice:{password}@a.example/me.json") for password in "ab"]
    assert names[0] == names[1] != "me.json"


def test_a_url_named_again_after_its_claim_was_written_keeps_its_name(tmp_path: Path) -> None:
    # In a folder with no names on record when the store was opened, the Namer finds a
    # URL's own name again by its owner, not by asking for the URL: the same names come out.
    with StateStore(tmp_path / "state.db") as store:
        namer = Namer(store=store.names(tmp_path))
        first = [namer.name_for(A), namer.name_for(B)]
        store.flush()
        assert [namer.name_for(A), namer.name_for(B)] == first
        assert first[0] == "rfc795.txt" and first[1] != first[0]


class _Racing:
    """A store shared with another process, which claims ``data.csv`` just before this one does."""

    def __init__(self) -> None:
        self.owners: dict[str, str] = {}
        self.names: dict[str, str] = {}

    def name_of(self, url: str) -> str | None:
        return self.names.get(url)

    def owner_of(self, name_folded: str) -> str | None:
        return self.owners.get(name_folded)

    def claim(self, name: str, url: str) -> bool:
        if name == "data.csv":
            self.owners.setdefault("data.csv", "https://another.example/data.csv")  # the other was first
        if self.owners.setdefault(name.casefold(), url) != url:
            return False
        self.names[url] = name
        return True


def test_a_name_another_process_claimed_first_is_given_up_for_the_next() -> None:
    store = _Racing()
    name = Namer(store=store).name_for("https://a.example/data.csv")
    assert name.startswith("data-") and name.endswith(".csv")
    assert store.owners["data.csv"] == "https://another.example/data.csv"


def test_own_name_is_the_urls_name_with_the_suffix_of_its_own_hash() -> None:
    namer = Namer()
    own = namer.own_name("https://a.example/data.csv")
    assert re.fullmatch(r"data-[0-9a-f]{8}\.csv", own) and own == namer.own_name("https://A.example:443/data.csv")
    assert own != namer.own_name("https://b.example/data.csv")


def test_a_store_that_refuses_every_claim_is_a_state_error_not_a_loop() -> None:
    class Refusing(_Racing):
        def claim(self, name: str, url: str) -> bool:
            return False

    with pytest.raises(StateError, match="were all taken by others as they were claimed, 100 times"):
        Namer(store=Refusing()).name_for("https://a.example/data.csv")


def test_without_a_store_a_url_named_from_its_out_name_keeps_it_when_asked_without_one() -> None:
    namer = Namer()
    assert namer.name_for(A, preferred="first.txt") == "first.txt"
    assert namer.name_for(A) == "first.txt"


def test_without_a_store_a_url_whose_plain_name_is_reserved_keeps_the_name_it_was_given() -> None:
    namer = Namer(["rfc795.txt"])
    given = namer.name_for(A)
    assert given != "rfc795.txt"
    assert namer.name_for(A) == given


def test_a_namer_tells_the_names_it_keeps_for_no_url_casefolded() -> None:
    assert Namer(["Report.JSONL"]).reserved == frozenset({"report.jsonl"})
