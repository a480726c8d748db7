"""Benchmark ``--adaptive`` (issue 19) against local servers whose behaviour depends on load.

Usage::

    python bench/adaptive.py [--runs 3] [--only queue,reject,fast,hosts,cap,recover] [--json PATH]

Each scenario runs the ``fetcher`` beside this Python (else on PATH) as a
user would, into a fresh temporary folder, against servers in this process
on 127.0.0.1 (and 127.0.0.2 for a second host).  A server counts its
requests in flight (queued ones included) over time; the figures are
medians of the runs.

queue
    A server that serves at most c=4 requests at a time, 50 ms each, and
    queues the rest: 400 files, ideal 5.0 s (the work divided by c).
    ``--max 16 --adaptive`` beside ``--max 16``: the mean in flight once
    settled (after the first second), and the wall time against the ideal.
reject
    A server that answers 429 (no Retry-After) to any request beyond c=4 in
    flight, 50 ms each otherwise: 400 files, ideal 5.0 s.  Files that
    arrived, the share of requests that got a 429, wall time / ideal.
fast
    A server that keeps up with anything (20 ms each, no limit): 400 files,
    ``--max 8 --adaptive`` beside ``--max 8``; the most in flight, and the
    wall time of the adaptive run over the fixed one's.
hosts
    A capacity-1 host (127.0.0.2, 50 ms each, queues) and a fast host
    (127.0.0.1, 20 ms, no limit) in one interleaved list of 60 + 400 files,
    ``--max 8 --adaptive``: the mean in flight at each host while both run.
cap
    The fast server, ``--max 16 --max-per-host 3 --adaptive``: the most in
    flight (never above 3) and whether it reached 3.
recover
    A server that serves 1 at a time (50 ms each) for its first 2.5 s, then
    8 at a time: 400 files, ``--max 16 --adaptive``: the most in flight
    after the switch, and the limit the run record gives at the end.

Standard library only; Linux or macOS.
"""

from __future__ import annotations

import argparse
import bisect
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BODY = b"x" * 2048


class LoadServer:
    """A loopback HTTP server whose answers depend on how many requests are in flight.

    ``capacity(t)`` gives how many it serves at once, *t* seconds after its
    first request (None: no limit); the rest queue, or get a 429 with
    ``reject``.  Each request it serves takes ``service_s``.
    """

    def __init__(self, host: str, *, service_s: float, capacity: Callable[[float], int | None],
                 reject: bool = False) -> None:  # fmt: skip
        self.service_s, self.capacity, self.reject = service_s, capacity, reject
        self.lock = threading.Condition()
        self.in_flight = 0  # queued or served
        self.serving = 0
        self.events: list[tuple[float, int]] = []  # (time, in flight after the change)
        self.requests = 0
        self.rejected = 0
        self.first: float | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                server.handle(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 256
        self.base = f"http://{host}:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _change(self, by: int) -> None:
        self.in_flight += by
        self.events.append((time.monotonic(), self.in_flight))

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        with self.lock:
            now = time.monotonic()
            if self.first is None:
                self.first = now
            self.requests += 1
            self._change(+1)
            cap = self.capacity(now - self.first)
            if self.reject and cap is not None and self.serving >= cap:
                self.rejected += 1
                answer = 429
            else:
                answer = 200
                while cap is not None and self.serving >= cap:
                    self.lock.wait(0.05)
                    cap = self.capacity(time.monotonic() - self.first)
                self.serving += 1
        if answer == 200:
            time.sleep(self.service_s)
        with self.lock:
            # Out of flight before the answer goes: the client may send its next request the moment it
            # has this answer, before this thread runs again.
            if answer == 200:
                self.serving -= 1
                self.lock.notify()
            self._change(-1)
        body = BODY if answer == 200 else b""
        # One write: headers and body apart would meet Nagle and delayed ACKs (40 ms a request).
        head = f"HTTP/1.1 {answer} {'OK' if answer == 200 else 'Too Many Requests'}\r\n"
        request.wfile.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        request.wfile.flush()

    def mean_in_flight(self, start: float, end: float) -> float:
        """Time-weighted mean in flight between two monotonic times."""
        with self.lock:
            events = list(self.events)
        if end <= start or not events:
            return 0.0
        times = [t for t, _ in events]
        i = max(0, bisect.bisect_right(times, start) - 1)
        level = events[i][1] if events[i][0] <= start else 0
        total, at = 0.0, start
        for t, n in events[i:]:
            if t <= start:
                level = n
                continue
            if t >= end:
                break
            total += level * (t - at)
            at, level = t, n
        total += level * (end - at)
        return total / (end - start)

    def max_in_flight(self, start: float = 0.0) -> int:
        with self.lock:
            return max((n for t, n in self.events if t >= start), default=0)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def fetcher_command() -> str:
    beside = Path(sys.executable).with_name("fetcher")
    return str(beside) if beside.exists() else (shutil.which("fetcher") or "fetcher")


def run_fetcher(urls: list[str], options: list[str]) -> dict[str, Any]:
    """Run fetcher on *urls*; its wall time, files saved and run record."""
    folder = Path(tempfile.mkdtemp(prefix="fetcher-adaptive-"))
    try:
        listing = folder / "urls.txt"
        listing.write_text("\n".join(urls) + "\n")
        dest, report = folder / "out", folder / "report.jsonl"
        began = time.monotonic()
        done = subprocess.run([fetcher_command(), str(listing), "--dest", str(dest), "--report", str(report),
                               "--quiet", "--retries", "10", *options], capture_output=True, timeout=300)  # fmt: skip
        ended = time.monotonic()
        records = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
        run: dict[str, Any] = next((r for r in records if r.get("record") == "run"), {})
        saved = sum(1 for r in records if r.get("status") in ("ok", "unchanged"))
        return {"began": began, "ended": ended, "wall": ended - began, "saved": saved, "exit": done.returncode,
                "run": run, "stderr": done.stderr.decode(errors="replace")[-300:]}  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def server(host: str = "127.0.0.1", *, service_s: float, capacity: Callable[[float], int | None],
           reject: bool = False) -> LoadServer:  # fmt: skip
    return LoadServer(host, service_s=service_s, capacity=capacity, reject=reject)


def scenario_queue() -> dict[str, float]:
    c, s, n = 4, 0.05, 400
    out: dict[str, float] = {"ideal_s": n * s / c}
    for name, options in (("adaptive", ["--max", "16", "--adaptive"]), ("fixed", ["--max", "16"])):
        srv = server(service_s=s, capacity=lambda t: c)
        try:
            got = run_fetcher([f"{srv.base}/q/{i}" for i in range(n)], options)
            first = srv.first or got["began"]
            last = max(t for t, _ in srv.events)
            out[f"{name}_mean_in_flight"] = srv.mean_in_flight(first + 1.0, last)
            out[f"{name}_wall_s"] = float(got["wall"])
            out[f"{name}_saved"] = float(got["saved"])
        finally:
            srv.close()
    out["adaptive_vs_ideal"] = out["adaptive_wall_s"] / out["ideal_s"]
    out["adaptive_in_flight_per_c"] = out["adaptive_mean_in_flight"] / c
    return out


def scenario_reject() -> dict[str, float]:
    c, s, n = 4, 0.05, 400
    srv = server(service_s=s, capacity=lambda t: c, reject=True)
    try:
        got = run_fetcher([f"{srv.base}/r/{i}" for i in range(n)], ["--max", "16", "--adaptive"])
        return {"ideal_s": n * s / c, "saved": float(got["saved"]), "files": n,
                "requests": srv.requests, "got_429": srv.rejected, "share_429": srv.rejected / srv.requests,
                "wall_s": float(got["wall"]), "vs_ideal": float(got["wall"]) / (n * s / c)}  # fmt: skip
    finally:
        srv.close()


def scenario_fast() -> dict[str, float]:
    s, n = 0.02, 400
    out: dict[str, float] = {}
    for name, options in (("adaptive", ["--max", "8", "--adaptive"]), ("fixed", ["--max", "8"])):
        srv = server(service_s=s, capacity=lambda t: None)
        try:
            got = run_fetcher([f"{srv.base}/f/{i}" for i in range(n)], options)
            out[f"{name}_wall_s"] = float(got["wall"])
            out[f"{name}_max_in_flight"] = srv.max_in_flight()
        finally:
            srv.close()
    out["adaptive_vs_fixed"] = out["adaptive_wall_s"] / out["fixed_wall_s"]
    return out


def scenario_hosts() -> dict[str, float]:
    slow = server("127.0.0.2", service_s=0.05, capacity=lambda t: 1)
    fast = server(service_s=0.02, capacity=lambda t: None)
    try:
        urls = [f"{fast.base}/f/{i}" for i in range(400)]
        for i in range(60):
            urls.insert(i * 7, f"{slow.base}/s/{i}")
        got = run_fetcher(urls, ["--max", "8", "--adaptive"])
        start = max(slow.first or 0.0, fast.first or 0.0) + 1.0
        end = min(max(t for t, _ in slow.events), max(t for t, _ in fast.events))
        run = got["run"]
        limits = run.get("adaptive", {}) if isinstance(run, dict) else {}
        return {"slow_mean_in_flight": slow.mean_in_flight(start, end),
                "fast_mean_in_flight": fast.mean_in_flight(start, end), "fast_max_in_flight": fast.max_in_flight(),
                "slow_final_limit": next((v["final"] for k, v in limits.items() if k.startswith("127.0.0.2")), -1),
                "wall_s": float(got["wall"]), "saved": float(got["saved"])}  # fmt: skip
    finally:
        slow.close()
        fast.close()


def scenario_cap() -> dict[str, float]:
    srv = server(service_s=0.02, capacity=lambda t: None)
    try:
        options = ["--max", "16", "--max-per-host", "3", "--adaptive"]
        got = run_fetcher([f"{srv.base}/c/{i}" for i in range(200)], options)
        return {"max_in_flight": srv.max_in_flight(), "wall_s": float(got["wall"])}
    finally:
        srv.close()


def scenario_recover() -> dict[str, float]:
    switch = 2.5
    srv = server(service_s=0.05, capacity=lambda t: 1 if t < switch else 8)
    try:
        got = run_fetcher([f"{srv.base}/v/{i}" for i in range(400)], ["--max", "16", "--adaptive"])
        after = (srv.first or 0.0) + switch
        run = got["run"]
        limits = run.get("adaptive", {}) if isinstance(run, dict) else {}
        pace: dict[str, Any] = next(iter(limits.values()), {})
        return {"max_in_flight_before": max((n for t, n in srv.events if t < after), default=0),
                "max_in_flight_after": srv.max_in_flight(after), "final_limit": pace.get("final", -1),
                "lowest_limit": pace.get("lowest", -1), "wall_s": float(got["wall"])}  # fmt: skip
    finally:
        srv.close()


SCENARIOS: dict[str, Callable[[], dict[str, float]]] = {
    "queue": scenario_queue, "reject": scenario_reject, "fast": scenario_fast,
    "hosts": scenario_hosts, "cap": scenario_cap, "recover": scenario_recover,
}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    every: dict[str, list[dict[str, float]]] = {}
    for name in args.only.split(","):
        runs = every[name] = [SCENARIOS[name]() for _ in range(args.runs)]
        print(f"\n{name} (medians of {args.runs} runs)")
        for key in runs[0]:
            values = [run[key] for run in runs]
            print(f"  {key:28} {statistics.median(values):10.3f}   runs: {', '.join(f'{v:.3g}' for v in values)}")
        sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps(every, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
