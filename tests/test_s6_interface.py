"""s6's own programs against pyinit's services: Debian's s6-svc, s6-svstat, s6-svwait, s6-svok
and s6-notifyoncheck on the supervise/ and event/ directories pyinit keeps (issue 12, point 2).

pyinit runs as a subreaper here, so its scan directory is $PYS6_RUNDIR/service, on this
machine's filesystem where the test can reach it (as PID 1 it is /run/service in the pod's
own /run: the same code, other paths).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import SLEEPER, Pod, read_int, wait_for


@pytest.fixture(autouse=True)
def _needs_s6() -> None:
    missing = [p for p in ("s6-svc", "s6-svstat", "s6-svwait", "s6-svok", "s6-notifyoncheck") if shutil.which(p) is None]
    if missing:
        pytest.skip(f"needs Debian's s6 package ({', '.join(missing)} missing; .ci/run installs it)")


def s6(*args: str, timeout: float = 30, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                          env=None if env is None else {**os.environ, **env})


@pytest.fixture
def ours() -> Iterator[Path]:
    """pys6's own s6 programs under s6's names, as `pyinit --install-s6-commands` puts them."""
    directory = Path(tempfile.mkdtemp(prefix="pys6-s6cmds-"))
    try:
        installed = subprocess.run([str(Path(sys.executable).parent / "pyinit"), "--install-s6-commands",
                                    str(directory)], capture_output=True, text=True, timeout=30)
        assert installed.returncode == 0, installed.stderr
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def scandir(pod: Pod) -> Path:
    return pod.rundir / "service"


def status(pod: Pod, name: str) -> dict:
    result = pod.cli("svstat", "--json", name)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_s6_svstat_reads_what_pysvstat_says(subreaper_pod: Pod):
    pod = subreaper_pod
    pod.service("on", SLEEPER)
    pod.service("off", SLEEPER, down="")
    pod.service("ready", 'echo $$ > "$STATE/ready.pid"\necho >&3\nexec sleep 1000\n', notification_fd="3\n")
    pod.service("died", "exit 3", finish="exit 125")
    pod.start()
    pod.wait_control()
    wait_for(lambda: read_int(pod, "on.pid") and read_int(pod, "ready.pid") and status(pod, "ready")["ready"],
             what="the services")
    wait_for(lambda: status(pod, "died")["exitcode"] == 3, what="died to die")
    for name in ("on", "off", "ready", "died"):
        # Debian's s6 is 2.11, which says exitcode 0 for a service never started; 2.13, whose
        # words pysvstat prints, says -1: the field is compared where both versions agree.
        fields = "up,wantedup,normallyup,ready,pid,signal" + (",exitcode" if name != "off" else "")
        theirs = s6("s6-svstat", "-o", fields, str(scandir(pod) / name))
        ours = pod.cli("svstat", "-o", fields, name)
        assert theirs.returncode == 0, theirs.stderr
        if name == "on":  # no notification-fd: never ready to s6 (as s6-supervise says it), ready once up to pysvstat
            assert theirs.stdout.split()[3] == "false" and ours.stdout.split()[3] == "true", (theirs.stdout, ours.stdout)
            theirs_fields, ours_fields = theirs.stdout.split(), ours.stdout.split()
            del theirs_fields[3], ours_fields[3]
            assert theirs_fields == ours_fields, (name, theirs.stdout, ours.stdout)
            continue
        assert theirs.stdout == ours.stdout, (name, theirs.stdout, ours.stdout)
    legacy = s6("s6-svstat", str(scandir(pod) / "on")).stdout
    assert re.fullmatch(rf"up \(pid {read_int(pod, 'on.pid')}\) \d+ seconds\n", legacy), legacy
    assert s6("s6-svstat", str(scandir(pod) / "off")).stdout == "down (not started yet), normally down\n" or \
        s6("s6-svstat", str(scandir(pod) / "off")).stdout.startswith("down (exitcode 0) ")
    assert s6("s6-svok", str(scandir(pod) / "on")).returncode == 0
    assert pod.stop() == 0
    assert s6("s6-svok", str(scandir(pod) / "on")).returncode == 1  # nobody holds the lock any more


def test_s6_svc_steers_the_services(subreaper_pod: Pod):
    pod = subreaper_pod
    pod.service("svc", SLEEPER)
    pod.service("ready", 'echo $$ > "$STATE/ready.pid"\nsleep 0.2\necho >&3\nexec sleep 1000\n', notification_fd="3\n")
    pod.start()
    pod.wait_control()
    wait_for(lambda: read_int(pod, "svc.pid"), what="the service")
    first = status(pod, "svc")["pid"]
    directory = str(scandir(pod) / "svc")

    assert s6("s6-svc", "-wD", "-d", directory).returncode == 0  # returns once it is down and finished
    assert status(pod, "svc")["state"] == "down" and status(pod, "svc")["want"] == "down"
    assert s6("s6-svc", "-wu", "-u", directory).returncode == 0
    second = status(pod, "svc")["pid"]
    assert status(pod, "svc")["state"] == "up" and second not in (None, first)

    assert s6("s6-svc", "-wr", "-t", directory).returncode == 0  # SIGTERM: it dies and comes back
    wait_for(lambda: status(pod, "svc")["pid"] not in (None, second), what="a new incarnation after -t")

    assert s6("s6-svc", "-O", directory).returncode == 0  # once at most: not restarted after its next death
    assert s6("s6-svc", "-wd", "-k", directory).returncode == 0
    wait_for(lambda: status(pod, "svc")["state"] == "down", what="svc to stay down after -O and -k")
    pod.wait_event("s6-svc", service="svc", command="O", action="once-at-most")

    ready = str(scandir(pod) / "ready")
    assert s6("s6-svc", "-wR", "-r", "-T", "10000", ready).returncode == 0  # restarted, and ready again
    assert status(pod, "ready")["ready"]
    assert s6("s6-svc", "-wD", "-d", ready).returncode == 0
    assert s6("s6-svc", "-wU", "-u", "-T", "10000", ready).returncode == 0  # up, and ready (its newline on fd 3)
    assert status(pod, "ready")["ready"]
    assert pod.stop() == 0


def test_s6_svwait_wakes_on_pyinits_events(subreaper_pod: Pod):
    pod = subreaper_pod
    pod.service("slow", 'test -e "$STATE/go" || { sleep 0.05; exit 1; }\necho >&3\nexec sleep 1000\n',
                notification_fd="3\n")
    pod.start(env={"PYS6_CRASH_DEATHS": "1000"})
    pod.wait_control()
    directory = str(scandir(pod) / "slow")
    events = scandir(pod) / "slow" / "event"
    waiter = subprocess.Popen(["s6-svwait", "-U", "-t", "20000", directory], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(p.name.startswith("ftrig1:@") for p in events.iterdir()), what="s6-svwait to listen")
        assert waiter.poll() is None  # not ready yet: it is still waiting
        (pod.state / "go").touch()
        assert waiter.wait(20) == 0, waiter.stderr.read() if waiter.stderr else ""
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait(10)
    assert status(pod, "slow")["ready"]
    assert pod.stop() == 0


def checked_until_ready(pod: Pod, notifyoncheck: str) -> None:
    """A service made ready by `notifyoncheck` once its data/check passes: shown not ready, then ready."""
    service = pod.service("checked", f'exec {notifyoncheck} -w 50 -n 0 sleep 1000\n', notification_fd="3\n")
    (service / "data").mkdir()
    (service / "data" / "check").write_text(f'#!/bin/sh\ntest -e "{pod.state}/healthy"\n')
    (service / "data" / "check").chmod(0o755)
    pod.start()
    pod.wait_control()
    wait_for(lambda: status(pod, "checked")["state"] == "up", what="the checked service")
    assert not status(pod, "checked")["ready"]
    (pod.state / "healthy").touch()
    wait_for(lambda: status(pod, "checked")["ready"], 20, f"readiness from {notifyoncheck}'s check")


def test_s6_notifyoncheck_reports_readiness_through_pyinit(subreaper_pod: Pod):
    pod = subreaper_pod
    checked_until_ready(pod, "s6-notifyoncheck")
    assert "s6-supervise not running" not in pod.stdout() + pod.stderr()
    assert pod.stop() == 0


def test_the_control_fifo_ignores_what_it_does_not_know_and_pyinit_goes_on(subreaper_pod: Pod):
    from supervisor.control.protocol import SIGNAL_LETTERS, STATE_LETTERS

    pod = subreaper_pod
    pod.service("svc", SLEEPER)
    pod.start()
    pod.wait_control()
    pid = wait_for(lambda: read_int(pod, "svc.pid"), what="the service")
    unknown = bytes(b for b in range(256) if chr(b) not in SIGNAL_LETTERS and chr(b) not in STATE_LETTERS)
    with open(scandir(pod) / "svc" / "supervise" / "control", "wb", buffering=0) as control:
        control.write(unknown * 8)
    pod.wait_event("s6-svc command ignored")  # the unknown bytes noted
    assert pod.process is not None and pod.process.poll() is None
    assert status(pod, "svc")["pid"] == pid  # nothing happened to it
    assert pod.stop() == 0


# --- pys6's own s6 programs (for images that removed s6), beside the real ones ------------------


def test_pys6s_s6_svstat_and_s6_svok_say_what_s6s_say(subreaper_pod: Pod, ours: Path):
    pod = subreaper_pod
    pod.service("on", SLEEPER)
    pod.service("died", "exit 3", finish="exit 125")
    pod.start()
    pod.wait_control()
    wait_for(lambda: read_int(pod, "on.pid") and status(pod, "died")["exitcode"] == 3, what="the services")
    env = {"PYS6_RUNDIR": str(pod.rundir)}
    for name in ("on", "died"):
        path = str(scandir(pod) / name)
        fields = "up,wantedup,normallyup,ready,pid,exitcode,signal"
        theirs = s6("s6-svstat", "-o", fields, path)
        mine = s6(str(ours / "s6-svstat"), "-o", fields, path, env=env)
        assert (mine.returncode, mine.stdout) == (0, theirs.stdout), (name, mine.stderr)
        # a second may tick between the two reads
        their_time = int(s6("s6-svstat", "-o", "updownfor", path).stdout)
        my_time = int(s6(str(ours / "s6-svstat"), "-o", "updownfor", path, env=env).stdout)
        assert 0 <= my_time - their_time <= 1
        assert s6(str(ours / "s6-svok"), path, env=env).returncode == 0
    # s6 2.15's words: no notification-fd, so never ready; its pgid is its pid (tests/test_s6_status_parity.py)
    assert re.fullmatch(r"up \(pid (\d+) pgid \1\) \d+ seconds\n",
                        s6(str(ours / "s6-svstat"), str(scandir(pod) / "on"), env=env).stdout)
    missing = s6(str(ours / "s6-svstat"), "/run/service/nosuch", env=env)
    assert missing.returncode == 1 and "s6-supervise not running" in missing.stderr
    assert s6(str(ours / "s6-svok"), "/run/service/nosuch", env=env).returncode == 1
    assert s6(str(ours / "s6-svstat"), "-Z", "x", env=env).returncode == 100
    assert pod.stop() == 0
    assert s6(str(ours / "s6-svok"), str(scandir(pod) / "on"), env=env).returncode == 1


def test_pys6s_s6_svc_s6_svwait_and_s6_svscanctl_steer_as_s6s_do(subreaper_pod: Pod, ours: Path):
    pod = subreaper_pod
    pod.service("svc", SLEEPER)
    pod.service("never", "exec sleep 1000", notification_fd="3\n")
    pod.start()
    pod.wait_control()
    env = {"PYS6_RUNDIR": str(pod.rundir)}
    path = str(scandir(pod) / "svc")
    assert s6(str(ours / "s6-svc"), "-wD", "-d", path, env=env).returncode == 0
    assert status(pod, "svc")["state"] == "down"
    assert s6(str(ours / "s6-svc"), "-t", path, env=env).returncode == 0  # a signal to a down service: ignored
    assert s6(str(ours / "s6-svc"), "-wu", "-ux", path, env=env).returncode == 0  # -x: noted, not applied
    assert status(pod, "svc")["state"] == "up"
    unknown = s6(str(ours / "s6-svc"), "-d", "/run/service/nosuch", env=env)
    assert unknown.returncode == 100 and "supervisor not listening" in unknown.stderr
    timed_out = s6(str(ours / "s6-svwait"), "-U", "-t", "300", str(scandir(pod) / "never"), env=env)
    assert timed_out.returncode == 99 and "timed out" in timed_out.stderr
    assert s6(str(ours / "s6-svwait"), "-o", "-u", "-t", "5000", str(scandir(pod) / "never"), path,
              env=env).returncode == 0
    assert s6(str(ours / "s6-svscanctl"), "-t", str(scandir(pod)), env=env).returncode == 0
    assert pod.wait_exit(20) == 0
    assert any(str(e.fields.get("reason", "")).startswith("s6-svscanctl -t ") for e in pod.events())


def test_pys6s_s6_notifyoncheck_reports_readiness(subreaper_pod: Pod, ours: Path):
    pod = subreaper_pod
    checked_until_ready(pod, f"{ours}/s6-notifyoncheck")
    assert pod.stop() == 0
    wait_for(lambda: not any(p.isdigit() and _is_checker_of(int(p), str(ours)) for p in os.listdir("/proc")),
             what="the checker to die with the service")


def _is_checker_of(pid: int, marker: str) -> bool:
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_s6_svscanctl_a_starts_the_services_added_since_boot(subreaper_pod: Pod):
    pod = subreaper_pod
    pod.service("first", SLEEPER)
    pod.start()
    pod.wait_control()
    wait_for(lambda: read_int(pod, "first.pid"), what="the first service")
    pod.service("added", SLEEPER)  # an s6-overlay v2 script adding a service at run time
    assert s6("s6-svscanctl", "-a", str(scandir(pod))).returncode == 0
    wait_for(lambda: read_int(pod, "added.pid"), 20, "the added service")
    assert status(pod, "added")["state"] == "up"
    assert pod.stop() == 0
