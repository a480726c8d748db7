"""fetcher: a polite, rate-limited concurrent downloader.

    from fetcher import Fetcher
    with Fetcher(max_concurrent=3, dest="rfcs", acquire_timeout=10) as fetcher:
        for result in fetcher.fetch(urls):      # results in input order
            print(result.url, result.status, result.path, result.total_s)

Everything public is exported here; the underscored modules are private.
"""

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._config import FetcherConfig
    from ._errors import (
        BodyError,
        ClosedError,
        ConfigError,
        DestinationError,
        DiskError,
        DownloadError,
        FetcherError,
        HTTPStatusError,
        StateError,
        TransportError,
        URLListError,
    )
    from ._fetcher import Fetcher, Stats, new_run_id
    from ._naming import Namer, safe_name
    from ._result import FIELDS, Result, Status, Tally
    from ._urllist import Entry, open_url_list
    from ._urls import check_url
    from ._version import __version__
    from .limits import Gate, HostPace, LocalGate, Slot
    from .report import ReportWriter
    from .transfer.checksum import Checksum
    from .transfer.outcome import Watcher

#: Where each public name lives.  Each is imported at its first use (PEP 562), not here: importing
#: one module of fetcher does not import them all, and the command can answer a Ctrl-C that comes
#: while it imports them (cli/__init__.py).
_SOURCES: dict[str, str] = {
    "FetcherConfig": "._config",
    "BodyError": "._errors",
    "ClosedError": "._errors",
    "ConfigError": "._errors",
    "DestinationError": "._errors",
    "DiskError": "._errors",
    "DownloadError": "._errors",
    "FetcherError": "._errors",
    "HTTPStatusError": "._errors",
    "StateError": "._errors",
    "TransportError": "._errors",
    "URLListError": "._errors",
    "Fetcher": "._fetcher",
    "Stats": "._fetcher",
    "new_run_id": "._fetcher",
    "Namer": "._naming",
    "safe_name": "._naming",
    "FIELDS": "._result",
    "Result": "._result",
    "Status": "._result",
    "Tally": "._result",
    "Entry": "._urllist",
    "open_url_list": "._urllist",
    "check_url": "._urls",
    "__version__": "._version",
    "Gate": ".limits",
    "HostPace": ".limits",
    "LocalGate": ".limits",
    "Slot": ".limits",
    "ReportWriter": ".report",
    "Checksum": ".transfer.checksum",
    "Watcher": ".transfer.outcome",
}


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'fetcher' has no attribute {name!r}")
    value = getattr(importlib.import_module(source, __name__), name)
    globals()[name] = value  # found directly from now on
    return value


# A library leaves output to the application: without a handler configured,
# nothing is printed (not even warnings, via logging's last resort).
logging.getLogger("fetcher").addHandler(logging.NullHandler())

__all__ = [
    "FIELDS",
    "BodyError",
    "Checksum",
    "ClosedError",
    "ConfigError",
    "DestinationError",
    "DiskError",
    "DownloadError",
    "Entry",
    "Fetcher",
    "FetcherConfig",
    "FetcherError",
    "Gate",
    "HostPace",
    "HTTPStatusError",
    "LocalGate",
    "Namer",
    "ReportWriter",
    "Result",
    "Slot",
    "StateError",
    "Stats",
    "Status",
    "Tally",
    "TransportError",
    "URLListError",
    "Watcher",
    "__version__",
    "check_url",
    "new_run_id",
    "open_url_list",
    "safe_name",
]


def __dir__() -> list[str]:
    """Only the public API (PEP 562): the submodules and helpers imported above are not part of it."""
    return sorted(__all__)
