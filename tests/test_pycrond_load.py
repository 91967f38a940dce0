"""Issue 21, point 8: pycrond obeys SIGTERM under load.

3,000 every-second jobs make pycrond start 3,000 processes at each tick. A SIGTERM that comes
amid those starts is obeyed at once: no further run starts, and the shutdown ladder (--grace,
then SIGTERM, then after --kill-after SIGKILL, to every run's process group at once) ends
pycrond within its bound, leaving no job behind. A SIGTERM amid a flood of SIGCHLD (a job
sending them in a loop) is not lost either.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import psutil

from harness import Cron, wait_for

JOBS = 3000
TERM_IGNORING_EVERY = 100  # these jobs outlive SIGTERM: only the SIGKILL step ends them
GRACE = 0.5
KILL_AFTER = 0.5
MARGIN = 3.0  # the start of the Python interpreter's exit, the reaping, the last log lines


def _marked_processes(mark: bytes) -> list[int]:
    """The live processes whose environment carries `mark` (each job inherits it from the crontab)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as environ:
                if mark in environ.read().split(b"\0"):
                    found.append(int(name))
        except OSError:
            continue
    return found


def _kill_marked(mark: bytes) -> None:
    for pid in _marked_processes(mark):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _children(pid: int) -> int:
    try:
        return len(psutil.Process(pid).children())
    except psutil.Error:
        return 0


def test_a_sigterm_amid_thousands_of_starting_jobs_stops_pycrond_within_its_bound(cron: Cron):
    mark = f"PYCROND_LOAD_MARK={cron.root}"
    lines = [mark]
    for number in range(JOBS):
        ignore = 'trap "" TERM; ' if number % TERM_IGNORING_EVERY == 0 else ""
        lines.append(f"* * * * * * * {ignore}exec sleep 30 # job {number}")
    cron.crontab.write_text("\n".join(lines) + "\n")
    try:
        cron.start("--grace", str(GRACE), "--kill-after", str(KILL_AFTER))
        assert cron.process is not None
        pid = cron.process.pid
        wait_for(lambda: _children(pid) >= 20, 20, "pycrond to start its first jobs")
        started_before = _children(pid)
        cron.process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        code = cron.process.wait(30)
        took = time.monotonic() - sent
        runs_started = cron.stderr().count("[pycrond] starting ")
        assert code == 0
        assert took <= GRACE + KILL_AFTER + MARGIN, f"pycrond took {took:.1f} s to obey SIGTERM"
        # The signal was seen amid the starts, not once all 3,000 had been started.
        assert runs_started <= started_before + 300, (runs_started, started_before)
        assert "jobs still running after the grace time, stopping them" in cron.stderr()
        assert not _marked_processes(mark.encode()), "jobs outlived pycrond"
    finally:
        _kill_marked(mark.encode())


# A job that floods pycrond (its parent) with SIGCHLD; it says so once it has sent a good many.
FLOODER = textwrap.dedent('''
    import os, signal, sys, time
    target, flooding = os.getppid(), sys.argv[1]
    deadline = time.monotonic() + 30
    sent = 0
    while time.monotonic() < deadline and os.getppid() == target:
        for _ in range(500):
            os.kill(target, signal.SIGCHLD)
        sent += 500
        if sent == 50_000:
            open(flooding, "w").close()
''')
TRIALS = 3  # the old code lost the SIGTERM about three times in four: three trials catch it


def test_a_sigterm_amid_a_flood_of_sigchld_is_never_lost(tmp_path: Path):
    flooder = tmp_path / "flooder.py"
    flooder.write_text(FLOODER)
    for trial in range(TRIALS):
        root = tmp_path / f"trial-{trial}"
        root.mkdir()
        runner = Cron(root)
        try:
            flooding = [root / "flooding-1", root / "flooding-2"]
            runner.crontab.write_text("".join(f"@reboot exec {sys.executable} {flooder} {path}\n" for path in flooding)
                                      + "* * * * * * * exec sleep 30\n")
            runner.start("--grace", "0", "--kill-after", str(KILL_AFTER))
            assert runner.process is not None
            wait_for(lambda: all(path.exists() for path in flooding), 20,  # noqa: B023 (called at once)
                     "the flood of SIGCHLD")
            runner.process.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            try:
                runner.process.wait(KILL_AFTER + MARGIN)
            except Exception:
                raise AssertionError(f"trial {trial}: pycrond still runs {KILL_AFTER + MARGIN} s after SIGTERM") from None
            assert time.monotonic() - sent <= KILL_AFTER + MARGIN
            assert "received terminated, shutting down" in runner.stderr()
            assert "Exception ignored" not in runner.stderr()
        finally:
            runner.close()
