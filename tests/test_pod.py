"""The pod itself, end to end, on this repository's real trees: real sshd, real ssh, real tmux.

pyinit runs as PID 1 of a PID namespace as uid 1000, on a temp dir laid out as
the image's filesystem: the three trees as /etc's, the templates, a throwaway
HOME, a generated client key as the mounted secret.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness import REPO, Pod, free_port, wait_for, world_readable_source

# Uses the default runtime directory (/tmp/pys6-1000, /run/pys6) or plants one.
pytestmark = pytest.mark.machine_wide

PROGRAMS = {  # the image's console scripts, for uid 1000, from a copy of the package any uid can read
    "pysvstat": "-m supervisor.control.svstat", "pysvc": "-m supervisor.control.svc", "pycrond": "-m supervisor.cron.main",
    "pys6-notify-listening": "-m supervisor.pod.notifylisten", "pys6-tmux-save": "-m supervisor.pod.tmux save",
    "pys6-tmux-restore": "-m supervisor.pod.tmux restore",
}



def image_switches() -> dict[str, str]:
    """The PYS6_ switches the Dockerfile sets on lines of their own (`ENV PYS6_X=V`): the pod's
    trees run here as in the image."""
    found = {}
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("ENV PYS6_") and line.count("=") == 1 and " " not in line[4:]:
            name, value = line[4:].split("=")
            found[name] = value
    assert found, "the Dockerfile sets none of pys6's switches"
    return found


class PodImage:
    """The image's filesystem in a temp dir, and the ssh client's side."""

    def __init__(self, pod: Pod) -> None:
        import sys

        self.pod = pod
        self.home = pod.root / "home"
        self.home.mkdir()
        for tree in ("cont-init.d", "services.d", "cont-finish.d"):
            shutil.rmtree(pod.etc / tree)
            shutil.copytree(REPO / tree, pod.etc / tree)
        shutil.copytree(REPO / "templates", pod.root / "templates")
        self.bin = pod.root / "bin"
        self.bin.mkdir()
        source = world_readable_source()
        for name, module in PROGRAMS.items():
            wrapper = self.bin / name
            wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={source} exec {sys.executable} {module} \"$@\"\n")
            wrapper.chmod(0o755)
        client = pod.root / "client"
        client.mkdir(mode=0o700)
        self.key = client / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True)
        self.known_hosts = client / "known_hosts"
        secret = pod.root / "secret"
        secret.mkdir()
        shutil.copy(str(self.key) + ".pub", secret / "authorized_keys")
        self.tmux_dir = pod.root / "tmux"  # /tmp may not be world-writable: tmux gets a directory of its own
        self.tmux_dir.mkdir(mode=0o700)
        for path in (self.home, self.tmux_dir):
            os.chown(path, 1000, 1000)
        self.port = free_port()
        self.user = pwd.getpwuid(1000).pw_name
        self.env = {
            "HOME": str(self.home), "SSHD_PORT": str(self.port), "SSHD_LISTEN": "127.0.0.1",
            "PYS6_SSH_KEYS": str(secret / "authorized_keys"), "PYS6_TEMPLATES": str(pod.root / "templates"),
            "PATH": f"{self.bin}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "TMUX_TMPDIR": str(self.tmux_dir),
            **image_switches(),
        }

    def boot(self) -> None:
        self.pod.start(default_rundir=True, env=self.env)
        wait_for(lambda: self.pysvstat("--check").returncode == 0, 30, "sshd and cron up and ready")

    def pysvstat(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.pod.cli("svstat", *args, uid=1000, rundir=False)

    def ssh(self, command: str, strict: bool = False) -> subprocess.CompletedProcess[str]:
        checking = ["-o", "StrictHostKeyChecking=yes"] if strict else ["-o", "StrictHostKeyChecking=accept-new"]
        return subprocess.run(
            ["ssh", "-i", str(self.key), "-p", str(self.port), "-o", "BatchMode=yes", *checking,
             "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "LogLevel=ERROR",
             f"{self.user}@127.0.0.1", f"export PATH={self.bin}:$PATH TMUX_TMPDIR={self.tmux_dir}; {command}"],
            capture_output=True, text=True, timeout=30)

    def ssh_session(self, command: str) -> subprocess.Popen[bytes]:
        """A login that stays open, reading its stdin, until the test is done with it."""
        return subprocess.Popen(
            ["ssh", "-i", str(self.key), "-p", str(self.port), "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={self.known_hosts}",
             "-o", "LogLevel=ERROR", f"{self.user}@127.0.0.1", command],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)

    def as_user(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", *command],
                              env={**self.env}, capture_output=True, text=True, timeout=30, cwd="/")


def _line(process: subprocess.Popen[bytes], timeout: float) -> bytes:
    """One line of a process's output, or an AssertionError after `timeout` seconds."""
    import select

    assert process.stdout is not None
    line = b""
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"no line from {process.args[0]} in {timeout} s (so far {line!r})")
        byte = process.stdout.read(1)
        if not byte:
            break
        line += byte
    return line


def _processes_of(root: Path) -> list[str]:
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        command = " ".join(proc.info["cmdline"] or [])
        if str(root) in command:
            found.append(command)
    return found


@pytest.fixture
def pod_image(unprivileged_pod: Pod):
    if shutil.which("sshd", path="/usr/sbin:/usr/bin") is None or shutil.which("ssh") is None:
        pytest.skip("openssh-server / openssh-client are not installed (scripts/bootstrap installs them as root)")
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (scripts/bootstrap installs it as root)")
    try:
        pwd.getpwuid(1000)
    except KeyError:
        pytest.skip("no user with uid 1000 in /etc/passwd for sshd to log in (.ci/run creates one)")
    image = PodImage(unprivileged_pod)
    try:
        yield image
    finally:
        image.as_user("tmux", "kill-server")


def test_the_pod_end_to_end(pod_image: PodImage):
    image, pod = pod_image, pod_image.pod
    image.boot()
    stderr = pod.stderr()
    for line in ("[cont-init.d/10-home] home directories made:", "[cont-init.d/20-ssh-host-keys] host keys made:",
                 "[cont-init.d/30-authorized-keys] authorized keys installed", "[cont-init.d/40-templates] seeded"):
        assert line in pod.stdout() + stderr, line
    assert "[sshd] Server listening on 127.0.0.1 port" in stderr

    # Over SSH, as a person would: both services up and ready.
    status = image.ssh("pysvstat")
    assert status.returncode == 0, status.stderr
    assert "cron: up (pid " in status.stdout and "sshd: up (pid " in status.stdout
    assert status.stdout.count(", ready ") == 2

    # A seconds-level job from the user's crontab reaches the merged log under [cron].
    crontab = image.home / ".crontab"
    crontab.write_text(crontab.read_text() + "* * * * * * * echo tick from cron\n")
    pod.wait_stderr('msg="tick from cron" channel=stdout', 20)  # supercronic's log line, as dashboards expect
    assert any(line.startswith("[cron] time=") and "job.command=\"echo tick from cron\"" in line
               for line in pod.stderr().splitlines())

    # tmux with two windows in two directories, started inside the SSH login.
    (image.home / "projects").mkdir()
    (image.home / "notes").mkdir()
    for path in (image.home / "projects", image.home / "notes"):
        os.chown(path, 1000, 1000)
    made = image.ssh(f"tmux new-session -d -s work -n code -c {image.home}/projects && "
                     f"tmux new-window -d -t work: -n notes -c {image.home}/notes && tmux list-windows -t work")
    assert made.returncode == 0 and made.stdout.count("\n") == 2, made.stderr

    # SIGHUP to cron's whole process group: cron alone is respawned; sshd, an open login and tmux live.
    login = image.ssh_session("echo logged in; read line; echo still here")
    try:
        assert _line(login, 20) == b"logged in\n"
        cron_pid = int(image.pysvstat("-p", "cron").stdout)
        sshd_pid = int(image.pysvstat("-p", "sshd").stdout)
        os.killpg(pod.host_pid(cron_pid), signal.SIGHUP)
        wait_for(lambda: image.pysvstat("-p", "cron").stdout.strip() not in ("-1", str(cron_pid)), 10,
                 "cron's respawn")
        assert int(image.pysvstat("-p", "sshd").stdout) == sshd_pid
        assert image.ssh("tmux list-sessions -F '#{session_name}'").stdout == "work\n"
        assert login.stdin is not None
        login.stdin.write(b"go\n")
        assert _line(login, 20) == b"still here\n" and login.wait(10) == 0
    finally:
        if login.poll() is None:
            login.kill()
            login.wait()

    # SIGTERM: the tmux save happens while tmux lives; everything is gone; exit 0 inside the budget.
    started = time.monotonic()
    assert pod.stop(30) == 0
    assert time.monotonic() - started < 16.1
    assert _processes_of(pod.root) == []  # sshd, pycrond, tmux: all gone with PID 1
    saved = (image.home / ".tmux" / "resurrect" / "last").read_text()
    assert "pane\twork\t0\t:code\t" in saved and f":{image.home}/projects\t" in saved
    assert "pane\twork\t1\t:notes\t" in saved and f":{image.home}/notes\t" in saved
    assert "[cont-finish.d/02-tmux-save] tmux layout saved to" in pod.stdout()
    restored = image.as_user(str(image.bin / "pys6-tmux-restore"))
    assert restored.returncode == 0 and "restored: work" in restored.stdout, restored
    windows = image.as_user("tmux", "list-panes", "-s", "-t", "work", "-F", "#{window_name} #{pane_current_path}")
    assert windows.stdout.splitlines() == [f"code {image.home}/projects", f"notes {image.home}/notes"]
    image.as_user("tmux", "kill-server")

    # A second boot on the same home: same host keys, nothing overwritten, the edited crontab kept.
    edited = crontab.read_text()
    bashrc = image.home / ".bashrc"
    bashrc.write_text(bashrc.read_text() + "# mine\n")
    os.chown(bashrc, 1000, 1000)
    pod.kill()
    pod.start(default_rundir=True, env=image.env)
    wait_for(lambda: image.pysvstat("--check").returncode == 0, 30, "the second boot")
    assert image.ssh("true", strict=True).returncode == 0  # known_hosts still matches
    assert crontab.read_text() == edited and bashrc.read_text().endswith("# mine\n")
    for line in ("home directories already in place", "host keys kept", "authorized keys unchanged",
                 "user files already in place, none overwritten"):
        assert line in pod.stdout(), line
    assert pod.stop(30) == 0


def test_a_missing_secret_is_a_warning_and_cron_still_runs(pod_image: PodImage):
    image = pod_image
    image.env["PYS6_SSH_KEYS"] = str(image.pod.root / "absent")
    image.pod.start(default_rundir=True, env=image.env)
    image.pod.wait_stderr("warning: no authorized keys at", 20)
    wait_for(lambda: image.pysvstat("-u", "cron").stdout == "true\n", 20, "cron up")
    wait_for(lambda: image.pysvstat("-r", "sshd").stdout == "true\n", 20, "sshd listening")
    assert image.pod.stop(30) == 0


def test_tmux_save_without_a_server_does_nothing_successfully(pod_image: PodImage):
    image = pod_image
    os.chmod(image.pod.root, 0o755)
    result = image.as_user(str(image.bin / "pys6-tmux-save"))
    assert result.returncode == 0 and "no tmux server runs: nothing to save" in result.stdout
    assert not (image.home / ".tmux" / "resurrect" / "last").exists()
