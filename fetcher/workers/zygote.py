"""Starting worker processes by ``fork``: a copy of the process, made before a run starts, forks them on request.

A worker started afresh (``spawn.py``) imports Python, requests and fetcher
first: about 0.14 s of CPU each, and as long before it takes its first URL.
A forked one has them already, and is up in a few milliseconds.  But a
process that runs threads must not fork: a lock that another thread holds at
that instant stays held in the copy for good.  So ``Zygote.fork`` copies the
process when a ``Fetcher`` is made, before any thread of a run starts, and
that copy (single-threaded, doing nothing else) forks each worker when the
pool asks, and becomes the last worker itself (a process fewer to hold the
pages the parent changes afterwards: ~7 MiB of memory).  Where the copy
cannot be made safely, the pool starts workers afresh as before:

- another thread runs that is not one of fetcher's own (the embedding
  program's threads might hold any lock);
- the process is large (over ``_LARGE_MIB``): the copy would keep the
  pages the process goes on to change, and a big program changes many;
- not Linux (on macOS, system libraries are not safe to use after a fork).

It also forks, when asked, the process that reads a long list's file and
names its URLs (``_run/apart.py``): that one opens the state database,
which SQLite allows only in a process whose parent did not have it open
when it forked, and the copy is made before the state database is opened
(``_parts.py``).

The copy holds nothing of its parent's: it closes every inherited file
descriptor (the parent's files, sockets and folder locks must close when
the parent closes them), drops every logging handler, and never runs the
parent's code again: it and the workers end with ``os._exit``.  It ends when
its parent closes the socket to it, or dies.
"""

from __future__ import annotations

import gc
import logging
import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger("fetcher")

# A process bigger than this starts its workers afresh (see the module's docstring).
_LARGE_MIB = 256

# How often ``wait`` looks whether a forked worker has ended (it is not our child, so no waitpid).
_POLL_S = 0.01

# /proc/<pid>/comm of the copy and of each worker: what ps and top show.
ZYGOTE_NAME = "fetcher-forker"
WORKER_NAME = "fetcher-worker"
FEEDER_NAME = "fetcher-feeder"


class Zygote:
    """The parent's handle on its copy: ``start_worker`` asks it for one more worker process."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self._sock = sock
        self._pid = pid
        self._lock = threading.Lock()

    @classmethod
    def fork(cls) -> Zygote | None:
        """Copy this process now, if that is safe (see the module's docstring); None if not."""
        if not sys.platform.startswith("linux") or not _only_own_threads() or _resident_mib() > _LARGE_MIB:
            return None
        parent_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid = os.fork()
        except OSError as exc:
            log.debug("could not fork (%s): worker processes start afresh", exc)
            parent_end.close()
            zygote_end.close()
            return None
        if pid == 0:
            try:
                _serve(zygote_end)
            finally:
                os._exit(0)
        zygote_end.close()
        return cls(parent_end, pid)

    def start_worker(self, *, last: bool = False) -> ForkedWorker:
        """A new worker process and the parent's ends of its three pipes (control, tasks, results).

        *last*: the copy becomes this worker itself, and forks no more.  One process fewer: the
        pages that the copy alone still holds (those its parent has changed since) cost nothing more.
        """
        return self._request(b"l" if last else b"w", 3)

    def start_feeder(self) -> ForkedWorker:
        """A process for a long list's feeder (``_run/apart.py``), and the parent's ends of its two pipes
        (control: the parent writes; out: the parent reads).  OSError once the copy forks no more."""
        return self._request(b"f", 2)

    def _request(self, request: bytes, pipes: int) -> ForkedWorker:
        """Ask the copy for a process (*request*), and take its pid and the parent's ends of its *pipes*."""
        with self._lock:
            self._sock.sendall(request)
            message, fds, _, _ = socket.recv_fds(self._sock, 8, pipes)
        if len(message) != 8 or len(fds) != pipes:
            for fd in fds:
                os.close(fd)
            raise OSError("the process that forks workers has ended")
        for fd in fds:
            os.set_inheritable(fd, False)
        (pid,) = struct.unpack("=q", message)
        return ForkedWorker(pid, *fds)

    def close(self) -> None:
        """End the copy: it reads EOF, waits for its workers to end, and exits.

        Close the workers' pipes first.  Waiting for them here, parent of parent, adds their CPU time
        to this process's children's (what ``time`` and ``wait4`` report), as for workers started afresh.
        """
        self._sock.close()
        try:
            os.waitpid(self._pid, 0)
        except ChildProcessError:
            pass


class ForkedWorker:
    """A worker forked by the copy: what the pool needs of a process (its pid, poll, wait, kill)."""

    def __init__(self, pid: int, *fds: int) -> None:
        self.pid = pid
        self.fds = fds  # a worker's control, tasks and results; a feeder's control and out
        self.returncode: int | None = None

    def poll(self) -> int | None:
        # Not our child: no waitpid.  The copy reaps its workers only when it ends, so an ended
        # worker is a zombie ("Z") until then, or gone.
        if self.returncode is None:
            try:
                with open(f"/proc/{self.pid}/stat", "rb") as stat:
                    state = stat.read().rpartition(b")")[2].split()[0]
            except (OSError, IndexError):
                state = b"X"
            if state in (b"Z", b"X"):
                self.returncode = 0
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"worker process {self.pid}", timeout or 0.0)
            time.sleep(_POLL_S)
        return 0

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _only_own_threads() -> bool:
    """Whether every thread besides this one is fetcher's own (none of which the copy ever uses)."""
    here = threading.current_thread()
    return all(t is here or t.name.startswith("fetcher-") for t in threading.enumerate())


def _resident_mib() -> float:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        return float("inf")


def _serve(sock: socket.socket) -> None:
    """The copy: fork a worker for each request on *sock*, until it closes."""
    _name(ZYGOTE_NAME)
    _forget_parent(keep=sock.fileno())
    ignore_stop_signals()  # and each worker inherits it
    serve: Callable[..., None] | None = None
    feed: Callable[[int, int], None] | None = None
    while True:
        try:
            request = sock.recv(1)
        except OSError:
            request = b""
        if not request:  # the parent closed its end, or died
            _reap_all()
            return
        if request == b"f":
            if feed is None:
                from .._run.apart import serve as apart_serve  # once, as below

                feed = apart_serve
            control, out = os.pipe(), os.pipe()  # control: the feeder reads; out: it writes
            _fork(sock, FEEDER_NAME, feed, ours=(control[1], out[0]), theirs=(control[0], out[1]))
            continue
        if serve is None:
            # Once, at the first request, not at the top (child.py imports what imports this module) nor at
            # the fork: the parent need not have imported requests, and a Fetcher that never starts its
            # workers never pays for it.  Every worker forked below has it.
            from .child import serve as child_serve

            serve = child_serve
        ends = [os.pipe() for _ in range(3)]  # control and tasks: the worker reads; results: it writes
        ours = (ends[0][1], ends[1][1], ends[2][0])
        theirs = (ends[0][0], ends[1][0], ends[2][1])
        if request == b"l":
            _become_worker(sock, ours, theirs, serve)
            return
        _fork(sock, WORKER_NAME, serve, ours=ours, theirs=theirs)


def _fork(sock: socket.socket, name: str, serve: Callable[..., None], *, ours: tuple[int, ...],
          theirs: tuple[int, ...]) -> None:  # fmt: skip
    """Fork a process named *name* that runs *serve* on its ends of its pipes (*theirs*), and hand the parent
    its pid and the other ends (*ours*)."""
    pid = os.fork()
    if pid == 0:
        try:
            sock.close()
            for fd in ours:
                os.close(fd)
            _name(name)
            serve(*theirs)
        finally:
            os._exit(0)
    for fd in theirs:
        os.close(fd)  # only the process holds them: when it dies, the parent reads EOF
    _hand_over(sock, pid, ours)


def ignore_stop_signals() -> None:
    """The parent alone stops its runs (a Halt) and ends this process (it closes the pipe)."""
    # A Ctrl-C reaches every process of the terminal's group, and `timeout` signals its whole group:
    # dying of either would lose the downloads in flight and leave their partial files behind.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _become_worker(sock: socket.socket, ours: tuple[int, ...], theirs: tuple[int, ...],
                   serve: Callable[..., None]) -> None:
    """The copy's last request: be that worker, and at its end wait for the workers forked before.

    Waited for by it, their CPU time adds up into its parent's children's, as for workers started afresh.
    """
    _hand_over(sock, os.getpid(), ours)
    sock.close()
    _name(WORKER_NAME)
    try:
        serve(*theirs, at_end=_reap_all)
    finally:
        _reap_all()  # the worker ended before its start (its parent gone): serve() returns


def _hand_over(sock: socket.socket, pid: int, ours: tuple[int, ...]) -> None:
    """Send the parent worker *pid* and the parent's ends of its pipes, and close them here."""
    try:
        socket.send_fds(sock, [struct.pack("=q", pid)], list(ours))
    except OSError:
        pass  # the parent is gone: the worker reads EOF and ends, and so does the copy
    finally:
        for fd in ours:
            os.close(fd)


def _reap_all() -> None:
    """Wait until every worker this process forked has ended."""
    while True:
        try:
            os.wait()
        except ChildProcessError:
            return
        except InterruptedError:
            continue


def _forget_parent(keep: int) -> None:
    """Let go of everything the parent had open or set up, but *keep*."""
    # The parent's objects are never collected here: their finalizers would close file descriptor
    # numbers that this process may have reused for its pipes.
    gc.freeze()
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:
        pass
    for number in signal.valid_signals():
        try:
            if callable(signal.getsignal(number)):
                signal.signal(number, signal.SIG_DFL)
        except (OSError, ValueError, TypeError):
            pass
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, keep)
    os.closerange(keep + 1, _max_fd())
    sys.stdin = sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the process's for good
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        if isinstance(logger, logging.Logger):
            logger.handlers.clear()


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (OSError, ValueError):
        return 65536


def _name(name: str) -> None:
    """Set what ps and top show for this process."""
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(name)
    except OSError:
        pass
