#!/usr/bin/env python3
"""Figures for health checks: pyinit with 100 services, each checked every 10 s, idle.

Three pods of N services (bash exec'ing sleep): without checks; with a health-tcp check each
(all on one listener of this process: pyinit connects from inside itself); with an exec
`health` each (a fork and exec per check). For each: pyinit's PSS and RSS once all are up and
ready, and over an idle window its wake-ups (context switches) and CPU seconds. Prints;
asserts nothing.

    python bench/bench_health.py [--services 100] [--interval 10] [--idle 30]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pid1 import REPO, children_of, context_switches, cpu_seconds, poll, smaps_kib  # noqa: E402


def boot(root: Path, services: int, kind: str, interval: float, port: int) -> subprocess.Popen[bytes]:
    for n in range(services):
        directory = root / "services.d" / f"s{n:03d}"
        directory.mkdir(parents=True)
        (directory / "run").write_text("#!/bin/bash\nexec sleep 100000\n")
        (directory / "run").chmod(0o755)
        if kind == "tcp":
            (directory / "health-tcp").write_text(f"{port}\n")
        elif kind == "exec":
            (directory / "health").write_text("#!/bin/sh\nexit 0\n")
            (directory / "health").chmod(0o755)
        if kind != "none":
            (directory / "health-interval").write_text(f"{interval}\n")
    env = {**os.environ, "PYS6_ETC": str(root), "PYS6_RUNDIR": str(root / "run"), "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "supervisor"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


def all_ready(root: Path) -> bool:
    env = {**os.environ, "PYS6_RUNDIR": str(root / "run"), "PYTHONPATH": str(REPO)}
    answer = subprocess.run([sys.executable, "-m", "supervisor.control.svstat", "--check"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    return answer.returncode == 0


def measure(kind: str, services: int, interval: float, idle: float, port: int) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="pys6-bench-health-"))
    process = boot(root, services, kind, interval, port)
    try:
        poll(lambda: len(children_of(process.pid)) >= services, 60, 0.05)
        poll(lambda: all_ready(root), 120, 0.2)  # with tcp/exec checks: each one's first pass
        time.sleep(1.0)
        pss, rss = smaps_kib(process.pid, "Pss"), smaps_kib(process.pid, "Rss")
        switches, cpu = context_switches(process.pid), cpu_seconds(process.pid)
        time.sleep(idle)
        return {"pss_kib": pss, "rss_kib": rss, "wakeups_per_s": (context_switches(process.pid) - switches) / idle,
                "cpu_ms_per_s": (cpu_seconds(process.pid) - cpu) * 1000 / idle}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        subprocess.run(["rm", "-rf", str(root)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--idle", type=float, default=30.0)
    args = parser.parse_args()
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)  # the kernel completes the handshakes
    port = listener.getsockname()[1]

    def accept_and_close() -> None:  # so the accept queue never fills over a long window
        while True:
            try:
                listener.accept()[0].close()
            except OSError:
                return

    threading.Thread(target=accept_and_close, daemon=True).start()
    print(f"{args.services} services, checks every {args.interval:g} s, idle window {args.idle:g} s "
          f"({args.services / args.interval:g} checks/s expected)")
    print(f"{'checks':>8} {'PSS KiB':>9} {'RSS KiB':>9} {'wake-ups/s':>11} {'CPU ms/s':>9}")
    try:
        for kind in ("none", "tcp", "exec"):
            figures = measure(kind, args.services, args.interval, args.idle, port)
            print(f"{kind:>8} {figures['pss_kib']:>9.0f} {figures['rss_kib']:>9.0f} "
                  f"{figures['wakeups_per_s']:>11.1f} {figures['cpu_ms_per_s']:>9.2f}", flush=True)
    finally:
        listener.close()


if __name__ == "__main__":
    main()
