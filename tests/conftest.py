from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    CRONTABS,
    REPO,
    SLEEPER,
    UNPRIVILEGED_UID,
    Cron,
    Pod,
    can_unshare,
    free_port,
    start_as_1000,
    unprivileged_python_problem,
    wait_for,
    world_readable_source,
)

_NAMESPACE_PROBLEM = can_unshare()
_UNPRIVILEGED_PROBLEM: list[str | None] = []


def _fresh_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="pys6-test-"))
    root.chmod(0o755)
    return root


def _pod(uid: int | None = None) -> Iterator[Pod]:
    root = _fresh_root()
    the_pod = Pod(root, uid=uid)
    try:
        yield the_pod
    finally:
        the_pod.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pod(request: pytest.FixtureRequest) -> Iterator[Pod]:
    """A pod whose pyinit the test starts: PID 1 of a new PID namespace, or, where the kernel (or a
    missing root) refuses namespaces, a plain subreaper, so that a contributor without root still
    runs every test that needs a supervisor but not a PID 1 (those are marked `namespace`)."""
    if _NAMESPACE_PROBLEM and request.node.get_closest_marker("namespace"):
        pytest.skip(_NAMESPACE_PROBLEM)
    for the_pod in _pod():
        if _NAMESPACE_PROBLEM:
            the_pod.default_mode = "subreaper"
        yield the_pod


@pytest.fixture(autouse=True)
def _one_machine_wide_test_at_a_time(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests marked machine_wide share paths no test can make private (/tmp/pys6-1000 is
    what a uid-1000 pyinit and its clients find by default): with parallel workers they take
    turns on a lock that every test run of this machine shares."""
    if request.node.get_closest_marker("machine_wide") is None:
        yield
        return
    with open(os.path.join(tempfile.gettempdir(), "pys6-tests-machine-wide.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture
def subreaper_pod() -> Iterator[Pod]:
    """A pod whose pyinit runs as a child subreaper of the test: works everywhere."""
    for the_pod in _pod():
        the_pod.default_mode = "subreaper"
        yield the_pod


@pytest.fixture
def unprivileged_pod() -> Iterator[Pod]:
    """PID 1 of a new namespace, running as uid 1000 with no capabilities."""
    if _NAMESPACE_PROBLEM:
        pytest.skip(_NAMESPACE_PROBLEM)
    if not _UNPRIVILEGED_PROBLEM:
        _UNPRIVILEGED_PROBLEM.append(unprivileged_python_problem())
    if _UNPRIVILEGED_PROBLEM[0]:
        pytest.skip(_UNPRIVILEGED_PROBLEM[0])
    yield from _pod(UNPRIVILEGED_UID)


@pytest.fixture
def setuid_setpriv() -> Iterator[str]:
    """A setuid-root copy of setpriv that only uid 1000 can reach: a service that becomes root
    through a setuid helper, which a non-root PID 1 then cannot signal (EPERM)."""
    found = shutil.which("setpriv")
    if os.geteuid() != 0 or found is None:
        pytest.skip("needs root and setpriv to make a setuid helper")
    base = Path(tempfile.mkdtemp(prefix="pys6-suid-"))
    try:
        os.chown(base, 0, UNPRIVILEGED_UID)
        os.chmod(base, 0o750)
        helper = base / "setpriv"
        shutil.copy2(found, helper)
        os.chown(helper, 0, 0)
        os.chmod(helper, 0o4755)
        yield str(helper)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def cron(tmp_path: Path):
    runner = Cron(tmp_path)
    try:
        yield runner
    finally:
        runner.close()


# --- the image build, started before the tests ----------------------------------------------
# Building the image takes about 30 s on a cold machine. The process that runs the session (the
# controller, with parallel workers) starts it at once, in the background, so it overlaps every
# other test instead of holding up the worker that gets tests/test_image.py.

IMAGE_TAG = "localhost/pys6:test"


def early_build_status(controller_pid: int) -> Path:
    return Path(tempfile.gettempdir()) / f"pys6-image-build-{controller_pid}.status"


def _wants_the_image(config: pytest.Config) -> bool:
    args = [str(arg) for arg in config.args]
    return not args or any("test_image" in arg or arg.rstrip("/").endswith("tests") for arg in args) and \
        "not image" not in (config.option.markexpr or "")


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if hasattr(config, "workerinput") or os.geteuid() != 0 or shutil.which("podman") is None:
        return
    if not _wants_the_image(config):
        return
    status = early_build_status(os.getpid())
    status.unlink(missing_ok=True)
    log = status.with_suffix(".log")
    # The status file appears, holding podman's exit code, only once the build is over.
    script = ('podman build --quiet --format docker -t "$1" "$2" >"$3" 2>&1; echo $? >"$4.new" && mv "$4.new" "$4"')
    process = subprocess.Popen(["sh", "-c", script, "sh", IMAGE_TAG, str(REPO), str(log), str(status)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    config.stash[_EARLY_BUILD] = process


_EARLY_BUILD = pytest.StashKey[subprocess.Popen[bytes]]()


def pytest_sessionfinish(session: pytest.Session) -> None:
    process = session.config.stash.get(_EARLY_BUILD, None)
    if process is None:
        return
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    subprocess.run(["podman", "rmi", "-f", IMAGE_TAG], capture_output=True, timeout=120)
    status = early_build_status(os.getpid())
    for path in (status, status.with_suffix(".log"), status.with_suffix(".status.new")):
        path.unlink(missing_ok=True)


# Parallel workers take modules in collection order, so the modules that wait longest go first
# (longest-processing-time-first): started last, one of them would hold the run open while the
# other workers sit idle. The order is each module's total time in a whole run's --junitxml on a
# 2-core machine (912 tests, 4 workers); a module not named here keeps its place after these. test_image.py is left out on purpose: it waits for the
# background build, so starting it early would only park a worker.
LONGEST_MODULES_FIRST = (
    "test_differential.py", "test_control_fuzz.py", "test_pid1.py", "test_metrics.py", "test_supercronic_compat.py", "test_pycrond.py",
    "test_prometheus.py", "test_faults.py", "test_faults_at_scale.py", "test_s6_interface.py",
    "test_client_trust.py", "test_supercronic_cli.py", "test_control.py", "test_pid1_streams.py",
    "test_protocol.py", "test_logs.py", "test_compat_trees.py", "test_control_uid.py", "test_scale.py",
    "test_contenv_bounds.py", "test_one_path.py", "test_socket_takeover.py", "test_s6_overlay.py",
    "test_policy_stateful.py", "test_loggers.py", "test_metrics_idle_flood.py", "test_pod.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: place for place, name in enumerate(LONGEST_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


# --- supercronic's restated suites (test_supercronic_compat.py, test_supercronic_cli.py) -------


@pytest.fixture(scope="module")
def supercronic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pys6-install-supercronic DIR`, as an image would run it."""
    bin_dir = tmp_path_factory.mktemp("bin")
    installed = subprocess.run([sys.executable, "-m", "supervisor.cron.install", str(bin_dir)], capture_output=True,
                               text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=30)
    assert installed.returncode == 0, installed.stderr
    exe = bin_dir / "supercronic"
    assert exe.is_symlink() and os.readlink(exe).endswith("pycrond")
    return exe


@pytest.fixture
def crontabs(tmp_path: Path) -> Path:
    for name, text in CRONTABS.items():
        (tmp_path / f"{name}.crontab").write_text(text)
    return tmp_path


# --- a real OpenSSH server (test_control_uid.py, test_forced_escape.py) -----------------------


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
