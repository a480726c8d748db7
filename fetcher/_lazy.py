"""A module imported when first used, not when its importer is: ``lazy_module("portalocker")``.

portalocker costs about 30 ms to import (it reads its own package metadata), and most runs lock
with ``fcntl`` directly and use no shared slots, so they never need it.  Type checkers see the
real module: importers write ``if TYPE_CHECKING: import portalocker`` / ``else: portalocker =
lazy_module("portalocker")``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class lazy_module:  # noqa: N801 -- it stands in for a module name
    """Stands in for the module *name*: the first attribute asked for imports it."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attribute)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported when first used>"
