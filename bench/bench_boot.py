#!/usr/bin/env python3
"""Boot time and stop time of pyinit against real s6-overlay v3.2.3.2, on the rig's trees.

Boots each tree (the rig's minimal tree and tests/differential/trees/*) as PID 1 of fresh
namespaces through the differential rig's boot.sh (its --inside half, the way
tests/differential/driver.py does: the image's files over s6-overlay's tarballs over a
Debian root, this checkout's supervisor/ bound over the root's installed one), alternately
under real s6-overlay and under pyinit, --runs times each, and prints the medians and the
ratios (pys6 / s6-overlay) of:

  first script   exec of the entry point to the first cont-init.d script starting (a tree
                 without cont-init.d: the first script any init stage runs)
  last longrun   exec to the last longrun's run script starting (services.d and s6-rc's)
  stop           SIGTERM to PID 1 to PID 1 gone (its namespace's processes die with it)

The times come from a marker every instrumented script calls first (`date +%s.%N`
appended to a file; the same fork and exec of date under both inits) against the stamp
boot.sh takes right before it execs the entry point. The measurer polls that file; the
inits do nothing for it. Standard library only; prints, asserts nothing.

    sudo python3 bench/bench_boot.py [--runs 5] [--trees minimal,rc-graph] [--inits s6-overlay,pys6]

The root: PYS6_RIG_ROOT (else the driver's default); a copy of the rig's root is the safe
choice (cp -a /var/cache/pys6-rig/root /var/tmp/NAME; tests/differential/rig/prepare-root.sh).
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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "differential"))

import driver  # noqa: E402  (the differential suite's driver: its rig, its tree copying)

SHARED_MINIMAL = Path("/work/shared/s6-overlay-real/minimal")
SETTLE = 0.3  # seconds after the last longrun marked before SIGTERM (a late extra start shows)
BOOT_BOUND = 20.0  # seconds from exec for every longrun to mark; else the boot counts as not booted
STOP_BOUND = 15.0  # seconds from SIGTERM to gone before SIGKILL

MARK = """#!/bin/sh
# bench_boot's marker: LABEL and the wall clock, as early as the script can
echo "$1 $(date +%s.%N)" >> /.bench/marks
"""


def trees(names: list[str] | None) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if SHARED_MINIMAL.is_dir():
        found["minimal"] = SHARED_MINIMAL
    for tree in sorted(driver.TREES.iterdir()):
        if tree.is_dir() and tree.name not in found:
            found[tree.name] = tree
    if names:
        found = {name: found[name] for name in names}
    return found


def _mark_script(path: Path, label: str) -> bool:
    """Puts the marker right after the interpreter line (after with-contenv's effect)."""
    if not path.is_file() or path.is_symlink():
        return False
    return driver.insert_after_shebang(path, f"/.bench/mark {label}")


def instrument(tree: Path) -> tuple[set[str], set[str]]:
    """Marks the copied tree's scripts: (the cont-init labels and every script's, the
    longruns' labels)."""
    etc = tree / "rootfs" / "etc"
    scripts: set[str] = set()
    longruns: set[str] = set()
    for entry in sorted((etc / "cont-init.d").glob("*")):
        if _mark_script(entry, f"cont-init:{entry.name}"):
            scripts.add(f"cont-init:{entry.name}")
    for service in sorted((etc / "services.d").glob("*")):
        for run, label in ((service / "run", f"svc:{service.name}"), (service / "log" / "run", f"svc:{service.name}:log")):
            if _mark_script(run, label):
                longruns.add(label)
    rcd = etc / "s6-overlay" / "s6-rc.d"
    for service in sorted(rcd.glob("*")):
        kind = (service / "type").read_text().strip() if (service / "type").is_file() else ""
        if kind == "longrun" and _mark_script(service / "run", f"rc:{service.name}"):
            longruns.add(f"rc:{service.name}")
        elif kind == "oneshot" and (service / "up").is_file():
            # the script a oneshot's up names (LinuxServer's init-* run files)
            for line in (service / "up").read_text().splitlines():
                words = line.split()
                if words and not words[0].startswith("#"):
                    if words[0].startswith("/"):
                        target = tree / "rootfs" / words[0].lstrip("/")
                        if _mark_script(target, f"oneshot:{service.name}"):
                            scripts.add(f"oneshot:{service.name}")
                    break
    return scripts, longruns


def read_marks(path: Path) -> dict[str, float]:
    """label -> its first stamp."""
    marks: dict[str, float] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return marks
    for line in text.splitlines():
        label, _, stamp = line.partition(" ")
        try:
            value = float(stamp)
        except ValueError:
            continue  # a line being written
        marks.setdefault(label, value)
    return marks


def boot_once(tree: Path, init: str, out: Path, longruns: set[str], extra_env: str = "") -> dict[str, float | None]:
    """One boot: the three figures in seconds (None where it did not get there)."""
    root = driver.rig_root()
    out.mkdir(parents=True)
    for name in ("upper", "work", "merged", "bench"):
        (out / name).mkdir()
    bench = out / "bench"
    (bench / "mark").write_text(MARK)
    (bench / "mark").chmod(0o755)
    (bench / "marks").touch()
    (bench / "marks").chmod(0o666)
    bench.chmod(0o1777)
    lower = [str(tree / "rootfs")]
    if init != "pys6-bare":
        lower += [str(driver.s6o_prefix() / "rootfs-overlay"), str(driver.s6o_prefix() / "symlinks-overlay")]
    lower.append(str(root))
    packages = driver.site_packages(root)
    assert packages is not None
    binds = [f"{bench}:/.bench", f"{REPO / 'supervisor'}:/{packages.relative_to(root)}"]
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "PYS6_INIT": "/opt/pys6/bin/pyinit",
        "BOOT_ENV": extra_env,
        "BOOT_BIND": " ".join(binds),
    }
    marks = bench / "marks"
    with open(out / "console", "wb") as sink:
        ush = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount", "--propagation", "private", "--uts", "--ipc", "--net",
             "--mount-proc", "--kill-child", str(driver.RIG / "boot.sh"), "--inside", str(out / "merged"),
             ":".join(lower), str(out / "upper"), str(out / "work"), init, str(tree), str(out / "t0")],
            env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True, cwd="/")
    result: dict[str, float | None] = {"first": None, "last": None, "stop": None}
    try:
        started = time.monotonic()
        pid1 = None
        while pid1 is None and ush.poll() is None and time.monotonic() - started < 10:
            kids = driver._children(ush.pid)
            pid1 = kids[0] if kids else None
            if pid1 is None:
                time.sleep(0.005)
        while ush.poll() is None and time.monotonic() - started < BOOT_BOUND:
            if longruns <= set(read_marks(marks)):
                time.sleep(SETTLE)
                break
            time.sleep(0.02)
        seen = read_marks(marks)
        t0 = float((out / "t0").read_text())
        firsts = [stamp for label, stamp in seen.items() if label.startswith("cont-init:")]
        if not firsts:
            firsts = [stamp for label, stamp in seen.items() if not label.startswith(("svc:", "rc:"))]
        if firsts:
            result["first"] = min(firsts) - t0
        if longruns and longruns <= set(seen):
            result["last"] = max(seen[label] for label in longruns) - t0
        if ush.poll() is None and pid1 is not None:
            sent = time.monotonic()
            os.kill(pid1, signal.SIGTERM)
            try:
                ush.wait(STOP_BOUND)
                result["stop"] = time.monotonic() - sent
            except subprocess.TimeoutExpired:
                pass
    finally:
        if ush.poll() is None:
            os.killpg(ush.pid, signal.SIGKILL)
            ush.wait(30)
    return result


def fmt(value: float | None) -> str:
    return "   n/a  " if value is None else f"{value * 1000:7.1f}ms"


def median(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.median(got) if len(got) * 2 > len(values) else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--trees", help="comma-separated tree names (default: all)")
    parser.add_argument("--inits", default="s6-overlay,pys6", help="the first is the reference")
    parser.add_argument("--keep", action="store_true", help="keep the boots' directories")
    parser.add_argument("--env", default="", help="KEY=VALUE words for the image (docker run -e), every init")
    args = parser.parse_args()
    problem = driver.rig_problem()
    if problem:
        print(f"bench_boot: {problem}", file=sys.stderr)
        return 2
    inits = args.inits.split(",")
    chosen = trees(args.trees.split(",") if args.trees else None)
    scratch = Path(tempfile.mkdtemp(prefix="bench-boot-"))
    print(f"root {driver.rig_root()}; {args.runs} alternated runs each; medians; ratio = {inits[-1]} / {inits[0]}")
    try:
        for name, source in chosen.items():
            copy = driver.copy_tree(driver.Case(name, source), scratch / name / "tree")
            scripts, longruns = instrument(copy)
            figures: dict[str, dict[str, list[float | None]]] = {i: {"first": [], "last": [], "stop": []} for i in inits}
            for run in range(args.runs):
                order = inits if run % 2 == 0 else inits[::-1]
                for init in order:
                    got = boot_once(copy, init, scratch / name / f"{init}-{run}", longruns, args.env)
                    for key, value in got.items():
                        figures[init][key].append(value)
            print(f"\n{name}: {len(scripts)} early scripts marked, longruns {', '.join(sorted(longruns)) or 'none'}")
            print(f"  {'':12} " + " ".join(f"{init:>12}" for init in inits) + "    ratio")
            for key, title in (("first", "first script"), ("last", "last longrun"), ("stop", "stop")):
                meds = [median(figures[init][key]) for init in inits]
                ref, last = meds[0], meds[-1]
                ratio = f"{last / ref:6.2f}x" if ref and last is not None else "   n/a"
                runs = "  runs " + " / ".join(",".join(fmt(v).strip() for v in figures[init][key]) for init in inits)
                print(f"  {title:12} " + " ".join(f"{fmt(m):>12}" for m in meds) + f"  {ratio}{runs}")
    finally:
        if args.keep:
            print(f"\nboots kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
