"""A module imported when first used, and what importing fetcher's command leaves out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fetcher._lazy import lazy_module


def test_a_lazy_module_is_imported_at_its_first_attribute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fetcher_lazy_probe.py").write_text("ANSWER = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fetcher_lazy_probe", raising=False)
    probe = lazy_module("fetcher_lazy_probe")
    assert "fetcher_lazy_probe" not in sys.modules
    assert probe.ANSWER == 42
    assert "fetcher_lazy_probe" in sys.modules


def test_importing_the_command_imports_neither_requests_nor_portalocker() -> None:
    # What a run in worker processes needs of neither: 0.1 s of its start (bench/README.md).
    code = "import sys, fetcher.cli.main; print(sorted({'requests', 'portalocker'} & set(sys.modules)))"
    told = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert told.stdout.strip() == "[]", told.stderr
