"""s6-supervise's on-disk interface for one service, so s6's own programs work on it.

Each service gets a live directory in the shape s6-supervise keeps: supervise/lock (held
with a POSIX record lock, which s6-svok and s6-svstat test), supervise/control (a FIFO:
each byte one of s6-svc's commands), supervise/status (35 bytes, rewritten atomically on
every change), event/ (a fifodir: s6-svwait's listeners leave FIFOs there, and each change
is written to them as s6's event letters) and `down` while the service is normally down.

A service that runs from a copy pyinit made (services.d's, in the legacy-services
directory; an s6-rc longrun's) keeps them in that copy, its working directory, as
s6-supervise does, and the scan directory's entry (/run/service/<name>, else
$PYS6_RUNDIR/service/<name>) is a link to it, as s6-overlay's services-up makes it: so
s6-notifyoncheck finds them from the service's working directory. Any other service gets a
directory of its own in the scan directory, with `notification-fd` and links to its run,
finish and data; pyinit writes nothing into the service's own directory.
"""

from __future__ import annotations

import fcntl
import os
from collections import deque

from ..core.model import ServiceSpec
from ..logs.events import Logger
from .layout import Layout, link_into

TYPE_CHECKING = False  # the start path makes a service's directory before the loop's modules exist
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Awaitable, Callable

    import anyio

EVENT_PREFIX = "ftrig1:@"
EVENT_NAME_LENGTH = 39
LINKED = ("run", "finish", "data", "env", "timeout-kill", "timeout-finish", "down-signal", "max-death-tally")
MAX_CONTROL_READ = 512
MAX_PENDING_LETTERS = 4096  # read, not yet applied: beyond this the FIFOs wait, and so do their writers


def _loop() -> asyncio.AbstractEventLoop:
    import asyncio

    return asyncio.get_running_loop()


def make_supervise_dir(spec: ServiceSpec, layout: Layout) -> SuperviseDir:
    """`spec`'s directory in the shape s6-supervise keeps, before its run starts (as s6-supervise
    makes it first: a run script's `s6-svok .` or s6-notifyoncheck finds it), and its entry in
    every scan directory. OSError: it cannot be made."""
    scandir, *others = layout.scandirs
    directory = SuperviseDir(spec, scandir, in_place=layout.runs_from_copy(spec.directory))
    try:
        for other in others:
            link_into(other, spec.name, directory.path)
    except OSError:
        directory.close()
        raise
    return directory


class SuperviseDir:
    def __init__(self, spec: ServiceSpec, scandir: str, in_place: bool = False) -> None:
        """`in_place`: spec.directory is pyinit's own copy, and the scan directory's entry links to it."""
        self.name = spec.name
        self.path = spec.directory if in_place else os.path.join(scandir, spec.name)
        if in_place:
            _writable_by_owner(self.path)
            link_into(scandir, spec.name, self.path)
        elif os.path.islink(self.path):
            os.unlink(self.path)  # a previous boot's link to a copy
        self.supervise = os.path.join(self.path, "supervise")
        self.event = os.path.join(self.path, "event")
        os.makedirs(self.supervise, mode=0o755, exist_ok=True)
        self._lock_fd = os.open(os.path.join(self.supervise, "lock"),
                                os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        try:
            fcntl.lockf(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise
        control = os.path.join(self.supervise, "control")
        if os.path.lexists(control) and not _is_fifo(control):
            os.unlink(control)
        if not os.path.lexists(control):
            os.mkfifo(control, 0o600)
        self.control_fd = os.open(control, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        os.makedirs(self.event, exist_ok=True)
        os.chmod(self.event, 0o3730)
        self._status: bytes = b""
        if not in_place:
            self._mirror(spec)
        self.set_normally_up(spec.normally_up)

    def _mirror(self, spec: ServiceSpec) -> None:
        for name in LINKED:
            source, link = os.path.join(spec.directory, name), os.path.join(self.path, name)
            if os.path.lexists(link):
                os.unlink(link)
            if os.path.lexists(source):
                os.symlink(source, link)
        fd_file = os.path.join(self.path, "notification-fd")
        if spec.notification_fd is not None:
            with open(fd_file, "w") as file:
                file.write(f"{spec.notification_fd}\n")
        elif os.path.lexists(fd_file):
            os.unlink(fd_file)

    def set_normally_up(self, up: bool) -> None:
        down = os.path.join(self.path, "down")
        if up:
            if os.path.lexists(down):
                os.unlink(down)
        elif not os.path.lexists(down):
            os.close(os.open(down, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))

    def write_status(self, status: bytes) -> None:
        if status == self._status:
            return
        temporary = os.path.join(self.supervise, "status.new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, status)
        finally:
            os.close(fd)
        os.rename(temporary, os.path.join(self.supervise, "status"))
        self._status = status

    def announce(self, letters: str) -> None:
        """Write `letters` to every listener's FIFO in event/; a FIFO nobody reads any more is removed."""
        if not letters:
            return
        data = letters.encode()
        for name in os.listdir(self.event):
            if not name.startswith(EVENT_PREFIX) or len(name) != EVENT_NAME_LENGTH:
                continue
            path = os.path.join(self.event, name)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:
                if exc.errno == 6:  # ENXIO: its reader is gone
                    _unlink_quietly(path)
                continue
            try:
                os.write(fd, data)
            except BrokenPipeError:
                _unlink_quietly(path)
            except OSError:
                pass  # a full FIFO: the reader is stuck, not ours to wait for
            finally:
                os.close(fd)

    def close(self) -> None:
        """What s6-supervise does as it exits: an 'x' event, then the lock released."""
        try:
            self.announce("x")
        except OSError:
            pass
        for fd in (self.control_fd, self._lock_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def _writable_by_owner(path: str) -> None:
    """pyinit's own copy of a directory the image ships read-only (0555): root's s6-supervise makes
    supervise/ in it all the same, so a pyinit of another uid, the copy's owner, adds its own write
    bit for it (under /run, never the image's directory)."""
    import stat

    try:
        info = os.stat(path)
    except FileNotFoundError:
        return  # a copy that could not be made: the service is broken, supervise/ is made below
    if info.st_uid == os.geteuid() and not info.st_mode & stat.S_IWUSR:
        os.chmod(path, stat.S_IMODE(info.st_mode) | stat.S_IWUSR)


def _is_fifo(path: str) -> bool:
    import stat

    return stat.S_ISFIFO(os.lstat(path).st_mode)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class ControlFifos:
    """s6-svc's command bytes from every service's supervise/control, applied in the order they came.

    Each FIFO is read by an event-loop reader callback and one task applies the letters: a task
    per service would cost every service KiB for a FIFO that is almost never written. A letter
    is applied only once the one before it has been (`s6-svc -ut` on a down service starts it,
    then signals the new process, as s6-supervise does). Letters read but not yet applied are
    bounded: past MAX_PENDING_LETTERS no FIFO is read until they are, so a writer that floods a
    FIFO fills its pipe and waits, as it would with s6-supervise, instead of filling PID 1's memory.
    """

    def __init__(self, apply: Callable[[str, str], Awaitable[None]], log: Logger) -> None:
        self._apply = apply
        self._log = log
        self._pending: deque[tuple[str, str]] = deque()
        self._arrived: anyio.Event | None = None
        self._watched: dict[int, SuperviseDir] = {}
        self._paused = False
        self._closed = False

    @property
    def pending_letters(self) -> int:
        return len(self._pending)

    def watch(self, directory: SuperviseDir) -> None:
        if self._closed:
            return
        self._watched[directory.control_fd] = directory
        if not self._paused:
            _loop().add_reader(directory.control_fd, self._on_readable, directory)

    def forget(self, directory: SuperviseDir) -> None:
        if self._watched.pop(directory.control_fd, None) is not None and not self._paused:
            _loop().remove_reader(directory.control_fd)

    def close(self) -> None:
        """No FIFO is read any more and what was read is dropped: the container is exiting, and a
        writer PID 1 cannot kill (one outside its PID namespace) must not hold its exit."""
        for directory in list(self._watched.values()):
            self.forget(directory)
        self._closed = True
        self._pending.clear()
        if self._arrived is not None:
            self._arrived.set()

    def _pause(self) -> None:
        self._paused = True
        for fd in self._watched:
            _loop().remove_reader(fd)

    def _resume(self) -> None:
        self._paused = False
        for fd, directory in self._watched.items():
            _loop().add_reader(fd, self._on_readable, directory)

    def _on_readable(self, directory: SuperviseDir) -> None:
        try:
            data = os.read(directory.control_fd, MAX_CONTROL_READ)
        except BlockingIOError:
            return
        except OSError as exc:  # never up to PID 1's task group
            self._log.error("supervise/control cannot be read, no longer read", service=directory.name,
                            reason=exc.strerror)
            self.forget(directory)
            return
        self._pending.extend((directory.name, letter) for letter in data.decode("latin-1"))
        if len(self._pending) >= MAX_PENDING_LETTERS:
            self._pause()
        if self._arrived is not None:
            self._arrived.set()

    async def serve(self) -> None:
        """Apply the letters as they come, until close().

        A checkpoint follows every letter. Without it a fed FIFO livelocks the task: a letter that
        needs no waiting (a signal to a down service) is applied without yielding, and the next
        read has always set the event again by the time anyio tries to deliver a cancellation, so
        the services' task group, and PID 1's exit with it, waited for as long as a writer wrote."""
        import anyio
        import anyio.lowlevel

        while not self._closed:
            if self._paused and len(self._pending) < MAX_PENDING_LETTERS // 2:
                self._resume()
            while not self._pending and not self._closed:
                self._arrived = anyio.Event()
                await self._arrived.wait()
            self._arrived = None
            if self._closed:
                return
            name, letter = self._pending.popleft()
            try:
                await self._apply(name, letter)
            except Exception as exc:  # noqa: BLE001 (a command that fails is logged; the FIFOs are still read)
                self._log.error("s6-svc command failed", service=name, command=letter, reason=str(exc))
            await anyio.lowlevel.checkpoint()
