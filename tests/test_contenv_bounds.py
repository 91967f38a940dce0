"""Whatever a uid-1000 process writes into the container environment directory, every service
still starts and PID 1 stays small (issue 21, point 4).

The pod's uid owns $PYS6_RUNDIR/container_environment, and PID 1 reads it before each start:
a value no execve can pass (over 128 KiB) made every later start fail with E2BIG, 300 files
of 1 MB took PID 1 from 27 MB to hundreds, and a FIFO there hung printcontenv and failed
every with-contenv script.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

from harness import Event, Pod, read_int, wait_for

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


def restarted(pod: Pod, name: str, timeout: float = 10.0) -> int:
    """Restart `name` with pysvc -r; its new pid, once the new incarnation wrote it."""
    before = read_int(pod, f"{name}.pid")
    (pod.state / f"{name}.pid").unlink(missing_ok=True)
    assert pod.cli("svc", "-r", name).returncode == 0
    return wait_for(lambda: read_int(pod, f"{name}.pid") not in (None, before) and read_int(pod, f"{name}.pid"),
                    timeout, f"{name} to start again")


def warnings_naming(pod: Pod, name: str) -> list[Event]:
    return [e for e in pod.events("container environment entries left out") if name in e["entries"]]


def test_a_value_no_exec_can_pass_is_left_out_once_warned_and_every_service_still_starts(unprivileged_pod: Pod):
    pod = unprivileged_pod
    # A service of the pod's uid poisons the directory, as any process of that uid can.
    pod.service("poisoner", '''
        printf ok > "$PYS6_RUNDIR/container_environment/SMALL"
        head -c 200000 /dev/zero | tr '\\0' x > "$PYS6_RUNDIR/container_environment/BIG"
        touch "$STATE/poisoned"
        exec sleep 1000
    ''')
    pod.service("app", REPORTER.format(name="app"))
    pod.service("late", REPORTER.format(name="late"), down="")  # down until asked up
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
    warned = warnings_naming(pod, "BIG")
    assert len(warned) == 1, warned  # once, not at every start
    assert "longer than an exec can pass" in warned[0]["reason"]
    assert pod.stop() == 0


def test_three_hundred_files_of_a_megabyte_leave_pid1_small_and_services_starting(unprivileged_pod: Pod):
    pod = unprivileged_pod
    pod.service("app", REPORTER.format(name="app"))
    pod.start()
    wait_for(lambda: read_int(pod, "app.pid"), 15, "app")
    restarted(pod, "app")  # the first re-read done: the baseline is PID 1 at work
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
    assert warnings_naming(pod, "HUGE_") and warnings_naming(pod, "WIDE_")
    assert all(len(line) < 2000 for line in pod.stderr().splitlines())
    assert pod.stop() == 0


def test_a_fifo_and_a_symlink_there_neither_block_nor_are_followed_by_pyinit_or_with_contenv(unprivileged_pod: Pod):
    pod = unprivileged_pod
    secret = pod.root / "secret"
    secret.write_text("followed")
    pod.service("app", REPORTER.format(name="app"))
    pod.service("wrapped", f'''
        [ -e "$STATE/planted" ] || {{ echo $$ > "$STATE/wrapped.pid"; exec sleep 1000; }}
        exec {WITH_CONTENV} sh -c 'echo $$ > "$STATE/wrapped.pid"; echo "${{SMALL-unset}} ${{PIPE-unset}} ${{LINK-unset}}" > "$STATE/wrapped.env"; exec sleep 1000'
    ''')
    pod.service("asker", '''
        [ -e "$STATE/planted" ] || { echo $$ > "$STATE/asker.pid"; exec sleep 1000; }
        %s PIPE; echo "pipe $?" > "$STATE/asker.out"
        %s SMALL >> "$STATE/asker.out"
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
    assert pod.read_state("app.env").split() == ["ok", "0", "unset", "unset"]
    assert wait_for(lambda: pod.read_state("wrapped.env"), 10, "with-contenv's program").split() == ["ok", "unset", "unset"]
    assert pod.read_state("asker.out") == "pipe 1\nok\n"
    assert "with-contenv: warning" in pod.stdout() + pod.stderr()
    assert warnings_naming(pod, "PIPE") and warnings_naming(pod, "LINK")
    assert "up" in pod.cli("svstat", "app").stdout
    assert pod.stop() == 0


class RecordingLog:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, object]]] = []

    def warning(self, message: str, **fields: object) -> None:
        self.warnings.append((message, fields))

    def debug(self, message: str, **fields: object) -> None:
        pass


def test_every_environment_pyinit_makes_from_there_can_be_exec_d(tmp_path: Path):
    from supervisor.s6.childenv import ChildEnvironment

    directory = tmp_path / "container_environment"
    directory.mkdir()
    (directory / "E").write_bytes(b"x" * 131_069)  # "E=" + value + NUL: exactly 128 KiB, the longest
    (directory / "F").write_bytes(b"x" * 131_070)  # one byte more
    (directory / "G").write_bytes(b"x" * 131_070 + b"\n")  # chomped, still one more
    (directory / "BIG").write_bytes(b"x" * 200_000)
    log = RecordingLog()
    environment = ChildEnvironment(None, {b"PATH": b"/usr/bin:/bin"}, str(directory), log)
    assert set(environment()) == {b"PATH", b"E"}
    subprocess.run(["/bin/true"], env=environment(), check=True, timeout=10)
    assert sorted(warned_names(log)) == ["BIG", "F", "G"]
    for number in range(10):  # each one exec-able, all together not: the largest are left out
        (directory / f"WIDE_{number}").write_bytes(b"y" * (100_000 + number))
    assert set(environment()) == {b"PATH", b"WIDE_0", b"WIDE_1"}
    subprocess.run(["/bin/true"], env=environment(), check=True, timeout=10)
    assert sorted(warned_names(log)) == sorted(["BIG", "F", "G", "E", *(f"WIDE_{n}" for n in range(2, 10))])
    assert set(environment()) == {b"PATH", b"WIDE_0", b"WIDE_1"}  # read again, nothing warned again
    assert len(warned_names(log)) == 12


def warned_names(log: RecordingLog) -> list[str]:
    """Each name every warning named (F is left out by the total: only a newline could have saved it)."""
    return [name for _, fields in log.warnings for name in str(fields["entries"]).split(", ")]


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

