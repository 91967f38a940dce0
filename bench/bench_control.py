#!/usr/bin/env python3
"""How fast the control clients answer, beside ../shared/PERFORMANCE.md's s6-svstat and supervisorctl.

Starts pyinit (PID 1 of a new namespace when root) with 10 services, then times
`pysvstat`, `pysvstat SERVICE`, `pysvc -t SERVICE` and `pysvc -wu -T 1000 SERVICE`
as fresh processes (the scripts installed beside the interpreter running this),
each beside `python -c pass` on the same interpreter: the commands take turns,
one run of each per round, so a noisy moment weighs on all of them alike. Then
one status exchange from an already running process (connect, request, reply:
one connection per request is the protocol). Whole-process wall-time medians,
and each one's ratio to `python -c pass`; prints, asserts nothing.

    python bench/bench_control.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_pid1 import Bench, poll  # noqa: E402

from supervisor.control import client, protocol  # noqa: E402


def timed_in_turns(commands: dict[str, list[str]], env: dict[str, str], runs: int) -> dict[str, float]:
    """Median wall milliseconds of each command, the commands run in turn, `runs` rounds."""
    samples: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, command in commands.items():
            started = time.perf_counter()
            subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)
            samples[label].append(time.perf_counter() - started)
    return {label: statistics.median(values) * 1000 for label, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    bench = Bench(10, run_body="trap '' TERM; exec sleep 100000")  # -t must not restart it every time
    try:
        bench.wait_all_up()
        env = {**os.environ, "PYS6_RUNDIR": str(bench.root / "run")}
        os.environ["PYS6_RUNDIR"] = env["PYS6_RUNDIR"]
        poll(lambda: (bench.root / "run" / "control.sock").exists(), 10)
        bindir = Path(sys.executable).parent
        svstat = str(bindir / "pysvstat") if (bindir / "pysvstat").exists() else None
        svc = str(bindir / "pysvc") if (bindir / "pysvc").exists() else None
        base = [sys.executable, "-m"]
        svstat_cmd = [svstat] if svstat else [*base, "supervisor.control.svstat"]
        svc_cmd = [svc] if svc else [*base, "supervisor.control.svc"]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "pysvstat (all)": svstat_cmd,
            "pysvstat s005": [*svstat_cmd, "s005"],
            "pysvc -t s005": [*svc_cmd, "-t", "s005"],
            "pysvc -wu -T 1000 s005": [*svc_cmd, "-wu", "-T", "1000", "s005"],
        }
        medians = timed_in_turns(commands, env, args.runs)
        floor = medians["python -c pass"]
        print(f"control clients, fresh processes in turn, medians of {args.runs}, 10 services, {sys.version.split()[0]}")
        for label, median in medians.items():
            print(f"  {label + ':':36s}{median:7.1f} ms  {median / floor:4.2f} x python -c pass")
        samples = []
        for _ in range(args.runs * 10):
            started = time.perf_counter()
            client.call({"v": protocol.VERSION, "verb": "status", "services": ["s005"]})
            samples.append(time.perf_counter() - started)
        print(f"  status exchange, running process:   {statistics.median(samples) * 1000:7.2f} ms")
    finally:
        bench.close()


if __name__ == "__main__":
    main()
