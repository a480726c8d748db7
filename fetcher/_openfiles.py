"""The process's limit on open files: read by the sessions (how many idle connections they keep, transfer/session.py)
and raised by the command (cli/main.py).

Here, not in either: the command must not import requests to raise it.
"""

from __future__ import annotations

#: The limit assumed where the system cannot tell (no ``resource`` module: Windows).
ASSUMED_LIMIT = 1024

#: What an unlimited soft limit counts as.
UNLIMITED = 1 << 20


def soft_limit() -> int:
    """This process's soft limit on open files."""
    try:
        import resource
    except ImportError:  # Windows
        return ASSUMED_LIMIT
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return UNLIMITED if soft == resource.RLIM_INFINITY else soft


def raise_soft_limit(wanted: int) -> None:
    """Raise this process's soft limit on open files to *wanted*, as far as the hard limit allows; never lower it.

    Most systems start a process at 1,024 open files (macOS at 256), far below
    the hard limit (systemd's is 524,288), for old programs that use
    ``select()``; fetcher uses none.  Processes started after inherit it.
    """
    try:
        import resource
    except ImportError:  # Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):  # refused (a sandbox): the sessions keep fewer hosts' connections
            pass
