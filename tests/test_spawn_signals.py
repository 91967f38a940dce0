"""proc.spawn starts a child as fork+exec would: every signal at its default, none blocked,
including the two glibc keeps for itself (32, 33), which os.posix_spawn leaves ignored."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from supervisor.proc import libcspawn
from supervisor.proc.spawn import spawn

CHECKOUT = Path(__file__).resolve().parent.parent


def _status_of_child(**options: object) -> dict[str, str]:
    read, write = os.pipe()
    try:
        pid = spawn(["/bin/cat", "/proc/self/status"], stdout=write, **options)  # type: ignore[arg-type]
    finally:
        os.close(write)
    text = b""
    while chunk := os.read(read, 65536):
        text += chunk
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return dict(line.split(":\t", 1) for line in text.decode().splitlines() if ":\t" in line)


def test_no_signal_is_ignored_or_blocked_in_a_child_not_even_glibcs_own():
    assert libcspawn.available
    previous = signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as Python's start-up leaves it
    try:
        status = _status_of_child()
    finally:
        signal.signal(signal.SIGPIPE, previous)
    assert status["SigIgn"] == "0000000000000000"
    assert status["SigBlk"] == "0000000000000000"


def test_os_posix_spawn_would_leave_32_and_33_ignored():
    # the reason libcspawn exists: if this ever fails, glibc changed and os.posix_spawn will do
    read, write = os.pipe()
    pid = os.posix_spawn("/bin/cat", ["cat", "/proc/self/status"], {}, file_actions=[(os.POSIX_SPAWN_DUP2, write, 1)],
                         setsigdef=[s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)])
    os.close(write)
    with os.fdopen(read, "rb") as f:
        text = f.read().decode()
    os.waitpid(pid, 0)
    assert "SigIgn:\t0000000180000000" in text


def test_a_new_session_and_the_environment_given(tmp_path):
    read, write = os.pipe()
    pid = spawn(["/bin/sh", "-c", 'echo "$ONLY $(cut -d" " -f6 /proc/$$/stat) $$ $(pwd)"'], stdout=write,
                env={"ONLY": "this"}, cwd=str(tmp_path))
    os.close(write)
    with os.fdopen(read, "rb") as f:
        words = f.read().decode().split()
    os.waitpid(pid, 0)
    assert words[0] == "this"
    assert words[1] == words[2]  # session id = its own pid: setsid
    assert words[3] == str(tmp_path)
    assert os.getcwd() != str(tmp_path)  # spawn came back home


def test_an_exec_that_fails_is_an_oserror_naming_the_program(tmp_path):
    missing = tmp_path / "no-such-program"
    with pytest.raises(FileNotFoundError) as failure:
        spawn([str(missing)])
    assert failure.value.filename == str(missing)
    plain = tmp_path / "plain"
    plain.write_text("not executable\n")
    with pytest.raises(PermissionError):
        spawn([str(plain)])


def test_search_path_finds_a_program_by_name():
    status = _status_of_child()
    assert status["Name"] == "cat"
    read, write = os.pipe()
    pid = spawn(["true"], stdout=write, search_path=True, env={"PATH": "/usr/bin:/bin"})
    os.close(write)
    os.close(read)
    _, code = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(code) == 0


def test_a_pys6_command_that_chain_loads_passes_no_ignored_signal_on():
    # Python's start-up ignores SIGPIPE and SIGXFSZ, and exec keeps what is ignored: with-contenv
    # (base/environ.exec_program, which every chain-loading command uses) puts them back
    read, write = os.pipe()
    code = "import sys; from supervisor.s6.commands import with_contenv; sys.exit(with_contenv(sys.argv[1:]))"
    pid = spawn([sys.executable, "-c", code, "/bin/cat", "/proc/self/status"], stdout=write,
                env={"S6_KEEP_ENV": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(CHECKOUT)})
    os.close(write)
    with os.fdopen(read, "rb") as f:
        text = f.read().decode()
    os.waitpid(pid, 0)
    assert "SigIgn:\t0000000000000000" in text, text


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as uid 1000")
def test_a_child_with_a_cwd_starts_when_pyinit_was_started_in_a_directory_it_cannot_read():
    # uid 1000 in a root-only 0700 directory (a fresh clone under mktemp -d, scripts/run-pod)
    base = Path(tempfile.mkdtemp(prefix="pys6-spawn-home-", dir="/var/tmp"))  # not pytest's root-only tmp
    try:
        base.chmod(0o755)
        locked, target = base / "locked", base / "open"
        locked.mkdir(mode=0o700)
        target.mkdir()
        target.chmod(0o777)
        shutil.copytree(CHECKOUT / "supervisor", base / "package" / "supervisor")  # a checkout uid 1000 may not read
        os.system(f"chmod -R a+rX {shlex.quote(str(base / 'package'))}")
        code = ("import os, sys; from supervisor.proc.spawn import spawn; "
                "pid = spawn(['/bin/sh', '-c', 'pwd > out'], cwd=sys.argv[1]); "
                "sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))")
        done = subprocess.run(["setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups", sys.executable,
                               "-c", code, str(target)], cwd=locked,
                              env={"PYTHONPATH": str(base / "package"), "PATH": "/usr/bin:/bin"},
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert (target / "out").read_text() == f"{target}\n"
    finally:
        shutil.rmtree(base, ignore_errors=True)
