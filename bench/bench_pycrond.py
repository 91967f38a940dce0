#!/usr/bin/env python3
"""pycrond at rest: RSS and CPU and wake-ups over 60 s idle with 20 jobs scheduled.

The jobs are daily (none falls due during the measurement); pycrond should sleep
until the next due time, re-reading the wall clock at most once a minute. Prints;
asserts nothing.

    python bench/bench_pycrond.py [--idle 60]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pid1 import context_switches, cpu_seconds, smaps_kib  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=float, default=60.0)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pys6-bench-cron-"))
    crontab = root / "crontab"
    crontab.write_text("".join(f"{n} 3 * * * echo job-{n}\n" for n in range(20)))
    process = subprocess.Popen([sys.executable, "-m", "supervisor.cron.main", str(crontab)],
                               env={**os.environ, "PYTHONPATH": str(REPO)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2.0)
        switches, cpu = context_switches(process.pid), cpu_seconds(process.pid)
        time.sleep(args.idle)
        wakeups = context_switches(process.pid) - switches
        used = cpu_seconds(process.pid) - cpu
        print(f"pycrond, 20 daily jobs, {args.idle:.0f} s idle, {sys.version.split()[0]}")
        print(f"  RSS {smaps_kib(process.pid, 'Rss') / 1024:.1f} MB, PSS {smaps_kib(process.pid, 'Pss') / 1024:.1f} MB")
        print(f"  wake-ups (context switches) {wakeups}, {wakeups / (args.idle / 60):.1f} a minute; CPU {used:.2f} s")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    measure_punctuality(root)


def measure_punctuality(root: Path, seconds: int = 20) -> None:
    """How late a seconds-level job starts after its scheduled second (the job itself notes the time)."""
    stamps = root / "stamps"
    crontab = root / "punctual"
    crontab.write_text(f"* * * * * * * date +%s.%N >> {stamps}\n")
    process = subprocess.Popen([sys.executable, "-m", "supervisor.cron.main", str(crontab)],
                               env={**os.environ, "PYTHONPATH": str(REPO)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(seconds + 1.5)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    late = sorted((float(x) % 1.0) * 1000 for x in stamps.read_text().split())
    print(f"  a per-second job over {seconds} s: {len(late)} runs, start after its second: "
          f"median {late[len(late) // 2]:.1f} ms, max {late[-1]:.1f} ms (target < 100 ms)")


if __name__ == "__main__":
    main()
