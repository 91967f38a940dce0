"""A service's ./run started before its ServiceRunner exists: by pyinit's start path, while the
event loop's modules are still to be imported (container/early), and adopted by the runner.

The one way a service's run script is spawned (`spawn_run`), whoever spawns it: in its
directory (pyinit's handle on its copy, so no path another uid may rename is followed), its
stdout and stderr on the pipes the service keeps for its whole life, stdin /dev/null (or its
producer's pipe, for a logger), in a session of its own.

Standard library only beneath (proc/spawn): the start path must not load anyio.
"""

from __future__ import annotations

import errno
import os
import time

from ..proc.spawn import spawn
from .model import ServiceSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


def spawn_run(spec: ServiceSpec, stdout: int, stderr: int, env: Mapping[bytes, bytes],
              extra_fds: dict[int, int] | None = None, stdin: int | None = None, finish_args: tuple[str, ...] | None = None
              ) -> int:
    """./run NAME (or, with `finish_args`, ./finish ARGS) of `spec`; its pid. OSError: it could not start."""
    where = spec.directory if spec.directory_fd is None else spec.directory_fd
    argv = ["./run" + spec.script_suffix, spec.name] if finish_args is None else \
        ["./finish" + spec.script_suffix, *finish_args]
    return spawn(argv, cwd=where, stdout=stdout, stderr=stderr, extra_fds=extra_fds, env=env, stdin=stdin)


def can_prestart(spec: ServiceSpec) -> bool:
    """Whether the start path may start it as its runner would, with nothing said or set up first:
    normally up, well defined, no health check to run from its first moment, and no logger of its
    own (services.d/NAME/log: the pair starts together). A readiness pipe (notification-fd) is made
    here, and read by its runner once adopted: what was written meanwhile waits in it."""
    return (spec.normally_up and not spec.problems and spec.health is None
            and not os.path.isdir(os.path.join(spec.directory, "log")))


class Prestarted:
    """A run script the start path started: its pid and pipes, and its exit if the reaper saw it
    before a runner took it (the reaper calls `exited` from its first reap on)."""

    def __init__(self, pid: int, stdout: tuple[int, int], stderr: tuple[int, int], started: float,
                 notify: int | None = None) -> None:
        self.pid = pid
        self.notify = notify  # the read end of its notification-fd pipe (None: it has none)
        self.started = started  # time.monotonic(), the loop's clock
        self.stdout = stdout  # (read end, write end): pyinit keeps both, as the runner's own pipes
        self.stderr = stderr
        self.exit: tuple[int | None, int | None] | None = None
        self._on_exit: Callable[[int | None, int | None], None] | None = None

    def exited(self, exitcode: int | None, signum: int | None) -> None:
        if self._on_exit is not None:
            self._on_exit(exitcode, signum)
        else:
            self.exit = (exitcode, signum)

    def adopt(self, on_exit: Callable[[int | None, int | None], None]) -> None:
        """The runner's from now on; an exit seen before is told at once."""
        self._on_exit = on_exit
        if self.exit is not None:
            on_exit(*self.exit)

    def close(self) -> None:
        """Never adopted (the container stopped first): its pipes closed."""
        for fd in (*self.stdout, *self.stderr, *(() if self.notify is None else (self.notify,))):
            try:
                os.close(fd)
            except OSError:
                pass


def room_after(fd: int) -> bool:
    """Whether `fd` leaves the loop half of the process's descriptors: its imports open a file each
    and its runners make pipes of their own. Past that, services are left to their runners, which
    meet a shortage as a failed start (a start path that took them all would leave PID 1 unable
    to import its loop)."""
    limit = os.sysconf("SC_OPEN_MAX")
    return limit <= 0 or fd < limit // 2


def prestart(spec: ServiceSpec, env: Mapping[bytes, bytes], stdout_to: int | None = None,
             stdin_from: int | None = None) -> Prestarted | None:
    """Start `spec` (see can_prestart) with its pipes (`stdout_to`, `stdin_from`: an s6-rc pipeline's,
    as ServiceRunner takes them); None when it cannot be (its runner then starts it, and says why
    if it fails again)."""
    made: list[int] = []
    started = time.monotonic()
    extra: dict[int, int] = {}
    try:
        for _ in (1, 2):
            made.extend(os.pipe())
        if spec.notification_fd is not None:  # as the runner makes it
            made.extend(os.pipe())
            extra[spec.notification_fd] = made[5]
        if not room_after(max(made)):
            raise OSError(errno.EMFILE, "left to its runner")
        pid = spawn_run(spec, made[1] if stdout_to is None else stdout_to, made[3], env, extra, stdin=stdin_from)
    except OSError:
        for fd in made:
            os.close(fd)
        return None
    notify = None
    if extra:
        os.close(made[5])
        notify = made[4]
    return Prestarted(pid, (made[0], made[1]), (made[2], made[3]), started, notify)
