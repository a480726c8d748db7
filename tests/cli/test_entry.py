"""The console script's entry (``fetcher/cli/__init__.py``): a Ctrl-C while the command is still importing."""

from __future__ import annotations

import subprocess
import sys

# The command, with a Ctrl-C arriving while it imports its modules (as one does in its first tenth of a second).
_INTERRUPTED_WHILE_IMPORTING = """
import builtins
real = builtins.__import__
def interrupted(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 1 and name == "main" and (globals or {}).get("__name__") == "fetcher.cli":
        raise KeyboardInterrupt
    return real(name, globals, locals, fromlist, level)
builtins.__import__ = interrupted
from fetcher.cli import entry
entry()
"""


def test_a_ctrl_c_while_the_command_imports_is_one_line_and_exit_130() -> None:
    ended = subprocess.run([sys.executable, "-c", _INTERRUPTED_WHILE_IMPORTING], capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    assert ended.returncode == 130
    assert ended.stderr == "fetcher: interrupted (Ctrl-C) before the run started\n"
