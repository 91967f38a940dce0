"""Issue 21, point 1: on a Kubernetes /run no other uid can take the control socket over.

In Kubernetes /run is an emptyDir: world-writable, not sticky, setgid to the fsGroup
(`drwxrwsrwx root:1000`). Another uid may rename /run/pys6 away and put its own directory and
socket there. The pod here has that /run (a wrapper chgrps and chmods it inside the namespace
before pyinit starts), pyinit runs as uid 1000, and the attacker is uid 1001 inside the same
PID and mount namespaces (nsenter, then setpriv). Whatever the attacker does to /run/pys6, the
clients of uid 1000 (with no PYS6_RUNDIR, as an SSH session or the kubelet's probe has, and with
PYS6_RUNDIR=/run/pys6) reach the real pyinit by its abstract address, and the attacker hears
nothing. Where pyinit is not PID 1 (no abstract address), an attacker's /run/pys6 is refused
(exit 111) and never served a request.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from harness import REPO, SLEEPER, Pod, alive, read_int, unprivileged_python_problem, wait_for, world_readable_source

POD_UID = 1000  # pyinit and the pod's user; also the emptyDir's fsGroup
ATTACKER = 1001
OPERATOR = 1003  # a member of PYS6_CONTROL_GROUP (the machine's "users" group, which must exist for it)
KUBERNETES_RUN = 'chgrp 1000 /run && chmod 2777 /run && exec "$@"'  # the emptyDir's shape, then pyinit


@pytest.fixture
def k8s(pod: Pod) -> Iterator[Pod]:
    if pod.default_mode != "namespace" or shutil.which("nsenter") is None:
        pytest.skip("needs PID namespaces (root), nsenter and setpriv")
    problem = unprivileged_python_problem()
    if problem:
        pytest.skip(problem)
    yield pod


def drop_to(uid: int, groups: tuple[int, ...] = ()) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}",
            f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"]


def start_on_kubernetes_run(pod: Pod, *, pid1: bool = True, env: dict[str, str] | None = None,
                            groups: tuple[int, ...] = (), before: str = "") -> int:
    """pyinit as uid 1000 on a 2777 root:1000 /run, with /run/pys6 as its runtime directory;
    `before` runs (as root, inside the namespace) just before it. The service svc's pid."""
    pod.service("svc", SLEEPER)
    for path in [pod.root, *pod.root.rglob("*")]:
        os.lchown(path, POD_UID, POD_UID)
    launch = f'{before}\n{KUBERNETES_RUN}' if pid1 else f'{before}\n{KUBERNETES_RUN.replace("exec ", "")}'
    pod.start(default_rundir=True, env={"PYTHONPATH": str(world_readable_source()), **(env or {})},
              wrapper=["sh", "-c", launch, "sh", *drop_to(POD_UID, groups)])
    svc = wait_for(lambda: read_int(pod, "svc.pid"), 15, "svc to start")
    wait_for(lambda: inside(pod, POD_UID, "svstat", "--check").returncode == 0, 10, "pyinit to answer")
    return svc


def inside(pod: Pod, uid: int, tool: str, *args: str, rundir: str | None = None,
           groups: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
    """pysvstat or pysvc run as `uid` inside the pod's PID and mount namespaces (kubectl exec)."""
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(world_readable_source()),
               "LANG": "C.UTF-8", **({"PYS6_RUNDIR": rundir} if rundir else {})}
    return subprocess.run(["nsenter", "-t", str(pod.init_pid), "-p", "-m", "--", *drop_to(uid, groups),
                           sys.executable, "-m", f"supervisor.control.{tool}", *args],
                          env=environ, capture_output=True, text=True, timeout=30, cwd="/")


def in_the_pod(pod: Pod, path: str) -> Path:
    """A path of the pod's own mount namespace (its /run), seen from the test."""
    return Path(f"/proc/{pod.init_pid}/root{path}")


class Attacker:
    """uid 1001 inside the pod's namespaces: moves /run/pys6 away, then maybe makes its own and
    serves forged answers there (tests/fake_server.py, recording every request it gets)."""

    def __init__(self, pod: Pod, replace_with: str) -> None:
        self.pod = pod
        self.process: subprocess.Popen[bytes] | None = None
        steps = "mv /run/pys6 /run/pys6.stolen"
        if replace_with == "private":
            steps += " && mkdir -m 0700 /run/pys6"
        elif replace_with == "forger":
            script = world_readable_source() / "fake_server.py"
            if not script.exists():
                shutil.copy(REPO / "tests" / "fake_server.py", script)
                os.chmod(script, 0o644)
            # 2750 and 0660, group 1000 from the setgid /run: uid 1000's clients may connect.
            steps += (f" && mkdir -m 0750 /run/pys6 && umask 0117 && "
                      f"exec {sys.executable} {script} /run/pys6/control.sock forge")
        command = ["nsenter", "-t", str(pod.init_pid), "-p", "-m", "--", *drop_to(ATTACKER), "sh", "-c", steps]
        if replace_with != "forger":
            done = subprocess.run(command, capture_output=True, text=True, timeout=30, cwd="/")
            assert done.returncode == 0, done.stderr
            return
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, cwd="/")
        assert self.process.stdout is not None
        ready = self.process.stdout.readline()  # bounded: the server prints "ready" or dies at once
        assert ready == b"ready\n", ready

    def requests(self) -> bytes:
        try:
            return in_the_pod(self.pod, "/run/pys6/control.sock.requests").read_bytes()
        except FileNotFoundError:
            return b""

    def stop(self) -> None:
        if self.process is None:
            return
        for proc in psutil.Process(self.process.pid).children(recursive=True):
            try:
                proc.kill()
            except psutil.Error:
                pass
        self.process.kill()
        self.process.wait(10)


@pytest.fixture
def attackers() -> Iterator[list[Attacker]]:
    started: list[Attacker] = []
    try:
        yield started
    finally:
        for attacker in started:
            attacker.stop()


def real_pid_of_svc(pod: Pod, result: subprocess.CompletedProcess[str]) -> int:
    assert result.returncode == 0, result
    assert result.stdout.startswith("up (pid "), result.stdout
    return int(result.stdout.split("(pid ", 1)[1].split()[0].rstrip(")"))


@pytest.mark.namespace
@pytest.mark.parametrize("replace_with", ["forger", "private", "nothing"])
def test_the_clients_reach_the_real_pyinit_whatever_another_uid_does_to_run_pys6(
        k8s: Pod, attackers: list[Attacker], replace_with: str):
    pod = k8s
    svc = start_on_kubernetes_run(pod)
    assert oct(os.stat(in_the_pod(pod, "/run")).st_mode & 0o7777) == "0o2777"
    attacker = Attacker(pod, replace_with)
    attackers.append(attacker)
    assert not os.path.exists(in_the_pod(pod, "/run/pys6/service"))  # the real one is gone from its place
    for rundir in (None, "/run/pys6"):  # an SSH session or the probe; a pod spec that sets it
        check = inside(pod, POD_UID, "svstat", "--check", rundir=rundir)
        assert check.returncode == 0, check
        assert real_pid_of_svc(pod, inside(pod, POD_UID, "svstat", "svc", rundir=rundir)) == svc
    host_svc = pod.host_pid(svc)
    down = inside(pod, POD_UID, "svc", "-d", "svc")
    assert down.returncode == 0, down
    wait_for(lambda: not alive(host_svc), 10, "the real svc to go down")
    assert inside(pod, POD_UID, "svstat", "-u", "svc", rundir="/run/pys6").stdout == "false\n"
    assert inside(pod, POD_UID, "svc", "-u", "svc", rundir="/run/pys6").returncode == 0
    wait_for(lambda: read_int(pod, "svc.pid") not in (None, svc), 10, "the real svc to come back up")
    assert attacker.requests() == b""  # not one request reached it


@pytest.mark.namespace
def test_a_group_member_still_reaches_pyinit_and_a_stranger_is_refused_by_it(k8s: Pod, attackers: list[Attacker]):
    import grp

    try:
        operators = grp.getgrnam("users").gr_gid
    except KeyError:
        pytest.skip("no 'users' group on this machine")
    pod = k8s
    svc = start_on_kubernetes_run(pod, env={"PYS6_CONTROL_GROUP": "users"}, groups=(operators,))
    attacker = Attacker(pod, "forger")
    attackers.append(attacker)
    operator = inside(pod, OPERATOR, "svstat", "svc", groups=(operators,))
    assert real_pid_of_svc(pod, operator) == svc
    stranger = inside(pod, ATTACKER, "svc", "-d", "svc")
    assert stranger.returncode == 111 and "permission denied" in stranger.stderr, stranger
    assert alive(pod.host_pid(svc))
    assert attacker.requests() == b""


@pytest.mark.namespace
def test_the_abstract_address_refuses_peers_outside_the_pid_namespace(k8s: Pod):
    """A sidecar shares the network namespace, so the abstract address, but not the PID namespace:
    even as uid 1000 or root it is refused (SO_PEERCRED shows it as pid 0)."""
    pod = k8s
    svc = start_on_kubernetes_run(pod)
    namespace = os.stat(f"/proc/{pod.init_pid}/ns/pid").st_ino
    address = f"\\0pys6-control/{namespace}/run/pys6"
    probe = ("import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect(b'%s')\ntry:\n"
             "    s.sendall(b'{\"v\":2,\"verb\":\"control\",\"services\":[\"svc\"],\"actions\":[{\"do\":\"down\"}]}\\n')\n"
             "except OSError:\n    pass\nprint(s.recv(4096).decode())" % address)
    for uid in (POD_UID, 0):
        sidecar = subprocess.run([*drop_to(uid), sys.executable, "-c", probe], capture_output=True, text=True,
                                 timeout=30, cwd="/")
        assert "permission denied: not in pyinit's PID namespace" in sidecar.stdout, sidecar
    pod.wait_event("control refused", reason="outside pyinit's PID namespace")
    assert alive(pod.host_pid(svc))


@pytest.mark.namespace
def test_a_squatted_abstract_address_is_ignored_by_pyinit_and_the_clients(k8s: Pod):
    """Someone of the network namespace took the abstract name before pyinit: pyinit says so and
    serves by the file; the clients see the squatter is not PID 1 and send it nothing."""
    pod = k8s
    squatter = world_readable_source() / "squat_abstract.py"
    squatter.write_text(
        "import os, socket, sys\nfrom supervisor.base.paths import abstract_control_address\n"
        "s = socket.socket(socket.AF_UNIX)\ns.bind(abstract_control_address('/run/pys6'))\ns.listen(8)\n"
        "if os.fork():\n    os._exit(0)\n"  # bound before pyinit starts; the child stays, as pyinit's orphan
        "while True:\n    c, _ = s.accept()\n    request = c.recv(65536)\n    if request:\n"
        "        with open(sys.argv[1], 'ab') as f:\n            f.write(request)\n    c.close()\n")
    os.chmod(squatter, 0o644)
    own = Path(tempfile.mkdtemp(prefix="pys6-squatter-"))  # where it writes each request it gets
    try:
        os.chown(own, ATTACKER, ATTACKER)
        heard = own / "heard"
        start_on_kubernetes_run(pod, before=f"setpriv --reuid={ATTACKER} --regid={ATTACKER} --clear-groups "
                                            f"{sys.executable} {squatter} {heard}")
        no_abstract = "control socket: no abstract address, clients reach pyinit by the socket file only"
        assert "taken by another process of this network namespace" in pod.wait_event(no_abstract)["reason"]
        for rundir in (None, "/run/pys6"):
            assert inside(pod, POD_UID, "svstat", "--check", rundir=rundir).returncode == 0  # by the socket file
        assert not heard.exists()  # the clients connected, saw pid 1 was not there, and sent nothing
    finally:
        shutil.rmtree(own, ignore_errors=True)


@pytest.mark.namespace
def test_where_pyinit_is_not_pid1_a_replaced_run_pys6_is_refused_and_hears_nothing(
        k8s: Pod, attackers: list[Attacker]):
    """No abstract address without PID 1: the socket file is all there is. A /run/pys6 in a /run
    others may write without the sticky bit is trusted only if it is root's or the client's own."""
    pod = k8s
    svc = start_on_kubernetes_run(pod, pid1=False)
    assert pod.event("starting", mode="subreaper")
    assert real_pid_of_svc(pod, inside(pod, POD_UID, "svstat", "svc")) == svc  # its own uid's /run/pys6
    attacker = Attacker(pod, "forger")
    attackers.append(attacker)
    for rundir in (None, "/run/pys6"):
        for tool, args in (("svstat", ("--check",)), ("svstat", ("svc",)), ("svc", ("-d", "svc"))):
            result = inside(pod, POD_UID, tool, *args, rundir=rundir)
            assert result.returncode == 111, result
            assert f"owned by uid {ATTACKER}" in result.stderr
            assert "/run is writable by others without the sticky bit" in result.stderr
    assert alive(pod.host_pid(svc))
    assert attacker.requests() == b""


def test_the_abstract_name_is_one_per_pid_namespace_and_runtime_directory_and_always_fits():
    from supervisor.base.paths import MAX_UNIX_ADDRESS, abstract_control_address

    namespace = os.stat("/proc/self/ns/pid").st_ino
    assert abstract_control_address("/run/pys6") == f"\0pys6-control/{namespace}/run/pys6".encode()
    assert abstract_control_address("/run/pys6/") == abstract_control_address("/run//pys6")
    assert abstract_control_address("/tmp/pys6-1000") != abstract_control_address("/run/pys6")
    long_ones = [abstract_control_address("/var/lib/" + "x" * 200 + end) for end in ("/a", "/b")]
    assert all(name is not None and len(name) <= MAX_UNIX_ADDRESS for name in long_ones)
    assert long_ones[0] != long_ones[1] and long_ones[0] == abstract_control_address("/var/lib/" + "x" * 200 + "/a")
