"""The only place that starts processes. It never waits for them: the reaper does.

posix_spawn gives a new session (setsid), fd remapping (for notification-fd),
default signal dispositions and the exec error reported back to us (glibc), at
vfork cost; libcspawn calls it so that glibc's own signals 32 and 33 are reset too.
The child changes to its directory itself (posix_spawn_file_actions_addchdir_np); only
where libc lacks it does the caller change directory around the call and back (then the
event loop is the only thread that spawns).

`spawn_child` is spawn with the child's output in log pipes and its exit watched: a
one-shot script, the main program, a cron job. A service keeps its pipes for its whole
life and is driven by callbacks, so core/service uses `spawn` and the reaper itself.
"""

from __future__ import annotations

import _signal  # not signal: its enums would bring enum onto the start path
import os

# A failed exec's exit code: its home is base/terms, named here too for the callers of spawn.
from ..base.terms import exec_failure_code as exec_failure_code
from . import libcspawn

TYPE_CHECKING = False  # typing's own costs the start path its import (and re's)
if TYPE_CHECKING:  # not imported: pyinit's start path spawns before anyio is loaded (container/early)
    from collections.abc import Callable, Mapping, Sequence
    from dataclasses import dataclass as record
    from typing import Protocol

    from .reaper import ChildExit, Reaper
else:
    from ..base.record import record

# Signals a child must not inherit as ignored (Python ignores SIGPIPE and SIGXFSZ), where
# libcspawn cannot be used: os.posix_spawn cannot name 32 and 33.
_DEFAULT_SIGNALS = tuple(s for s in _signal.valid_signals() if s not in (_signal.SIGKILL, _signal.SIGSTOP))
_home_fd: int | None = None


def _return_home() -> None:
    global _home_fd
    if _home_fd is None:
        try:
            _home_fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            # started in a directory it cannot read (a root-only checkout, as uid 1000): "/" is
            # home instead, or no script given a cwd could ever start
            _home_fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    os.fchdir(_home_fd)


def spawn(
    argv: Sequence[str],
    *,
    cwd: str | int | None = None,  # a path, or a directory's fd (fchdir)
    stdout: int | None = None,
    stderr: int | None = None,
    extra_fds: Mapping[int, int] | None = None,
    new_session: bool = True,
    env: Mapping[str, str] | Mapping[bytes, bytes] | None = None,
    search_path: bool = False,
    keep_stdin: bool = False,
    stdin: int | None = None,
) -> int:
    """Start `argv` and return its pid; raise OSError if it cannot be executed.

    stdin is /dev/null when `stdout` is given (a service), else inherited (the
    main program, which keeps it with `keep_stdin` even when its output is
    piped). `extra_fds` maps child fd -> our fd. A service gets its own
    session; the main program stays in ours, so it keeps the container's terminal.
    """
    actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = []
    if stdin is not None:
        actions.append((os.POSIX_SPAWN_DUP2, stdin, 0))  # a logger's: the read end of its service's pipe
    elif stdout is not None and not keep_stdin:
        actions.append((os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0))
    if stdout is not None:
        actions.append((os.POSIX_SPAWN_DUP2, stdout, 1))
    if stderr is not None:
        actions.append((os.POSIX_SPAWN_DUP2, stderr, 2))
    for child_fd, our_fd in (extra_fds or {}).items():
        actions.append((os.POSIX_SPAWN_DUP2, our_fd, child_fd))
    environment = os.environ if env is None else env
    if libcspawn.available and libcspawn.can_chdir:
        return libcspawn.posix_spawn(argv[0], argv, environment, file_actions=actions, setsid=new_session,
                                     search_path=search_path, cwd=cwd)
    if cwd is not None:
        _return_home()  # remember where home is before leaving it
        os.chdir(cwd)
    try:
        if libcspawn.available:
            return libcspawn.posix_spawn(argv[0], argv, environment, file_actions=actions, setsid=new_session,
                                         search_path=search_path)
        launcher = os.posix_spawnp if search_path else os.posix_spawn
        return launcher(argv[0], list(argv), dict(environment), file_actions=actions, setsigdef=_DEFAULT_SIGNALS,
                        setsigmask=(), setsid=new_session)
    finally:
        if cwd is not None:
            _return_home()


def send_signal(target: int, signum: int, group: bool = True) -> OSError | None:
    """Signal a process group (or one process); the failure, if any, is returned, never raised.

    A target already gone is not a failure. EPERM is: a service that became
    another user through a setuid helper cannot be signalled by a non-root PID 1.
    """
    try:
        if group:
            os.killpg(target, signum)
        else:
            os.kill(target, signum)
    except ProcessLookupError:
        return None
    except OSError as exc:
        return exc
    return None


def signal_group(pgid: int, signum: int) -> OSError | None:
    return send_signal(pgid, signum, group=True)


if TYPE_CHECKING:  # a protocol for mypy only: typing is not imported at run time
    class OutputPipe(Protocol):
        """What spawn_child needs of a pipe the child writes to (logs/pipe.LogPipe is one)."""

        write_fd: int

        def child_started(self) -> None: ...

        def start(self) -> None: ...

        def drain(self) -> None: ...

        def close(self) -> None: ...


@record(frozen=True)
class Child:
    """A started process: its pid, its exit as the reaper will tell it, the pipes of its output."""

    pid: int
    exited: ChildExit
    pipes: tuple[OutputPipe, ...] = ()

    def drain(self) -> None:
        """Once it is dead: send what its pipes hold now, then each one's unfinished last line."""
        for pipe in self.pipes:
            pipe.drain()


def spawn_child(
    argv: Sequence[str],
    reaper: Reaper,
    pipes: Sequence[Callable[[], OutputPipe]] = (),
    *,
    stdout: int | None = None,
    stderr: int | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | Mapping[bytes, bytes] | None = None,
    search_path: bool = False,
    new_session: bool = True,
    keep_stdin: bool = False,
) -> Child:
    """spawn(argv) with its stdout and stderr in the pipes `pipes` makes (the first for stdout,
    the second for stderr; without them `stdout` and `stderr` are passed as they are), watched by
    the reaper from the start. The pipes are made here, so a pipe() failing (EMFILE) is a failed
    start like an exec's: every pipe made is closed and the OSError raised (exec_failure_code
    gives its exit code). Started, each pipe drops our copy of its write end (unless it keeps
    it) and begins copying lines; it closes itself at EOF, when the child and all it started
    are gone. The other options are spawn's."""
    made: list[OutputPipe] = []
    try:
        for make in pipes:
            made.append(make())
        pid = spawn(argv, cwd=cwd, stdout=made[0].write_fd if made else stdout,
                    stderr=made[1].write_fd if len(made) > 1 else stderr, env=env, search_path=search_path,
                    new_session=new_session, keep_stdin=keep_stdin)
    except OSError:
        for pipe in made:
            pipe.close()
        raise
    exited = reaper.watch_exit(pid)  # before the next await: the reaper may see it die at once
    for pipe in made:
        pipe.child_started()
        pipe.start()
    return Child(pid, exited, tuple(made))
