#!/usr/bin/env python3
"""Where PID 1's memory goes: PSS added by each layer of what pyinit imports, in one fresh
interpreter, then by each service (run bench_pid1.py or ../shared/anchor-bench for the
per-service cost of a live pyinit). The README's breakdown comes from this.

Each step runs in a fresh `python -S` (site imported by hand, as at any start-up) that
imports the layers below it first, so a step's figure is what it adds. Prints; asserts nothing.

    python bench/bench_memory.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

LAYERS = [
    ("interpreter and site (all of it)", "import site; site.main()"),
    ("ssl: libssl, libcrypto (asyncio, anyio)", "import ssl"),
    ("asyncio, the rest of it", "import asyncio"),
    ("anyio and its asyncio backend", "import anyio._backends._asyncio"),
    ("structlog (all of its modules)", "import structlog"),
    ("pyinit's own modules", "import supervisor.root, supervisor.init"),
    ("psutil (forensics only, not at rest)", "import psutil"),
    ("yaml (a config file only, not at rest)", "import yaml"),
]

_PROBE = """
import sys
sys.path.insert(0, {repo!r})
steps = {steps!r}
def pss():
    with open("/proc/self/smaps_rollup") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
before = pss()
for code in steps[:-1]:
    exec(code)
middle = pss()
exec(steps[-1])
print(middle if len(steps) > 1 else 0, pss())
"""


def added_kib(index: int, runs: int) -> float:
    steps = [code for _label, code in LAYERS[: index + 1]]
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-S", "-c", _PROBE.format(repo=str(REPO), steps=steps)],
                             capture_output=True, text=True, check=True).stdout.split()
        samples.append(int(out[1]) - int(out[0]))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"PSS each layer adds, MB (medians of {args.runs}, {sys.version.split()[0]}, {sys.executable})")
    total = 0.0
    for index, (label, _code) in enumerate(LAYERS):
        kib = added_kib(index, args.runs)
        at_rest = "not at rest" not in label
        total += kib if at_rest else 0
        print(f"  {label:42s} {kib / 1024:6.1f}")
    print(f"  {'what pyinit loads at rest':42s} {total / 1024:6.1f}")


if __name__ == "__main__":
    main()
