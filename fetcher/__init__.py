"""fetcher: a polite, rate-limited concurrent downloader.

    from fetcher import Fetcher
    with Fetcher(max_concurrent=3, dest="rfcs", acquire_timeout=10) as fetcher:
        for result in fetcher.fetch(urls):      # results in input order
            print(result.url, result.status, result.path, result.total_s)

Everything public is exported here; the underscored modules are private.
"""

import logging

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
from .limits import Gate, LocalGate, Slot
from .report import ReportWriter
from .transfer.checksum import Checksum
from .transfer.outcome import Watcher

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
