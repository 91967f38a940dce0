"""Issue 21, point 9: PID 1's own streams stay clean, whatever storm of signals it goes through.

In a SIGCHLD storm (hundreds of orphans exiting at once, while a process of the pod sends
SIGCHLD to PID 1 in a loop) CPython used to print "Exception ignored when trying to write to
the signal wakeup fd ... BlockingIOError" tracebacks, raw, on pyinit's stderr: no `[pyinit]`
prefix, no JSON. Every line pyinit writes is its own event (`[pyinit] ...`, or a JSON object
with PYS6_LOG_FORMAT=json) or a service's line; the same for pycrond under a storm of jobs
exiting at once, in each of its log formats.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from harness import Cron, Pod, wait_for

ROUNDS = 2  # the storm is a race with PID 1's loop: two bursts made it fill the wakeup socket every time
ORPHANS_PER_ROUND = 400  # against the old pyinit 200 already printed thousands of raw lines
FLOOD_SECONDS = 20.0  # at most: the flood ends as soon as the storm is over

# Run as a service: a sibling floods its parent (PID 1) with SIGCHLD; meanwhile rounds of orphans
# are made (cats reading one pipe, whose only writer then exits) that all exit at once.
STORM = textwrap.dedent('''
    import os, signal, sys, time
    rounds, count, done = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    target = os.getppid()
    flooder = os.fork()
    if flooder == 0:
        deadline = time.monotonic() + float(sys.argv[4])
        while time.monotonic() < deadline and not os.path.exists(done):
            for _ in range(500):
                os.kill(target, signal.SIGCHLD)
        os._exit(0)
    devnull = os.open("/dev/null", os.O_WRONLY)
    for _ in range(rounds):
        middle = os.fork()
        if middle == 0:
            read_end, _write_end = os.pipe()
            actions = [(os.POSIX_SPAWN_DUP2, read_end, 0), (os.POSIX_SPAWN_DUP2, devnull, 1)]
            for _ in range(count):
                os.posix_spawn("/bin/cat", ["cat"], {}, file_actions=actions)
            os._exit(0)  # the pipe's only writer is gone: every cat reads EOF at once, an orphan
        os.waitpid(middle, 0)
        time.sleep(0.2)
    open(done, "w").close()
    os.waitpid(flooder, 0)
    print("storm over", flush=True)
    os.execv("/bin/sleep", ["sleep", "1000"])
''')

# A cron job that floods pycrond (its parent) with SIGCHLD, until SIGKILL or the deadline.
FLOODER = textwrap.dedent('''
    import os, signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # flooding on through the jobs' SIGTERM, to the KILL
    target = os.getppid()
    deadline = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < deadline and os.getppid() == target:
        for _ in range(200):
            os.kill(target, signal.SIGCHLD)
        time.sleep(0.001)
''')


def _bad_pyinit_lines(text: str, log_format: str, services: tuple[str, ...]) -> list[str]:
    """The lines that are neither pyinit's own events nor a known service's lines."""
    bad = []
    for line in text.splitlines():
        if log_format == "json":
            try:
                record = json.loads(line)
            except ValueError:
                bad.append(line)
                continue
            if not isinstance(record, dict) or not (record.get("source") == "pyinit" or
                                                    record.get("service") in services):
                bad.append(line)
        elif not line.startswith(("[pyinit] ", *(f"[{name}] " for name in services))):
            bad.append(line)
    return bad + [line for line in text.splitlines() if "Exception ignored" in line]


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_pyinit_writes_only_its_events_and_services_lines_through_a_sigchld_storm(pod: Pod, log_format: str):
    storm = pod.root / "storm.py"
    storm.write_text(STORM)
    done = pod.state / "storm-done"
    pod.service("storm", f'exec {sys.executable} {storm} {ROUNDS} {ORPHANS_PER_ROUND} {done} {FLOOD_SECONDS}\n')
    pod.start(env={"PYS6_LOG_FORMAT": log_format})
    wait_for(lambda: "storm over" in pod.stdout(), 60, "the storm to be over")
    assert pod.stop(30) == 0
    assert pod.stderr() and pod.stdout()
    for stream in (pod.stderr(), pod.stdout()):
        assert _bad_pyinit_lines(stream, log_format, ("storm",)) == []


# A service that floods its parent (PID 1) with SIGCHLD; it says so once it has sent a good many.
SIGCHLD_FLOOD = textwrap.dedent('''
    import os, signal, sys, time
    target, flooding = os.getppid(), sys.argv[1]
    sent = 0
    while os.getppid() == target:
        for _ in range(500):
            os.kill(target, signal.SIGCHLD)
        sent += 500
        if sent == 50_000:
            open(flooding, "w").close()
''')


def test_pyinit_obeys_a_sigterm_sent_amid_a_flood_of_sigchld(pod: Pod):
    flooder = pod.root / "flooder.py"
    flooder.write_text(SIGCHLD_FLOOD)
    for number in (1, 2):
        pod.service(f"flood{number}", f'exec {sys.executable} {flooder} "$STATE/flooding-{number}"\n')
    pod.start(env={"S6_KILL_GRACETIME": "500"})
    wait_for(lambda: (pod.state / "flooding-1").exists() and (pod.state / "flooding-2").exists(), 20, "the flood")
    pod.signal(signal.SIGTERM)
    assert pod.wait_exit(10) == 0  # lost to a full wakeup socket, the SIGTERM left pyinit running
    assert "Exception ignored" not in pod.stderr()


def _is_pycrond_line(line: str, log_format: str) -> bool:
    if log_format == "json":  # supercronic's logrus JSON, for its own lines and the jobs' alike
        try:
            return isinstance(json.loads(line), dict)
        except ValueError:
            return False
    if log_format == "logfmt":  # supercronic's default: time="..." level=... msg="..."
        return line.startswith('time="')
    return line.startswith("[")  # pycrond's text: "[pycrond] ..." and "[line N run M: ...] ..."


def _kill_marked(mark: bytes) -> None:
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/environ", "rb") as environ:
                    if mark in environ.read().split(b"\0"):
                        os.kill(int(name), signal.SIGKILL)
            except OSError:
                continue


@pytest.mark.parametrize("log_format", ["json", "logfmt", "text"])
def test_pycrond_writes_only_log_lines_when_its_jobs_all_exit_at_once(cron: Cron, tmp_path: Path,
                                                                        log_format: str):
    jobs = 100  # enough: against the old pycrond 100 jobs exiting at once still printed thousands of raw lines
    flooder = tmp_path / "flooder.py"
    flooder.write_text(FLOODER)
    mark = f"PYCROND_STREAMS_MARK={tmp_path}"
    lines = [mark, f"@reboot exec {sys.executable} {flooder} {FLOOD_SECONDS}"]
    lines += [f"* * * * * * * exec sleep 30 # job {number}" for number in range(jobs)]
    cron.crontab.write_text("\n".join(lines) + "\n")
    try:
        cron.start(f"--log-format={log_format}", "--keep-going", "--grace", "0", "--kill-after", "1",
                   readable=False)
        assert cron.process is not None
        pycrond = psutil.Process(cron.process.pid)
        wait_for(lambda: len(pycrond.children()) > jobs, 30, "every job to run")
        assert cron.stop(30) == 0  # --grace 0: every job is stopped at once
        for stream in (cron.stderr(), cron.stdout()):
            bad = [line for line in stream.splitlines()
                   if not _is_pycrond_line(line, log_format) or "Exception ignored" in line]
            assert bad == []
        assert "Exception ignored" not in cron.stderr()
    finally:
        _kill_marked(mark.encode())
