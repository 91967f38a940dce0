"""pysvc --ssh-forced shows a service's lines escaped, whatever its stdout is (issue 21, point 5).

sshd gives a `command="pysvc --ssh-forced",restrict` key no pty: the client's stdout and stderr
are pipes, yet what reads them is the operator's terminal. A service's OSC 52 (clipboard), title
and clear-screen sequences must reach it as visible escapes, never as bytes the terminal obeys.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest

from harness import Pod, wait_for

# What a hostile service prints: set the clipboard, the window title, clear the screen, and a C1 CSI.
NOISY = r"""printf '\033]52;c;cHduZWQ=\007copied\n'
printf '\033]0;owned\007titled\n'
printf '\033[2Jcleared\n' >&2
printf '\302\233cs1\n'
echo noisy done
exec sleep 1000
"""
RAW = ("\x1b", "\x07", "\x9b")
ESCAPED_STDOUT = (r"\x1b]52;c;cHduZWQ=\x07copied", r"\x1b]0;owned\x07titled", r"\x9bcs1")
ESCAPED_STDERR = r"\x1b[2Jcleared"


def assert_escaped(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    for text in (result.stdout, result.stderr):
        assert not any(byte in text for byte in RAW), repr(text)
    for form in ESCAPED_STDOUT:
        assert form in result.stdout, result.stdout
    assert ESCAPED_STDERR in result.stdout, result.stdout  # --log writes every stream to stdout


def test_a_forced_log_through_a_pipe_is_escaped_and_raw_is_out_of_reach(pod: Pod):
    pod.service("noisy", NOISY)
    pod.start()
    pod.wait_stdout("[noisy] noisy done")

    def forced(command: str) -> subprocess.CompletedProcess[str]:
        return pod.cli("svc", "--ssh-forced", env={"SSH_ORIGINAL_COMMAND": command})

    assert_escaped(forced("log noisy"))
    forensics = forced("forensics noisy")
    assert forensics.returncode == 0 and not any(byte in forensics.stdout for byte in RAW)
    for bad in ("log noisy --raw", "log --raw noisy", "log --raw", "status --raw", "status --prometheus"):
        refused = forced(bad)
        assert refused.returncode == 100 and "refused" in refused.stderr and refused.stdout == "", bad
    # Elsewhere docs/clients.md's rule stands: a pipe gets the lines as they are (for grep, for files).
    piped = pod.cli("svstat", "--log", "noisy")
    assert "\x1b]52;c;cHduZWQ=\x07copied" in piped.stdout and "\x1b[2Jcleared" in piped.stdout


@pytest.fixture
def noisy_sshd(unprivileged_pod: Pod, request: pytest.FixtureRequest) -> Iterator[
        tuple[Pod, Callable[[str, str], subprocess.CompletedProcess[str]]]]:
    unprivileged_pod.service("noisy", NOISY)  # before the sshd fixture starts the pod
    pod, ssh, _bindir = request.getfixturevalue("sshd")
    yield pod, ssh


@pytest.mark.machine_wide  # the sshd fixture's pod uses the default runtime directory
def test_ssh_log_with_a_forced_command_key_is_escaped(noisy_sshd):
    pod, ssh = noisy_sshd
    pod.wait_stdout("[noisy] noisy done")
    result = wait_for(lambda: (r := ssh("forced", "log noisy")).returncode == 0 and "noisy done" in r.stdout and r,
                      15, "the noisy service's lines over ssh")
    assert_escaped(result)
    forensics = ssh("forced", "forensics noisy")
    assert forensics.returncode == 0 and not any(byte in forensics.stdout for byte in RAW)
