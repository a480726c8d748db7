"""Checksums: the digest a download is expected to have, as aria2 writes it.

A ``Checksum`` is a value: an algorithm in aria2's spelling (``sha-256``) and
the expected hex digest, both validated when it is made.  It hands out a
fresh hasher for the bytes of one attempt and says whether a digest matches.

It does not read files or decide what a mismatch does to a download: the
transfer feeds the hasher as it writes, and refuses the final name when the
digest does not match.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from .._errors import ConfigError

#: aria2's names (``aria2c -v``, "Hash Algorithms") and hashlib's, in the order shown to users.
_HASHLIB_NAMES = {
    "sha-1": "sha1",
    "sha-224": "sha224",
    "sha-256": "sha256",
    "sha-384": "sha384",
    "sha-512": "sha512",
    "md5": "md5",
}

#: Hex digits in a digest of each algorithm.
_HEX_LENGTHS = {name: hashlib.new(lib, usedforsecurity=False).digest_size * 2 for name, lib in _HASHLIB_NAMES.items()}

_KNOWN = ", ".join(_HASHLIB_NAMES)

_HEX_DIGITS = frozenset("0123456789abcdef")

#: Longer input is cut short in messages: a list line can be any length.
_SHOWN = 80


class Hasher(Protocol):
    """What a download needs of a hash object (hashlib's objects are ones)."""

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class Checksum:
    """An expected digest: ``algorithm`` in aria2's spelling, ``hexdigest`` in lower case.

    Other spellings of the algorithm (``SHA-256``, ``sha256``) and upper-case
    hex are accepted and stored in the canonical form.
    """

    algorithm: str
    hexdigest: str

    def __post_init__(self) -> None:
        if not isinstance(self.algorithm, str):
            raise ConfigError(f"checksum algorithm must be text, not {self.algorithm!r}")
        if not isinstance(self.hexdigest, str):
            raise ConfigError(f"checksum hexdigest must be text, not {self.hexdigest!r}")
        algorithm = _canonical(self.algorithm)
        if algorithm is None:
            raise ConfigError(f"checksum algorithm {_show(self.algorithm)} is not supported (fetcher knows {_KNOWN})")
        hexdigest = self.hexdigest.strip().lower()
        if not _HEX_DIGITS.issuperset(hexdigest):
            raise ConfigError(f"{algorithm} checksum must be hexadecimal, not {_show(self.hexdigest)}")
        if len(hexdigest) != _HEX_LENGTHS[algorithm]:
            raise ConfigError(
                f"{algorithm} checksum must be {_HEX_LENGTHS[algorithm]} hex digits, not {len(hexdigest)}"
            )
        object.__setattr__(self, "algorithm", algorithm)
        object.__setattr__(self, "hexdigest", hexdigest)

    @classmethod
    def parse(cls, text: str) -> Checksum:
        """Read aria2's ``ALGORITHM=HEX`` form, e.g. ``sha-256=ba7816bf…``.

        Raises ConfigError saying what is wrong.
        """
        if not isinstance(text, str):
            raise ConfigError(f"checksum must be text like sha-256=HEX, not {text!r}")
        algorithm, sep, hexdigest = text.partition("=")
        if not sep:
            raise ConfigError(f"checksum must look like ALGORITHM=HEX (e.g. sha-256=...), not {_show(text)}")
        return cls(algorithm=algorithm, hexdigest=hexdigest)

    def new_hasher(self) -> Hasher:
        """A fresh hash object for this algorithm, to be fed the body as it arrives."""
        # usedforsecurity=False: an integrity check, so md5 and sha-1 still work
        # on systems in FIPS mode.
        return hashlib.new(_HASHLIB_NAMES[self.algorithm], usedforsecurity=False)

    def matches(self, hexdigest: str) -> bool:
        """True if *hexdigest* (any case) is the expected digest."""
        return hexdigest.strip().lower() == self.hexdigest

    def __str__(self) -> str:
        return f"{self.algorithm}={self.hexdigest}"


def _canonical(name: str) -> str | None:
    """aria2's spelling of *name* (``SHA256``, ``sha_256`` -> ``sha-256``), or None."""
    wanted = name.strip().lower().replace("-", "").replace("_", "")
    for known in _HASHLIB_NAMES:
        if known.replace("-", "") == wanted:
            return known
    return None


def _show(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")
