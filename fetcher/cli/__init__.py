"""The ``fetcher`` command and what it draws; the library never imports this package."""

from __future__ import annotations

import os
import sys

from .exits import EXIT_INTERRUPTED

__all__ = ["entry"]


def entry() -> None:
    """The console script and ``python -m fetcher``.

    The command's modules are imported here, not when this package is: they take the first tenth of a
    second, and a Ctrl-C then ends the command with one line and exit 130, as it does later, not with
    Python's traceback of the import.
    """
    try:
        from .main import entry as run
    except KeyboardInterrupt:
        sys.stderr.write("fetcher: interrupted (Ctrl-C) before the run started\n")
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
    run()
