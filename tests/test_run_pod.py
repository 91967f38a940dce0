"""scripts/run-pod, the README's main job, as a newcomer runs it (as root: the pod as uid 1000
in a PID namespace): the printed ssh line logs in with a command appended, the session has the
pod's HOME and PATH, a second run on the same home logs in with the same keys, SIGTERM to the
script stops the pod, and what it made in /tmp is gone afterwards. Real sshd and ssh on loopback."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import free_port, wait_for

CHECKOUT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/sbin/sshd").exists(),
                                reason="run-pod's uid-1000 pod needs root and OpenSSH's sshd")


class RunPod:
    def __init__(self, home: Path, out: Path) -> None:
        self.out = out
        run = home.parent / "run"  # its own runtime directory: other tests' pods run as uid 1000 too
        run.mkdir(mode=0o700, exist_ok=True)
        os.chown(run, 1000, 1000)
        env = dict(os.environ, PYS6_POD_HOME=str(home), SSHD_PORT=str(free_port()), PYS6_RUNDIR=str(run))
        env.pop("PYS6_SSH_KEYS", None)
        self.proc = subprocess.Popen([str(CHECKOUT / "scripts/run-pod")], stdout=out.open("wb"),
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def ssh_line(self) -> list[str]:
        wait_for(lambda: "service ready service=sshd" in self.text() or self.proc.poll() is not None, 60,
                 "sshd ready under run-pod", interval=0.1)
        assert self.proc.poll() is None, self.text()
        line = re.search(r"log in:  (.*) \[COMMAND\]", self.text())
        assert line, self.text()
        return shlex.split(line.group(1))

    def login(self, command: str) -> subprocess.CompletedProcess[str]:
        argv = self.ssh_line() + ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", command]
        deadline = time.monotonic() + 30
        while True:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            if done.returncode == 0 or time.monotonic() > deadline:
                return done
            time.sleep(0.2)  # sshd answers a moment after its port is bound: poll, bounded

    def stop(self) -> int:
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            raise


@pytest.fixture
def home() -> Iterator[Path]:
    # the pod's user (uid 1000) must reach its home: not under pytest's root-only tmp
    base = Path(tempfile.mkdtemp(prefix="pys6-run-pod-test-", dir="/var/tmp"))
    base.chmod(0o755)
    try:
        yield base / "home"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_log_in_with_a_command_stop_with_sigterm_and_leave_nothing_behind(home: Path, tmp_path: Path):
    pod = RunPod(home, tmp_path / "out1")
    try:
        done = pod.login('echo "HOME=$HOME"; pwd; command -v pysvstat; pysvstat cron')
        assert done.returncode == 0, done.stderr + pod.text()[-3000:]
        lines = done.stdout.splitlines()
        assert lines[0] == f"HOME={home}"
        assert lines[1] == str(home)  # the seeded .bashrc moves a session into the pod's home
        assert lines[2].endswith("/bin/pysvstat")
        assert lines[3].startswith("up ")
        first_key = (home / ".run-pod-client/id_ed25519.pub").read_text()
        image = re.search(r"etc=(\S+)", pod.text()).group(1)  # type: ignore[union-attr]
        assert Path(image).is_dir()
    finally:
        code = pod.stop()
    assert code == 0, pod.text()[-3000:]
    assert "shutdown summary" in pod.text()
    assert not Path(image).exists()  # the image's copy in /tmp is removed
    again = RunPod(home, tmp_path / "out2")
    try:
        done = again.login("true")
        assert done.returncode == 0, done.stderr  # the same host keys in known_hosts, the same client key
        assert (home / ".run-pod-client/id_ed25519.pub").read_text() == first_key
    finally:
        assert again.stop() == 0
