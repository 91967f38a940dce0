#!/usr/bin/env python3
"""Figures for pyinit, to read beside ../shared/PERFORMANCE.md (s6, runit, supervisord, tini).

pyinit runs as PID 1 of a fresh PID namespace when root (else as a subreaper), with
N services that are small bash scripts exec'ing sleep. Medians of --runs runs.
Prints; asserts nothing: the targets are for people to compare, not for CI.

    python bench/bench_pid1.py [--runs 5] [--idle 20] [--sizes 1,10,100]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(x) for x in handle.read().split()]
    except OSError:
        return []


def smaps_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def context_switches(pid: int) -> int:
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as handle:
                for line in handle:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def poll(condition, timeout: float, interval: float = 0.0005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("benchmark condition not met")


class Bench:
    def __init__(self, services: int, run_body: str = "exec sleep 100000", stdout=subprocess.DEVNULL,
                 env: dict[str, str] | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pys6-bench-"))
        for n in range(services):
            directory = self.root / "services.d" / f"s{n:03d}"
            directory.mkdir(parents=True)
            (directory / "run").write_text(f"#!/bin/bash\n{run_body}\n")
            os.chmod(directory / "run", 0o755)
        self.services = services
        env = {**os.environ, "PYS6_ETC": str(self.root), "PYS6_RUNDIR": str(self.root / "run"),
               "PYTHONPATH": str(REPO), **(env or {})}
        command = [sys.executable, "-m", "supervisor"]
        self.namespace = os.geteuid() == 0
        if self.namespace:
            # its own /run, as a container has: a PID 1 lays out s6-overlay's paths there
            command = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c",
                       'mount -t tmpfs -o mode=0755 pys6-bench-run /run && exec "$@"', "sh", *command]
        self.started = time.monotonic()
        self.process = subprocess.Popen(command, env=env, stdout=stdout, stderr=subprocess.DEVNULL,
                                        stdin=subprocess.DEVNULL)
        if self.namespace:
            self.init = poll(lambda: (children_of(self.process.pid) or [None])[0], 10)
        else:
            self.init = self.process.pid

    def service_pids(self) -> list[int]:
        return children_of(self.init)

    def wait_all_up(self) -> float:
        poll(lambda: len(self.service_pids()) >= self.services, 30)
        return time.monotonic() - self.started

    def stop(self) -> float:
        begun = time.monotonic()
        os.kill(self.init, signal.SIGTERM)
        self.process.wait(60)
        return time.monotonic() - begun

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def timed_status(bench: Bench, *args: str) -> float:
    """Whole-process wall seconds of one fresh `pysvstat ARGS` (its output read and dropped)."""
    env = {**os.environ, "PYS6_RUNDIR": str(bench.root / "run"), "PYTHONPATH": str(REPO)}
    begun = time.monotonic()
    subprocess.run([sys.executable, "-m", "supervisor.control.svstat", *args], env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)
    return time.monotonic() - begun


def measure_size(services: int, runs: int, idle: float) -> dict[str, float]:
    startup, shutdown, pss, rss, wakeups, cpu, check, listing = [], [], [], [], [], [], [], []
    for run in range(runs):
        bench = Bench(services)
        try:
            startup.append(bench.wait_all_up())
            time.sleep(1.0)  # let start-up settle before the idle window
            pss.append(smaps_kib(bench.init, "Pss"))
            rss.append(smaps_kib(bench.init, "Rss"))
            check.append(timed_status(bench, "--check"))  # a Kubernetes probe's usual timeout is 1 s
            listing.append(timed_status(bench, "--json"))
            if run == 0:
                switches, cpu0 = context_switches(bench.init), cpu_seconds(bench.init)
                time.sleep(idle)
                wakeups.append(context_switches(bench.init) - switches)
                cpu.append(cpu_seconds(bench.init) - cpu0)
            shutdown.append(bench.stop())
        finally:
            bench.close()
    return {
        "startup_ms": statistics.median(startup) * 1000,
        "sigterm_to_gone_ms": statistics.median(shutdown) * 1000,
        "pss_kib": statistics.median(pss),
        "rss_kib": statistics.median(rss),
        "idle_wakeups": wakeups[0],
        "idle_cpu_s": cpu[0],
        "check_ms": statistics.median(check) * 1000,
        "json_ms": statistics.median(listing) * 1000,
    }


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure_metrics(services: int, runs: int, idle: float) -> dict[str, float]:
    """With PYS6_METRICS_LISTEN and PYS6_METRICS_FILE set: idle wake-ups, a scrape's wall time, the page."""
    import urllib.request

    port = free_port()
    bench = Bench(services, env={"PYS6_METRICS_LISTEN": f"127.0.0.1:{port}",
                                 "PYS6_METRICS_FILE": str(Path(tempfile.gettempdir()) / f"pys6-bench-{port}.prom")})
    try:
        bench.wait_all_up()
        time.sleep(5.0)  # past the textfile's last write of the start
        switches = context_switches(bench.init)
        time.sleep(idle)
        wakeups = context_switches(bench.init) - switches
        scrapes, size = [], 0
        for _ in range(runs):
            time.sleep(0.6)  # past the page's 0.5 s cache: each scrape renders
            begun = time.monotonic()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
                size = len(response.read())
            scrapes.append(time.monotonic() - begun)
        shell = statistics.median(timed_status(bench, "--prometheus") for _ in range(runs))
        return {"idle_wakeups": wakeups, "scrape_ms": statistics.median(scrapes) * 1000, "page_kib": size / 1024,
                "shell_ms": shell * 1000}
    finally:
        bench.close()
        Path(tempfile.gettempdir(), f"pys6-bench-{port}.prom").unlink(missing_ok=True)


def measure_respawn(runs: int) -> float:
    bench = Bench(1, env={"PYS6_CRASH_DEATHS": "1000"})  # each kill is a death: do not bail
    try:
        bench.wait_all_up()
        delays = []
        for _ in range(runs):
            time.sleep(1.2)  # up for more than a second: s6's rule restarts it at once
            (victim,) = bench.service_pids()
            killed = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            poll(lambda victim=victim: [p for p in bench.service_pids() if p != victim], 5)
            delays.append(time.monotonic() - killed)
        return statistics.median(delays) * 1000
    finally:
        bench.close()


def measure_crash_loop() -> tuple[list[float], bool]:
    bench = Bench(1, run_body='date +%s.%N >> "$(dirname "$PWD")/../starts"; exit 1')
    try:
        starts_file = bench.root / "starts"
        poll(lambda: starts_file.exists() and len(starts_file.read_text().split()) >= 5, 15, 0.05)
        time.sleep(1.5)
        starts = [float(x) for x in starts_file.read_text().split()]
        gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        return gaps, len(starts) == 5
    finally:
        bench.close()


def measure_stubborn_shutdown() -> float:
    bench = Bench(1, run_body="trap '' TERM; while :; do sleep 1; done")
    try:
        bench.wait_all_up()
        time.sleep(0.5)
        return bench.stop()
    finally:
        bench.close()


def measure_log_throughput(lines: int) -> tuple[float, int]:
    read_end, write_end = os.pipe()
    bench = Bench(1, run_body=f"seq 1 {lines}; exec sleep 100000", stdout=write_end)
    os.close(write_end)
    got = [0, 0.0, 0.0]

    def reader() -> None:
        with os.fdopen(read_end, "rb", buffering=1 << 20) as stream:
            while got[0] < lines:
                chunk = stream.read1(1 << 20)
                if not chunk:
                    return
                if got[0] == 0:
                    got[1] = time.monotonic()
                got[0] += chunk.count(b"\n")
                got[2] = time.monotonic()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(120)
    try:
        return got[0] / max(got[2] - got[1], 1e-9), got[0]
    finally:
        bench.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle to count wake-ups over")
    parser.add_argument("--sizes", default="1,10,100")
    parser.add_argument("--log-lines", type=int, default=2_000_000)
    args = parser.parse_args()
    where = "PID 1 of a new PID namespace" if os.geteuid() == 0 else "subreaper (not root: no namespace)"
    print(f"pyinit benchmark: {where}; medians of {args.runs}; {os.cpu_count()} cores; {sys.version.split()[0]}")
    sizes = [int(x) for x in args.sizes.split(",")]
    results = {n: measure_size(n, args.runs, args.idle) for n in sizes}
    print(f"\n{'services':>8} {'startup ms':>11} {'SIGTERM->gone ms':>17} {'PID1 PSS MB':>12} {'PID1 RSS MB':>12} "
          f"{'wakeups/' + str(int(args.idle)) + 's':>13} {'idle CPU s':>11} {'--check ms':>11} {'--json ms':>10}")
    for n, r in results.items():
        print(f"{n:>8} {r['startup_ms']:>11.0f} {r['sigterm_to_gone_ms']:>17.1f} {r['pss_kib'] / 1024:>12.1f} "
              f"{r['rss_kib'] / 1024:>12.1f} {r['idle_wakeups']:>13} {r['idle_cpu_s']:>11.2f} "
              f"{r['check_ms']:>11.0f} {r['json_ms']:>10.0f}")
    if len(sizes) >= 2:
        small, large = sizes[-2], sizes[-1]
        marginal = (results[large]["pss_kib"] - results[small]["pss_kib"]) / (large - small)
        print(f"\nmarginal PSS per service ({small}->{large}): {marginal:.1f} KiB")
    print("\nwith metrics on (PYS6_METRICS_LISTEN and PYS6_METRICS_FILE):")
    print(f"{'services':>8} {'wakeups/' + str(int(args.idle)) + 's':>13} {'scrape ms':>10} {'page KiB':>9} "
          f"{'--prometheus ms':>16}")
    for n in sizes:
        m = measure_metrics(n, args.runs, args.idle)
        print(f"{n:>8} {m['idle_wakeups']:>13} {m['scrape_ms']:>10.1f} {m['page_kib']:>9.0f} {m['shell_ms']:>16.0f}")
    print(f"respawn after SIGKILL of a long-lived service: {measure_respawn(args.runs):.1f} ms (median)")
    gaps, bailed_at_five = measure_crash_loop()
    print(f"crash loop: gaps between starts {', '.join(f'{g:.2f}' for g in gaps)} s; "
          f"bailed after exactly 5: {'yes' if bailed_at_five else 'NO'}")
    print(f"SIGTERM -> gone, one service ignores TERM: {measure_stubborn_shutdown() * 1000:.0f} ms "
          f"(S6_SERVICES_GRACETIME 3000 ms)")
    rate, received = measure_log_throughput(args.log_lines)
    print(f"merged logs: {rate / 1e6:.2f} M lines/s with prefix, {args.log_lines - received} lost "
          f"of {args.log_lines}")


if __name__ == "__main__":
    main()
