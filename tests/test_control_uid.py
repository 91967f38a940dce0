"""The control plane as the pod uses it: pyinit as uid 1000, clients from an SSH login, strangers refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness import SLEEPER, Pod, read_int, start_as_1000, wait_for, world_readable_source

OTHER_UID = 1001


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
        assert "peer_pid" in pod.wait_event("control refused").fields
        assert pod.event("control refused", peer_uid=OTHER_UID)
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
    pod.wait_event("client refused a command")
    assert any("ssh-forced refused: 'rm -rf /'" in event["message"] for event in pod.events("client refused a command"))
