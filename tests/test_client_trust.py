"""Issue 7: clients trust only the real pyinit, and pyinit's socket refuses and serves the right peers."""

from __future__ import annotations

import json
import os
import pty
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import REPO, Pod, assert_answer_head, read_int, wait_for, world_readable_source

ESCAPING_SLEEPER = 'echo $$ > "$STATE/$1.pid"\nprintf "%s says \\033[2Khello\\r\\n" "$1"\nexec sleep 1000\n'
FALLBACK_1000 = Path("/tmp/pys6-1000")
SQUATTER = 1001


def as_uid(uid: int, *command: str, env: dict[str, str] | None = None, timeout: float = 60
           ) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": os.environ["PATH"], "PYTHONPATH": str(world_readable_source()), "LANG": "C.UTF-8",
               **(env or {})}
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *command],
                          env=environ, capture_output=True, text=True, timeout=timeout, cwd="/")


def client(tool: str, *args: str, uid: int = 1000, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    return as_uid(uid, sys.executable, "-m", f"supervisor.control.{tool}", *args, env=env)


class FakeServer:
    def __init__(self, path: Path, mode: str, run_as: int | None = None, drop_to: int | None = None) -> None:
        script = world_readable_source() / "fake_server.py"  # another uid may run it: the checkout may be private
        if not script.exists():
            shutil.copy(REPO / "tests" / "fake_server.py", script)
            os.chmod(script, 0o644)
        command = [sys.executable, str(script), str(path), mode]
        if drop_to is not None:
            command.append(str(drop_to))
        if run_as is not None:
            command = ["setpriv", f"--reuid={run_as}", f"--regid={run_as}", "--clear-groups", *command]
        self.path = path
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, cwd="/")
        assert self.process.stdout is not None
        ready = self.process.stdout.readline()  # bounded: the server prints or dies at once
        if ready != b"ready\n":
            self.stop()
            raise AssertionError(f"the fake server did not start: {ready!r}")

    def requests(self) -> bytes:
        try:
            return Path(str(self.path) + ".requests").read_bytes()
        except FileNotFoundError:
            return b""

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def _needs_root() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to play several uids")


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A runtime directory of root's, as PYS6_RUNDIR would name it."""
    _needs_root()
    base = Path(tempfile.mkdtemp(prefix="pys6-fake-"))
    os.chmod(base, 0o755)
    rundir = base / "run"
    rundir.mkdir(mode=0o700)
    try:
        yield rundir
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


@pytest.fixture
def squatted_fallback() -> Iterator[FakeServer]:
    """Another uid made /tmp/pys6-1000 first and serves forged answers there."""
    _needs_root()
    if FALLBACK_1000.exists():
        try:  # a pyinit of uid 1000 that an earlier test just killed may take a moment to go
            wait_for(lambda: not _answers(FALLBACK_1000 / "control.sock"), 5, "no pyinit at /tmp/pys6-1000")
        except AssertionError:
            pytest.skip("a real pyinit of uid 1000 runs on this machine")
        shutil.rmtree(FALLBACK_1000)
    server: FakeServer | None = None
    try:
        FALLBACK_1000.mkdir(mode=0o700)
        os.chown(FALLBACK_1000, SQUATTER, SQUATTER)
        server = FakeServer(FALLBACK_1000 / "control.sock", "forge", run_as=SQUATTER)
        yield server
    finally:  # never leave the squat behind: every later uid-1000 pod would rightly refuse it
        if server is not None:
            server.stop()
        shutil.rmtree(FALLBACK_1000, ignore_errors=True)


@pytest.mark.machine_wide  # /tmp/pys6-1000 and /run/pys6 themselves
def test_a_squatter_of_tmp_pys6_1000_is_refused_and_hears_nothing(squatted_fallback: FakeServer):
    for tool, args in (("svstat", ()), ("svstat", ("--check",)), ("svc", ("-d", "svc"))):
        result = client(tool, *args)
        assert result.returncode == 111, result
        assert "/tmp/pys6-1000" in result.stderr and f"owned by uid {SQUATTER}" in result.stderr
        assert "mode 0700" in result.stderr
    assert squatted_fallback.requests() == b""  # not one command reached it


@pytest.mark.machine_wide  # /tmp/pys6-1000 and /run/pys6 themselves
def test_an_unreachable_run_pys6_is_an_error_not_a_fall_through(squatted_fallback: FakeServer):
    if os.path.lexists("/run/pys6"):
        pytest.skip("/run/pys6 exists on this machine already")
    os.mkdir("/run/pys6", 0o700)
    try:
        result = client("svstat")
        assert result.returncode == 111 and "permission denied: /run/pys6" in result.stderr
        assert "owned by uid 0, mode 0700" in result.stderr
    finally:
        os.rmdir("/run/pys6")
    assert squatted_fallback.requests() == b""


def test_a_server_of_another_uid_is_refused(private_dir: Path):
    server = FakeServer(private_dir / "control.sock", "forge", drop_to=SQUATTER)
    try:
        result = client("svstat", uid=0, env={"PYS6_RUNDIR": str(private_dir)})
        assert result.returncode == 111
        assert f"served by uid {SQUATTER}, not by root or the directory's owner uid 0" in result.stderr
        assert server.requests() == b""
    finally:
        server.stop()


def test_a_world_writable_runtime_directory_is_refused(private_dir: Path):
    server = FakeServer(private_dir / "control.sock", "forge")
    try:
        os.chmod(private_dir, 0o777)
        result = client("svstat", uid=0, env={"PYS6_RUNDIR": str(private_dir)})
        assert result.returncode == 111 and "writable by others" in result.stderr and "mode 0777" in result.stderr
    finally:
        server.stop()


def test_a_silent_server_times_out(private_dir: Path):
    server = FakeServer(private_dir / "control.sock", "silent")
    try:
        started = time.monotonic()
        result = client("svstat", "--check", uid=0, env={"PYS6_RUNDIR": str(private_dir),
                                                         "PYS6_CLIENT_TIMEOUT": "1000"})
        assert result.returncode == 111 and "did not answer in time" in result.stderr
        assert time.monotonic() - started < 10
        waiting = client("svc", "-wu", "-T", "500", "svc", uid=0,
                         env={"PYS6_RUNDIR": str(private_dir), "PYS6_CLIENT_TIMEOUT": "1000"})
        assert waiting.returncode == 111
    finally:
        server.stop()


@pytest.mark.parametrize(("mode", "message"), [("line", "an answer line is larger than"),
                                               ("total", "the answer is larger than")])
def test_a_huge_answer_is_cut_off_with_bounded_memory(private_dir: Path, mode: str, message: str):
    server = FakeServer(private_dir / "control.sock", mode)
    measure = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(r.stderr)")
    try:
        result = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "supervisor.control.svstat"],
                                env={**os.environ, "PYS6_RUNDIR": str(private_dir), "PYTHONPATH": str(REPO)},
                                capture_output=True, text=True, timeout=120)
        code, max_rss_kib = result.stdout.split("\n", 1)[0].split()
        assert code == "111" and message in result.stdout
        assert int(max_rss_kib) < 40 * 1024  # one line at a time, never the whole answer
    finally:
        server.stop()


# --- against a live pyinit ---------------------------------------------------------------------


def test_log_is_escaped_on_a_terminal_unless_raw(pod: Pod):
    pod.service("svc", ESCAPING_SLEEPER)
    pod.start()
    pod.wait_stdout("svc says")

    def on_a_terminal(*args: str) -> bytes:
        leader, follower = pty.openpty()
        try:
            process = subprocess.Popen([sys.executable, "-m", "supervisor.control.svstat", "--log", "svc", *args],
                                       stdout=follower, stderr=subprocess.DEVNULL,
                                       env={**os.environ, "PYS6_RUNDIR": str(pod.rundir), "PYTHONPATH": str(REPO)})
            os.close(follower)
            follower = -1
            output = b""
            while True:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
            assert process.wait(30) == 0
            return output
        finally:
            os.close(leader)
            if follower >= 0:
                os.close(follower)

    assert b"svc says \\x1b[2Khello\\x0d" in on_a_terminal()
    assert b"svc says \x1b[2Khello\r" in on_a_terminal("--raw")
    piped = subprocess.run([sys.executable, "-m", "supervisor.control.svstat", "--log", "svc"], capture_output=True,
                           env={**os.environ, "PYS6_RUNDIR": str(pod.rundir), "PYTHONPATH": str(REPO)})
    assert b"svc says \x1b[2Khello\r\n" in piped.stdout  # not a terminal: bytes as the service wrote them


def test_a_refused_peer_is_answered_and_closed_at_once(pod: Pod):
    _needs_root()
    pod.service("svc", ESCAPING_SLEEPER)
    pod.start(env={"PYS6_CONTROL_TIMEOUT": "20000"})
    pod.wait_control()
    os.chmod(pod.rundir, 0o755)
    os.chmod(pod.rundir / "control.sock", 0o666)
    probe = ("import socket, time; s = socket.socket(socket.AF_UNIX); s.connect('%s'); t = time.monotonic(); "
             "data = b''\nwhile True:\n    c = s.recv(4096)\n    if not c: break\n    data += c\n"
             "print(round(time.monotonic() - t, 3), data.decode())" % (pod.rundir / "control.sock"))
    result = as_uid(SQUATTER, sys.executable, "-c", probe)
    seconds, answer = result.stdout.split(" ", 1)
    assert float(seconds) < 2 and '"permission denied"' in answer
    assert "peer_pid" in pod.wait_event("control refused").fields


def test_a_stale_socket_of_another_uid_says_what_to_remove(unprivileged_pod: Pod):
    pod = unprivileged_pod
    volume = Path(tempfile.mkdtemp(prefix="pys6-volume-"))
    try:
        os.chmod(volume, 0o755)
        rundir = volume / "run"
        rundir.mkdir(mode=0o700)
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(str(rundir / "control.sock"))
        stale.close()
        os.chown(rundir / "control.sock", SQUATTER, SQUATTER)
        os.chmod(rundir / "control.sock", 0o600)
        os.chown(rundir, 1000, 1000)
        pod.service("svc", ESCAPING_SLEEPER)
        pod.start(env={"PYS6_RUNDIR": str(rundir)})
        assert pod.wait_exit(20) == 111
        message = pod.stderr()
        assert f"left by uid {SQUATTER} (mode 0600)" in message and f"rm {rundir}/control.sock" in message
    finally:
        shutil.rmtree(volume, ignore_errors=True)


def test_thousands_of_nested_huge_and_ill_typed_requests_leave_pid1_serving(pod: Pod):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    pod.service("a", 'echo $$ > "$STATE/a.pid"\nexec sleep 1000\n')
    pod.start()
    pod.wait_control()
    first = read_int(pod, "a.pid")
    scalars = (st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers(-10**400, 10**400)
               | st.text(max_size=50) | st.binary(max_size=20).map(lambda b: b.hex()))
    ill_typed = st.fixed_dictionaries({"v": st.sampled_from([2, 2, 2.0, True, "2", None, 10**400])},
                                      optional={"verb": st.sampled_from(["status", "control", "log", "forensics",
                                                                        "ping", "audit", 7, None]),
                                                "services": st.one_of(scalars, st.lists(scalars, max_size=3),
                                                                      st.just(["a"]), st.just(["a" * 5000])),
                                                "actions": st.one_of(scalars, st.lists(st.dictionaries(
                                                    st.sampled_from(["do", "signal", "group"]), scalars), max_size=3)),
                                                "lines": scalars, "timeout_ms": scalars, "message": scalars})
    nested = st.tuples(st.integers(1, 200_000), st.sampled_from([b"[", b'{"a":'])).map(
        lambda d: d[1] * d[0] + (b"]" if d[1] == b"[" else b"}") * d[0])
    huge = st.integers(60_000, 200_000).map(lambda n: b'{"v":2,"verb":"status","services":["' + b"a" * n + b'"]}')
    frames = st.one_of(ill_typed.map(lambda v: json.dumps(v).encode()), nested, huge)
    sent = [0]

    @settings(max_examples=500, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(frames)
    def throw(frame: bytes) -> None:
        frame = frame.replace(b'"wait"', b'"wa1t"')
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(pod.rundir / "control.sock"))
            sock.settimeout(20)
            try:
                sock.sendall(frame + b"\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused as too large before we finished: the answer is waiting
            data = b""
            while b"\n" not in data:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                data += chunk
        assert_answer_head(data)
        sent[0] += 1

    throw()
    assert sent[0] >= 500
    assert "Traceback" not in pod.stderr() and not pod.events("control connection failed")
    pod.cli("svc", "-u", "a")
    wait_for(lambda: pod.cli("svstat", "-u", "a").stdout == "true\n", 10, "a up")
    assert first is not None and int(pod.cli("svstat", "-p", "a").stdout) > 0
