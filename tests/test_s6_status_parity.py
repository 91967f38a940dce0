"""What s6's own tools see of pyinit's services, beside the real s6-supervise (issue 23).

The same four service definitions run under s6-supervise of s6 2.15.1.0 (the s6 that
s6-overlay 3.2.3.2 ships, unpacked in /opt/s6-overlay-real) and under pyinit (a subreaper);
both are stepped with the same s6-svc commands, and s6-svstat 2.15's words on pyinit's
supervise directories, and pys6's own s6-svstat, must be what s6-svstat 2.15 says of
s6-supervise's: byte for byte but for pids (P) and seconds (within one second of each
other, as the two are read a few milliseconds apart). s6-svwait is Debian's (2.15's needs
s6-overlay's own paths for s6-ftrigrd); it reads the same 35-byte status file.
docs/svstat-compare.sh prints the same comparison for a person.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness import REPO, Pod, wait_for

S6_215 = Path("/opt/s6-overlay-real/rootfs-overlay/package/admin/s6-2.15.1.0/command")
DEBIAN_SVWAIT = shutil.which("s6-svwait")
NAMES = ("app", "rdy", "off", "fin")
SERVICES: dict[str, tuple[str, dict[str, str]]] = {  # name: (run, other files)
    "app": ("#!/bin/sh\nexec sleep 1000\n", {}),  # no notification-fd
    "rdy": ("#!/bin/sh\necho >&3\nexec sleep 1000\n", {"notification-fd": "3\n"}),
    "off": ("#!/bin/sh\nexec sleep 1000\n", {"down": ""}),
    "fin": ("#!/bin/sh\nexec sleep 1000\n", {"finish": "#!/bin/sh\nexec sleep 1\n"}),
}
NUMBER = re.compile(r"-?\d+")

pytestmark = pytest.mark.skipif(not (S6_215 / "s6-supervise").is_file() or DEBIAN_SVWAIT is None,
                                reason="needs s6 2.15.1.0 in /opt/s6-overlay-real and Debian's s6-svwait")


class RealSupervise:
    """One s6-supervise 2.15 per service directory under `root`, each in its own session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.processes: list[subprocess.Popen[bytes]] = []
        self.service_pids: set[int] = set()
        for name, (run, files) in SERVICES.items():
            directory = root / name
            directory.mkdir(parents=True)
            (directory / "run").write_text(run)
            os.chmod(directory / "run", 0o755)
            for filename, content in files.items():
                (directory / filename).write_text(content)
                if filename == "finish":
                    os.chmod(directory / filename, 0o755)
        for name in NAMES:
            self.processes.append(subprocess.Popen([str(S6_215 / "s6-supervise"), str(root / name)],
                                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL, start_new_session=True))

    def close(self) -> None:
        """s6-svc -dx to each (down, then s6-supervise exits), then each supervisor by its pid, and any
        service process seen that is still there."""
        for name in NAMES:
            pid = subprocess.run([str(S6_215 / "s6-svstat"), "-o", "pid", str(self.root / name)],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
            if pid.isdigit() and int(pid) > 0:
                self.service_pids.add(int(pid))
            subprocess.run([str(S6_215 / "s6-svc"), "-dx", str(self.root / name)], capture_output=True, timeout=10)
        for process in self.processes:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pid in self.service_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def real(tmp_path: Path) -> Iterator[RealSupervise]:
    supervisors = RealSupervise(tmp_path / "s6")
    try:
        yield supervisors
    finally:
        supervisors.close()


def svstat(directory: Path, *options: str) -> str:
    """s6-svstat 2.15's whole output, its newline and any space before it kept."""
    done = subprocess.run([str(S6_215 / "s6-svstat"), *options, str(directory)], capture_output=True, text=True,
                          timeout=10)
    assert done.returncode == 0, done.stderr
    return done.stdout


def pys6(pod: Pod, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    """pys6's own s6-svstat or s6-svwait, from this checkout, spoken to the pod's control socket."""
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO),
               "PYS6_RUNDIR": str(pod.rundir)}
    code = f"import sys; from supervisor.s6.clients import {command}; sys.exit({command}(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], env=environ, capture_output=True, text=True,
                          timeout=30)


def svc(real: RealSupervise, pod: Pod, option: str, name: str) -> None:
    """The same s6-svc 2.15 command to both, a few milliseconds apart."""
    for directory in (real.root / name, theirs(pod, name)):
        done = subprocess.run([str(S6_215 / "s6-svc"), option, str(directory)], capture_output=True, text=True,
                              timeout=10)
        assert done.returncode == 0, done.stderr


def theirs(pod: Pod, name: str) -> Path:
    return pod.rundir / "service" / name


def template(text: str) -> tuple[str, list[int]]:
    """The words with pids as P and other numbers as N, and those other numbers."""
    text = re.sub(r"\(pid \d+ pgid \d+\)", "(pid P pgid P)", text)
    return NUMBER.sub("N", text), [int(n) for n in NUMBER.findall(text)]


def assert_same(expected: str, got: str, what: str) -> None:
    """The same bytes but for pids and seconds, which may differ by one."""
    (want_words, want_numbers), (got_words, got_numbers) = template(expected), template(got)
    assert got_words == want_words, (what, expected, got)
    assert all(abs(a - b) <= 1 for a, b in zip(want_numbers, got_numbers, strict=True)), (what, expected, got)


def fields(text: str) -> str:
    """-o output with the pids (any number but -1, true, false) as P."""
    return " ".join("P" if word.isdigit() else word for word in text.rstrip("\n").split(" ")) + "\n"


def compare(real: RealSupervise, pod: Pod, name: str, what: str, *options: str) -> str:
    """s6-svstat 2.15 on s6-supervise's directory is the reference: on pyinit's, and pys6's s6-svstat."""
    reference = svstat(real.root / name, *options)
    on_pyinit = svstat(theirs(pod, name), *options)
    ours = pys6(pod, "s6_svstat", *options, str(theirs(pod, name)))
    assert ours.returncode == 0, ours.stderr
    if options:
        assert fields(on_pyinit) == fields(reference), (what, "s6-svstat on pyinit's directory", reference, on_pyinit)
        assert fields(ours.stdout) == fields(reference), (what, "pys6's s6-svstat", reference, ours.stdout)
    else:
        assert_same(reference, on_pyinit, f"{what}: s6-svstat 2.15 on pyinit's directory")
        assert_same(reference, ours.stdout, f"{what}: pys6's s6-svstat")
    return reference


def up(directory: Path) -> bool:
    return svstat(directory, "-o", "up") == "true\n"


def both(real: RealSupervise, pod: Pod, name: str, condition: Callable[[Path], bool]) -> bool:
    return bool(condition(real.root / name) and condition(theirs(pod, name)))


def start_both(real: RealSupervise, pod: Pod) -> None:
    for name, (run, files) in SERVICES.items():
        pod.service(name, run, **files)
    pod.start()
    pod.wait_control()
    wait_for(lambda: all(both(real, pod, name, up) for name in ("app", "rdy", "fin"))
             and both(real, pod, "rdy", lambda d: svstat(d, "-o", "ready") == "true\n"), 15, "the services up")


def test_s6_svstat_says_of_pyinits_services_what_it_says_of_s6_supervises(real: RealSupervise,
                                                                           subreaper_pod: Pod) -> None:
    pod = subreaper_pod
    start_both(real, pod)

    # plain up (no notification-fd: never ready to s6), notification-fd ready, never started
    assert re.fullmatch(r"up \(pid \d+ pgid \d+\) \d+ seconds\n", compare(real, pod, "app", "app up"))
    assert ", ready " in compare(real, pod, "rdy", "rdy up, ready")
    assert compare(real, pod, "off", "off, never started") == "down (not started yet) \n"  # s6's space
    assert fields(compare(real, pod, "app", "-o on app up", "-o", "up,ready,pid,pgid")) == "true false P P\n"
    compare(real, pod, "rdy", "-o on rdy up", "-o", "up,ready,pid,pgid,paused")

    # s6-svc -p, then -c: s6-supervise's paused flag, in the status file
    svc(real, pod, "-p", "rdy")
    wait_for(lambda: both(real, pod, "rdy", lambda d: ", paused" in svstat(d)), 10, "paused in both status files")
    compare(real, pod, "rdy", "rdy after -p")
    compare(real, pod, "rdy", "-o paused on rdy after -p", "-o", "paused,up,ready")
    svc(real, pod, "-c", "rdy")
    wait_for(lambda: both(real, pod, "rdy", lambda d: ", paused" not in svstat(d)), 10, "paused cleared in both")
    compare(real, pod, "rdy", "rdy after -c")

    # s6-svc -o on a normally-down service: up once, "want down" to s6; then -d
    svc(real, pod, "-o", "off")
    wait_for(lambda: both(real, pod, "off", up), 10, "off up once in both")
    assert re.fullmatch(r"up \(pid \d+ pgid \d+\) \d+ seconds, normally down, want down\n",
                        compare(real, pod, "off", "off after -o"))
    compare(real, pod, "off", "-o on off after -o", "-o", "up,wantedup,normallyup,ready")
    svc(real, pod, "-d", "off")
    wait_for(lambda: both(real, pod, "off", lambda d: not up(d)), 10, "off down in both")
    compare(real, pod, "off", "off after -d")

    # after -d without a finish: down, and ready (its finish, none, is done) from the death on
    svc(real, pod, "-d", "app")
    wait_for(lambda: both(real, pod, "app", lambda d: not up(d)), 10, "app down in both")
    assert re.fullmatch(r"down \(signal SIGTERM\) \d+ seconds, normally up, ready \d+ seconds\n",
                        compare(real, pod, "app", "app after -d"))
    assert compare(real, pod, "app", "-o on app down", "-o", "up,ready,pid,pgid") == "false false -1 -1\n"

    # after -d with a finish of 1 s: no ready while it runs; then ready, counted from its end
    for _attempt in range(3):  # the reads while the finish runs must all fall inside its second
        svc(real, pod, "-u", "fin")
        wait_for(lambda: both(real, pod, "fin", up), 10, "fin up in both")
        svc(real, pod, "-d", "fin")
        wait_for(lambda: both(real, pod, "fin", lambda d: not up(d)), 10, "fin down in both")
        began = time.monotonic()
        during = compare(real, pod, "fin", "fin after -d, its finish running")
        if time.monotonic() - began < 0.8:
            break
    assert re.fullmatch(r"down \(signal SIGTERM\) \d+ seconds, normally up\n", during)
    wait_for(lambda: both(real, pod, "fin", lambda d: ", ready " in svstat(d)), 10, "fin's finish over in both")
    after = compare(real, pod, "fin", "fin after its finish ended")
    down_seconds, ready_seconds = (int(n) for n in re.findall(r"(\d+) seconds", after))
    assert ready_seconds < down_seconds  # the finish's end, a second after the death
    mine = [int(n) for n in re.findall(r"(\d+) seconds", svstat(theirs(pod, "fin")))]
    assert mine[1] < mine[0], mine  # not from the death, as pyinit's status file once counted it
    assert pod.stop() == 0


def test_s6_svwait_U_times_out_on_a_service_without_notification_fd_under_both(real: RealSupervise,
                                                                                subreaper_pod: Pod) -> None:
    pod = subreaper_pod
    start_both(real, pod)
    assert DEBIAN_SVWAIT is not None
    for directory in (real.root / "app", theirs(pod, "app")):
        waited = subprocess.run([DEBIAN_SVWAIT, "-U", "-t", "300", str(directory)], capture_output=True, text=True,
                                timeout=10)
        assert waited.returncode == 99, (directory, waited.returncode, waited.stderr)  # s6-svwait's "timed out"
        assert subprocess.run([DEBIAN_SVWAIT, "-u", "-t", "2000", str(directory)], capture_output=True,
                              timeout=10).returncode == 0
        assert subprocess.run([DEBIAN_SVWAIT, "-U", "-t", "2000", str(real.root / "rdy")], capture_output=True,
                              timeout=10).returncode == 0
    assert subprocess.run([DEBIAN_SVWAIT, "-U", "-t", "2000", str(theirs(pod, "rdy"))], capture_output=True,
                          timeout=10).returncode == 0
    debian_svc = shutil.which("s6-svc")
    assert debian_svc is not None
    # s6-svc -wU is not s6-svwait -U: without ./notification-fd it waits for up, saying so
    warning = "/notification-fd not present - ignoring request for readiness notification\n"
    for directory in (real.root / "app", theirs(pod, "app")):
        waited = subprocess.run([debian_svc, "-wU", "-T", "2000", "-u", str(directory)], capture_output=True,
                                text=True, timeout=10)
        assert waited.returncode == 0 and waited.stderr.endswith(warning), (directory, waited.stderr)
    ours_svc = pys6(pod, "s6_svc", "-wU", "-T", "2000", "-u", str(theirs(pod, "app")))
    assert ours_svc.returncode == 0 and ours_svc.stderr == f"s6-svc: warning: {theirs(pod, 'app')}{warning}", \
        ours_svc.stderr
    assert pys6(pod, "s6_svc", "-wU", "-T", "2000", "-u", str(theirs(pod, "rdy"))).returncode == 0
    ours = pys6(pod, "s6_svwait", "-U", "-t", "300", str(theirs(pod, "app")))
    assert ours.returncode == 99 and "timed out" in ours.stderr, (ours.returncode, ours.stderr)
    assert pys6(pod, "s6_svwait", "-U", "-t", "2000", str(theirs(pod, "rdy"))).returncode == 0
    assert pys6(pod, "s6_svwait", "-u", "-t", "2000", str(theirs(pod, "app"))).returncode == 0
    # pyinit's own readiness counts it ready once up, as s6-overlay and s6-rc wait for it (-u)
    assert pod.cli("svc", "-wU", "-T", "2000", "-u", "app").returncode == 0
    assert pod.cli("svstat", "--check").returncode == 0
    assert pod.stop() == 0
