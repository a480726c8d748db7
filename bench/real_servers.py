"""Check fetcher's re-runs and resumes against real web servers on loopback.

Usage::

    python bench/real_servers.py [--servers nginx,apache2,lighttpd,caddy,http.server,squid]
                                 [--big-mib 64] [--rate-mib 16] [--tmpdir DIR] [--keep]

For each server that is installed, the script writes a minimal configuration
into a temporary folder (listening on 127.0.0.1 only, on a free port, logging
only into that folder), serves a folder of test files, runs the checks below
with the installed ``fetcher`` command, prints one row per server per check and
stops the server.  ``squid`` is a forward proxy (no cache) in front of nginx,
reached through ``http_proxy``.  The exit status is 1 if any check failed.

Checks:

1. first run of 20 small files + 1 large one: all ``ok``, byte-exact, each
   file's mtime equal to the server's Last-Modified;
2. immediate second run: all ``unchanged``, no file rewritten (inode, mtime),
   and the server's access log shows only 304s;
3. one file changed on the server: that one ``ok`` with the new bytes, the
   others ``unchanged``;
4. resume: the large file, sent slowly, SIGKILLed at ~60 %, run again:
   ``resumed_from`` > 0, byte-exact, and the server sent < 50 % of the file
   in the second run;
5. resume after the file changed between the kill and the re-run: the result
   is the new file exactly (If-Range fails, the server sends it whole);
6. (apache) a file replaced less than a second before the request gets a weak
   ETag: what the re-run and a resume do.

Servers without a rate limit of their own (caddy, http.server) are slowed by
a relay in this script that forwards the server's bytes at the same rate; the
server still sees every request.  Standard library only, plus ``fetcher``
(looked for next to ``sys.executable``, then on PATH).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SERVERS = ("nginx", "apache2", "lighttpd", "caddy", "http.server", "squid")
SMALL = 20
#: What Apache and lighttpd log of each request after its status and body bytes (which they write
#: differently): the path, the range and validators it sent, and the ETag answered.
_LOGGED_FIELDS = ('\\"%U\\" \\"%{Range}i\\" \\"%{If-Range}i\\" \\"%{If-None-Match}i\\" '
                  '\\"%{If-Modified-Since}i\\" \\"%{ETag}o\\"')

PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy",
              "NO_PROXY")


# -- small helpers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], limit_s: float = 15.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with status {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"not listening on {port} after {limit_s:.0f} s")


def sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def write_file(path: Path, size: int, mtime: float | None) -> None:
    """Random bytes into *path*, replaced whole (a new inode, as a deploy does)."""
    tmp = path.with_name(path.name + ".new")
    with tmp.open("wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(os.urandom(n))
            left -= n
    os.chmod(tmp, 0o644)
    if mtime is not None:
        os.utime(tmp, (mtime, mtime))
    os.replace(tmp, path)


def find_fetcher() -> str:
    beside = Path(sys.executable).parent / "fetcher"
    if beside.exists():
        return str(beside)
    found = shutil.which("fetcher")
    if found is None:
        sys.exit("fetcher is not installed next to this Python nor on PATH")
    return found


# -- a throttling relay, for servers that cannot slow themselves ----------------------------------------


class Relay:
    """127.0.0.1:port -> upstream, server-to-client bytes paced at *rate* B/s and counted."""

    def __init__(self, upstream: int, rate: float) -> None:
        self.upstream, self.rate = upstream, rate
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.sent = 0
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, paced: bool) -> None:
        began, moved = time.monotonic(), 0
        try:
            while data := src.recv(65536):
                if paced:
                    moved += len(data)
                    with self._lock:
                        self.sent += len(data)
                    ahead = moved / self.rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self) -> None:
        self._closed = True
        self.sock.close()


# -- servers --------------------------------------------------------------------------------------------


@dataclass
class LogLine:
    status: int
    bytes: int | None
    path: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Server:
    """One running server: its base URL, the slow base URL, its access log and how to read it."""

    name: str
    base: str
    slow_base: str
    access_log: Path | None
    parse: Callable[[str], LogLine | None]
    procs: list[subprocess.Popen[bytes]]
    relay: Relay | None = None
    proxy: str | None = None
    log_note: str = ""

    def log_mark(self) -> int:
        return self.access_log.stat().st_size if self.access_log and self.access_log.exists() else 0

    def settle(self, limit_s: float = 15.0) -> None:
        """Wait until the access log stops growing: servers log after the response, lighttpd buffers."""
        quiet_s = 2.5 if self.name == "lighttpd" else 0.4
        if self.name == "lighttpd":
            # lighttpd 1.4.69 holds log lines in a buffer for as long as it likes (one run's lines
            # were still missing after 2.5 s of quiet, about one time in two); SIGHUP ("logfiles
            # cycled") writes them out and reopens the same file.
            for proc in self.procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + limit_s
        size, since = self.log_mark(), time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
            time.sleep(0.1)
            now = self.log_mark()
            if now != size:
                size, since = now, time.monotonic()

    def log_since(self, mark: int) -> list[LogLine]:
        if self.access_log is None or not self.access_log.exists():
            return []
        self.settle()
        with self.access_log.open("rb") as f:
            f.seek(mark)
            text = f.read().decode("utf-8", "replace")
        return [line for line in map(self.parse, text.splitlines()) if line is not None]

    def stop(self) -> None:
        if self.relay is not None:
            self.relay.close()
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)


HEADER_NAMES = ("range", "if-range", "if-none-match", "if-modified-since", "etag")
# status bytes "path" "Range" "If-Range" "If-None-Match" "If-Modified-Since" "ETag (response)"
_TEXT_LOG = re.compile(r'^(\d{3}) (\S+) "([^"]*)"' + r' "([^"]*)"' * 5)


def parse_text_log(line: str) -> LogLine | None:
    # nginx writes a quote inside a field as \x22, apache and lighttpd as \"; shown here as '.
    m = _TEXT_LOG.match(line.strip().replace("\\x22", "'").replace('\\"', "'"))
    if m is None:
        return None
    size = None if m[2] in ("-", "") else int(m[2])
    values = [v if v not in ("-", "") else "" for v in m.groups()[3:]]
    return LogLine(int(m[1]), 0 if size is None else size, m[3], dict(zip(HEADER_NAMES, values, strict=True)))


def parse_caddy_log(line: str) -> LogLine | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    if "request" not in rec:
        return None
    req = rec["request"].get("headers", {})
    resp = rec.get("resp_headers", {})

    def one(d: dict[str, list[str]], k: str) -> str:
        return ",".join(d.get(k, []))

    headers = {
        "range": one(req, "Range"), "if-range": one(req, "If-Range"), "if-none-match": one(req, "If-None-Match"),
        "if-modified-since": one(req, "If-Modified-Since"), "etag": one(resp, "Etag"),
    }  # fmt: skip
    return LogLine(int(rec.get("status", 0)), int(rec.get("size", 0)), rec["request"].get("uri", ""), headers)


_PY_LOG = re.compile(r'"GET (\S+) HTTP/1\.[01]" (\d{3})')


def parse_python_log(line: str) -> LogLine | None:
    m = _PY_LOG.search(line)
    return None if m is None else LogLine(int(m[2]), None, m[1])


def spawn(argv: list[str], work: Path, name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    out = (work / f"{name}.stdout").open("ab")
    return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=work, env=env, start_new_session=True)


def start_nginx(work: Path, doc: Path, rate: int) -> Server:
    port = free_port()
    (work / "tmp").mkdir()
    conf = work / "nginx.conf"
    conf.write_text(f"""
daemon off;
master_process on;
worker_processes 1;
user nobody nogroup;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 256; }}
http {{
    types {{ application/octet-stream bin; text/plain txt; }}
    default_type application/octet-stream;
    log_format f '$status $body_bytes_sent "$uri" "$http_range" "$http_if_range" "$http_if_none_match" '
                 '"$http_if_modified_since" "$sent_http_etag"';
    access_log {work}/access.log f;
    client_body_temp_path {work}/tmp/body; proxy_temp_path {work}/tmp/proxy;
    fastcgi_temp_path {work}/tmp/fcgi; uwsgi_temp_path {work}/tmp/uwsgi; scgi_temp_path {work}/tmp/scgi;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        root {doc};
        location /slow/ {{ alias {doc}/; limit_rate {rate}; }}
    }}
}}
""")
    proc = spawn(["nginx", "-e", str(work / "error.log"), "-p", str(work), "-c", str(conf)], work, "nginx")
    wait_listening(port, proc)
    base = f"http://127.0.0.1:{port}"
    return Server("nginx", base, base + "/slow", work / "access.log", parse_text_log, [proc])


def start_apache(work: Path, doc: Path, rate: int) -> Server:
    port = free_port()
    mods = "/usr/lib/apache2/modules"
    loads = "\n".join(
        f"LoadModule {m}_module {mods}/mod_{m}.so"
        for m in ("mpm_event", "authz_core", "alias", "ratelimit", "env")
    )
    conf = work / "apache2.conf"
    conf.write_text(f"""
{loads}
ServerRoot {work}
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {work}/apache2.pid
DefaultRuntimeDir {work}
Mutex file:{work} default
ErrorLog {work}/error.log
User www-data
Group www-data
LogFormat "%>s %B {_LOGGED_FIELDS}" f
CustomLog {work}/access.log f
DocumentRoot {doc}
<Directory {doc}>
    Require all granted
</Directory>
Alias /slow/ {doc}/
<Location /slow/>
    SetOutputFilter RATE_LIMIT
    SetEnv rate-limit {rate // 1024}
</Location>
""")
    proc = spawn(["apache2", "-f", str(conf), "-DFOREGROUND"], work, "apache2")
    wait_listening(port, proc)
    base = f"http://127.0.0.1:{port}"
    return Server("apache2", base, base + "/slow", work / "access.log", parse_text_log, [proc])


def start_lighttpd(work: Path, doc: Path, rate: int) -> Server:
    port = free_port()
    conf = work / "lighttpd.conf"
    conf.write_text(f"""
server.modules = ("mod_access", "mod_alias", "mod_accesslog")
server.document-root = "{doc}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{work}/error.log"
server.pid-file = "{work}/lighttpd.pid"
mimetype.assign = (".bin" => "application/octet-stream", ".txt" => "text/plain")
accesslog.filename = "{work}/access.log"
accesslog.format = "%s %b {_LOGGED_FIELDS}"
$HTTP["url"] =~ "^/slow/" {{
    alias.url = ("/slow/" => "{doc}/")
    connection.kbytes-per-second = {rate // 1024}
}}
""")
    proc = spawn(["lighttpd", "-D", "-f", str(conf)], work, "lighttpd")
    wait_listening(port, proc)
    base = f"http://127.0.0.1:{port}"
    return Server("lighttpd", base, base + "/slow", work / "access.log", parse_text_log, [proc])


def start_caddy(work: Path, doc: Path, rate: int) -> Server:
    port = free_port()
    conf = work / "Caddyfile"
    conf.write_text(f"""{{
    admin off
    auto_https off
}}
http://127.0.0.1:{port} {{
    bind 127.0.0.1
    root * {doc}
    file_server
    log {{
        output file {work}/access.log
        format json
    }}
}}
""")
    # HOME and XDG_*: caddy keeps its storage there; keep it out of system places.
    env = dict(os.environ, HOME=str(work), XDG_DATA_HOME=str(work / "data"), XDG_CONFIG_HOME=str(work / "config"))
    proc = spawn(["caddy", "run", "--config", str(conf), "--adapter", "caddyfile"], work, "caddy", env)
    wait_listening(port, proc)
    relay = Relay(port, rate)
    return Server(
        "caddy", f"http://127.0.0.1:{port}", f"http://127.0.0.1:{relay.port}", work / "access.log",
        parse_caddy_log, [proc], relay=relay, log_note="slowed by the script's relay (caddy has no rate limit)",
    )  # fmt: skip


def start_python(work: Path, doc: Path, rate: int) -> Server:
    port = free_port()
    python = shutil.which("python3") or sys.executable
    argv = [python, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(doc)]
    proc = spawn(argv, work, "access")
    wait_listening(port, proc)
    relay = Relay(port, rate)
    return Server(
        "http.server", f"http://127.0.0.1:{port}", f"http://127.0.0.1:{relay.port}", work / "access.stdout",
        parse_python_log, [proc], relay=relay,
        log_note="no byte counts in its log: bytes counted by the relay; slowed by the relay",
    )  # fmt: skip


def start_squid(work: Path, doc: Path, rate: int) -> Server:
    (work / "nginx").mkdir()
    upstream = start_nginx(work / "nginx", doc, rate)
    port = free_port()
    os.chmod(work, 0o777)  # squid drops to its own user before it opens its logs
    conf = work / "squid.conf"
    conf.write_text(f"""
http_port 127.0.0.1:{port}
acl localhost src 127.0.0.1/32
http_access allow localhost
http_access deny all
cache deny all
cache_mem 0 MB
access_log stdio:{work}/squid-access.log
cache_log {work}/cache.log
cache_store_log none
pid_filename {work}/squid.pid
coredump_dir {work}
shutdown_lifetime 0 seconds
""")
    proc = spawn(["squid", "-N", "-f", str(conf)], work, "squid")
    try:
        wait_listening(port, proc)
    except Exception:
        upstream.stop()
        raise
    upstream.name = "squid"
    upstream.procs.append(proc)
    upstream.proxy = f"http://127.0.0.1:{port}"
    upstream.log_note = "squid (no cache) in front of nginx; figures from nginx's log"
    return upstream


STARTERS: dict[str, tuple[str, Callable[[Path, Path, int], Server]]] = {
    "nginx": ("nginx", start_nginx),
    "apache2": ("apache2", start_apache),
    "lighttpd": ("lighttpd", start_lighttpd),
    "caddy": ("caddy", start_caddy),
    "http.server": ("python3", start_python),
    "squid": ("squid", start_squid),
}


# -- running fetcher ------------------------------------------------------------------------------------


@dataclass
class Run:
    rc: int
    records: dict[str, dict[str, object]]
    seconds: float


class Client:
    def __init__(self, fetcher: str, work: Path, server: Server) -> None:
        self.fetcher, self.work, self.server = fetcher, work, server
        self.count = 0
        self.env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
        if server.proxy:
            self.env["http_proxy"] = server.proxy

    def _argv(self, urls: list[str], dest: Path) -> tuple[list[str], Path]:
        self.count += 1
        listing = self.work / f"list-{self.count}.txt"
        listing.write_text("".join(u + "\n" for u in urls))
        report = self.work / f"report-{self.count}.jsonl"
        argv = [self.fetcher, str(listing), "--dest", str(dest), "--max", "4", "--quiet", "--no-progress",
                "--report", str(report)]  # fmt: skip
        return argv, report

    def run(self, urls: list[str], dest: Path, timeout: float = 300) -> Run:
        argv, report = self._argv(urls, dest)
        began = time.monotonic()
        proc = subprocess.run(argv, env=self.env, capture_output=True, timeout=timeout, check=False)
        return Run(proc.returncode, _records(report), time.monotonic() - began)

    def run_and_kill(self, url: str, dest: Path, size: int, fraction: float = 0.6, limit_s: float = 120) -> float:
        """Start fetching *url*, SIGKILL fetcher once its partial file holds *fraction* of *size*; the fraction."""
        argv, _ = self._argv([url], dest)
        proc = subprocess.Popen(argv, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + limit_s
        got = 0
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                got = max((p.stat().st_size for p in dest.glob(".fetcher-*.part")), default=0)
                if got >= fraction * size:
                    break
                time.sleep(0.02)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
        return got / size


def _records(report: Path) -> dict[str, dict[str, object]]:
    if not report.exists():
        return {}
    # The report's first line is the run's own record (0.2.1): only URL records have a "url".
    return {rec["url"]: rec for rec in map(json.loads, report.read_text().splitlines()) if "url" in rec}


# -- the checks -----------------------------------------------------------------------------------------


@dataclass
class Row:
    server: str
    check: str
    verdict: str  # pass, FAIL, n/a, not installed, error
    figures: str


def lm_seconds(path: Path) -> int:
    return int(path.stat().st_mtime)  # Last-Modified has whole seconds


def check_server(name: str, args: argparse.Namespace, fetcher: str, root: Path) -> list[Row]:
    binary, starter = STARTERS[name]
    if shutil.which(binary) is None:
        return [Row(name, "-", "not installed", f"`{binary}` not found")]
    work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
    doc, dest = work / "doc", work / "dest"
    for d in (work, doc):
        d.mkdir(exist_ok=True)
        os.chmod(d, 0o755)
    big_size = args.big_mib << 20
    old = time.time() - 3600
    names = [f"f{i:02d}.bin" for i in range(SMALL)]
    for i, n in enumerate(names):
        write_file(doc / n, 1000 + 3001 * i, int(old) + i)
    write_file(doc / "big.bin", big_size, int(old))
    try:
        server = starter(work, doc, args.rate_mib << 20)
    except Exception as exc:  # a server that will not start is a row, not a crash
        return [Row(name, "-", "error", f"did not start: {exc}; see {work}")]
    rows: list[Row] = []
    try:
        rows = Checks(name, server, Client(fetcher, work, server), doc, dest, names, big_size).all()
    except Exception as exc:
        rows.append(Row(name, "-", "error", f"{type(exc).__name__}: {exc}"))
    finally:
        server.stop()
    if not args.keep and all(r.verdict in ("pass", "n/a") for r in rows):
        shutil.rmtree(work, ignore_errors=True)
    elif rows:
        rows[-1].figures += f" (files kept in {work})"
    return rows


class Checks:
    def __init__(self, name: str, server: Server, client: Client, doc: Path, dest: Path,
                 names: list[str], big_size: int) -> None:  # fmt: skip
        self.name, self.server, self.client, self.doc, self.dest = name, server, client, doc, dest
        self.names, self.big_size = names, big_size
        self.urls = [f"{server.base}/{n}" for n in names] + [f"{server.base}/big.bin"]
        self.rows: list[Row] = []

    def row(self, check: str, ok: bool, figures: str, na: bool = False) -> None:
        self.rows.append(Row(self.name, check, "n/a" if na else ("pass" if ok else "FAIL"), figures))

    def all(self) -> list[Row]:
        for step in (self.first, self.second, self.changed, self.resume, self.resume_changed, self.weak_etag):
            step()
        return self.rows

    def _exact(self, names: list[str]) -> list[str]:
        """Names whose local copy differs from the server's, in bytes or in mtime."""
        bad = []
        for n in names:
            local, remote = self.dest / n, self.doc / n
            if not local.exists() or sha(local) != sha(remote) or int(local.stat().st_mtime) != lm_seconds(remote):
                bad.append(n)
        return bad

    def _statuses(self, run: Run) -> dict[str, int]:
        counts: dict[str, int] = {}
        for rec in run.records.values():
            counts[str(rec["status"])] = counts.get(str(rec["status"]), 0) + 1
        return counts

    def _log_counts(self, lines: list[LogLine]) -> str:
        if self.server.access_log is None:
            return "no log"
        counts: dict[int, int] = {}
        for line in lines:
            counts[line.status] = counts.get(line.status, 0) + 1
        return "log " + " ".join(f"{k}x{v}" for k, v in sorted(counts.items()))

    def first(self) -> None:
        mark = self.server.log_mark()
        run = self.client.run(self.urls, self.dest)
        bad = self._exact(self.names + ["big.bin"])
        statuses = self._statuses(run)
        ok = run.rc == 0 and statuses == {"ok": len(self.urls)} and not bad
        lines = self.server.log_since(mark)
        self.row("1 first run", ok, f"rc={run.rc} {statuses} wrong/mtime-off={bad or 0} {run.seconds:.1f}s "
                 f"{self._log_counts(lines)}")  # fmt: skip

    def _snapshot(self) -> dict[str, tuple[int, int]]:
        return {n: (p.stat().st_ino, p.stat().st_mtime_ns) for n in self.names + ["big.bin"] for p in [self.dest / n]}

    def second(self) -> None:
        before = self._snapshot()
        mark = self.server.log_mark()
        run = self.client.run(self.urls, self.dest)
        lines = self.server.log_since(mark)
        rewritten = [n for n, v in self._snapshot().items() if before[n] != v]
        statuses = self._statuses(run)
        not304 = [ln for ln in lines if ln.status != 304]
        ok = run.rc == 0 and statuses == {"unchanged": len(self.urls)} and not rewritten and not not304
        sent = sum(ln.bytes or 0 for ln in lines)
        extra = ""
        if lines:
            first = lines[0].headers
            extra = f" e.g. INM={first.get('if-none-match', '?')!r} IMS={first.get('if-modified-since', '?')!r}"
        self.row("2 re-run", ok, f"rc={run.rc} {statuses} rewritten={len(rewritten)} {self._log_counts(lines)} "
                 f"body bytes sent={sent} {run.seconds:.1f}s{extra}")  # fmt: skip

    def changed(self) -> None:
        target = self.names[3]
        write_file(self.doc / target, 54321, int(time.time()) - 120)
        time.sleep(1.5)  # lighttpd serves a replaced file's old stat for up to ~1 s (notes §8)
        before = self._snapshot()
        run = self.client.run(self.urls, self.dest)
        statuses = self._statuses(run)
        others = [n for n, v in self._snapshot().items() if n != target and before[n] != v]
        rec = run.records.get(f"{self.server.base}/{target}", {})
        ok = (run.rc == 0 and rec.get("status") == "ok" and not self._exact([target]) and not others
              and statuses == {"ok": 1, "unchanged": len(self.urls) - 1})  # fmt: skip
        self.row("3 one changed", ok, f"rc={run.rc} {statuses} changed file: {rec.get('status')} "
                 f"http {rec.get('http_status')} exact={not self._exact([target])} "
                 f"others rewritten={len(others)}")  # fmt: skip

    def _resume_run(self, dest: Path, change_between: bool) -> tuple[float, Run, list[LogLine], int]:
        url = f"{self.server.slow_base}/big.bin"
        shutil.rmtree(dest, ignore_errors=True)
        before_kill = self.server.log_mark()
        frac = self.client.run_and_kill(url, dest, self.big_size)
        self._await_killed_request(before_kill)
        if change_between:
            write_file(self.doc / "big.bin", self.big_size, int(time.time()) - 60)
            time.sleep(1.5)
        mark = self.server.log_mark()
        relay_before = self.server.relay.sent if self.server.relay else 0
        run = self.client.run([url], dest)
        self._await_killed_request(mark)  # the rerun's own line: lighttpd writes it late
        lines = [ln for ln in self.server.log_since(mark) if ln.path.endswith("big.bin")]
        if self.server.relay is not None and (not lines or all(ln.bytes is None for ln in lines)):
            sent = self.server.relay.sent - relay_before  # headers included: an upper bound
        else:
            sent = sum(ln.bytes or 0 for ln in lines)
        return frac, run, lines, sent

    def _await_killed_request(self, mark: int, limit_s: float = 20.0) -> None:
        """Wait until the server has logged a request for big.bin since *mark* (the killed one, or the rerun's).

        (nginx logs a request when it ends; behind squid that is a moment after the kill.)
        """
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if any(ln.path.endswith("big.bin") and ln.status != 304 for ln in self.server.log_since(mark)):
                return
            time.sleep(0.2)

    def resume(self) -> None:
        dest = self.dest.with_name("dest-resume")
        frac, run, lines, sent = self._resume_run(dest, change_between=False)
        rec = next(iter(run.records.values()), {})
        exact = (dest / "big.bin").exists() and sha(dest / "big.bin") == sha(self.doc / "big.bin")
        resumed = rec.get("resumed_from") or 0
        assert isinstance(resumed, int)
        req = lines[0].headers if lines else {}
        figures = (f"killed at {frac:.0%}; rerun {rec.get('status')} http {rec.get('http_status')} "
                   f"resumed_from={resumed} exact={exact} server sent {sent / self.big_size:.1%} of the file; "
                   f"Range={req.get('range', '?')!r} If-Range={req.get('if-range', '?')!r}")  # fmt: skip
        if self.name == "http.server":
            # http.server has no Range support: the honest result is "starts over, whole file".
            self.row("4 resume", exact and rec.get("status") == "ok", figures + " (no Range support: restart)",
                     na=True)  # fmt: skip
            return
        ok = run.rc == 0 and exact and resumed > 0 and sent < 0.5 * self.big_size
        self.row("4 resume", ok, figures)

    def resume_changed(self) -> None:
        dest = self.dest.with_name("dest-resume-changed")
        frac, run, lines, sent = self._resume_run(dest, change_between=True)
        rec = next(iter(run.records.values()), {})
        exact = (dest / "big.bin").exists() and sha(dest / "big.bin") == sha(self.doc / "big.bin")
        req = lines[0] if lines else None
        figures = (f"killed at {frac:.0%}, file replaced; rerun {rec.get('status')} http {rec.get('http_status')} "
                   f"resumed_from={rec.get('resumed_from')} new-file-exact={exact} "
                   f"sent {sent / self.big_size:.0%}")  # fmt: skip
        if req is not None:
            figures += (f"; first request: Range={req.headers.get('range', '?')!r} "
                        f"If-Range={req.headers.get('if-range', '?')!r} -> {req.status}")  # fmt: skip
        ok = run.rc == 0 and exact and not rec.get("resumed_from")
        self.row("5 resume, changed", ok, figures)

    def weak_etag(self) -> None:
        if self.name != "apache2":
            self.row("6 weak ETag", True, "apache only", na=True)
            return
        # (a) re-run of a file fetched right after it was replaced.
        dest = self.dest.with_name("dest-weak")
        url = f"{self.server.base}/fresh.bin"
        write_file(self.doc / "fresh.bin", 3 << 20, None)
        mark = self.server.log_mark()
        first = self.client.run([url], dest)
        time.sleep(1.5)
        snap = (dest / "fresh.bin").stat()
        second = self.client.run([url], dest)
        lines = [ln for ln in self.server.log_since(mark) if ln.path.endswith("fresh.bin")]
        etags = [ln.headers.get("etag", "") for ln in lines]
        again = (dest / "fresh.bin").stat()
        rec1 = next(iter(first.records.values()), {})
        rec2 = next(iter(second.records.values()), {})
        weak = bool(etags) and etags[0].startswith("W/")
        untouched = (snap.st_ino, snap.st_mtime_ns) == (again.st_ino, again.st_mtime_ns)
        ok = rec1.get("status") == "ok" and rec2.get("status") == "unchanged" and untouched
        inm = lines[1].headers.get("if-none-match") if len(lines) > 1 else "?"
        self.row("6a weak ETag re-run", ok, f"first ETag {etags[0] if etags else '?'} (weak={weak}); rerun "
                 f"If-None-Match={inm!r} -> {lines[1].status if len(lines) > 1 else '?'} {rec2.get('status')} "
                 f"untouched={untouched}")  # fmt: skip
        # (b) resume of a large file replaced right before the first request.
        dest = self.dest.with_name("dest-weak-resume")
        shutil.rmtree(dest, ignore_errors=True)
        slow = f"{self.server.slow_base}/big.bin"
        write_file(self.doc / "big.bin", self.big_size, None)
        mark = self.server.log_mark()
        frac = self.client.run_and_kill(slow, dest, self.big_size)
        kept = [p.name for p in dest.glob(".fetcher-*.part")]
        run = self.client.run([slow], dest)
        lines = [ln for ln in self.server.log_since(mark) if ln.path.endswith("big.bin")]
        rec = next(iter(run.records.values()), {})
        exact = (dest / "big.bin").exists() and sha(dest / "big.bin") == sha(self.doc / "big.bin")
        desc = "; ".join(f"{ln.status} ETag={ln.headers.get('etag')!r} Range={ln.headers.get('range')!r} "
                         f"If-Range={ln.headers.get('if-range')!r} sent={ln.bytes}" for ln in lines)  # fmt: skip
        self.row("6b weak ETag resume", exact and rec.get("status") == "ok",
                 f"killed at {frac:.0%}, partial left: {len(kept)}; rerun {rec.get('status')} "
                 f"resumed_from={rec.get('resumed_from')} exact={exact}; requests: {desc}")  # fmt: skip


# -- main -----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated, from: " + ", ".join(SERVERS))
    parser.add_argument("--big-mib", type=int, default=64, help="size of the large file (MiB)")
    parser.add_argument("--rate-mib", type=int, default=16, help="rate of the slowed downloads (MiB/s)")
    parser.add_argument("--tmpdir", default=os.environ.get("TMPDIR", "/var/tmp"))
    parser.add_argument("--keep", action="store_true", help="keep every server's folder (configs, logs, files)")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in STARTERS]
    if unknown:
        parser.error(f"unknown server(s): {', '.join(unknown)}")
    fetcher = find_fetcher()
    root = Path(tempfile.mkdtemp(prefix="fetcher-real-servers-", dir=args.tmpdir))
    os.chmod(root, 0o755)
    rows: list[Row] = []
    print("| server | check | result | figures |")
    print("| --- | --- | --- | --- |")
    for name in chosen:
        for row in check_server(name, args, fetcher, root):
            rows.append(row)
            print(f"| {row.server} | {row.check} | {row.verdict} | {row.figures} |", flush=True)
    with contextlib.suppress(OSError):
        root.rmdir()  # only if empty: kept folders stay for a look
    failed = [r for r in rows if r.verdict in ("FAIL", "error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
