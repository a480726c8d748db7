"""Store: what a run asks of the state, whichever keeps it (StateStore: SQLite in DEST; RedisStateStore: a cluster's).

A run reads a URL's saved record before its first attempt (``saved_many``
ahead of the downloads, ``saved`` otherwise) and the partial file on record
(``partial``), and afterwards records the file it saved (``record_saved``,
which also forgets an older partial of the URL) or a partial worth resuming
(``record_partial``), or forgets one (``forget_partial``).  The Fetcher lists
the partials at start (``partials``, for the clean-up of DEST) and gives its
Namer ``names(dest)``.  Any method may raise StateError; the run treats that
as "nothing on record" (``state_call``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .records import Partial, Saved

if TYPE_CHECKING:
    from .._naming import NameStore


class Store(Protocol):
    """The state a Fetcher keeps: see the module docs."""

    def now(self) -> float: ...

    def saved(self, url: str) -> Saved | None: ...

    def saved_many(self, urls: list[str]) -> dict[str, Saved]: ...

    def record_saved(self, saved: Saved) -> None: ...

    def partial(self, url: str) -> Partial | None: ...

    def record_partial(self, partial: Partial) -> None: ...

    def forget_partial(self, url: str) -> None: ...

    def partials(self) -> list[Partial]: ...

    def names(self, folder: str | Path) -> NameStore: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...
