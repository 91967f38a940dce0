"""The verdict pyinit leaves for Kubernetes in $PYS6_TERMINATION_LOG (SPEC: What pyinit leaves behind):
why the container ended and its exit code on every way out, an essential service's last lines, all
within 4096 bytes; written only into a regular file, never through a symlink or into a FIFO."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from harness import SLEEPER, Pod, wait_for
from supervisor.container import verdict


def _log(pod: Pod) -> Path:
    return pod.root / "termination-log"


def _start(pod: Pod, *args: str, env: dict[str, str] | None = None) -> None:
    pod.start(*args, env={"PYS6_TERMINATION_LOG": str(_log(pod)), **(env or {})})


def _verdict(pod: Pod) -> list[str]:
    return _log(pod).read_text().splitlines()


def test_sigterm(pod: Pod):
    pod.service("idle", SLEEPER)
    _start(pod)
    wait_for(lambda: pod.read_state("idle.pid"), 10, "the service")
    assert pod.stop() == 0
    assert _verdict(pod) == ["received SIGTERM", "exit code: 0"]


def test_the_main_programs_exit_code(pod: Pod):
    _start(pod, "sh", "-c", "exit 7")
    assert pod.wait_exit() == 7
    assert _verdict(pod) == ["main program exited", "exit code: 7"]


def test_an_essential_service_that_bailed_with_its_last_lines(pod: Pod):
    pod.service("core", 'echo "core: database unreachable, try $RANDOM"\necho "core: giving up" >&2\nexit 42',
                essential="")
    pod.service("other", SLEEPER)
    _start(pod, env={"PYS6_CRASH_DEATHS": "2"})
    assert pod.wait_exit(20) == 42
    lines = _verdict(pod)
    assert lines[:3] == ["essential service core bailed (its last run exited with code 42)", "exit code: 42",
                         "last lines of core:"]
    assert lines[-1] == "core: giving up"
    assert lines[-2].startswith("core: database unreachable")


def test_a_stage_failure_at_behaviour_2(pod: Pod):
    pod.script("cont-init.d/10-fails", "exit 3")
    pod.service("never", SLEEPER)
    _start(pod, env={"S6_BEHAVIOUR_IF_STAGE2_FAILS": "2"})
    assert pod.wait_exit() == 1
    assert _verdict(pod) == ["a cont-init script failed", "exit code: 1"]


@pytest.mark.namespace
def test_the_exitcode_file_and_halt(pod: Pod):
    """s6-overlay's recipe: a finish script writes the code and halts (tests/compat/finish-halt)."""
    pod.service("job", "exit 3", finish='echo "$1" > /run/s6-linux-init-container-results/exitcode\n'
                                        "exec /run/s6/basedir/bin/halt\n")
    _start(pod, env={"S6_KEEP_ENV": "1"})
    assert pod.wait_exit(20) == 3
    lines = _verdict(pod)
    assert lines[0].startswith("s6-svscanctl -t ")
    assert "; exit code 3 left by a script in /run/s6-linux-init-container-results/exitcode" in lines[0]
    assert lines[1:] == ["exit code: 3"]


def test_a_fatal_error_at_start(pod: Pod):
    _start(pod, env={"PYS6_CRASH_DEATHS": "many"})
    assert pod.wait_exit() == 100
    lines = _verdict(pod)
    assert lines[0].startswith("pyinit: fatal: bad configuration: ") and "PYS6_CRASH_DEATHS" in lines[0]
    assert lines[1:] == ["exit code: 100"]


def test_long_lines_are_cut_to_4096_bytes_never_the_reason_or_the_code(pod: Pod):
    pod.service("noisy", 'for i in $(seq 1 40); do printf "line$i %0900d\\n" 0; done\nexit 9', essential="")
    _start(pod, env={"PYS6_CRASH_DEATHS": "1"})
    assert pod.wait_exit(20) == 9
    data = _log(pod).read_bytes()
    assert len(data) <= 4096
    lines = data.decode().splitlines()
    assert lines[:3] == ["essential service noisy bailed (its last run exited with code 9)", "exit code: 9",
                         "last lines of noisy:"]
    assert lines[-1].startswith("line40 ")  # the newest line is kept, cut
    assert all(len(line.encode()) <= verdict.MAX_LINE for line in lines[3:])
    assert len(lines) > 5


@pytest.mark.parametrize("reader", [False, True], ids=["nobody-reads", "someone-reads"])
def test_a_fifo_at_the_path_neither_blocks_nor_is_written(pod: Pod, reader: bool):
    os.mkfifo(_log(pod))
    held = os.open(_log(pod), os.O_RDONLY | os.O_NONBLOCK) if reader else None
    try:
        pod.service("idle", SLEEPER)
        _start(pod)
        wait_for(lambda: pod.read_state("idle.pid"), 10, "the service")
        assert pod.stop() == 0
        warning = pod.wait_event("termination log not written")
        assert str(_log(pod)) in warning["reason"]
        assert stat.S_ISFIFO(os.lstat(_log(pod)).st_mode)
        if held is not None:
            assert os.read(held, 100) == b""  # nothing was written before pyinit closed it again
    finally:
        if held is not None:
            os.close(held)


def test_a_symlink_at_the_path_is_not_followed(pod: Pod):
    target = pod.root / "elsewhere"
    target.write_text("precious\n")
    _log(pod).symlink_to(target)
    pod.service("idle", SLEEPER)
    _start(pod)
    wait_for(lambda: pod.read_state("idle.pid"), 10, "the service")
    assert pod.stop() == 0
    assert "a symlink, not followed" in pod.wait_event("termination log not written")["reason"]
    assert target.read_text() == "precious\n"


def test_where_it_goes(tmp_path: Path):
    mounted = tmp_path / "termination-log"
    assert verdict.destination("", default=str(mounted)) is None  # not mounted: nowhere
    mounted.write_text("")
    assert verdict.destination("", default=str(mounted)) == str(mounted)
    assert verdict.destination("off", default=str(mounted)) is None
    assert verdict.destination("-", default=str(mounted)) is None
    assert verdict.destination("/x/y", default=str(mounted)) == "/x/y"


def test_a_reason_too_long_still_leaves_the_code():
    data = verdict.compose(verdict.Verdict("é" * 5000, 111, "svc", ["a"] * 10))
    assert len(data) <= 4096
    assert data.decode().endswith("…\nexit code: 111\n")
