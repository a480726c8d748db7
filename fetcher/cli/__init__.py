"""The ``fetcher`` command and what it draws; the library never imports this package."""

from __future__ import annotations

from .get import entry, main

__all__ = ["entry", "main"]
