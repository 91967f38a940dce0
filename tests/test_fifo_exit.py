"""A control FIFO cannot hold PID 1's exit (issue 21, point 6).

A writer that PID 1 cannot kill (outside its PID namespace, as a sidecar sharing /run is; here
the test itself, from the host) keeps a service's supervise/control fed while pyinit shuts down:
pyinit still exits within its shutdown budget, and the test kills the writer afterwards.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import SLEEPER, Pod, killed_at_exit, read_int, wait_for

pytestmark = pytest.mark.namespace

# Writes LETTERS into the FIFO for as long as it can, reopening it if a write fails.
WRITER = r"""
import os, signal, sys
signal.signal(signal.SIGPIPE, signal.SIG_IGN)
path, letters = sys.argv[1], sys.argv[2].encode() * 64
fd = os.open(path, os.O_WRONLY)
os.write(1, b"writing\n")
while True:
    try:
        os.write(fd, letters)
    except BrokenPipeError:
        break
"""
# With the defaults and no cont-finish script: services within 2 x 3 s + 2 s at worst, then 3 s
# for everything else. The sleeper stops at once, so pyinit is out in well under a second.
SHUTDOWN_BUDGET = 11.0


def _writer(fifo: Path, letters: str, stdout: Path) -> subprocess.Popen[bytes]:
    with open(stdout, "wb") as out:
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(fifo), letters], stdout=out,
                                   stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
    wait_for(lambda: b"writing" in stdout.read_bytes(), 10, "the writer to open the FIFO")
    return process


def _fed_pod(pod: Pod) -> None:
    pod.service("a", SLEEPER)
    pod.start()
    pod.wait_control()
    wait_for(lambda: read_int(pod, "a.pid"), what="service a")


def _exits_within_budget_after_sigterm(pod: Pod) -> None:
    started = time.monotonic()
    pod.signal(signal.SIGTERM)
    try:
        pod.wait_exit(SHUTDOWN_BUDGET)
    except subprocess.TimeoutExpired:
        pytest.fail(f"pyinit still runs {SHUTDOWN_BUDGET} s after SIGTERM while the FIFO is fed")
    assert time.monotonic() - started < SHUTDOWN_BUDGET


@pytest.mark.parametrize("letters", ["t", "xk"], ids=["signals-to-a-down-service", "ignored-letters-and-kills"])
def test_a_writer_outside_the_namespace_cannot_hold_the_exit(pod: Pod, letters: str):
    _fed_pod(pod)
    # The service's supervise/control as pyinit sees it, reached through its root from the host.
    fifo = pod.seen_from_pyinit("/run/service/a/supervise/control")
    with killed_at_exit(_writer(fifo, letters, pod.root / "writer.out")) as writer:
        wait_for(lambda: any("command" in e.fields for e in pod.events("s6-svc", service="a")), 10,
                 "pyinit to apply the letters")
        _exits_within_budget_after_sigterm(pod)
        assert pod.event("exiting") is not None
        writer.kill()  # ours to end: nothing inside the pod could
        writer.wait(10)


def test_a_writer_on_the_scan_control_fifo_cannot_hold_the_exit(pod: Pod):
    """The same on .s6-svscan/control with letters that do not stop the container (z: reap,
    n: noted and ignored)."""
    _fed_pod(pod)
    fifo = Path(f"/proc/{pod.init_pid}/root/run/service/.s6-svscan/control")
    with killed_at_exit(_writer(fifo, "zn", pod.root / "writer.out")) as writer:
        pod.wait_event("s6-svscanctl command ignored: a service whose directory is gone keeps running", command="-n")
        _exits_within_budget_after_sigterm(pod)
        writer.kill()
        writer.wait(10)
