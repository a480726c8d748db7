"""A long list over many hosts in turn: connections opened, wall time and CPU, next to curl, wget2 and aria2c.

Usage::

    python bench/hosts.py [--hosts 200] [--files 20000] [--max 8] [--runs 3]
                          [--tools fetcher,curl,wget2,aria2c] [--nofile N]

nginx (needed) listens on ``--hosts`` ports of 127.0.0.1: a host is a name
and a port, so each port is a host of its own.  URL i names file i on port
i % hosts, so the list visits every host in turn, as a list does whose hosts
each hold many files and whose order mixes them (or as the dispatcher mixes
them when a per-host cap holds one back).  Files are 2 KiB, in RAM when
/dev/shm has room.  Each tool runs ``--runs`` times, one after the other,
into a fresh folder; printed: the median wall time, CPU a file (the tool
and its children) and connections opened (distinct ``$connection`` in
nginx's log).  ``--nofile`` runs each tool with that soft limit on open
files (the hard limit unchanged): 1,024 is what most systems give a process.
"""

from __future__ import annotations

import argparse
import os
import pwd
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import TOOL_FACTORIES, RunSpec, find_nginx, free_port  # noqa: E402

SIZE = 2048


class ManyPortNginx:
    """nginx serving ``root`` on ``count`` ports of 127.0.0.1, logging each request's connection number."""

    def __init__(self, root: Path, work: Path, count: int) -> None:
        exe = find_nginx()
        if exe is None:
            raise SystemExit("bench/hosts.py needs nginx (apt-get install nginx)")
        ports: set[int] = set()
        while len(ports) < count:  # the system may give a port it gave before
            ports.add(free_port())
        self.ports = sorted(ports)
        self.log = work / "access.log"
        listen = "\n        ".join(f"listen 127.0.0.1:{port};" for port in self.ports)
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
        temp = "\n    ".join(f"{kind}_temp_path {work}/{kind};"
                              for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))  # fmt: skip
        conf = work / "nginx.conf"
        conf.write_text(f"""daemon off;
worker_processes 1;
{user}
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 16384; }}
worker_rlimit_nofile 32768;
http {{
    log_format conn '$connection';
    access_log {self.log} conn;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    {temp}
    server {{
        {listen}
        root {root};
    }}
}}
""")
        self.proc = subprocess.Popen([exe, "-p", str(work), "-e", str(work / "error.log"), "-c", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 15
        while not all(_listening(port) for port in (self.ports[0], self.ports[-1])):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"nginx did not start: {(work / 'error.log').read_text()[-500:]}")
            time.sleep(0.05)

    def connections_since_reset(self) -> int:
        os.kill(self.proc.pid, signal.SIGUSR1)  # reopen the log, so that what was written is on disk
        time.sleep(0.3)
        with open(self.log) as f:
            return len({line.strip() for line in f if line.strip()})

    def reset(self) -> None:
        self.log.write_text("")
        os.kill(self.proc.pid, signal.SIGUSR1)
        time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def run(cmd: list[str], nofile: int | None, timeout: float) -> tuple[float, float, int | str]:
    """Wall seconds, CPU seconds (with its children) and exit status of *cmd* ("timeout" if killed past
    *timeout* seconds)."""

    def limit() -> None:
        os.setsid()  # a group of its own, killed whole past the timeout
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    started = time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=limit)
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - started > timeout:
            os.killpg(process.pid, signal.SIGKILL)
            _, status, usage = os.wait4(process.pid, 0)
            return time.perf_counter() - started, usage.ru_utime + usage.ru_stime, "timeout"
        time.sleep(0.02)
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--max", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tools", default="fetcher,curl,wget2,aria2c")
    parser.add_argument("--nofile", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a run may take before it is killed")
    args = parser.parse_args()
    base = Path("/dev/shm") if shutil.disk_usage("/dev/shm").free > 4 * args.files * SIZE else None
    with tempfile.TemporaryDirectory(prefix="fetcher-hosts-", dir=base) as scratch:
        root = Path(scratch) / "www"
        root.mkdir()
        block = os.urandom(SIZE)
        for i in range(args.files):
            (root / f"f{i}.bin").write_bytes(block)
        server = ManyPortNginx(root, Path(scratch), args.hosts)
        try:
            urls = [f"http://127.0.0.1:{server.ports[i % args.hosts]}/f{i}.bin" for i in range(args.files)]
            url_list = Path(scratch) / "urls.txt"
            url_list.write_text("".join(u + "\n" for u in urls))
            print(f"{args.files:,} x 2 KiB from {args.hosts} hosts in turn, --max {args.max}, "
                  f"{'soft limit ' + format(args.nofile, ',') + ' open files' if args.nofile else 'limits as given'}, "
                  f"medians of {args.runs}", flush=True)  # fmt: skip
            print(f"{'tool':<10} {'wall s':>8} {'CPU ms a file':>14} {'connections':>12}  exits")
            for name in args.tools.split(","):
                tool = TOOL_FACTORIES[name]()
                if not tool.available:
                    print(f"{name:<10} {'n/a':>8}  ({tool.version})")
                    continue
                walls, cpus, conns = [], [], []
                exits: list[int | str] = []
                for _ in range(args.runs):
                    run_dir = Path(scratch) / "run"
                    shutil.rmtree(run_dir, ignore_errors=True)
                    (run_dir / "dl").mkdir(parents=True)
                    spec = RunSpec(url_list=url_list, urls=urls, max_in_flight=args.max, dest=run_dir / "dl",
                                   run_dir=run_dir)  # fmt: skip
                    server.reset()
                    wall, cpu, code = run(tool.command(spec), args.nofile, args.timeout)
                    walls.append(wall)
                    cpus.append(cpu)
                    conns.append(server.connections_since_reset())
                    exits.append(code)
                cpu_ms = statistics.median(cpus) / args.files * 1e3
                print(f"{name:<10} {statistics.median(walls):>8.2f} {cpu_ms:>14.3f} {statistics.median(conns):>12,.0f}"
                      f"  {exits}", flush=True)  # fmt: skip
        finally:
            server.stop()


if __name__ == "__main__":
    main()
