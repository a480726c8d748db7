"""File names: from a URL to a safe name inside DEST, distinct for each URL, stable across runs given a store.

A name comes from the URL's last path segment, percent-decoded, and is then
made safe: it can never name a path outside DEST, never be hidden, never carry
control characters.  Server headers (Content-Disposition) are ignored on
purpose: the list's author chose the URLs, the server does not choose names.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterable
from typing import Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from ._errors import StateError
from ._text import redact
from ._urls import normalize
from .state.seen import Seen

#: Names a URL tries to claim, each taken by another process just before, before its store is deemed failing.
_CLAIMS = 100

#: The name used when the URL's last segment leaves nothing (``https://host/dir/``).
FALLBACK_NAME = "index.html"

#: Most file systems allow 255 bytes in one name.
MAX_NAME_BYTES = 255

# Path separators, characters Windows forbids, and the NUL byte.
_FORBIDDEN = frozenset('/\\<>:"|?*\0')
_FORBIDDEN_RE = re.compile("[" + re.escape("".join(sorted(_FORBIDDEN))) + "]")


def name_from_url(url: str) -> str:
    """The safe file name a URL would get if no other URL claimed it first."""
    plain = _PLAIN_HTTP.match(url) if url.isascii() else None
    if plain is not None:
        path = plain.group(1) or ""  # urlsplit's path, found without its checks and copies
    else:
        try:
            path = urlsplit(url).path
        except ValueError:
            path = ""
    segment = path.rpartition("/")[2]
    return safe_name(unquote(segment, errors="replace"))


#: An http(s) URL whose path urlsplit would find as this does: nothing it strips or removes
#: (no leading blank, tab or newline anywhere: an ASCII URL matched whole) and no brackets in the
#: host (which urlsplit checks).  Group 1: the path.
_PLAIN_HTTP = re.compile(r"(?i:https?)://[^/?#\[\]\t\r\n]*(/[^?#\t\r\n]*)?(?:[?#][^\t\r\n]*)?\Z")


def safe_name(name: str) -> str:
    """Make *name* usable as one file name inside DEST, and nothing else."""
    cleaned = name
    if not name.isprintable() or _FORBIDDEN_RE.search(name):  # the rare case: check each character
        cleaned = "".join("_" if c in _FORBIDDEN or not c.isprintable() else c for c in name)
    cleaned = cleaned.strip().rstrip(".")
    if cleaned in ("", ".", ".."):
        return FALLBACK_NAME
    if cleaned.startswith("."):
        # No hidden files; this also keeps names apart from fetcher's own
        # temporary files, which all start with a dot.
        cleaned = "_" + cleaned[1:]
    return _fit(cleaned)


def _fit(name: str, limit: int = MAX_NAME_BYTES) -> str:
    """Shorten *name* to *limit* UTF-8 bytes, keeping a short extension."""
    if len(name.encode()) <= limit:
        return name
    stem, ext = os.path.splitext(name)
    if len(ext.encode()) > 16:
        stem, ext = name, ""
    room = limit - len(ext.encode())
    stem = stem.encode()[:room].decode(errors="ignore")
    return stem + ext


class NameStore(Protocol):
    """Where names given in earlier runs are kept (``StateStore.names(dest)`` is one).

    *url* is ``name_key(url)``; *name_folded* a name's ``casefold()``.  ``claim``
    returns False when another URL has the name (a store that claims at once,
    shared with other processes); anything else means it is *url*'s now.  A
    StateError from any of them goes to the caller of ``Namer.name_for``.
    """

    def name_of(self, url: str) -> str | None: ...

    def owner_of(self, name_folded: str) -> str | None: ...

    def claim(self, name: str, url: str) -> bool | None: ...


@runtime_checkable
class ClaimingNameStore(NameStore, Protocol):
    """A NameStore that can look a URL's name up and claim one in the same step (one round trip to a server)."""

    def known_or_claim(self, name: str, url: str, *, state_key: str | None = None) -> str | None:
        """*url*'s name on record; else *name*, now claimed for it, if no other URL has it; else None.

        *state_key*: the URL as the state knows it (without its password), if the store may read its
        state ahead in the same step.
        """
        ...


def name_key(url: str) -> str:
    """A URL as a NameStore knows it, and as duplicates are found: in normal form, without its credentials.

    A password is dropped.  A user name is replaced by a digest of it, after a
    ``#`` (which no normal form has): two users' ``/me.json`` stay two URLs with
    two names, and a user name that is really a token (``https://TOKEN@host/``)
    is not recorded either.
    """
    normal = normalize(url)
    scheme, _, rest = normal.partition("://")
    authority, slash, path = rest.partition("/")
    userinfo, at, hostport = authority.rpartition("@")
    if not at:
        return normal
    user = userinfo.partition(":")[0]
    key = f"{scheme}://{hostport}{slash}{path}"
    return f"{key}#user={hashlib.sha256(user.encode()).hexdigest()[:16]}" if user else key


class Namer:
    """Gives each URL one name, the same every time, never another URL's.

    The first URL to claim a name gets it plain; a later URL whose name is
    taken gets the name with a short hash of its own URL before the extension
    (``rfc791-3fa2c1d0.txt``), so its name does not depend on how many others
    collided.  Names are compared case-insensitively, because two names that
    differ only in case are one file on macOS and Windows.

    With a *store*, "first" is over every run that used it: a URL keeps the
    name it was given the first time whatever the list's order, and a name on
    record for one URL is not given to another.  A name on record is given
    again only while it is still one the URL could get (from its last path
    segment or its ``out=``, plain or with a suffix) and not *reserved*.
    A store shared with other processes as they run (a cluster's, in Redis)
    claims each name at once and may refuse it; the URL then gets its next
    name.  Such a store may fail (StateError, from ``name_for``): ``own_name``
    is then a name no other URL gets.
    Without a store, "first" is within this Namer.

    Thread-safe.  Memory does not grow with the number of URLs named: with a
    store, the store holds them; without one, a ``Seen`` (a temporary file
    past the first few thousand) holds every name given, with a tag of the URL
    it was given to, and the name of each URL whose name is not its plain one.
    """

    def __init__(self, reserved: Iterable[str] = (), *, store: NameStore | None = None) -> None:
        self._lock = threading.Lock()
        self._store = store
        self._claiming = store if isinstance(store, ClaimingNameStore) else None
        self._reserved: frozenset[str] = frozenset(name.casefold() for name in reserved)
        # Without a store only: "n" + a name given, casefolded -> its URL's tag; "u" + a URL's key -> its
        # name, only where that is not the URL's plain name (most URLs cost one entry, not two).
        self._seen: Seen[str] = Seen("file names")
        self._tagger = hashlib.blake2b(digest_size=8, key=os.urandom(16))
        # Whether a URL was given a name from its out= that its plain name's entry does not tell of (below).
        self._named_by_preference = False

    def name_for(self, url: str, *, preferred: str | None = None, key: str | None = None) -> str:
        """*url*'s name; *preferred* (the list's ``out=``) instead of the URL's own, made safe.

        *key*: ``name_key(url)``, if the caller has it already (the run's feeder
        does, to find duplicates): it is worked out here otherwise.  Raises
        StateError when the store cannot tell (a cluster's Redis is down).
        """
        base, key = _base(url, preferred), key or name_key(url)
        with self._lock:
            if self._store is not None:
                return self._recorded(self._store, base, key, url)
            return self._remembered(url, base, key, base if preferred is None else None)

    @property
    def reserved(self) -> frozenset[str]:
        """The names no URL is given, casefolded."""
        return self._reserved

    def others_named(self) -> None:
        """Another process gave names through this Namer's store (a long list's feeder, ``_run/apart.py``):
        from now on, look them up there."""
        with self._lock:
            others_named = getattr(self._store, "others_named", None)
            if callable(others_named):
                others_named()

    def own_name(self, url: str, *, preferred: str | None = None, key: str | None = None) -> str:
        """A name for *url* when the store cannot tell which names are taken: its name with the suffix of its own
        hash (``rfc791-3fa2c1d0.txt``), which no other URL gets; not recorded."""
        base, key = _base(url, preferred), key or name_key(url)
        return _pick(key, base, lambda folded: folded == base.casefold() or folded in self._reserved)

    def _remembered(self, url: str, base: str, key: str, plain: str | None) -> str:
        """*url*'s name, given already or now; *plain*: its name from the URL, if the caller has it."""
        seen, reserved = self._seen, self._reserved
        plain = plain or name_from_url(url)
        plain_folded = plain.casefold()
        plain_owner = seen.get("n" + plain_folded)
        tag = self._tag(key)
        if plain_owner == tag:
            return plain
        # A URL's own entry is there only if its name is not its plain one: because the plain name was taken
        # (then it still is), is reserved, or came from out=.  Most URLs are named once, so this look-up is
        # skipped where none of those can be.
        if plain_owner is not None or plain_folded in reserved or self._named_by_preference:
            name = seen.get("u" + key)
            if name is not None:
                return name

        def taken(folded: str) -> bool:
            if folded in reserved:
                return True
            return (plain_owner if folded == plain_folded else seen.get("n" + folded)) is not None

        name = _pick(key, base, taken)
        seen.add("n" + name.casefold(), tag)
        if name != plain:
            seen.add("u" + key, name)
            if plain_owner is None and plain_folded not in reserved:
                self._named_by_preference = True
        return name

    def _tag(self, key: str) -> str:
        """Which URL a name was given to: a keyed digest of its *key*, 64 bits."""
        tagger = self._tagger.copy()
        tagger.update(key.encode("utf-8", "surrogatepass"))
        return tagger.hexdigest()

    def _recorded(self, store: NameStore, base: str, key: str, url: str) -> str:
        if self._claiming is not None and base.casefold() not in self._reserved:
            # On a re-run, or a name no one has: all it takes (and the URL's state read with it).
            known = self._claiming.known_or_claim(base, key, state_key=redact(url))
        else:
            known = store.name_of(key)
        if known is not None and known.casefold() not in self._reserved and _comes_from(known, base):
            return known

        def taken(folded: str) -> bool:
            return folded in self._reserved or store.owner_of(folded) not in (None, key)

        for _ in range(_CLAIMS):
            name = _pick(key, base, taken)
            if store.claim(name, key) is not False:
                return name
            # Another process claimed it since it was looked up: now it is taken, so the next pick differs.
        raise StateError(f"the names for {base!r} were all taken by others as they were claimed, {_CLAIMS} times")


def _base(url: str, preferred: str | None) -> str:
    """The name *url* gets if no other URL has it: from the URL, or from its ``out=`` (*preferred*)."""
    return name_from_url(url) if preferred is None else safe_name(preferred)


def _pick(key: str, base: str, taken: Callable[[str], bool]) -> str:
    """*base*, or if it is *taken*, *base* with the first free suffix of the hashes of *key* (a ``name_key``).

    The key, not the URL as written: a hash of a password is not to be in a file name either.
    """
    name = base
    attempt = 0
    while taken(name.casefold()):
        if not attempt:
            stem, ext = _split(base)  # only for a name taken: most are not
        attempt += 1
        digest = hashlib.sha256(f"{key}#{attempt}".encode()).hexdigest()[:8]
        tail = f"-{digest}{ext}"
        name = _fit(stem, MAX_NAME_BYTES - len(tail.encode())) + tail
    return name


def _split(name: str) -> tuple[str, str]:
    stem, ext = os.path.splitext(name)
    if len(ext.encode()) > 16:
        return name, ""  # not really an extension; keep the suffix room small
    return stem, ext


_SUFFIXED = re.compile(r"(.*)-[0-9a-f]{8}", re.DOTALL)


def _comes_from(name: str, base: str) -> bool:
    """Whether _pick could have given *name* for *base*: *base* itself, or its stem (maybe cut) with a suffix."""
    if name == base:
        return True
    stem, ext = _split(base)
    if not name.endswith(ext):
        return False
    match = _SUFFIXED.fullmatch(name[: len(name) - len(ext)])
    return match is not None and stem.startswith(match.group(1))
