"""A re-run's CPU: the part every run pays whatever its length, and the part each unchanged URL adds.

Usage::

    python bench/rerun_cost.py [--small 2000] [--large 10000] [--runs 5] [--server nginx|builtin]
                               [--tmpdir DIR]

Generates ``--large`` files of 2 KiB (in /dev/shm when it has room, else
``--tmpdir`` or $TMPDIR), serves them with nginx when it is installed (the
built-in ``bench/server.py`` otherwise, or with ``--server builtin``), and
downloads the first ``--small`` of them and all ``--large`` of them once
each, into two folders. Then it re-runs both lists in turns, ``--runs`` times
each, every answer a 304 (the script checks the server's count when it can):
``fetcher LIST --max 8 --dest DEST --no-progress --quiet``, CPU from
``os.wait4`` (the whole process tree). With both medians, a straight line
through them gives the CPU each unchanged URL costs and the fixed part
(start, worker processes, exit): ``bench.py`` (d) measures the two together
on 2,000 URLs only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import (  # noqa: E402  # the benchmark's own servers and helpers
    KIB,
    NginxServer,
    Scenario,
    ServerProcess,
    compile_fetcher,
    find_fetcher,
    find_nginx,
    generate_files,
    load_average,
    speed_probe,
    write_url_list,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fetcher._run.attempt import LONG_LIST  # noqa: E402


def run(fetcher: str, url_list: Path, dest: Path) -> float:
    """CPU seconds of one run (user + system, the process and every child it waited for)."""
    child = subprocess.Popen([fetcher, str(url_list), "--max", "8", "--dest", str(dest), "--no-progress", "--quiet"],
                             cwd="/")  # fmt: skip
    _, status, usage = os.wait4(child.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"fetcher exited with {code} on {url_list}")
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--server", choices=("nginx", "builtin"), default=None)
    parser.add_argument("--tmpdir", default=None)
    args = parser.parse_args()
    if not 0 < args.small < args.large:
        parser.error("--small must be above 0 and below --large")
    if args.small < LONG_LIST:
        print(f"note: a list of fewer than {LONG_LIST} URLs keeps to threads, one of more starts worker processes: "
              "the line through the two mixes both ways", flush=True)  # fmt: skip
    fetcher = find_fetcher()
    if fetcher is None:
        raise SystemExit("fetcher is not installed beside this Python, nor on PATH")
    print(f"fetcher: {fetcher}, {compile_fetcher(fetcher)}", flush=True)
    shm = Path("/dev/shm")
    room = shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 3 * args.large * 4 * KIB
    base = args.tmpdir or (str(shm) if room else None)
    with tempfile.TemporaryDirectory(prefix="fetcher-rerun-", dir=base) as work_name:
        work = Path(work_name)
        scenario = Scenario("r", "re-run cost", args.large, 2 * KIB, 8)
        generate_files(scenario, work / "www")
        kind = args.server or ("nginx" if find_nginx() else "builtin")
        server: NginxServer | ServerProcess
        if kind == "nginx":
            server = NginxServer(work / "www", work / "nginx", counted=True)
        else:
            server = ServerProcess(work / "www", [], work / "server.log")
        try:
            urls = write_url_list(scenario, server.base_url, work / "large.txt")
            (work / "small.txt").write_text("".join(url + "\n" for url in urls[: args.small]))
            lists = {args.small: work / "small.txt", args.large: work / "large.txt"}
            for count, url_list in lists.items():
                run(fetcher, url_list, work / f"dest-{count}")  # the first run: every file downloaded
            server.stats(reset=True)
            print(f"server: {kind}; files in {work}; load {load_average():.2f}, speed probe {speed_probe():.0f} ms",
                  flush=True)  # fmt: skip
            cpu: dict[int, list[float]] = {count: [] for count in lists}
            for n in range(args.runs):
                for count in list(lists) if n % 2 == 0 else list(lists)[::-1]:
                    cpu[count].append(run(fetcher, lists[count], work / f"dest-{count}"))
                    print(f"  re-run of {count:,}: {cpu[count][-1]:.3f} s of CPU", flush=True)
            answered = server.stats().status
        finally:
            server.stop()
    expected = {"304": args.runs * (args.small + args.large)}
    small, large = statistics.median(cpu[args.small]), statistics.median(cpu[args.large])
    per_url = (large - small) / (args.large - args.small)
    fixed = small - per_url * args.small
    print(f"re-runs, medians of {args.runs}: {args.small:,} URLs {small:.3f} s "
          f"({small / args.small * 1e3:.3f} ms a URL), {args.large:,} URLs {large:.3f} s "
          f"({large / args.large * 1e3:.3f} ms a URL)")  # fmt: skip
    print(f"each unchanged URL: {per_url * 1e3:.3f} ms of CPU; fixed: {fixed:.3f} s a run"
          f" ({fixed / args.small * 1e3:.3f} ms a URL of {args.small:,})")  # fmt: skip
    unexpected = "" if answered == expected else f" (expected {expected})"
    print(f"the server's answers to the re-runs: {answered}{unexpected}")


if __name__ == "__main__":
    main()
