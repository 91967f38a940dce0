"""Whatever a uid-1000 process writes into the container environment directory, every service
still starts, PID 1 stays small, and with-contenv and printcontenv neither fail nor hang
(issue 21, point 4).

The pod's uid owns $PYS6_RUNDIR/container_environment. PID 1 once read it before each start:
a value no execve can pass (over 128 KiB) made every later start fail with E2BIG, 300 files
of 1 MB took PID 1 from 27 MB to hundreds, and a FIFO there hung printcontenv and failed
every with-contenv script. As in s6-overlay, PID 1 now never reads it (issue 23): only
with-contenv and printcontenv do, within contenv's bounds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

from harness import Pod, read_int, wait_for

# A service that writes its pid and what it sees of a few variables, then sleeps as itself.
# The environment first, then the pid: once a new pid is there, so is what that incarnation saw.
REPORTER = '''
    echo "${{SMALL-unset}} ${{#BIG}} ${{PIPE-unset}} ${{LINK-unset}}" > "$STATE/{name}.env"
    echo $$ > "$STATE/{name}.pid"
    exec sleep 1000
'''
# pys6's with-contenv and printcontenv, as `pyinit --install-s6-commands` links them.
WITH_CONTENV = f'{sys.executable} -c "import sys; from supervisor.s6.commands import with_contenv; sys.exit(with_contenv(sys.argv[1:]))"'
PRINTCONTENV = f'{sys.executable} -c "import sys; from supervisor.s6.commands import printcontenv; sys.exit(printcontenv(sys.argv[1:]))"'


def contenv_dir(pod: Pod) -> Path:
    return pod.rundir / "container_environment"


def wrapped(name: str) -> str:
    """REPORTER under pys6's with-contenv, in s6-overlay's default (S6_KEEP_ENV=0: the directory
    is the environment; STATE is there, pyinit wrote it at boot)."""
    body = REPORTER.format(name=name).replace("'", "")
    return f"exec env S6_KEEP_ENV=0 {WITH_CONTENV} sh -c '{body}'\n"


def restarted(pod: Pod, name: str, timeout: float = 10.0) -> int:
    """Restart `name` with pysvc -r; its new pid, once the new incarnation wrote it."""
    before = read_int(pod, f"{name}.pid")
    (pod.state / f"{name}.pid").unlink(missing_ok=True)
    assert pod.cli("svc", "-r", name).returncode == 0
    return wait_for(lambda: read_int(pod, f"{name}.pid") not in (None, before) and read_int(pod, f"{name}.pid"),
                    timeout, f"{name} to start again")


def with_contenv_warnings(pod: Pod, name: str) -> list[str]:
    return [line for line in (pod.stdout() + pod.stderr()).splitlines()
            if "with-contenv: warning" in line and f"/{name}" in line]


def test_a_value_no_exec_can_pass_is_left_out_by_with_contenv_and_every_service_still_starts(unprivileged_pod: Pod):
    pod = unprivileged_pod
    # A service of the pod's uid poisons the directory, as any process of that uid can.
    pod.service("poisoner", '''
        printf ok > "$PYS6_RUNDIR/container_environment/SMALL"
        head -c 200000 /dev/zero | tr '\\0' x > "$PYS6_RUNDIR/container_environment/BIG"
        touch "$STATE/poisoned"
        exec sleep 1000
    ''')
    pod.service("app", wrapped("app"))
    pod.service("late", wrapped("late"), down="")  # down until asked up
    pod.start()
    wait_for(lambda: (pod.state / "poisoned").exists() and read_int(pod, "app.pid"), 15, "the poison and app")
    assert (contenv_dir(pod) / "BIG").stat().st_size == 200_000
    first = read_int(pod, "app.pid")
    second = restarted(pod, "app")
    assert pod.read_state("app.env").split()[:2] == ["ok", "0"]  # SMALL is there, BIG is not
    assert pod.cli("svc", "-u", "late").returncode == 0  # one never started before starts too
    wait_for(lambda: read_int(pod, "late.pid"), 10, "the late service")
    third = restarted(pod, "app")
    assert len({first, second, third}) == 3
    assert "up" in pod.cli("svstat", "app").stdout and "up" in pod.cli("svstat", "late").stdout
    warned = with_contenv_warnings(pod, "BIG")
    assert warned and all("longer than an exec can pass" in line for line in warned), warned
    assert not pod.events("container environment entries left out")  # PID 1 never read it
    assert pod.stop() == 0


def test_three_hundred_files_of_a_megabyte_leave_pid1_small_and_services_starting(unprivileged_pod: Pod):
    pod = unprivileged_pod
    pod.service("app", wrapped("app"))
    pod.start()
    wait_for(lambda: read_int(pod, "app.pid"), 15, "app")
    restarted(pod, "app")  # one restart done: the baseline is PID 1 at work
    init = psutil.Process(pod.init_pid)
    baseline = init.memory_info().rss
    directory = contenv_dir(pod)
    for number in range(300):  # sparse: reads as a megabyte of NULs (each a newline)
        _sparse(directory / f"HUGE_{number}", 1 << 20)
    for number in range(40):  # each one exec-able, all together far over the total
        _sparse(directory / f"WIDE_{number}", 100_000)
    (directory / "SMALL").write_text("ok")
    for _ in range(3):
        restarted(pod, "app")
    assert pod.read_state("app.env").split()[0] == "ok"
    grown = init.memory_info().rss - baseline
    assert grown < 10 << 20, f"PID 1 grew by {grown >> 20} MB"
    environment = _environ_of(pod.host_pid(read_int(pod, "app.pid") or 0))
    assert not any(name.startswith("HUGE_") for name in environment)
    assert sum(len(name) + len(value) + 2 for name, value in environment.items()) <= 256 * 1024 + 8192
    assert with_contenv_warnings(pod, "HUGE_") and with_contenv_warnings(pod, "WIDE_")
    # with-contenv names at most 32 entries a run, then counts the rest: 4 runs since the files came
    said = [line for line in (pod.stdout() + pod.stderr()).splitlines()
            if line.startswith("[app] with-contenv: warning")]
    assert said and len(said) <= 4 * 33 and all(len(line) < 2000 for line in said), len(said)
    assert pod.stop() == 0


def test_a_fifo_and_a_symlink_there_neither_block_nor_are_followed_by_pyinit_or_with_contenv(unprivileged_pod: Pod):
    pod = unprivileged_pod
    secret = pod.root / "secret"
    secret.write_text("followed")
    pod.service("app", REPORTER.format(name="app"))
    pod.service("wrapped", f'''
        [ -e "$STATE/planted" ] || {{ echo $$ > "$STATE/wrapped.pid"; exec sleep 1000; }}
        exec env S6_KEEP_ENV=0 {WITH_CONTENV} sh -c 'echo $$ > "$STATE/wrapped.pid"; echo "${{SMALL-unset}} ${{PIPE-unset}} ${{LINK-unset}}" > "$STATE/wrapped.env"; exec sleep 1000'
    ''')
    pod.service("asker", '''
        [ -e "$STATE/planted" ] || { echo $$ > "$STATE/asker.pid"; exec sleep 1000; }
        S6_KEEP_ENV=0 %s PIPE; echo "pipe $?" > "$STATE/asker.out"
        S6_KEEP_ENV=0 %s SMALL >> "$STATE/asker.out"
        echo $$ > "$STATE/asker.pid"
        exec sleep 1000
    ''' % (PRINTCONTENV, PRINTCONTENV))
    pod.start()
    wait_for(lambda: all(read_int(pod, f"{name}.pid") for name in ("app", "wrapped", "asker")), 15, "the services")
    directory = contenv_dir(pod)
    os.mkfifo(directory / "PIPE")
    os.symlink(secret, directory / "LINK")
    (directory / "SMALL").write_text("ok")
    (pod.state / "planted").touch()
    for name in ("app", "wrapped", "asker"):
        restarted(pod, name)
    assert pod.read_state("app.env").split() == ["unset", "0", "unset", "unset"]  # S6_KEEP_ENV=1: pyinit's own
    assert wait_for(lambda: pod.read_state("wrapped.env"), 10, "with-contenv's program").split() == ["ok", "unset", "unset"]
    assert pod.read_state("asker.out") == "pipe 1\nok\n"
    assert "with-contenv: warning" in pod.stdout() + pod.stderr()
    assert with_contenv_warnings(pod, "PIPE") and with_contenv_warnings(pod, "LINK")
    assert "up" in pod.cli("svstat", "app").stdout
    assert pod.stop() == 0


def test_every_environment_with_contenv_makes_from_there_can_be_exec_d(tmp_path: Path):
    from supervisor.s6.contenv import applied

    directory = tmp_path / "container_environment"
    directory.mkdir()
    (directory / "E").write_bytes(b"x" * 131_069)  # "E=" + value + NUL: exactly 128 KiB, the longest
    (directory / "F").write_bytes(b"x" * 131_070)  # one byte more
    (directory / "G").write_bytes(b"x" * 131_070 + b"\n")  # chomped, still one more
    (directory / "BIG").write_bytes(b"x" * 200_000)
    reading = applied({b"PATH": b"/usr/bin:/bin"}, str(directory))
    assert set(reading.environment) == {b"PATH", b"E"}
    subprocess.run(["/bin/true"], env=reading.environment, check=True, timeout=10)
    assert sorted(entry.name for entry in reading.left_out) == ["BIG", "F", "G"]
    for number in range(10):  # each one exec-able, all together not: the largest are left out
        (directory / f"WIDE_{number}").write_bytes(b"y" * (100_000 + number))
    reading = applied({b"PATH": b"/usr/bin:/bin"}, str(directory))
    assert set(reading.environment) == {b"PATH", b"WIDE_0", b"WIDE_1"}
    subprocess.run(["/bin/true"], env=reading.environment, check=True, timeout=10)
    assert sorted(entry.name for entry in reading.left_out) == sorted(
        ["BIG", "F", "G", "E", *(f"WIDE_{n}" for n in range(2, 10))])


def _sparse(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def _environ_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as file:
        entries = file.read().split(b"\0")
    return dict(entry.decode("utf-8", "replace").partition("=")[::2] for entry in entries if entry)

