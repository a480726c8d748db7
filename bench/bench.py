"""Benchmark ``fetcher`` against urllib and requests scripts, parfive, curl, wget2 and aria2c.

Usage::

    python bench/bench.py [--runs 3] [--only a,b,c,d,e,f]
                          [--tools fetcher,urllib,requests,parfive,curl,wget2,aria2c]
                          [--json PATH] [--timeout 300] [--tmpdir DIR]
                          [--server builtin|nginx] [--scale-files 100000]
                          [--fetcher-args "..."]

A local HTTP/1.1 server (``bench/server.py``) runs in its own process on
127.0.0.1, so its CPU time is never charged to the client being measured. It
serves files generated into a temporary folder for six scenarios. With
``--server nginx``, (b), (c), (d) and (f) are served by nginx instead (a
minimal config written into the temporary folder, nginx run as a child
process, its master and worker charged to the server, not the client; for
(d), a second nginx counts the requests by status in its access log); (a)
and (e) need the built-in server's pacing and rate and always use it:

(a) concurrency-bound: 48 x 64 KiB files that the server paces so each response
    takes 1.0 s whatever the client does; ``--max 6``. The ideal wall time is
    48 / 6 x 1 s = 8 s, so the excess over 8 s is what the client's scheduling
    (and its start-up) costs.
(b) many small files: 2,000 x 2 KiB, ``--max 8``. Per-request overhead: CPU
    milliseconds per file matter most here.
(c) a few large files: 4 x 256 MiB, ``--max 4``, sent with ``sendfile``.
    Streaming throughput and memory: a client that buffers whole bodies shows
    up in peak memory.
(d) re-run: the 2,000 x 2 KiB list of (b), run twice into the same folder
    with the tool's re-run mode (the same command for fetcher, ``-N`` for
    wget2, ``--conditional-get`` for aria2c). The server answers validators
    (ETag, Last-Modified, 304), so the second run can be nearly free: its wall
    time, its requests by status (the goal: only 304s) and whether it wrote
    any file (inode, mtime or ctime changed) are shown next to the first run's.
(e) resume: one 256 MiB file that the server sends at 64 MiB/s. The tool
    is SIGKILLed once the server has sent 60 % of it, then run again with its
    resume flag (the same command for fetcher); shown: the bytes the server
    sent in the second run, its wall time, and whether the file's sha256 is
    right.
(f) scale: 100,000 x 2 KiB (``--scale-files N``), ``--max 8``: files per
    second, CPU ms per file and peak memory over a long list, served by nginx
    when it is installed (the built-in server otherwise). Downloads go to
    /dev/shm when ``--tmpdir`` is not given and it has room.

Each available tool downloads the same URL list into a fresh, empty folder
``--runs`` times (the tools take turns within each round, so slow drifts of the
machine hit all of them alike). For (a)-(c), every run measures:

* wall time, from spawning the tool to reaping it (start-up included: that is
  what a user waits for);
* CPU time, user + sys of the tool's process and every child it waited for
  (and theirs), from ``os.wait4``; a process the tool left behind, adopted by
  this script (a child subreaper), is reaped and counted too;
* peak memory, ``ru_maxrss`` from the same ``os.wait4``. The tool is launched
  through a tiny ``/bin/sh`` so that this script's own memory does not leak
  into the figure (see ``LAUNCHER``);
* the server's CPU time over the same interval, to spot a saturated server;
* in (b), the CPU that merely creating the 2,000 files costs in the same
  folder ("fs floor"): on some disks and VMs it dominates every tool's figure.

After each run every file is checked for presence and exact size; a run that
failed, timed out (``--timeout``, then killed) or produced wrong output is
counted as failed and shown as such, never silently mixed into the figures.
The run's output is then deleted and the disk synced, so (c) needs only the
served 1 GiB plus one run's 1 GiB. Temporary files go under ``--tmpdir``
(default ``$TMPDIR``, else ``/var/tmp``, which is disk-backed by convention);
``--tmpdir /dev/shm`` takes the disk out of the picture.

The tables report the MEDIAN of the successful runs of each figure: on a
small shared machine single runs are disturbed by writeback, scheduler and VM
noise, and the median ignores one such outlier where a mean would absorb it.
``--json PATH`` writes every run's raw figures as well.

A tool without a re-run or resume mode is shown as "n/a" in (d) or (e).
Hidden files (a dot first: fetcher's state database) are allowed in the
download folder in (d) and (e).
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import hashlib
import json
import os
import platform
import pwd
import select
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

BENCH_DIR = Path(__file__).resolve().parent
SERVER_SCRIPT = BENCH_DIR / "server.py"
URLLIB_SCRIPT = BENCH_DIR / "urllib_baseline.py"
REQUESTS_SCRIPT = BENCH_DIR / "requests_baseline.py"
PARFIVE_SCRIPT = BENCH_DIR / "parfive_baseline.py"
KIB = 1024
MIB = 1024 * KIB
PACE_SECONDS = 1.0
RATE = 64 * MIB  # bytes per second for (e), so its file takes ~4 s
KILL_AT = 0.6  # (e): the share of the file the server has sent when the tool is killed
ALL_TOOLS = ("fetcher", "urllib", "requests", "parfive", "curl", "wget2", "aria2c")
SCALE_FILES = 100_000  # (f)'s default list length


# --------------------------------------------------------------------------- #
# Scenarios
# --------------------------------------------------------------------------- #

@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    count: int
    size: int
    max_in_flight: int
    paced: bool = False
    many_files: bool = False  # report CPU per file and the file-creation floor
    kind: str = "download"  # "download": one run; "rerun" (d); "resume" (e)
    rated: bool = False  # sent at RATE bytes per second
    unique_blocks: bool = False  # no repeated MiB, so a misplaced resume shows in sha256
    scale: bool = False  # (f): report files per second
    nginx_ok: bool = False  # may be served by nginx (needs no pacing or rate)
    counted: bool = False  # needs the server's requests by status and body bytes
    skip: tuple[tuple[str, str], ...] = ()  # (tool, reason): not run here, shown as n/a

    @property
    def total_bytes(self) -> int:
        return self.count * self.size

    @property
    def ideal_s(self) -> float | None:
        """Best possible wall time when the server paces each response."""
        if not self.paced:
            return None
        waves = -(-self.count // self.max_in_flight)  # ceiling division
        return waves * PACE_SECONDS

    def names(self) -> list[str]:
        width = len(str(self.count))
        return [f"{self.key}-{i:0{width}d}.bin" for i in range(1, self.count + 1)]


SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario("a", "concurrency-bound: 48 x 64 KiB, each paced to 1.0 s by the server",
                 48, 64 * KIB, 6, paced=True),
        Scenario("b", "many small files: 2,000 x 2 KiB", 2000, 2 * KIB, 8, many_files=True,
                 nginx_ok=True),
        Scenario("c", "a few large files: 4 x 256 MiB (sendfile)", 4, 256 * MIB, 4,
                 nginx_ok=True),
        Scenario("d", "re-run: the 2,000 x 2 KiB list of (b), run twice into the same folder",
                 2000, 2 * KIB, 8, kind="rerun", nginx_ok=True, counted=True),
        Scenario("e", f"resume: 1 x 256 MiB sent at {RATE // MIB} MiB/s, SIGKILLed at "
                 f"{KILL_AT:.0%} sent, run again", 1, 256 * MIB, 1, kind="resume", rated=True,
                 unique_blocks=True),
        Scenario("f", f"scale: {SCALE_FILES:,} x 2 KiB", SCALE_FILES, 2 * KIB, 8,
                 many_files=True, scale=True, nginx_ok=True,
                 skip=(("urllib", "a thread per URL, one per file at once"),)),
    )
}


def scaled(scenario: Scenario, count: int) -> Scenario:
    """(f) with ``count`` files instead of the default."""
    return replace(scenario, count=count, title=f"scale: {count:,} x 2 KiB")


def generate_files(scenario: Scenario, www: Path) -> None:
    """Write the scenario's files of random bytes under ``www/<key>/``."""
    folder = www / scenario.key
    folder.mkdir(parents=True)
    block_size = min(scenario.size, MIB)
    for name in scenario.names():
        block = os.urandom(block_size)
        with open(folder / name, "wb") as f:
            for _ in range(scenario.size // block_size):
                f.write(block)
                if scenario.unique_blocks:
                    block = os.urandom(block_size)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def write_url_list(scenario: Scenario, base_url: str, path: Path) -> list[str]:
    urls = [f"{base_url}/{scenario.key}/{name}" for name in scenario.names()]
    path.write_text("".join(u + "\n" for u in urls))
    return urls


# --------------------------------------------------------------------------- #
# The server process
# --------------------------------------------------------------------------- #

class ServerProcess:
    """``bench/server.py`` in a child process; stopped at exit whatever happens."""

    name = "builtin"
    version = "bench/server.py"

    def __init__(self, root: Path, paced: list[str], log_path: Path,
                 rated: list[str] | None = None, host: str = "127.0.0.1",
                 log_requests: bool = False) -> None:
        cmd = [sys.executable, str(SERVER_SCRIPT), str(root),
               "--pace-seconds", str(PACE_SECONDS), "--rate", str(RATE), "--host", host]
        if log_requests:
            cmd.append("--log-requests")
        self.host = host
        for folder in paced:
            cmd += ["--paced", folder]
        for folder in rated or []:
            cmd += ["--rated", folder]
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log)
        atexit.register(self.stop)
        self.port = self._read_port(timeout=60.0)

    def _read_port(self, timeout: float) -> int:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode().strip() if ready else ""
        if not line.startswith("PORT "):
            self.stop()
            log = "\n".join(self.error_lines()[-20:])
            raise RuntimeError(f"the server did not start: {line!r}\n{log}")
        return int(line.split()[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.proc.pid)

    # No proxy: an http_proxy in the environment must not carry the bench's own polls.
    _opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def stats(self, reset: bool = False) -> ServerStats:
        """The server's counters since the last reset (then zeroed, if ``reset``)."""
        url = self.base_url + ("/__stats/reset" if reset else "/__stats")
        with self._opener.open(url, timeout=10) as response:
            figures = json.loads(response.read())
        return ServerStats(status={str(k): int(v) for k, v in figures["status"].items()},
                           body_bytes=int(figures["body_bytes"]))

    def request_log(self, reset: bool = False) -> list[tuple[float, float, str]]:
        """Each request's (start, end, path) since the last reset (needs ``log_requests``).

        The times are the server's ``time.monotonic()``, the same clock as ours.
        """
        url = self.base_url + ("/__log/reset" if reset else "/__log")
        with self._opener.open(url, timeout=10) as response:
            return [(float(a), float(b), str(c)) for a, b, c in json.loads(response.read())]

    def body_bytes(self) -> int:
        return self.stats().body_bytes

    def settle(self, timeout: float = 3.0) -> None:
        """Wait until the body byte counter stops moving (a killed client's last piece)."""
        deadline = time.monotonic() + timeout
        last = self.body_bytes()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.body_bytes()
            if now == last:
                return
            last = now

    def stop(self) -> None:
        if self.proc.poll() is None:
            if self.proc.stdin:
                self.proc.stdin.close()  # the server exits on stdin EOF...
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.terminate()  # ...or else is terminated, then killed
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
        self._log.close()

    def error_lines(self) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []


@dataclass(frozen=True)
class ServerStats:
    status: dict[str, int]  # requests by status code, e.g. {"304": 2000}
    body_bytes: int  # body bytes handed to the kernel


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (all threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (a /proc scan: works on any kernel)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:  # field 4 of stat: the parent
            found.append(int(entry.name))
    return found


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class NginxServer:
    """nginx serving ``root`` from a minimal config in ``work``; stopped at exit.

    One master and one worker, both children of this script and both charged
    to the server (``cpu_seconds``), never to the client. Keep-alive, sendfile
    and ETag/If-Modified-Since as nginx ships them. No access log, unless
    ``counted``: then each request's status and body bytes go to one, unbuffered,
    for ``stats`` (the counters of (d)). It has no pacing or rate, so only the
    scenarios that need neither use it.
    """

    name = "nginx"

    def __init__(self, root: Path, work: Path, host: str = "127.0.0.1", counted: bool = False) -> None:
        exe = find_nginx()
        if exe is None:
            raise RuntimeError("nginx is not installed")
        self.host, self.port = host, free_port(host)
        work.mkdir(parents=True, exist_ok=True)
        self.log_path = work / "error.log"
        # A master running as root would hand the work to "nobody", who cannot
        # read the 0700 temporary folder; the same user keeps the rusage simple too.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
        temp = "\n    ".join(f"{kind}_temp_path {work}/{kind};"
                              for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf = work / "nginx.conf"
        self._access_log = work / "access.log"
        self._counted_from = 0  # the access log's bytes read by the last reset
        access = (f"log_format counts '$status $body_bytes_sent';\n    access_log {self._access_log} counts;"
                  if counted else "access_log off;")
        # keepalive_requests: nginx closes a connection after 1000 requests by
        # default; the built-in server never does, and (f) is 100,000 requests.
        conf.write_text(f"""daemon off;
master_process on;
worker_processes 1;
{user}
pid {work}/nginx.pid;
error_log {self.log_path};
events {{ worker_connections 1024; }}
http {{
    default_type application/octet-stream;
    {access}
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    etag on;
    if_modified_since exact;
    {temp}
    server {{
        listen {host}:{self.port};
        root {root};
    }}
}}
""")
        self.version = (first_line_of([exe, "-v"]) or "nginx").split(": ", 1)[-1]
        self._out = open(work / "nginx.stdout", "wb")
        self.proc = subprocess.Popen([exe, "-e", str(self.log_path), "-p", str(work),
                                      "-c", str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=subprocess.STDOUT)
        atexit.register(self.stop)
        self._wait_listening(timeout=15.0)

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    if children_of(self.proc.pid):  # the worker is up
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        log = "\n".join(self.error_lines()[-20:])
        raise RuntimeError(f"nginx did not start on {self.host}:{self.port}\n{log}")

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def cpu_seconds(self) -> float:
        total = 0.0
        for pid in [self.proc.pid, *children_of(self.proc.pid)]:
            try:
                total += process_cpu_seconds(pid)
            except OSError:
                pass  # a worker that ended between the scan and the read
        return total

    def stats(self, reset: bool = False) -> ServerStats:
        """Requests by status and body bytes since the last reset, from the access log (``counted`` only).

        nginx writes a request's line once the response is sent, so the client may have
        read the last response first: the log is read until it stops growing for 50 ms.
        """
        lines: list[str] = []
        size = -1
        for _ in range(100):  # 5 s at most
            try:
                data = self._access_log.read_bytes()[self._counted_from:]
            except FileNotFoundError:
                data = b""
            if len(data) == size:
                break
            size = len(data)
            time.sleep(0.05)
        lines = data.decode("ascii", "replace").splitlines()
        status: dict[str, int] = {}
        body = 0
        for line in lines:
            code, _, sent = line.partition(" ")
            status[code] = status.get(code, 0) + 1
            body += int(sent or 0)
        if reset:
            self._counted_from += size
        return ServerStats(status=status, body_bytes=body)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: the master reaps its worker
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._out.close()

    def error_lines(self) -> list[str]:
        """The error log's alerts and errors (nginx logs notices at start and stop)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [ln for ln in lines if "[notice]" not in ln]


#: What the runs need of a server: bench/server.py in a child, or nginx.
Server = ServerProcess | NginxServer


# --------------------------------------------------------------------------- #
# Tools
# --------------------------------------------------------------------------- #

@dataclass(frozen=True)
class RunSpec:
    """Everything a tool needs for one run."""
    url_list: Path
    urls: list[str]
    max_in_flight: int
    dest: Path      # empty download folder: only the downloaded files go here
    run_dir: Path   # parent of dest: scratch space for reports, configs, logs


@dataclass(frozen=True)
class Tool:
    name: str
    available: bool
    version: str
    command: Callable[[RunSpec], list[str]]
    # (d) and (e): the command run twice; None shows the reason as "n/a: <reason>".
    rerun: Callable[[RunSpec], list[str]] | None = None
    resume: Callable[[RunSpec], list[str]] | None = None
    rerun_na: str = "no re-run mode"
    resume_na: str = "no resume mode"


def find_fetcher() -> str | None:
    beside_python = Path(sys.executable).parent / "fetcher"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which("fetcher")


def compile_fetcher(exe: str) -> str:
    """Compile the measured fetcher's modules, as ``pip install`` does; what was done, for the header.

    An editable install in an environment with PYTHONDONTWRITEBYTECODE set (or a
    read-only one) would otherwise compile every edited module again at each
    start: 0.1 s of CPU a run, which a user's installed fetcher never pays.
    """
    python = Path(exe).parent / "python"
    if not python.is_file():
        python = Path(sys.executable)
    # Run from "/": the current folder, first on the path of `python -c`, may hold another copy.
    where = first_line_of([str(python), "-c", "import fetcher, os; print(os.path.dirname(fetcher.__file__))"],
                          cwd="/")
    if not where:
        return "not compiled (its package was not found)"
    done = subprocess.run([str(python), "-m", "compileall", "-q", where], capture_output=True, timeout=120)
    return f"compiled ({where})" if done.returncode == 0 else f"not compiled (compileall exit {done.returncode})"


def first_line_of(cmd: list[str], cwd: str | None = None) -> str | None:
    """First output line of a quick command, or None if it fails."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if lines else ""


def fetcher_tool(extra: tuple[str, ...] = ()) -> Tool:
    """``extra``: --fetcher-args, added to every fetcher command (e.g. ``--workers 2``)."""
    exe = find_fetcher()

    def command(spec: RunSpec) -> list[str]:
        return [exe or "fetcher", str(spec.url_list), "--max", str(spec.max_in_flight),
                "--dest", str(spec.dest), "--no-progress", "--quiet",
                "--report", str(spec.run_dir / "report.jsonl"), *extra]

    if exe is None:
        return Tool("fetcher", False, "not installed", command)
    version = first_line_of([exe, "--version"])
    # fetcher keeps its state in DEST, so its re-run and its resume are the same command.
    return Tool("fetcher", True, version or f"{exe} (--version failed)", command,
                rerun=command, resume=command)


def urllib_tool() -> Tool:
    def command(spec: RunSpec) -> list[str]:
        return [sys.executable, str(URLLIB_SCRIPT), str(spec.url_list),
                str(spec.max_in_flight), str(spec.dest)]

    return Tool("urllib", True, f"Python {platform.python_version()} urllib.request, "
                "thread per URL + Semaphore", command)


def python_module_version(module: str) -> str | None:
    """``module.__version__`` as this Python imports it, or None if it cannot."""
    return first_line_of([sys.executable, "-c",
                          f"import {module}; print({module}.__version__)"])


def requests_tool() -> Tool:
    def command(spec: RunSpec) -> list[str]:
        return [sys.executable, str(REQUESTS_SCRIPT), str(spec.url_list),
                str(spec.max_in_flight), str(spec.dest)]

    version = python_module_version("requests")
    if version is None:
        return Tool("requests", False, "not installed", command)
    return Tool("requests", True, f"requests {version}, ThreadPoolExecutor, a Session per "
                "thread", command, rerun_na="it downloads every file again",
                resume_na="it downloads the file again")


def parfive_tool() -> Tool:
    def command(spec: RunSpec) -> list[str]:
        return [sys.executable, str(PARFIVE_SCRIPT), str(spec.url_list),
                str(spec.max_in_flight), str(spec.dest)]

    version = python_module_version("parfive")
    if version is None:
        return Tool("parfive", False, "not installed (pip install parfive)", command)
    aiohttp = python_module_version("aiohttp") or "?"
    # Re-run: files already present are skipped after a HEAD (overwrite=False).
    # No resume: a killed run's partial file would be skipped as if complete.
    return Tool("parfive", True, f"parfive {version} (aiohttp {aiohttp}), max_splits=1",
                command, rerun=command,
                resume_na="a partial file left by a kill is kept as if complete")


def curl_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def curl_tool() -> Tool:
    exe = shutil.which("curl")

    def command(spec: RunSpec) -> list[str]:
        # A config file (-K) keeps 2,000 URL/output pairs off the command line.
        # parallel-immediate: without it curl holds every transfer but one
        # until the first response shows whether the connection can multiplex
        # (an HTTP/2 feature), which costs a whole paced second in (a).
        # no-progress-meter: curl 7.88 --parallel draws its meter despite -s.
        lines = ["parallel", "parallel-immediate", f"parallel-max = {spec.max_in_flight}",
                 "silent", "show-error", "fail", "no-progress-meter"]
        for url in spec.urls:
            name = url.rsplit("/", 1)[-1]
            lines += [f"url = {curl_quote(url)}", f"output = {curl_quote(str(spec.dest / name))}"]
        config = spec.run_dir / "curl.cfg"
        config.write_text("\n".join(lines) + "\n")
        return [exe or "curl", "-K", str(config)]

    def resume(spec: RunSpec) -> list[str]:
        (url,) = spec.urls
        return [exe or "curl", "--silent", "--show-error", "--fail", "-C", "-",
                "-o", str(spec.dest / url.rsplit("/", 1)[-1]), url]

    if exe is None:
        return Tool("curl", False, "not installed", command)
    version = " ".join((first_line_of([exe, "--version"]) or "curl ?").split()[:2])
    help_all = subprocess.run([exe, "--help", "all"], capture_output=True, text=True).stdout
    if "--parallel-max" not in help_all:
        return Tool("curl", False, f"{version} has no --parallel (needs >= 7.66)", command)
    return Tool("curl", True, version, command, resume=resume,
                rerun_na="skipped: --etag-save/--etag-compare keep one file per URL")


def wget2_tool() -> Tool:
    exe = shutil.which("wget2")

    def command(spec: RunSpec) -> list[str]:
        return [exe or "wget2", "--no-config", "-q", "--progress=none", "--no-robots",
                "--no-directories", "--no-hsts", f"--max-threads={spec.max_in_flight}",
                "-i", str(spec.url_list), "-P", str(spec.dest)]

    if exe is None:
        return Tool("wget2", False, "not installed", command)
    version = (first_line_of([exe, "--version"]) or "wget2 ?").split(" - ")[0]
    # -N: If-Modified-Since from the local mtime (set from Last-Modified); -c: Range.
    return Tool("wget2", True, version, command, rerun=lambda spec: command(spec) + ["-N"],
                resume=lambda spec: command(spec) + ["-c"])


def aria2c_tool() -> Tool:
    exe = shutil.which("aria2c")

    def command(spec: RunSpec, auto_save: int = 0) -> list[str]:
        # -j N downloads at once, each over exactly one connection (-x 1 -s 1),
        # so it is N connections like every other tool here.
        return [exe or "aria2c", "--no-conf=true", "--quiet=true",
                "-i", str(spec.url_list), "-d", str(spec.dest),
                "-j", str(spec.max_in_flight), "-x", "1", "-s", "1",
                "--allow-overwrite=true", "--auto-file-renaming=false",
                "--file-allocation=none", f"--auto-save-interval={auto_save}"]

    def resume(spec: RunSpec) -> list[str]:
        # aria2c saves its .aria2 control file every 60 s by default, so a
        # run killed within a minute would start over; every second is fair.
        return command(spec, auto_save=1) + ["-c"]

    if exe is None:
        return Tool("aria2c", False, "not installed", command)
    version = first_line_of([exe, "--version"]) or "aria2 ?"
    return Tool("aria2c", True, version, command,
                rerun=lambda spec: command(spec) + ["--conditional-get=true"], resume=resume)


TOOL_FACTORIES: dict[str, Callable[[], Tool]] = {
    "fetcher": fetcher_tool,
    "urllib": urllib_tool,
    "requests": requests_tool,
    "parfive": parfive_tool,
    "curl": curl_tool,
    "wget2": wget2_tool,
    "aria2c": aria2c_tool,
}


# --------------------------------------------------------------------------- #
# Running and measuring one child
# --------------------------------------------------------------------------- #

@dataclass
class ChildResult:
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_mib: float
    exit_code: int
    timed_out: bool
    killed: bool = False  # by kill_when, on purpose
    strays: int = 0  # processes of the tool that outlived it, reaped and counted by us


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# Peak memory needs care: a child's ru_maxrss starts at its parent's peak RSS
# (Linux keeps the old address space's high-water mark across fork/vfork and
# exec), so a tool forked straight from this Python process would never show
# less than this process's own peak. Each tool is therefore started in the
# background by a tiny /bin/sh, which exits at once; the tool is re-parented
# to us (we are a "child subreaper") and we reap it with os.wait4 ourselves.
# Its ru_maxrss then has only sh's ~1 MiB under it.
LAUNCHER = 'out=$1; shift; "$@" >"$out" </dev/null & echo $!'
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux prctl); False where not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def process_group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def reap_strays(group: int) -> tuple[int, float, float, float]:
    """Reap the tool's processes that outlived it; (count, user s, sys s, max RSS KiB).

    wait4 on the tool already includes every child it waited for (and theirs).
    A worker it did not wait for is re-parented to us (the child subreaper)
    and still in its process group: it is waited for here, so its CPU counts
    as well; otherwise it would be lost, and left a zombie.
    """
    count, user, system, maxrss = 0, 0.0, 0.0, 0
    while strays := [p for p in children_of(os.getpid()) if process_group(p) == group]:
        for pid in strays:
            try:
                _, _, usage = os.wait4(pid, 0)
            except ChildProcessError:
                continue
            count += 1
            user, system = user + usage.ru_utime, system + usage.ru_stime
            maxrss = max(maxrss, usage.ru_maxrss)
    return count, user, system, maxrss


def spawn(cmd: list[str], stdout: Path, stderr: BinaryIO, via_shell: bool) -> tuple[int, int]:
    """Start ``cmd`` in a new process group; return (pid to reap, group id)."""
    if not via_shell:
        with open(stdout, "wb") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=stderr,
                                    start_new_session=True)
        proc.returncode = 0  # reaped by os.wait4 in run_child, not by Popen
        return proc.pid, proc.pid
    sh = subprocess.Popen(["/bin/sh", "-c", LAUNCHER, "sh", str(stdout), *cmd],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
                          start_new_session=True)
    pid_text, _ = sh.communicate(timeout=60)
    return int(pid_text), sh.pid


def run_child(cmd: list[str], stdout: Path, stderr: Path, timeout: float,
              via_shell: bool, kill_when: Callable[[], bool] | None = None) -> ChildResult:
    """Run ``cmd``; measure it with os.wait4; kill its process group past ``timeout``.

    With ``kill_when``, the group is also SIGKILLed as soon as ``kill_when()``
    is true (polled every 20 ms), as (e) does to interrupt a download.
    """
    timed_out, killed, reaped = threading.Event(), threading.Event(), threading.Event()
    with open(stderr, "wb") as err:
        start = time.perf_counter()
        pid, group = spawn(cmd, stdout, err, via_shell)

        def on_timeout() -> None:
            timed_out.set()
            kill_group(group)

        def watch() -> None:
            assert kill_when is not None
            while not reaped.wait(0.02):
                if kill_when():
                    killed.set()
                    kill_group(group)
                    return

        timer = threading.Timer(timeout, on_timeout)
        timer.start()
        watcher = threading.Thread(target=watch, daemon=True) if kill_when else None
        if watcher:
            watcher.start()
        try:
            _, status, usage = os.wait4(pid, 0)
            wall = time.perf_counter() - start
            strays, user, system, maxrss = reap_strays(group)  # still under the timeout
        except BaseException:
            kill_group(group)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass  # already reaped: the interruption came while reaping strays
            raise
        finally:
            timer.cancel()
            reaped.set()
            if watcher:
                watcher.join(10)
    return ChildResult(wall_s=wall, user_s=usage.ru_utime + user, sys_s=usage.ru_stime + system,
                       maxrss_mib=max(usage.ru_maxrss, maxrss) / 1024,  # KiB on Linux
                       exit_code=os.waitstatus_to_exitcode(status),
                       timed_out=timed_out.is_set(), killed=killed.is_set(), strays=strays)


#: fetcher's state database (and SQLite's -wal/-shm beside it) is part of its
#: job, not a stray file; a leftover partial file still counts as unexpected.
STATE_FILE_PREFIX = ".fetcher-state.db"


def check_output(dest: Path, names: list[str], size: int) -> list[str]:
    """Problems with the downloaded files; an empty list means all is right."""
    found: dict[str, int | None] = {}
    if dest.is_dir():
        for entry in os.scandir(dest):
            if entry.name.startswith(STATE_FILE_PREFIX):
                continue
            found[entry.name] = entry.stat().st_size if entry.is_file() else None
    missing = [n for n in names if n not in found]
    wrong = [n for n in names if n in found and found[n] != size]
    extra = sorted(set(found) - set(names))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if wrong:
        problems.append(f"{len(wrong)} wrong size (e.g. {wrong[0]}: {found[wrong[0]]} B)")
    if extra:
        problems.append(f"{len(extra)} unexpected (e.g. {extra[0]})")
    return problems


def file_creation_floor(folder: Path, count: int, size: int) -> float:
    """CPU seconds that merely creating ``count`` files of ``size`` bytes costs.

    Every tool pays this in scenario (b). It is a property of the file system
    (and on a VM it can swing several-fold within minutes), not of the
    downloader, so it is measured next to each (b) run and shown beside it.
    """
    probe = folder / "floor"
    probe.mkdir()
    data = os.urandom(size)
    try:
        before = time.thread_time()
        for i in range(count):
            with open(probe / f"{i}.bin", "wb") as f:
                f.write(data)
        return time.thread_time() - before
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class RunRecord:
    scenario: str
    tool: str
    run: int
    ok: bool
    wall_s: float
    cpu_s: float
    user_s: float
    sys_s: float
    maxrss_mib: float
    server_cpu_s: float
    exit_code: int
    timed_out: bool
    fs_floor_cpu_s: float | None = None  # (b) only: CPU to just create the files
    strays: int = 0  # processes the tool left running, reaped and counted by the bench
    # (d) and (e): wall_s, cpu_s, ... are the second run's; these describe the rest.
    first_wall_s: float | None = None
    second_status: dict[str, int] | None = None  # (d): the server's requests by status
    files_written: int | None = None  # (d): files whose inode, mtime or ctime changed
    first_bytes: int | None = None  # (e): body bytes the server sent before the kill
    second_bytes: int | None = None  # (e): body bytes the server sent in the second run
    sha256_ok: bool | None = None  # (e)
    problems: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    stderr_tail: str = ""


def run_once(tool: Tool, scenario: Scenario, run: int, url_list: Path, urls: list[str],
             server: Server, runs_root: Path, timeout: float,
             via_shell: bool) -> RunRecord:
    run_dir = runs_root / f"{scenario.key}-{tool.name}-{run}"
    dest = run_dir / "dest"
    dest.mkdir(parents=True)
    spec = RunSpec(url_list, urls, scenario.max_in_flight, dest, run_dir)
    cmd = tool.command(spec)
    try:
        floor = None
        if scenario.many_files:
            floor = file_creation_floor(run_dir, scenario.count, scenario.size)
        server_cpu_before = server.cpu_seconds()
        child = run_child(cmd, run_dir / "stdout.log", run_dir / "stderr.log", timeout,
                          via_shell)
        server_cpu = server.cpu_seconds() - server_cpu_before
        problems = check_output(dest, scenario.names(), scenario.size)
        if child.timed_out:
            problems.insert(0, f"timed out after {timeout:.0f} s, killed")
        elif child.exit_code != 0:
            problems.insert(0, f"exit code {child.exit_code}")
        record = RunRecord(
            scenario=scenario.key, tool=tool.name, run=run, ok=not problems,
            wall_s=child.wall_s, cpu_s=child.user_s + child.sys_s, user_s=child.user_s,
            sys_s=child.sys_s, maxrss_mib=child.maxrss_mib, server_cpu_s=server_cpu,
            exit_code=child.exit_code, timed_out=child.timed_out, fs_floor_cpu_s=floor,
            strays=child.strays, problems=problems, command=cmd)
        if problems:
            record.stderr_tail = tail(run_dir / "stderr.log") or tail(run_dir / "stdout.log")
        return record
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        os.sync()  # flush this run's writeback so it does not slow the next run


def file_identities(dest: Path) -> dict[str, tuple[int, int, int]]:
    """(inode, mtime_ns, ctime_ns) of each visible file: any change means it was written."""
    out = {}
    for entry in os.scandir(dest):
        if not entry.name.startswith("."):
            st = entry.stat()
            out[entry.name] = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
    return out


def run_problems(label: str, child: ChildResult, timeout: float,
                 problems: list[str]) -> list[str]:
    if child.timed_out:
        problems.insert(0, f"timed out after {timeout:.0f} s, killed")
    elif child.exit_code != 0:
        problems.insert(0, f"exit code {child.exit_code}")
    return [f"{label}: {p}" for p in problems]


def two_runs_setup(tool: Tool, command: Callable[[RunSpec], list[str]], scenario: Scenario,
                   run: int, url_list: Path, urls: list[str],
                   runs_root: Path) -> tuple[Path, Path, list[str]]:
    """(d) and (e): the run folder, its download folder and the command run twice."""
    run_dir = runs_root / f"{scenario.key}-{tool.name}-{run}"
    dest = run_dir / "dest"
    dest.mkdir(parents=True)
    return run_dir, dest, command(RunSpec(url_list, urls, scenario.max_in_flight, dest, run_dir))


def second_run(cmd: list[str], run_dir: Path, dest: Path, scenario: Scenario,
               server: Server, timeout: float,
               via_shell: bool) -> tuple[ChildResult, float, ServerStats, list[str]]:
    """Run 2 of (d) or (e): the child, the server's CPU and counters, the problems."""
    server_cpu_before = server.cpu_seconds()
    child = run_child(cmd, run_dir / "stdout.log", run_dir / "stderr.log", timeout, via_shell)
    server_cpu = server.cpu_seconds() - server_cpu_before
    stats = server.stats(reset=True)
    problems = run_problems("run 2", child, timeout,
                            check_output(dest, scenario.names(), scenario.size))
    return child, server_cpu, stats, problems


def two_runs_record(tool: Tool, scenario: Scenario, run: int, cmd: list[str], run_dir: Path,
                    first: ChildResult, second: ChildResult, server_cpu: float,
                    problems: list[str], **extra: Any) -> RunRecord:
    """The record of (d) or (e): the second run's figures, and ``extra`` for the rest."""
    record = RunRecord(
        scenario=scenario.key, tool=tool.name, run=run, ok=not problems,
        wall_s=second.wall_s, cpu_s=second.user_s + second.sys_s, user_s=second.user_s,
        sys_s=second.sys_s, maxrss_mib=second.maxrss_mib, server_cpu_s=server_cpu,
        exit_code=second.exit_code, timed_out=second.timed_out, problems=problems,
        command=cmd, first_wall_s=first.wall_s, **extra)
    if problems:
        record.stderr_tail = tail(run_dir / "stderr.log") or tail(run_dir / "stderr1.log")
    return record


def run_rerun(tool: Tool, scenario: Scenario, run: int, url_list: Path, urls: list[str],
              server: Server, runs_root: Path, timeout: float,
              via_shell: bool) -> RunRecord:
    """(d): the tool's re-run command twice into one folder; the second run is measured."""
    assert tool.rerun is not None
    run_dir, dest, cmd = two_runs_setup(tool, tool.rerun, scenario, run, url_list, urls,
                                        runs_root)
    try:
        first = run_child(cmd, run_dir / "stdout1.log", run_dir / "stderr1.log", timeout,
                          via_shell)
        problems = run_problems("run 1", first, timeout,
                                check_output(dest, scenario.names(), scenario.size))
        before = file_identities(dest)
        server.stats(reset=True)
        second, server_cpu, stats, more = second_run(cmd, run_dir, dest, scenario, server,
                                                      timeout, via_shell)
        written = sum(1 for name, ident in file_identities(dest).items()
                      if before.get(name) != ident)
        return two_runs_record(tool, scenario, run, cmd, run_dir, first, second, server_cpu,
                               problems + more, second_status=stats.status,
                               files_written=written)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        os.sync()


def run_resume(tool: Tool, scenario: Scenario, run: int, url_list: Path, urls: list[str],
               server: ServerProcess, runs_root: Path, timeout: float, via_shell: bool,
               expected_sha256: str) -> RunRecord:
    """(e): start the tool, SIGKILL it at KILL_AT of the file sent, run it again."""
    assert tool.resume is not None
    run_dir, dest, cmd = two_runs_setup(tool, tool.resume, scenario, run, url_list, urls,
                                        runs_root)
    kill_at = int(scenario.size * KILL_AT)
    try:
        server.stats(reset=True)
        first = run_child(cmd, run_dir / "stdout1.log", run_dir / "stderr1.log", timeout,
                          via_shell, kill_when=lambda: server.body_bytes() >= kill_at)
        server.settle()  # the killed download's last piece must not count for run 2
        first_bytes = server.stats(reset=True).body_bytes
        problems = [] if first.killed else [
            f"run 1: not killed ({'timed out' if first.timed_out else 'it ended first'}, "
            f"exit code {first.exit_code})"]
        second, server_cpu, stats, more = second_run(cmd, run_dir, dest, scenario, server,
                                                      timeout, via_shell)
        target = dest / scenario.names()[0]
        sha_ok = target.is_file() and sha256_of(target) == expected_sha256
        return two_runs_record(tool, scenario, run, cmd, run_dir, first, second, server_cpu,
                               problems + more, first_bytes=first_bytes,
                               second_bytes=stats.body_bytes, sha256_ok=sha_ok)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        os.sync()


# --------------------------------------------------------------------------- #
# Reporting
# --------------------------------------------------------------------------- #

def median_of(records: list[RunRecord], attr: str) -> float:
    return float(statistics.median(getattr(r, attr) for r in records))


def notes_for(scenario: Scenario, ok: list[RunRecord], total: int) -> str:
    notes = []
    if ok:
        wall = median_of(ok, "wall_s")
        if scenario.ideal_s:
            over = (wall / scenario.ideal_s - 1) * 100
            notes.append(f"{over:+.1f}% vs ideal {scenario.ideal_s:.0f} s")
        if scenario.many_files:
            per_file = median_of(ok, "cpu_s") * 1000 / scenario.count
            floor = statistics.median(r.fs_floor_cpu_s or 0 for r in ok) * 1000 / scenario.count
            notes.append(f"{per_file:.2f} ms CPU/file (fs floor {floor:.2f})")
        if not scenario.paced and not scenario.many_files:
            notes.append(f"{scenario.total_bytes / MIB / wall:,.0f} MiB/s")
        busy = median_of(ok, "server_cpu_s") / wall
        if busy > 0.8:
            notes.append(f"server busy {busy:.0%} of a core")
        strays = max(r.strays for r in ok)
        if strays:
            notes.append(f"left {strays} process(es) running, reaped and counted")
    if len(ok) < total:
        notes.append(f"FAILED {total - len(ok)}/{total} runs")
    return "; ".join(notes)


def format_table(headers: list[str], rows: list[list[str]],
                 right: frozenset[int] = frozenset({1, 2, 3, 4})) -> str:
    """``right``: the numeric columns, aligned right."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return " | ".join(c.rjust(w) if i in right else c.ljust(w)
                          for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    sep = "-+-".join("-" * w for w in widths)
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def scenario_table(scenario: Scenario, tools: list[Tool], records: list[RunRecord],
                   context: str = "") -> str:
    """(a)-(c) and (f); ``context``: the server, fetcher's extra arguments, the load."""
    if scenario.scale:
        return scale_table(scenario, tools, records, context)
    headers = ["tool", "wall s", "CPU s", "peak MiB", "srv CPU s", "notes"]
    rows = []
    skipped = dict(scenario.skip)
    for tool in tools:
        mine = [r for r in records if r.scenario == scenario.key and r.tool == tool.name]
        ok = [r for r in mine if r.ok]
        if not tool.available:
            rows.append([tool.name, "-", "-", "-", "-", tool.version])
        elif tool.name in skipped:
            rows.append([tool.name, "-", "-", "-", "-", f"n/a: {skipped[tool.name]}"])
        elif not ok:
            rows.append([tool.name, "FAILED", "-", "-", "-", notes_for(scenario, ok, len(mine))])
        else:
            rows.append([tool.name, f"{median_of(ok, 'wall_s'):.2f}",
                         f"{median_of(ok, 'cpu_s'):.2f}", f"{median_of(ok, 'maxrss_mib'):.1f}",
                         f"{median_of(ok, 'server_cpu_s'):.2f}",
                         notes_for(scenario, ok, len(mine))])
    title = (f"({scenario.key}) {scenario.title}; --max {scenario.max_in_flight}"
             + (f"; ideal {scenario.ideal_s:.0f} s" if scenario.ideal_s else ""))
    table = title + context_lines(context) + "\n" + format_table(headers, rows)
    if scenario.many_files:
        table += ("\nfs floor: ms of CPU per file that a bare Python loop spends just "
                  f"creating and writing\nthe {scenario.count:,} files in the same folder, "
                  "measured right before each run (every tool pays it).")
        table += server_ceiling(scenario, records)
    return table


def context_lines(context: str) -> str:
    return "".join("\n  " + line for line in context.splitlines())


def server_ceiling(scenario: Scenario, records: list[RunRecord]) -> str:
    """How many requests a second the server could serve on one core, from curl's runs."""
    ok = [r for r in records if r.scenario == scenario.key and r.tool == "curl" and r.ok]
    if not ok or median_of(ok, "server_cpu_s") <= 0:
        return ""
    per_request = median_of(ok, "server_cpu_s") / scenario.count
    return (f"\nserver ceiling: {per_request * 1e6:.0f} µs of server CPU per request in "
            f"curl's runs, so one core serves about {1 / per_request:,.0f} files/s.")


def scale_table(scenario: Scenario, tools: list[Tool], records: list[RunRecord],
                context: str = "") -> str:
    """(f): files per second, CPU per file (every process of the tool), peak memory."""
    headers = ["tool", "wall s", "files/s", "CPU s", "CPU ms/file", "peak MiB", "srv CPU s",
               "notes"]
    rows = []
    skipped = dict(scenario.skip)
    for tool in tools:
        mine = [r for r in records if r.scenario == scenario.key and r.tool == tool.name]
        ok = [r for r in mine if r.ok]
        reason = (tool.version if not tool.available
                  else f"n/a: {skipped[tool.name]}" if tool.name in skipped else None)
        if reason is not None:
            rows.append([tool.name, *["-"] * 6, reason])
        elif not ok:
            rows.append([tool.name, "FAILED", *["-"] * 5, f"FAILED {len(mine)}/{len(mine)} runs"])
        else:
            wall, cpu = median_of(ok, "wall_s"), median_of(ok, "cpu_s")
            floor = statistics.median(r.fs_floor_cpu_s or 0 for r in ok) * 1000 / scenario.count
            notes = [f"fs floor {floor:.2f} ms/file"]
            busy = median_of(ok, "server_cpu_s") / wall
            if busy > 0.8:
                notes.append(f"server busy {busy:.0%} of a core")
            strays = max(r.strays for r in ok)
            if strays:
                notes.append(f"left {strays} process(es) running, reaped and counted")
            if len(ok) < len(mine):
                notes.append(f"FAILED {len(mine) - len(ok)}/{len(mine)} runs")
            rows.append([tool.name, f"{wall:.2f}", f"{scenario.count / wall:,.0f}",
                         f"{cpu:.2f}", f"{cpu * 1000 / scenario.count:.2f}",
                         f"{median_of(ok, 'maxrss_mib'):.1f}",
                         f"{median_of(ok, 'server_cpu_s'):.2f}", "; ".join(notes)])
    title = f"({scenario.key}) {scenario.title}; --max {scenario.max_in_flight}"
    return (title + context_lines(context) + "\n"
            + format_table(headers, rows, frozenset({1, 2, 3, 4, 5, 6}))
            + "\nCPU: user + sys of every process of the tool (os.wait4: the children it "
            "waited for included);\npeak MiB: the largest one process's peak RSS. fs floor: "
            "as in (b)." + server_ceiling(scenario, records))


def status_summary(status: dict[str, int] | None) -> str:
    """``{"304": 2000}`` -> ``2000 x 304``, most frequent first."""
    items = sorted((status or {}).items(), key=lambda kv: -kv[1])
    return ", ".join(f"{n} x {code}" for code, n in items) or "none"


def same_or_each(values: list[str]) -> str:
    """One value when every run agrees, else each run's, separated by " / "."""
    return values[0] if len(set(values)) == 1 else " / ".join(values)


def two_runs_rows(scenario: Scenario, tools: list[Tool], records: list[RunRecord],
                  columns: int, na_reason: Callable[[Tool], str | None],
                  figures: Callable[[list[RunRecord]], tuple[list[str], bool]],
                  tool_notes: dict[str, str] | None = None) -> list[list[str]]:
    """Table rows of (d) or (e): ``figures(ok runs)`` gives the cells and whether the goal is met."""
    rows = []
    for tool in tools:
        mine = [r for r in records if r.scenario == scenario.key and r.tool == tool.name]
        ok = [r for r in mine if r.ok]
        reason = tool.version if not tool.available else na_reason(tool)
        if reason is not None:
            rows.append([tool.name, *["-"] * (columns - 2), reason])
        elif not ok:
            rows.append([tool.name, "FAILED", *["-"] * (columns - 3),
                         f"FAILED {len(mine)}/{len(mine)} runs"])
        else:
            cells, met = figures(ok)
            notes = ["meets the goal" if met else "misses the goal"]
            if tool_notes and tool.name in tool_notes:
                notes.append(tool_notes[tool.name])
            if len(ok) < len(mine):
                notes.append(f"FAILED {len(mine) - len(ok)}/{len(mine)} runs")
            rows.append([tool.name, *cells, "; ".join(notes)])
    return rows


def rerun_table(scenario: Scenario, tools: list[Tool], records: list[RunRecord],
                context: str = "") -> str:
    headers = ["tool", "run 1 s", "run 2 s", "2 / 1", "run 2 CPU s", "run 2 requests",
               "files written", "notes"]

    def figures(ok: list[RunRecord]) -> tuple[list[str], bool]:
        first, second = median_of(ok, "first_wall_s"), median_of(ok, "wall_s")
        met = (all(r.second_status == {"304": scenario.count} for r in ok)
               and all(r.files_written == 0 for r in ok) and second < first / 2)
        return [f"{first:.2f}", f"{second:.2f}", f"{second / first:.0%}",
                f"{median_of(ok, 'cpu_s'):.2f}",
                same_or_each([status_summary(r.second_status) for r in ok]),
                same_or_each([f"{r.files_written:,}" for r in ok])], met

    rows = two_runs_rows(scenario, tools, records, len(headers),
                         lambda t: None if t.rerun else f"n/a: {t.rerun_na}", figures)
    title = f"({scenario.key}) {scenario.title}; --max {scenario.max_in_flight}"
    goal = (f"goal: run 2 sends only conditional requests ({scenario.count:,} x 304), "
            "writes no file, and takes under half of run 1's wall time")
    return (title + context_lines(context) + "\n"
            + format_table(headers, rows, frozenset({1, 2, 3, 4, 6})) + "\n" + goal)


def resume_table(scenario: Scenario, tools: list[Tool], records: list[RunRecord],
                 context: str = "") -> str:
    headers = ["tool", "run 1 s", "sent before kill", "run 2 s", "run 2 sent", "sha256",
               "notes"]

    def figures(ok: list[RunRecord]) -> tuple[list[str], bool]:
        share = median_of(ok, "second_bytes") / scenario.size
        met = share < 0.5 and all(r.sha256_ok for r in ok)
        return [f"{median_of(ok, 'first_wall_s'):.2f}",
                f"{median_of(ok, 'first_bytes') / scenario.size:.0%}",
                f"{median_of(ok, 'wall_s'):.2f}",
                f"{median_of(ok, 'second_bytes') / MIB:,.1f} MiB ({share:.0%})",
                same_or_each(["ok" if r.sha256_ok else "MISMATCH" for r in ok])], met

    rows = two_runs_rows(scenario, tools, records, len(headers),
                         lambda t: None if t.resume else f"n/a: {t.resume_na}", figures,
                         {"aria2c": "--auto-save-interval=1 (default 60 s)"})
    title = f"({scenario.key}) {scenario.title}"
    goal = ("goal: run 2 transfers under half of the file (counted at the server), "
            "and the result is byte-exact")
    return (title + context_lines(context) + "\n"
            + format_table(headers, rows, frozenset({1, 2, 3, 4})) + "\n" + goal)


def failure_report(records: list[RunRecord]) -> str:
    blocks = []
    for r in records:
        if r.ok:
            continue
        block = [f"({r.scenario}) {r.tool} run {r.run}: {'; '.join(r.problems)}",
                 "  command: " + " ".join(r.command)]
        if r.stderr_tail:
            block += ["  stderr (last lines):"] + ["    " + ln for ln in r.stderr_tail.splitlines()]
        blocks.append("\n".join(block))
    return "\n".join(blocks)


def project_commit() -> str:
    """The checkout's git commit, and whether fetcher/ differs from it."""
    repo = str(BENCH_DIR.parent)
    commit = first_line_of(["git", "-C", repo, "rev-parse", "--short=10", "HEAD"])
    if not commit:
        return "unknown (not a git checkout)"
    status = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--", "fetcher"],
                            capture_output=True, text=True).stdout.strip()
    return commit + (" (fetcher/ has uncommitted changes)" if status else "")


def machine_info(tools: list[Tool]) -> dict[str, object]:
    cpu_model = "unknown"
    mem_gib = 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / MIB
                break
    except OSError:
        pass
    return {
        "project_commit": project_commit(),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "ram_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "tools": {t.name: t.version for t in tools},
    }


def print_machine(info: dict[str, object]) -> None:
    print(f"machine: {info['nproc']} CPUs ({info['cpu_model']}), {info['ram_gib']} GiB RAM, "
          f"Linux {info['kernel']}, Python {info['python']}")
    print(f"project commit: {info['project_commit']}")
    loads = info.get("load_average")
    if isinstance(loads, list):
        print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in loads))
    tools = info["tools"]
    assert isinstance(tools, dict)
    for name, version in tools.items():
        print(f"  {name:8} {version}")
    if info.get("fetcher_args"):
        print(f"fetcher args: {info['fetcher_args']}")
    if info.get("fetcher_bytecode"):
        print(f"fetcher bytecode: {info['fetcher_bytecode']}")
    print()


# --------------------------------------------------------------------------- #
# Main
# --------------------------------------------------------------------------- #

def default_tmp_base() -> Path:
    """$TMPDIR, else /var/tmp: on disk by convention (/tmp is a tmpfs on many systems)."""
    if os.environ.get("TMPDIR"):
        return Path(os.environ["TMPDIR"])
    var_tmp = Path("/var/tmp")
    if var_tmp.is_dir() and os.access(var_tmp, os.W_OK):
        return var_tmp
    return Path(tempfile.gettempdir())


def parse_list(text: str, allowed: tuple[str, ...] | list[str], what: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [x for x in items if x not in allowed]
    if unknown or not items:
        raise argparse.ArgumentTypeError(
            f"unknown {what}: {', '.join(unknown) or '(none)'}; choose from {', '.join(allowed)}")
    return items


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per tool and scenario")
    parser.add_argument("--only", default=",".join(k for k in SCENARIOS if k != "f"),
                        type=lambda s: parse_list(s, list(SCENARIOS), "scenario"),
                        help="scenarios to run, e.g. a,c (default: a,b,c,d,e; "
                             "(f) only when asked for)")
    parser.add_argument("--tools", default=",".join(ALL_TOOLS),
                        type=lambda s: parse_list(s, ALL_TOOLS, "tool"),
                        help=f"tools to compare (default: {','.join(ALL_TOOLS)})")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds before a tool run is killed and counted as failed")
    parser.add_argument("--tmpdir", type=Path, default=None,
                        help="where to put served files and downloads, needs ~2.1 GiB "
                             f"for (c) (default: {default_tmp_base()}, and /dev/shm for (f) "
                             "when it has room)")
    parser.add_argument("--server", choices=("builtin", "nginx"), default=None,
                        help="who serves (b), (c) and (f); (a), (d) and (e) always use the "
                             "built-in server (default: builtin, and nginx for (f) when "
                             "installed)")
    parser.add_argument("--scale-files", type=int, default=SCALE_FILES,
                        help="number of 2 KiB files in (f) (default: %(default)s)")
    parser.add_argument("--fetcher-args", default="",
                        help='extra arguments for every fetcher run, e.g. "--workers 2"')
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(argv[:-1]):
        if arg == "--fetcher-args":  # its value starts with "-", which argparse would refuse
            argv[i:i + 2] = [f"--fetcher-args={argv[i + 1]}"]
            break
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 50:
        parser.error("--runs must be between 1 and 50")
    if not 1 <= args.scale_files <= 10_000_000:
        parser.error("--scale-files must be between 1 and 10000000")
    if args.tmpdir is not None and not args.tmpdir.is_dir():
        parser.error(f"--tmpdir {args.tmpdir}: no such folder")
    if args.server == "nginx" and find_nginx() is None:
        parser.error("--server nginx: nginx is not installed (apt-get install -y nginx)")
    try:
        args.fetcher_args = tuple(shlex.split(args.fetcher_args))
    except ValueError as exc:
        parser.error(f"--fetcher-args: {exc}")
    return args


def exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks


def server_kind(scenario: Scenario, choice: str | None) -> str:
    """builtin or nginx: (f) prefers nginx, whose ceiling is far above any client's."""
    if not scenario.nginx_ok:
        return "builtin"
    if choice is None:
        return "nginx" if scenario.scale and find_nginx() else "builtin"
    return choice


def shm_has_room(scenario: Scenario) -> bool:
    """Room in /dev/shm for the served files, one run's copy and the fs floor's probe."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        return False
    per_file = max(scenario.size, os.sysconf("SC_PAGE_SIZE"))  # tmpfs: a page at least
    return shutil.disk_usage(shm).free > 3 * scenario.count * per_file + 256 * MIB


def scenario_base(scenario: Scenario, tmpdir: Path | None) -> Path:
    if tmpdir is not None:
        return tmpdir
    if scenario.scale and shm_has_room(scenario):
        return Path("/dev/shm")
    return default_tmp_base()


def load_average() -> float:
    return os.getloadavg()[0]


def file_system(path: Path) -> str:
    """The file system *path* is on, as "(ext4)", "(tmpfs)" or "(ext4 without a journal: ...)"; "" if unknown.

    An ext4 made without a journal skips, for every new inode, each inode of
    its group deleted in the last minute (six, while its block is unwritten),
    reading each one's deletion time first: so creating files soon after
    deleting many costs CPU that grows with the number deleted, and processes
    that create files in one folder at once spin on the folder's lock
    meanwhile (Linux, fs/ext4/ialloc.c, ``recently_deleted``).  Each (b) run
    follows the deletion of the last run's files and of the fs floor's, so
    on such a disk the figures measure the deletions as much as the tool
    (bench/README.md, "files on disk").
    """
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return ""
    where, best = str(path.resolve()), None
    for line in mounts:
        fields = line.split()
        point = fields[4].replace("\\040", " ")
        dash = fields.index("-")
        inside = where == point or where.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, fields[dash + 1], fields[dash + 2])
    if best is None:
        return ""
    _, kind, source = best
    if kind == "ext4":
        device = os.path.basename(source)
        journals = os.listdir("/proc/fs/jbd2") if os.path.isdir("/proc/fs/jbd2") else []
        if not any(name.rsplit("-", 1)[0] == device for name in journals):
            return ("(ext4 without a journal: creating files soon after deleting many costs more CPU, "
                    "see bench/README.md)")
    return f"({kind})"


def speed_probe() -> float:
    """CPU ms of a fixed pure-Python loop: this VM's speed swings by 2x over hours."""
    best = float("inf")
    for _ in range(3):
        start = time.thread_time()
        total = 0
        for i in range(1_000_000):
            total += i
        best = min(best, time.thread_time() - start)
    return best * 1000


class Places:
    """Work folders (one per base folder) and the servers over them, stopped at the end."""

    def __init__(self) -> None:
        self.works: dict[Path, Path] = {}
        self.servers: dict[tuple[str, Path, bool], Server] = {}

    def work(self, base: Path) -> Path:
        if base not in self.works:
            work = Path(tempfile.mkdtemp(prefix="fetcher-bench-", dir=base))
            atexit.register(shutil.rmtree, work, ignore_errors=True)
            self.works[base] = work
        return self.works[base]

    def server(self, kind: str, work: Path, scenarios: list[Scenario], counted: bool = False) -> Server:
        """The ``kind`` server over ``work/www``, started at its first use; an nginx that counts its requests
        (for (d)) apart from the one that does not, so that no other scenario's server writes a log."""
        key = (kind, work, counted and kind == "nginx")
        if key not in self.servers:
            www = work / "www"
            if kind == "nginx":
                self.servers[key] = NginxServer(www, work / ("nginx-counted" if counted else "nginx"), counted=counted)
            else:
                present = [s for s in scenarios if (www / s.key).is_dir()]
                self.servers[key] = ServerProcess(
                    www, [s.key for s in present if s.paced], work / "server.log",
                    rated=[s.key for s in present if s.rated])
        return self.servers[key]

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()
            errors = server.error_lines()
            if errors:
                print(f"{server.name} server reported {len(errors)} error line(s), last ones:",
                      file=sys.stderr)
                print("\n".join("  " + ln for ln in errors[-10:]), file=sys.stderr)
        for work in self.works.values():
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    signal.signal(signal.SIGHUP, exit_on_sigterm)

    tools = [fetcher_tool(args.fetcher_args) if name == "fetcher" else TOOL_FACTORIES[name]()
             for name in args.tools]
    scenarios = [scaled(SCENARIOS[key], args.scale_files) if key == "f" else SCENARIOS[key]
                 for key in args.only]
    info = machine_info(tools)
    info["fetcher_args"] = " ".join(args.fetcher_args)
    exe = find_fetcher()
    if "fetcher" in args.tools and exe is not None:
        info["fetcher_bytecode"] = compile_fetcher(exe)
    print_machine(info)
    via_shell = become_subreaper() and Path("/bin/sh").exists()
    if not via_shell:
        print("note: cannot become a child subreaper; peak MiB includes this script's "
              "own peak RSS as a floor", file=sys.stderr)

    records: list[RunRecord] = []
    contexts: dict[str, dict[str, object]] = {}
    places = Places()
    try:
        for scenario in scenarios:
            print(f"generating files for ({scenario.key}) ...", file=sys.stderr, flush=True)
            generate_files(scenario, places.work(scenario_base(scenario, args.tmpdir)) / "www")
        os.sync()

        for scenario in scenarios:
            work = places.work(scenario_base(scenario, args.tmpdir))
            kind = server_kind(scenario, args.server)
            server = places.server(kind, work, scenarios, counted=scenario.counted)
            url_list = work / f"urls-{scenario.key}.txt"
            urls = write_url_list(scenario, server.base_url, url_list)
            expected = (sha256_of(work / "www" / scenario.key / scenario.names()[0])
                        if scenario.kind == "resume" else "")
            load_before, probe_before = load_average(), speed_probe()
            skipped = dict(scenario.skip)
            for run in range(1, args.runs + 1):
                for tool in (t for t in tools if t.available and t.name not in skipped):
                    if scenario.kind == "rerun" and tool.rerun:
                        record = run_rerun(tool, scenario, run, url_list, urls, server,
                                           work / "runs", args.timeout, via_shell)
                    elif scenario.kind == "resume" and tool.resume:
                        assert isinstance(server, ServerProcess)
                        record = run_resume(tool, scenario, run, url_list, urls, server,
                                            work / "runs", args.timeout, via_shell, expected)
                    elif scenario.kind == "download":
                        record = run_once(tool, scenario, run, url_list, urls, server,
                                          work / "runs", args.timeout, via_shell)
                    else:
                        continue  # no such mode: shown as n/a
                    records.append(record)
                    status = "ok" if record.ok else "FAILED: " + "; ".join(record.problems)
                    print(f"  ({scenario.key}) run {run}/{args.runs} {tool.name:8} "
                          f"{record.wall_s:7.2f} s  {status}", file=sys.stderr, flush=True)
            context = {"server": f"{server.name} ({server.version})",
                       "files_in": f"{work.parent} {file_system(work.parent)}".rstrip(),
                       "fetcher_args": " ".join(args.fetcher_args),
                       "load_before": load_before, "load_after": load_average(),
                       "probe_ms_before": probe_before, "probe_ms_after": speed_probe()}
            contexts[scenario.key] = context
            text = (f"server: {context['server']}"
                    + ("" if kind == args.server or args.server is None
                       else " (this scenario needs the built-in server's pacing or rate)")
                    + f"; files in {context['files_in']}\n"
                    + (f"fetcher args: {context['fetcher_args']}\n" if args.fetcher_args else "")
                    + f"load average (1 min): {load_before:.2f} before, "
                    f"{context['load_after']:.2f} after; speed probe (CPU ms of a fixed "
                    f"Python loop): {probe_before:.0f} before, "
                    f"{context['probe_ms_after']:.0f} after")
            table = {"rerun": rerun_table, "resume": resume_table}.get(scenario.kind,
                                                                     scenario_table)
            print(table(scenario, tools, records, text) + "\n", flush=True)
    finally:
        places.close()

    failures = failure_report(records)
    if failures:
        print("failed runs:\n" + failures)
    if args.json:
        payload = {"machine": info, "runs_per_tool": args.runs,
                   "scenarios": {s.key: asdict(s) for s in scenarios},
                   "contexts": contexts,
                   "runs": [asdict(r) for r in records]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
