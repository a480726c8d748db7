"""fetcher.transfer.checksum: parsing aria2's ALGORITHM=HEX, hashing, matching."""

from __future__ import annotations

import pytest

from fetcher._errors import ConfigError
from fetcher.transfer.checksum import Checksum

#: Digests of b"abc" (FIPS 180-4 and RFC 1321 test vectors).
ABC = {
    "sha-1": "a9993e364706816aba3e25717850c26c9cd0d89d",
    "sha-224": "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
    "sha-256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    "sha-384": "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
    "sha-512": "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
    "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
    "md5": "900150983cd24fb0d6963f7d28e17f72",
}


def test_parse_reads_aria2_form() -> None:
    checksum = Checksum.parse(f"sha-256={ABC['sha-256']}")
    assert checksum == Checksum(algorithm="sha-256", hexdigest=ABC["sha-256"])


@pytest.mark.parametrize("name", ["SHA-256", "sha256", "Sha256", "SHA_256", " sha-256 "])
def test_parse_accepts_other_spellings_of_the_algorithm(name: str) -> None:
    assert Checksum.parse(f"{name}={ABC['sha-256']}").algorithm == "sha-256"


def test_parse_stores_upper_case_hex_in_lower_case() -> None:
    assert Checksum.parse(f"md5={ABC['md5'].upper()}").hexdigest == ABC["md5"]


def test_the_constructor_normalises_like_parse() -> None:
    checksum = Checksum(algorithm="SHA1", hexdigest=ABC["sha-1"].upper())
    assert (checksum.algorithm, checksum.hexdigest) == ("sha-1", ABC["sha-1"])


def test_str_is_the_aria2_form() -> None:
    assert str(Checksum.parse(f"SHA256={ABC['sha-256'].upper()}")) == f"sha-256={ABC['sha-256']}"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("", "must look like ALGORITHM=HEX", id="empty"),
        pytest.param(ABC["sha-256"], "must look like ALGORITHM=HEX", id="no-algorithm"),
        pytest.param(f"crc32={ABC['md5'][:8]}", "'crc32' is not supported (fetcher knows sha-1, ", id="unknown"),
        pytest.param(f"adler32={ABC['md5'][:8]}", "'adler32' is not supported", id="aria2-only"),
        pytest.param("sha-256=" + "g" * 64, "sha-256 checksum must be hexadecimal", id="not-hex"),
        pytest.param("sha-256=" + ABC["sha-256"][:-1], "sha-256 checksum must be 64 hex digits, not 63", id="short"),
        pytest.param("md5=" + ABC["sha-1"], "md5 checksum must be 32 hex digits, not 40", id="other-algorithm"),
        pytest.param("sha-256=", "sha-256 checksum must be 64 hex digits, not 0", id="no-digest"),
        pytest.param("sha-256=0x" + ABC["sha-256"][2:], "must be hexadecimal", id="0x"),
    ],
)
def test_parse_rejects_bad_text_with_a_readable_reason(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match="^checksum |^[a-z0-9-]+ checksum ") as caught:
        Checksum.parse(text)
    assert reason in str(caught.value)


def test_a_huge_bad_value_is_cut_short_in_the_reason() -> None:
    with pytest.raises(ConfigError) as caught:
        Checksum.parse("sha-256=" + "z" * 100_000)
    assert len(str(caught.value)) < 200


def test_parse_rejects_what_is_not_text() -> None:
    with pytest.raises(ConfigError, match="checksum"):
        Checksum.parse(b"md5=00")  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", sorted(ABC))
def test_the_hasher_computes_the_known_digest_of_abc(algorithm: str) -> None:
    checksum = Checksum(algorithm=algorithm, hexdigest=ABC[algorithm])
    hasher = checksum.new_hasher()
    hasher.update(b"a")
    hasher.update(b"bc")
    assert checksum.matches(hasher.hexdigest())


def test_each_hasher_starts_empty() -> None:
    checksum = Checksum.parse(f"sha-256={ABC['sha-256']}")
    checksum.new_hasher().update(b"junk")
    hasher = checksum.new_hasher()
    hasher.update(b"abc")
    assert hasher.hexdigest() == ABC["sha-256"]


def test_matches_ignores_case() -> None:
    assert Checksum.parse(f"md5={ABC['md5']}").matches(ABC["md5"].upper())


def test_a_different_digest_does_not_match() -> None:
    checksum = Checksum.parse(f"sha-256={ABC['sha-256']}")
    hasher = checksum.new_hasher()
    hasher.update(b"abd")
    assert not checksum.matches(hasher.hexdigest())
