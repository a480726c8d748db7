"""Run the tests against the oldest version of each run-time dependency that pyproject.toml allows.

Run from the repository: ``python3 scripts/oldest_deps.py [PYTEST ARGS...]`` (Python 3.11 or newer, for
tomllib; the package index must be reachable).

CI installs the newest versions, so a lower bound that is too low goes unseen
there, and a user whose environment already holds an older click or requests
gets a traceback at start.  This script makes a fresh virtual environment in a
temporary folder, installs every ``name>=X`` of ``[project] dependencies`` and
of the extras but ``test`` (redis-py) as ``name==X``, with the project and its
test extra (the test tools at their newest), and runs pytest there.  Its exit
status is pytest's.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
_FLOOR = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*([0-9][^,;\s]*)\s*$")


def oldest_pins(dependencies: list[str]) -> list[str]:
    """``name==X`` for each ``name>=X``; any other form of requirement is refused."""
    pins = []
    for requirement in dependencies:
        match = _FLOOR.match(requirement)
        if match is None:
            raise SystemExit(f"oldest_deps: cannot pin {requirement!r}: only 'name>=X' is understood")
        pins.append(f"{match[1]}=={match[2]}")
    return pins


def main(pytest_args: list[str]) -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project.get("optional-dependencies", {})
    # The run-time extras too (redis-py for --redis); the test tools stay at their newest.
    run_time = [*project["dependencies"], *(each for name, group in extras.items() if name != "test" for each in group)]
    pins = oldest_pins(run_time)
    with tempfile.TemporaryDirectory(prefix="fetcher-oldest-") as folder:
        python = Path(folder) / "bin" / "python"
        subprocess.run([sys.executable, "-m", "venv", folder], check=True)
        # One resolution: the pins and the project together, so pip cannot upgrade a pin for the test extra.
        subprocess.run([str(python), "-m", "pip", "install", "-q", *pins, f"{ROOT}[test]"], check=True)
        print("oldest dependencies:", " ".join(pins), flush=True)
        tests = subprocess.run([str(python), "-m", "pytest", "-p", "no:cacheprovider", *pytest_args], cwd=ROOT)
        return tests.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
