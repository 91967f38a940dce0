"""The control plane as the pod uses it: pyinit as uid 1000, clients from an SSH login, strangers refused."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import textwrap

import pytest

from harness import SLEEPER, Pod, free_port, read_int, wait_for, world_readable_source

OTHER_UID = 1001


def start_as_1000(pod: Pod, *names: str, env: dict[str, str] | None = None) -> None:
    for name in names:
        pod.service(name, SLEEPER)
    pod.start(default_rundir=True, env=env)
    wait_for(lambda: all(read_int(pod, f"{n}.pid") for n in names), 15, "the services")
    wait_for(lambda: pod.cli("svstat", uid=1000, rundir=False).returncode == 0, 10, "the control socket")


@pytest.mark.machine_wide  # the default runtime directory
def test_uid_1000_finds_the_socket_without_any_environment(unprivileged_pod: Pod):
    pod = unprivileged_pod
    start_as_1000(pod, "svc")
    result = pod.cli("svstat", "svc", uid=1000, rundir=False)
    assert result.returncode == 0 and result.stdout.startswith("up (pid ")
    assert pod.cli("svc", "-r", "-wr", "-T", "5000", "svc", uid=1000, rundir=False).returncode == 0
    assert os.stat("/tmp/pys6-1000/control.sock").st_uid == 1000


@pytest.mark.machine_wide  # the default runtime directory
def test_root_is_served_and_another_uid_is_refused(unprivileged_pod: Pod):
    pod = unprivileged_pod
    start_as_1000(pod, "svc")
    assert pod.cli("svstat", "svc", env={"PYS6_RUNDIR": "/tmp/pys6-1000"}, rundir=False).returncode == 0  # root
    stranger = pod.cli("svc", "-k", "svc", uid=OTHER_UID, env={"PYS6_RUNDIR": "/tmp/pys6-1000"}, rundir=False)
    assert stranger.returncode == 111 and "permission denied" in stranger.stderr
    # If the file modes were ever loosened, SO_PEERCRED still refuses and says so in the log
    # (the real client now refuses such a socket itself: a raw connection goes past it).
    os.chmod("/tmp/pys6-1000", 0o755)
    os.chmod("/tmp/pys6-1000/control.sock", 0o666)
    try:
        stranger = pod.cli("svc", "-k", "svc", uid=OTHER_UID, env={"PYS6_RUNDIR": "/tmp/pys6-1000"}, rundir=False)
        assert stranger.returncode == 111 and "mode 0666" in stranger.stderr
        raw = subprocess.run(
            ["setpriv", f"--reuid={OTHER_UID}", f"--regid={OTHER_UID}", "--clear-groups", sys.executable, "-c",
             "import socket; s = socket.socket(socket.AF_UNIX); s.connect('/tmp/pys6-1000/control.sock')\n"
             "try:\n    s.sendall(b'{\"v\":2,\"verb\":\"control\",\"services\":[\"svc\"],\"actions\":[{\"do\":\"down\"}]}\\n')\n"
             "except OSError:\n    pass  # refused and closed before we finished: the answer waits\n"
             "print(s.recv(4096).decode())"], capture_output=True, text=True, timeout=30, cwd="/")
        assert '"permission denied"' in raw.stdout and '"code":111' in raw.stdout
        pod.wait_stderr("control refused peer_pid=")
        assert f"peer_uid={OTHER_UID}" in pod.stderr()
    finally:
        os.chmod("/tmp/pys6-1000", 0o700)
        os.chmod("/tmp/pys6-1000/control.sock", 0o600)
    page = pod.cli("svstat", "--prometheus", env={"PYS6_RUNDIR": "/tmp/pys6-1000"}, rundir=False).stdout
    assert "\npys6_control_refused_total 1\n" in page  # and counted in the metrics
    assert pod.cli("svstat", "-u", "svc", uid=1000, rundir=False).stdout == "true\n"


@pytest.mark.namespace  # needs root: the socket given to a group, clients played as other uids
def test_a_configured_group_may_use_the_socket(pod: Pod):
    import grp

    try:
        gid = grp.getgrnam("users").gr_gid
    except KeyError:
        pytest.skip("no 'users' group on this machine")
    pod.service("svc", SLEEPER)
    pod.start(env={"PYS6_CONTROL_GROUP": "users"})
    pod.wait_control()
    assert oct(os.stat(pod.rundir / "control.sock").st_mode & 0o777) == "0o660"
    env = {"PYS6_RUNDIR": str(pod.rundir), "PYTHONPATH": str(world_readable_source()), "PATH": os.environ["PATH"]}
    for groups in ([f"--regid={gid}", "--clear-groups"], ["--regid=1001", f"--groups={gid}"]):  # primary, supplementary
        member = subprocess.run(["setpriv", "--reuid=1001", *groups, sys.executable, "-m", "supervisor.control.svstat", "svc"],
                                env=env, capture_output=True, text=True, cwd="/", timeout=30)
        assert member.returncode == 0 and member.stdout.startswith("up (pid "), (groups, member.stderr)
    os.chmod(pod.rundir, 0o711)  # let a non-member reach the socket file, to test the SO_PEERCRED fence
    os.chmod(pod.rundir / "control.sock", 0o666)
    outsider = pod.cli("svstat", "svc", uid=1003)
    assert outsider.returncode == 111


# --- a real OpenSSH session ----------------------------------------------------



@pytest.fixture
def sshd(unprivileged_pod: Pod):
    """sshd from Debian's openssh-server, run by the test as uid 1000 on a loopback port."""
    if shutil.which("sshd", path="/usr/sbin:/usr/bin") is None or shutil.which("ssh") is None:
        pytest.skip("openssh-server / openssh-client are not installed (scripts/bootstrap installs them as root)")
    try:
        user = pwd.getpwuid(1000).pw_name
    except KeyError:
        pytest.skip("no user with uid 1000 in /etc/passwd for sshd to log in (.ci/run creates one)")
    pod = unprivileged_pod
    keys = pod.root / "ssh"
    keys.mkdir()
    bindir = pod.root / "bin"
    bindir.mkdir()
    python, source = sys.executable, world_readable_source()
    for tool in ("svstat", "svc"):
        wrapper = bindir / f"py{tool}"
        wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={source} exec {python} -m supervisor.control.{tool} \"$@\"\n")
        wrapper.chmod(0o755)
    for name in ("host", "user", "forced"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True)
    (keys / "authorized_keys").write_text(
        (keys / "user.pub").read_text()
        + f'command="{bindir}/pysvc --ssh-forced",restrict ' + (keys / "forced.pub").read_text())
    port = free_port()
    (keys / "sshd_config").write_text(textwrap.dedent(f"""\
        Port {port}
        ListenAddress 127.0.0.1
        HostKey {keys}/host
        PidFile none
        AuthorizedKeysFile {keys}/authorized_keys
        UsePAM no
        StrictModes no
        PasswordAuthentication no
        KbdInteractiveAuthentication no
    """))
    pod.service("svc", SLEEPER)
    start_as_1000(pod, "svc")
    for name in ("user", "forced"):  # the client side is root's; its keys must be private to it
        shutil.copy(keys / name, pod.root / f"{name}.key")
        os.chown(pod.root / f"{name}.key", 0, 0)
        os.chmod(pod.root / f"{name}.key", 0o600)
    for path in [keys, *keys.iterdir()]:
        os.chown(path, 1000, 1000)
    log = open(pod.root / "sshd.log", "wb")
    daemon = subprocess.Popen(
        ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "/usr/sbin/sshd", "-D", "-e",
         "-f", str(keys / "sshd_config")], stdout=log, stderr=log, cwd="/")
    try:
        wait_for(lambda: b"Server listening" in (pod.root / "sshd.log").read_bytes(), 10, "sshd to listen")

        def ssh(key: str, command: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["ssh", "-i", str(pod.root / f"{key}.key"), "-p", str(port), "-o", "BatchMode=yes",
                 "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                 f"{user}@127.0.0.1", command], capture_output=True, text=True, timeout=30)

        yield pod, ssh, bindir
    finally:
        daemon.kill()
        daemon.wait()
        log.close()


@pytest.mark.machine_wide  # the default runtime directory
def test_pysvstat_and_pysvc_work_from_an_ssh_login(sshd):
    pod, ssh, bindir = sshd
    first = read_int(pod, "svc.pid")
    status = ssh("user", f"{bindir}/pysvstat")
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith(f"svc: up (pid {first} pgid {first}) ")
    restart = ssh("user", f"{bindir}/pysvc -r -wr -T 5000 /run/service/svc")
    assert restart.returncode == 0, restart.stderr
    assert read_int(pod, "svc.pid") != first
    assert ssh("user", f"{bindir}/pysvc -d nosuch").returncode == 100


@pytest.mark.machine_wide  # the default runtime directory
def test_a_forced_command_key_runs_only_the_allowed_verbs(sshd):
    pod, ssh, _bindir = sshd
    assert ssh("forced", "status svc").stdout.startswith("up (pid ")
    assert ssh("forced", "status").stdout.endswith("1 services: 1 up, 0 down\n")
    log = ssh("forced", "log svc")
    assert log.returncode == 0, log.stderr
    before = read_int(pod, "svc.pid")
    assert ssh("forced", "restart svc").returncode == 0
    wait_for(lambda: read_int(pod, "svc.pid") not in (None, before), 10, "the restart")
    assert ssh("forced", "stop svc").returncode == 0
    wait_for(lambda: pod.cli("svstat", "-u", "svc", uid=1000, rundir=False).stdout == "false\n", 10, "the stop")
    assert ssh("forced", "start svc").returncode == 0
    assert ssh("forced", "forensics svc").returncode == 0
    for bad in ("rm -rf /", "status svc; id", "restart", "stop ../svc", "pysvc -k svc", "", "log svc extra"):
        refused = ssh("forced", bad)
        assert refused.returncode == 100 and "refused" in refused.stderr, bad
    pod.wait_stderr("client refused a command")
    assert "ssh-forced refused: 'rm -rf /'" in pod.stderr()
