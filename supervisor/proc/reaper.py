"""The only place that calls waitpid: PID 1 must reap everything, orphans included.

On each SIGCHLD, `reap()` loops waitpid(-1, WNOHANG) until nothing is left to
collect (SIGCHLD coalesces) and hands each status to whoever watches that pid.
Nothing else may reap: no asyncio child watcher, no Popen.wait/poll.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False

if TYPE_CHECKING:  # imported where first needed: pyinit's start path runs before anyio is loaded
    from collections.abc import Callable

    import anyio

    ExitCallback = Callable[[int | None, int | None], None]  # exit code, signal number

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Make orphans of our descendants re-parent to us, as they do to a real PID 1."""
    import ctypes  # here: libcspawn brings it to a PID 1 too, but only where it spawns

    libc = ctypes.CDLL(None, use_errno=True)  # libc, as linked in: find_library would run ldconfig
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


def decode_status(status: int) -> tuple[int | None, int | None]:
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    return os.WEXITSTATUS(status), None


class ChildExit:
    """A child's exit as something to await: the reaper calls it, tasks wait on it."""

    def __init__(self) -> None:
        self.exitcode: int | None = None
        self.signum: int | None = None
        import anyio

        self._done = anyio.Event()

    def __call__(self, exitcode: int | None, signum: int | None) -> None:
        self.exitcode, self.signum = exitcode, signum
        self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    async def wait(self) -> None:
        await self._done.wait()


class Reaper:
    def __init__(self, on_orphan: Callable[[int, int | None, int | None], None] | None = None) -> None:
        self._watched: dict[int, ExitCallback] = {}
        self._on_orphan = on_orphan
        import anyio

        self._childless: anyio.Event = anyio.Event()
        self.orphans_reaped = 0

    def watch(self, pid: int, callback: ExitCallback) -> None:
        """Call `callback` when `pid` exits. Register before the next await after spawning."""
        self._watched[pid] = callback

    def watch_exit(self, pid: int) -> ChildExit:
        """Watch `pid` and return its awaitable exit."""
        child_exit = ChildExit()
        self.watch(pid, child_exit)
        return child_exit

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self._childless.set()
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            exitcode, signum = decode_status(status)
            callback = self._watched.pop(pid, None)
            if callback is not None:
                callback(exitcode, signum)
                continue
            self.orphans_reaped += 1
            if self._on_orphan is not None:
                self._on_orphan(pid, exitcode, signum)

    def has_children(self) -> bool:
        """Whether any child is left, without reaping it (WNOWAIT)."""
        try:
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        return True

    async def wait_childless(self) -> None:
        """Return once we have no child left at all (waitpid says ECHILD)."""
        import anyio

        while True:
            self._childless = anyio.Event()
            self.reap()
            if self._childless.is_set():
                return
            await self._childless.wait()


def reap_own(pid: int) -> tuple[int | None, int | None] | None:
    """Before the event loop and its Reaper exist (container/early): `pid`, a child of ours, reaped
    if it has exited (its exit code, signal), else None. Only that pid: orphans wait for the Reaper."""
    while True:
        try:
            found, status = os.waitpid(pid, os.WNOHANG)
        except InterruptedError:
            continue
        return decode_status(status) if found == pid else None


def reap_until(deadline: float) -> bool:
    """Without an event loop (the emergency path): reap until no child is left or `deadline` (monotonic).

    True when no child is left. It polls every 20 ms: only for a PID 1 whose loop is gone.
    """
    import time

    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        except InterruptedError:
            continue
        if pid == 0:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
