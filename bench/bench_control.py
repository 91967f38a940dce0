#!/usr/bin/env python3
"""How fast the control clients answer, beside ../shared/PERFORMANCE.md's s6-svstat and supervisorctl.

Starts pyinit (PID 1 of a new namespace when root) with 10 services, then times
`pysvstat`, `pysvstat SERVICE` and `pysvc -t SERVICE` as fresh processes (the
console scripts of the interpreter running this), and one status exchange from
an already running process (connect, request, reply: one connection per
request is the protocol). Medians; prints, asserts nothing.

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

from supervisor import client, protocol  # noqa: E402


def timed(command: list[str], env: dict[str, str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


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
        svstat_cmd = [svstat] if svstat else [*base, "supervisor.svstat"]
        svc_cmd = [svc] if svc else [*base, "supervisor.svc"]
        print(f"control clients, medians of {args.runs}, 10 services, {sys.version.split()[0]}")
        print(f"  python -c pass (fresh process):     {timed([sys.executable, '-c', 'pass'], env, args.runs):7.1f} ms")
        print(f"  pysvstat (all, fresh process):      {timed(svstat_cmd, env, args.runs):7.1f} ms")
        print(f"  pysvstat s005 (fresh process):      {timed([*svstat_cmd, 's005'], env, args.runs):7.1f} ms")
        print(f"  pysvc -t s005 (fresh process):      {timed([*svc_cmd, '-t', 's005'], env, args.runs):7.1f} ms")
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
