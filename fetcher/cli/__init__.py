"""The ``fetcher`` command and what it draws; the library never imports this package."""

from __future__ import annotations

from .main import entry

__all__ = ["entry"]
