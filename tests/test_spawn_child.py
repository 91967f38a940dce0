"""proc.spawn_child, the one spawn-with-log-pipes: real processes, pipes that record what is done to them."""

from __future__ import annotations

import os

import anyio
import pytest

from supervisor.proc.reaper import Reaper
from supervisor.proc.spawn import spawn_child


class RecordingPipe:
    """A real pipe, as spawn_child sees a LogPipe: it records each call and reads what came at drain."""

    made: list[RecordingPipe] = []

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.calls: list[str] = []
        self.text = b""
        RecordingPipe.made.append(self)

    def child_started(self) -> None:
        self.calls.append("child_started")
        os.close(self.write_fd)
        self.write_fd = -1

    def start(self) -> None:
        self.calls.append("start")

    def drain(self) -> None:
        self.calls.append("drain")
        while chunk := os.read(self.read_fd, 4096):
            self.text += chunk

    def close(self) -> None:
        self.calls.append("close")
        for fd in (self.read_fd, self.write_fd):
            if fd >= 0:
                os.close(fd)
        self.read_fd = self.write_fd = -1


@pytest.fixture(autouse=True)
def _fresh() -> None:
    RecordingPipe.made.clear()


def test_a_child_writes_to_its_pipes_and_its_exit_comes_through_the_reaper():
    async def main() -> None:
        reaper = Reaper()
        child = spawn_child(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], reaper, (RecordingPipe, RecordingPipe))
        with anyio.fail_after(10):
            while not child.exited.done:
                reaper.reap()
                await anyio.sleep(0.01)
        child.drain()
        out, err = RecordingPipe.made
        assert (out.text, err.text) == (b"out\n", b"err\n")
        assert out.calls == err.calls == ["child_started", "start", "drain"]
        assert (child.exited.exitcode, child.exited.signum) == (3, None)
        for pipe in child.pipes:
            pipe.close()

    anyio.run(main)


def test_a_failed_exec_closes_every_pipe_and_raises():
    with pytest.raises(FileNotFoundError):
        spawn_child(["/nonexistent/program"], Reaper(), (RecordingPipe, RecordingPipe))
    assert [pipe.calls for pipe in RecordingPipe.made] == [["close"], ["close"]]


def test_a_pipe_that_cannot_be_made_is_a_failed_start_and_closes_those_made():
    def no_more_fds() -> RecordingPipe:
        raise OSError(24, "Too many open files")

    with pytest.raises(OSError, match="Too many open files"):
        spawn_child(["/bin/true"], Reaper(), (RecordingPipe, no_more_fds))
    assert [pipe.calls for pipe in RecordingPipe.made] == [["close"]]


@pytest.mark.parametrize("by_fd", [False, True])
def test_the_child_changes_directory_itself_and_pyinit_stays_where_it_is(tmp_path, by_fd: bool):
    """libc's addchdir: a spawn never moves PID 1's own working directory, even for a moment."""
    from supervisor.proc import libcspawn
    from supervisor.proc.spawn import spawn

    assert libcspawn.can_chdir  # glibc 2.29 and later
    where = tmp_path / "service"
    where.mkdir()
    out = tmp_path / "pwd"
    before = os.getcwd()
    handle = os.open(where, os.O_RDONLY | os.O_DIRECTORY) if by_fd else None
    try:
        with open(out, "wb") as sink:
            pid = spawn(["/bin/sh", "-c", "pwd"], cwd=handle if handle is not None else str(where), stdout=sink.fileno())
        _, status = os.waitpid(pid, 0)
    finally:
        if handle is not None:
            os.close(handle)
    assert os.waitstatus_to_exitcode(status) == 0
    assert out.read_text().strip() == str(where)
    assert os.getcwd() == before
    with pytest.raises(OSError):
        spawn(["/bin/true"], cwd=str(tmp_path / "missing"))
    assert os.getcwd() == before


def test_a_directory_fd_numbered_as_a_descriptor_the_child_gets_is_changed_into_first(tmp_path):
    """The child's fchdir comes before its dup2s: a service directory's fd may bear the number of
    its notification-fd, which the dup2 replaces with the readiness pipe."""
    import sys

    from supervisor.proc.spawn import spawn

    where = tmp_path / "service"
    where.mkdir()
    out = tmp_path / "pwd"
    handle = os.open(where, os.O_RDONLY | os.O_DIRECTORY)
    read_end, write_end = os.pipe()
    code = f"import os; print(os.getcwd()); os.write({handle}, b'ready\\n')"
    try:
        with open(out, "wb") as sink:
            pid = spawn([sys.executable, "-c", code], cwd=handle, stdout=sink.fileno(), extra_fds={handle: write_end})
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(handle)
        os.close(write_end)
    try:
        assert os.waitstatus_to_exitcode(status) == 0
        assert out.read_text().strip() == str(where)
        assert os.read(read_end, 10) == b"ready\n"
    finally:
        os.close(read_end)
