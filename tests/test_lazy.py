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


def test_importing_the_command_imports_no_http_client_nor_what_only_some_runs_need() -> None:
    # What a run in worker processes does not need here: 0.1 s of its start (bench/README.md).
    unneeded = {"requests", "urllib3", "http.client", "ssl", "idna", "email.utils", "portalocker", "tqdm"}
    # Nor what only some options and commands need: 12 ms of every start (bench/README.md, stop 34).
    unneeded |= {"multiprocessing", "tempfile", "shutil", "fractions", "decimal", "fetcher.limits.shared",
                 "fetcher.limits.redis", "fetcher.workers.pool", "fetcher.workers.wire", "subprocess"}  # fmt: skip
    # What click imports is not ours to spare: on Python 3.10 its uuid imports platform, and that subprocess.
    code = (f"import sys, click; before = set(sys.modules); import fetcher.cli.main; "
            f"print(sorted(set({sorted(unneeded)!r}) & (set(sys.modules) - before)))")  # fmt: skip
    told = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert told.stdout.strip() == "[]", told.stderr
