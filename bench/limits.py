"""Benchmark fetcher's politeness limits (issue 6): what they cost, how exactly they hold.

Usage::

    python bench/limits.py [--only cost,rate,bandwidth] [--cost-runs 5] [--runs 3]
                           [--before FETCHER] [--tmpdir /dev/shm] [--json PATH]

Three parts, each printed as a table like ``bench.py``'s (medians of the runs):

cost
    The 2,000 x 2 KiB list of scenario (b), ``--max 8``, downloaded into
    ``--tmpdir`` (default ``/dev/shm``, so the disk's noise is out) by fetcher
    with no limit option, then with each limit set so high that it never
    binds: ``--max-per-host 8``, ``--rate 100000``, ``--rate-per-host 100000``,
    ``--limit-rate 10G``, ``--shared-slots NAME``. With ``--before FETCHER``
    (the ``fetcher`` of a checkout from before the limits) that one runs the
    same list too, with no limit option. Wall s and CPU ms per file; the
    variants take turns within each round, as bench.py's tools do.
rate
    ``--rate 20`` on 200 x 1 KiB files (``--max 8``), and ``--rate-per-host 10``
    on 200 files spread over two hosts (a second server on 127.0.0.2). The
    server logs each request's start (``--log-requests``, ``GET /__log``); shown:
    the most requests that started in any closed 1.00 s window, the mean rate
    over the run (requests - 1 over first-to-last start), the cap. Peer:
    ``curl --rate 20/s``, serially (curl 7.88's ``--rate`` has no effect with
    ``--parallel``); wget2 and aria2c have no request rate.
bandwidth
    ``--limit-rate 2M`` on 4 x 10 MiB files at ``--max 4`` (about 20 s):
    achieved rate (bytes over wall time, start-up included), its error against
    the cap, and when each file was complete (the download folder is polled
    every 20 ms; a starved stream finishes late). Peers: ``curl --limit-rate``
    (per transfer in curl, so 512K each for 4 at once), ``wget2
    --limit-rate=2M``, ``aria2c --max-overall-download-limit=2M``.

It reuses bench.py's server, launcher and measurements (see bench/README.md);
standard library only, Linux only.
"""

from __future__ import annotations

import argparse
import atexit
import bisect
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as B  # noqa: E402  (bench.py beside this file)

KIB, MIB = B.KIB, B.MIB
PARTS = ("cost", "rate", "bandwidth")
WINDOW_S = 1.0
SECOND_HOST = "127.0.0.2"

COST = B.SCENARIOS["b"]
RATE_FILES = B.Scenario("r", "200 x 1 KiB", 200, KIB, 8)
BANDWIDTH = B.Scenario("w", "4 x 10 MiB", 4, 10 * MIB, 4)
REQUEST_RATE = 20.0  # --rate, requests per second over all hosts
HOST_RATE = 10.0  # --rate-per-host, over two hosts
BYTE_RATE = 2 * MIB  # --limit-rate 2M


@dataclass(frozen=True)
class Variant:
    """One command line to measure: a label, its extra options, and how it is built."""
    label: str
    options: str  # shown in the table
    command: Callable[[B.RunSpec], list[str]]


def fetcher_command(exe: str, extra: list[str]) -> Callable[[B.RunSpec], list[str]]:
    def command(spec: B.RunSpec) -> list[str]:
        return [exe, str(spec.url_list), "--max", str(spec.max_in_flight), "--dest",
                str(spec.dest), "--no-progress", "--quiet",
                "--report", str(spec.run_dir / "report.jsonl"), *extra]
    return command


def as_tool(variant: Variant) -> B.Tool:
    return B.Tool(variant.label, True, variant.options, variant.command)


# --------------------------------------------------------------------------- #
# Part 1: the cost of each limit, off and on
# --------------------------------------------------------------------------- #

def cost_variants(exe: str, before: str | None, slots_name: str) -> list[Variant]:
    limits = [("max-per-host", ["--max-per-host", "8"]),
              ("rate", ["--rate", "100000"]),
              ("rate-per-host", ["--rate-per-host", "100000"]),
              ("limit-rate", ["--limit-rate", "10G"]),
              ("shared-slots", ["--shared-slots", slots_name])]
    variants = [Variant("before", "no limit option, commit before the limits",
                        fetcher_command(before, []))] if before else []
    variants.append(Variant("none", "no limit option", fetcher_command(exe, [])))
    variants += [Variant(label, " ".join(extra), fetcher_command(exe, extra))
                 for label, extra in limits]
    return variants


def run_cost(variants: list[Variant], runs: int, www: Path, runs_root: Path, timeout: float,
             via_shell: bool, records: list[B.RunRecord]) -> str:
    B.generate_files(COST, www)
    server = B.ServerProcess(www, [], www.parent / "server-cost.log")
    try:
        url_list = www.parent / "urls-cost.txt"
        urls = B.write_url_list(COST, server.base_url, url_list)
        for run in range(1, runs + 1):
            for variant in variants:
                record = B.run_once(as_tool(variant), COST, run, url_list, urls, server,
                                    runs_root, timeout, via_shell)
                records.append(record)
                progress("cost", run, runs, variant.label, record)
    finally:
        server.stop()
    return cost_table(variants, records)


def cost_table(variants: list[Variant], records: list[B.RunRecord]) -> str:
    headers = ["variant", "wall s", "CPU ms/file", "srv CPU s", "vs none", "options"]
    per_file = {v.label: [r.cpu_s * 1000 / COST.count for r in records
                          if r.tool == v.label and r.ok] for v in variants}
    base = statistics.median(per_file["none"]) if per_file.get("none") else None
    rows = []
    for variant in variants:
        mine = [r for r in records if r.tool == variant.label]
        ok = [r for r in mine if r.ok]
        if not ok:
            rows.append([variant.label, "FAILED", "-", "-", "-", variant.options])
            continue
        cpu = statistics.median(per_file[variant.label])
        delta = "-" if base is None or variant.label == "none" else f"{cpu / base - 1:+.0%}"
        notes = variant.options + (f"; FAILED {len(mine) - len(ok)}/{len(mine)} runs"
                                   if len(ok) < len(mine) else "")
        rows.append([variant.label, f"{B.median_of(ok, 'wall_s'):.2f}", f"{cpu:.2f}",
                     f"{B.median_of(ok, 'server_cpu_s'):.2f}", delta, notes])
    runs = max((r.run for r in records), default=0)
    title = (f"cost: the (b) list, {COST.count:,} x 2 KiB, --max 8, each limit off and on "
             f"(never binding); medians of {runs}")
    return title + "\n" + B.format_table(headers, rows, frozenset({1, 2, 3, 4}))


# --------------------------------------------------------------------------- #
# Part 2: request-rate accuracy
# --------------------------------------------------------------------------- #

def most_in_window(starts: list[float], window: float = WINDOW_S) -> int:
    """The most start times in any closed window [t, t + window]."""
    times = sorted(starts)
    return max((bisect.bisect_right(times, t + window) - i for i, t in enumerate(times)),
               default=0)


def mean_rate(starts: list[float]) -> float:
    """Requests per second from the first start to the last (n - 1 gaps)."""
    if len(starts) < 2:
        return 0.0
    return (len(starts) - 1) / (max(starts) - min(starts))


@dataclass
class RateRun:
    case: str
    tool: str
    run: int
    ok: bool
    wall_s: float
    requests: int
    most_in_window: int  # over the hosts together
    mean_rate: float
    host_most_in_window: list[int] = field(default_factory=list)  # per host
    host_mean_rate: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RateCase:
    key: str
    title: str
    cap: float  # per host if per_host
    per_host: bool
    variants: list[Variant]
    peers: str  # the tools without such a limit
    peers_na: str


def curl_serial_rate(spec: B.RunSpec) -> list[str]:
    # curl 7.88: "--rate has no effect when --parallel is used", so one at a time.
    lines = ["silent", "show-error", "fail", "no-progress-meter",
             f"rate = {REQUEST_RATE:.0f}/s"]
    for url in spec.urls:
        name = url.rsplit("/", 1)[-1]
        lines += [f"url = {B.curl_quote(url)}",
                  f"output = {B.curl_quote(str(spec.dest / name))}"]
    config = spec.run_dir / "curl.cfg"
    config.write_text("\n".join(lines) + "\n")
    return ["curl", "-K", str(config)]


def rate_cases(exe: str) -> list[RateCase]:
    curl = [Variant("curl", f"--rate {REQUEST_RATE:.0f}/s, serial", curl_serial_rate)] \
        if shutil.which("curl") else []
    return [
        RateCase("one host", f"--rate {REQUEST_RATE:g}", REQUEST_RATE, False,
                 [Variant("fetcher", f"--rate {REQUEST_RATE:g} --max 8",
                          fetcher_command(exe, ["--rate", f"{REQUEST_RATE:g}"])), *curl],
                 "wget2, aria2c", "n/a: no request rate"),
        RateCase("two hosts", f"--rate-per-host {HOST_RATE:g}", HOST_RATE, True,
                 [Variant("fetcher", f"--rate-per-host {HOST_RATE:g} --max 8",
                          fetcher_command(exe, ["--rate-per-host", f"{HOST_RATE:g}"]))],
                 "curl, wget2, aria2c", "n/a: no per-host request rate"),
    ]


def run_rate(exe: str, runs: int, www: Path, runs_root: Path, timeout: float, via_shell: bool,
             results: list[RateRun]) -> str:
    B.generate_files(RATE_FILES, www)
    work = www.parent
    servers = [B.ServerProcess(www, [], work / "server-rate-1.log", log_requests=True),
               B.ServerProcess(www, [], work / "server-rate-2.log", host=SECOND_HOST,
                               log_requests=True)]
    try:
        names = RATE_FILES.names()
        lists = {}
        for case in rate_cases(exe):
            path = work / f"urls-rate-{case.key.replace(' ', '-')}.txt"
            bases = [s.base_url for s in servers] if case.per_host else [servers[0].base_url]
            urls = [f"{bases[i % len(bases)]}/{RATE_FILES.key}/{name}"
                    for i, name in enumerate(names)]
            path.write_text("".join(u + "\n" for u in urls))
            lists[case.key] = (path, urls)
        cases = rate_cases(exe)
        for run in range(1, runs + 1):
            for case in cases:
                path, urls = lists[case.key]
                for variant in case.variants:
                    for server in servers:
                        server.request_log(reset=True)
                    record = B.run_once(as_tool(variant), RATE_FILES, run, path, urls,
                                        servers[0], runs_root, timeout, via_shell)
                    logs = [[start for start, _, _ in s.request_log(reset=True)]
                            for s in (servers if case.per_host else servers[:1])]
                    every = [t for log in logs for t in log]
                    results.append(RateRun(
                        case=case.key, tool=variant.label, run=run, ok=record.ok,
                        wall_s=record.wall_s, requests=len(every),
                        most_in_window=most_in_window(every), mean_rate=mean_rate(every),
                        host_most_in_window=[most_in_window(log) for log in logs],
                        host_mean_rate=[mean_rate(log) for log in logs],
                        problems=record.problems))
                    progress(f"rate {case.key}", run, runs, variant.label, record)
    finally:
        for server in servers:
            server.stop()
    return rate_table(rate_cases(exe), results)


def rate_table(cases: list[RateCase], results: list[RateRun]) -> str:
    headers = ["limit", "tool", "wall s", "requests", "most in 1.00 s", "mean rate /s", "cap",
               "notes"]
    rows = []
    for case in cases:
        for variant in case.variants:
            ok = [r for r in results if r.case == case.key and r.tool == variant.label and r.ok]
            mine = [r for r in results if r.case == case.key and r.tool == variant.label]
            if not ok:
                rows.append([case.title, variant.label, "FAILED", "-", "-", "-", "-",
                             "; ".join(mine[0].problems) if mine else "not run"])
                continue
            med = statistics.median
            if case.per_host:
                most = " / ".join(f"{med(r.host_most_in_window[h] for r in ok):.0f}"
                                  for h in range(2))
                rate = " / ".join(f"{med(r.host_mean_rate[h] for r in ok):.2f}"
                                  for h in range(2))
                cap = f"{case.cap:g} per host (<= {case.cap + 1:g} in 1 s)"
                notes = (f"per host (127.0.0.1 / 127.0.0.2); together "
                         f"{med(r.most_in_window for r in ok):.0f} in 1 s, "
                         f"{med(r.mean_rate for r in ok):.2f}/s")
            else:
                most = f"{med(r.most_in_window for r in ok):.0f}"
                rate = f"{med(r.mean_rate for r in ok):.2f}"
                cap = f"{case.cap:g} (<= {case.cap + 1:g} in 1 s)"
                notes = variant.options
            if len(ok) < len(mine):
                notes += f"; FAILED {len(mine) - len(ok)}/{len(mine)} runs"
            rows.append([case.title, variant.label, f"{med(r.wall_s for r in ok):.2f}",
                         f"{med(r.requests for r in ok):.0f}", most, rate, cap, notes])
        rows.append([case.title, case.peers, "-", "-", "-", "-", "-", case.peers_na])
    runs = max((r.run for r in results), default=0)
    title = (f"rate: {RATE_FILES.count} x 1 KiB, --max 8; request starts as the server logged "
             f"them; medians of {runs}")
    return title + "\n" + B.format_table(headers, rows, frozenset({2, 3, 4, 5}))


# --------------------------------------------------------------------------- #
# Part 3: bandwidth accuracy
# --------------------------------------------------------------------------- #

@dataclass
class BandwidthRun:
    tool: str
    run: int
    ok: bool
    wall_s: float
    cpu_s: float
    finish_s: list[float]  # when each file was complete, from the spawn, sorted
    peak_window_bytes: int  # the most bytes written in any 1 s (sampled every 20 ms)
    problems: list[str] = field(default_factory=list)


def bandwidth_variants(exe: str, missing: dict[str, str]) -> list[Variant]:
    """The tools to measure; ``missing`` gets each left-out tool's reason."""
    cap = f"{BYTE_RATE // MIB}M"
    per_transfer = f"{BYTE_RATE // BANDWIDTH.max_in_flight // KIB}K"
    curl, wget2, aria2c = B.curl_tool(), B.wget2_tool(), B.aria2c_tool()
    found = [
        Variant("fetcher", f"--limit-rate {cap}",
                fetcher_command(exe, ["--limit-rate", cap])),
        Variant("curl", f"limit-rate = {per_transfer} per transfer, x {BANDWIDTH.max_in_flight}",
                lambda spec: with_curl_limit(curl.command(spec), spec, per_transfer)),
        Variant("wget2", f"--limit-rate={cap}",
                lambda spec: wget2.command(spec) + [f"--limit-rate={cap}"]),
        Variant("aria2c", f"--max-overall-download-limit={cap}",
                lambda spec: aria2c.command(spec) + [f"--max-overall-download-limit={cap}"]),
    ]
    available = {"fetcher": True, "curl": curl.available, "wget2": wget2.available,
                 "aria2c": aria2c.available}
    if wget2.available and "--limit-rate" not in help_text(["wget2", "--help"]):
        available["wget2"] = False
        missing["wget2"] = f"n/a: {wget2.version} has no --limit-rate"
    return [v for v in found if available[v.label]]


def help_text(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout + out.stderr


def with_curl_limit(cmd: list[str], spec: B.RunSpec, per_transfer: str) -> list[str]:
    """bench.py's curl config, plus a limit-rate line (curl's is per transfer)."""
    config = spec.run_dir / "curl.cfg"
    config.write_text(f"limit-rate = {per_transfer}\n" + config.read_text())
    return cmd


def run_bandwidth_once(variant: Variant, run: int, url_list: Path, urls: list[str],
                       runs_root: Path, timeout: float, via_shell: bool) -> BandwidthRun:
    run_dir = runs_root / f"w-{variant.label}-{run}"
    dest = run_dir / "dest"
    dest.mkdir(parents=True)
    cmd = variant.command(B.RunSpec(url_list, urls, BANDWIDTH.max_in_flight, dest, run_dir))
    names = set(BANDWIDTH.names())
    finished: dict[str, float] = {}
    samples: list[tuple[float, int]] = []  # (seconds since spawn, bytes in dest)
    started = time.perf_counter()

    def poll() -> bool:
        # Called every 20 ms by run_child's watcher; never asks for a kill.
        now = time.perf_counter() - started
        sizes: dict[int, int] = {}  # by inode: a temporary file renamed mid-scan counts once
        for entry in os.scandir(dest):
            if entry.name.startswith(B.STATE_FILE_PREFIX) or entry.name.endswith(".aria2"):
                continue
            st = entry.stat()
            sizes[st.st_ino] = st.st_size
            if entry.name in names and entry.name not in finished and \
                    st.st_size == BANDWIDTH.size:
                finished[entry.name] = now
        samples.append((now, sum(sizes.values())))
        return False

    try:
        child = B.run_child(cmd, run_dir / "stdout.log", run_dir / "stderr.log", timeout,
                            via_shell, kill_when=poll)
        poll()
        problems = B.run_problems("run", child, timeout,
                                  B.check_output(dest, BANDWIDTH.names(), BANDWIDTH.size))
        return BandwidthRun(tool=variant.label, run=run, ok=not problems, wall_s=child.wall_s,
                            cpu_s=child.user_s + child.sys_s,
                            finish_s=sorted(min(t, child.wall_s) for t in finished.values()),
                            peak_window_bytes=peak_in_window(samples), problems=problems)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def peak_in_window(samples: list[tuple[float, int]], window: float = WINDOW_S) -> int:
    """The most bytes added between two samples at most ``window`` apart."""
    times = [t for t, _ in samples]
    peak = 0
    for t, size in samples:
        j = bisect.bisect_right(times, t + window) - 1
        peak = max(peak, samples[j][1] - size)
    return peak


def run_bandwidth(exe: str, runs: int, www: Path, runs_root: Path, timeout: float,
                  via_shell: bool, results: list[BandwidthRun]) -> str:
    B.generate_files(BANDWIDTH, www)
    server = B.ServerProcess(www, [], www.parent / "server-bandwidth.log")
    missing: dict[str, str] = {}
    variants = bandwidth_variants(exe, missing)
    try:
        url_list = www.parent / "urls-bandwidth.txt"
        urls = B.write_url_list(BANDWIDTH, server.base_url, url_list)
        for run in range(1, runs + 1):
            for variant in variants:
                result = run_bandwidth_once(variant, run, url_list, urls, runs_root, timeout,
                                            via_shell)
                results.append(result)
                status = "ok" if result.ok else "FAILED: " + "; ".join(result.problems)
                print(f"  (bandwidth) run {run}/{runs} {variant.label:8} {result.wall_s:7.2f} s"
                      f"  {status}", file=sys.stderr, flush=True)
    finally:
        server.stop()
    return bandwidth_table(variants, results, missing)


def bandwidth_table(variants: list[Variant], results: list[BandwidthRun],
                    missing: dict[str, str]) -> str:
    headers = ["tool", "wall s", "achieved", "vs cap", "peak 1 s", "files complete at s",
               "CPU s", "options"]
    rows = []
    med = statistics.median
    for variant in variants:
        mine = [r for r in results if r.tool == variant.label]
        ok = [r for r in mine if r.ok and len(r.finish_s) == BANDWIDTH.count]
        if not ok:
            rows.append([variant.label, "FAILED", "-", "-", "-", "-", "-",
                         "; ".join(mine[0].problems) if mine else "not run"])
            continue
        wall = med(r.wall_s for r in ok)
        achieved = BANDWIDTH.total_bytes / wall
        finish = " / ".join(f"{med(r.finish_s[i] for r in ok):.1f}"
                            for i in range(BANDWIDTH.count))
        notes = variant.options + (f"; FAILED {len(mine) - len(ok)}/{len(mine)} runs"
                                   if len(ok) < len(mine) else "")
        rows.append([variant.label, f"{wall:.2f}", f"{achieved / MIB:.3f} MiB/s",
                     f"{achieved / BYTE_RATE - 1:+.1%}",
                     f"{med(r.peak_window_bytes for r in ok) / MIB:.2f} MiB", finish,
                     f"{med(r.cpu_s for r in ok):.2f}", notes])
    rows += [[name, "-", "-", "-", "-", "-", "-", reason] for name, reason in missing.items()]
    runs = max((r.run for r in results), default=0)
    title = (f"bandwidth: {BANDWIDTH.title}, --max {BANDWIDTH.max_in_flight}, cap "
             f"{BYTE_RATE // MIB} MiB/s over all ({BANDWIDTH.total_bytes / BYTE_RATE:.0f} s "
             f"ideal); achieved = bytes / wall; medians of {runs}")
    note = ("peak 1 s: the most bytes the tool wrote in any 1 s, from the download folder "
            "polled every 20 ms")
    return title + "\n" + B.format_table(headers, rows, frozenset({1, 2, 3, 4, 6})) + "\n" + note


# --------------------------------------------------------------------------- #
# Main
# --------------------------------------------------------------------------- #

def progress(part: str, run: int, runs: int, label: str, record: B.RunRecord) -> None:
    status = "ok" if record.ok else "FAILED: " + "; ".join(record.problems)
    print(f"  ({part}) run {run}/{runs} {label:13} {record.wall_s:7.2f} s  {status}",
          file=sys.stderr, flush=True)


def slots_folder(name: str) -> Path | None:
    """Where fetcher keeps the shared slots called ``name`` (its default folder)."""
    cache = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(cache):
        return Path(cache) / "fetcher" / "slots" / name
    home = os.environ.get("HOME")
    return Path(home) / ".cache" / "fetcher" / "slots" / name if home else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(PARTS),
                        type=lambda s: B.parse_list(s, PARTS, "part"),
                        help=f"parts to run (default: {','.join(PARTS)})")
    parser.add_argument("--cost-runs", type=int, default=5, help="runs per variant in cost")
    parser.add_argument("--runs", type=int, default=3, help="runs per tool in rate, bandwidth")
    parser.add_argument("--before", help="a fetcher from before the limits, for the cost part")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds before a run is killed and counted as failed")
    parser.add_argument("--tmpdir", type=Path, default=Path("/dev/shm"),
                        help="served files and downloads (default: %(default)s, RAM)")
    args = parser.parse_args(argv)
    if not (1 <= args.runs <= 50 and 1 <= args.cost_runs <= 50):
        parser.error("--runs and --cost-runs must be between 1 and 50")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, B.exit_on_sigterm)
    signal.signal(signal.SIGHUP, B.exit_on_sigterm)
    exe = B.find_fetcher()
    if exe is None:
        print("fetcher is not installed beside this Python nor on PATH", file=sys.stderr)
        return 2
    fetcher = B.Tool("fetcher", True, B.first_line_of([exe, "--version"]) or exe, lambda s: [])
    tools = [fetcher] + [f() for f in (B.curl_tool, B.wget2_tool, B.aria2c_tool)]
    info = B.machine_info(tools)
    if args.before:
        info["before"] = B.first_line_of(["git", "-C", str(Path(args.before).resolve().parents[2]),
                                          "rev-parse", "--short=10", "HEAD"]) or args.before
    B.print_machine(info)
    if args.before:
        print(f"before: {args.before} at commit {info['before']}\n")
    via_shell = B.become_subreaper() and Path("/bin/sh").exists()

    work = Path(tempfile.mkdtemp(prefix="fetcher-limits-", dir=args.tmpdir))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    slots_name = f"bench-limits-{os.getpid()}"
    records: list[B.RunRecord] = []
    rate_results: list[RateRun] = []
    bandwidth_results: list[BandwidthRun] = []
    try:
        runs_root = work / "runs"
        if "cost" in args.only:
            variants = cost_variants(exe, args.before, slots_name)
            print(run_cost(variants, args.cost_runs, work / "www-cost", runs_root, args.timeout,
                           via_shell, records) + "\n", flush=True)
        if "rate" in args.only:
            print(run_rate(exe, args.runs, work / "www-rate", runs_root, args.timeout,
                           via_shell, rate_results) + "\n", flush=True)
        if "bandwidth" in args.only:
            print(run_bandwidth(exe, args.runs, work / "www-bandwidth", runs_root,
                                args.timeout, via_shell, bandwidth_results) + "\n", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        folder = slots_folder(slots_name)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    failures = B.failure_report(records)
    if failures:
        print("failed runs:\n" + failures)
    if args.json:
        payload = {"machine": info, "cost": [asdict(r) for r in records],
                   "rate": [asdict(r) for r in rate_results],
                   "bandwidth": [asdict(r) for r in bandwidth_results]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    bad = [r for r in rate_results if not r.ok] + [r for r in bandwidth_results if not r.ok]
    return 1 if failures or bad else 0


if __name__ == "__main__":
    sys.exit(main())
