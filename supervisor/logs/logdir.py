"""S6_LOGGING=2: everything the container prints goes to s6-overlay's catch-all log,
/var/log/s6-uncaught-logs, kept as s6-log keeps a log directory, and nothing to stdout.

S6_LOGGING_SCRIPT's directives that apply here are read: nN (archives kept, default 20),
sN (bytes before `current` is archived, default 1000000), T (an ISO 8601 local time
before each line) and t (a TAI64N label before each line). Archives are named
@<TAI64N>.s, as s6-log names them, so s6-log's readers (s6-tai64nlocal) work on them.
Written from the output writer's worker thread only.
"""

import os
import time

from ..base import tai64

DIRECTORY = "/var/log/s6-uncaught-logs"
DEFAULT_SCRIPT = "n20 s1000000 T"
MAX_SIZE = 1 << 30


def parse_script(script: str) -> tuple[int, int, str, list[str]]:
    """(archives kept, max size, stamps 't'/'T'/'tT', what was not understood)."""
    keep, size, stamps, ignored = 20, 1_000_000, "", []
    for directive in script.split():
        kind, value = directive[0], directive[1:]
        if kind == "n" and value.isdecimal() and len(value) <= 6:
            keep = int(value)
        elif kind == "s" and value.isdecimal() and len(value) <= 10:
            size = min(max(int(value), 4096), MAX_SIZE)
        elif directive in ("t", "T"):
            stamps += directive if directive not in stamps else ""
        else:
            ignored.append(directive)
    return keep, size, "".join(sorted(stamps, reverse=True)), ignored  # t before T, as s6-log writes them


def iso8601(now: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f".{int((now % 1) * 1e9):09d}"



def stamp_prefix(stamps: str) -> bytes:
    """A line's stamps as s6-log writes them, now: a TAI64N label and one space (t), an ISO 8601
    time and two spaces (T), in the script's order."""
    now = time.time()
    return "".join(tai64.label(now) + " " if stamp == "t" else iso8601(now) + "  " for stamp in stamps).encode()

class CatchAllLog:
    def __init__(self, directory: str, keep: int, max_size: int, stamps: str) -> None:
        self.directory = directory
        self.keep = keep
        self.max_size = max_size
        self.stamps = stamps
        os.makedirs(directory, mode=0o755, exist_ok=True)
        self._current = os.path.join(directory, "current")
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size
        self._mid_line = False

    def _open(self) -> int:
        return os.open(self._current, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)

    def _prefix(self) -> bytes:
        return stamp_prefix(self.stamps)

    def _stamped(self, data: bytes) -> bytes:
        if not self.stamps:
            return data
        out = []
        for line in data.splitlines(keepends=True):
            out.append(line if self._mid_line else self._prefix() + line)
            self._mid_line = not line.endswith(b"\n")
        return b"".join(out)

    def _rotate(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)
        os.rename(self._current, os.path.join(self.directory, tai64.label(time.time()) + ".s"))
        archives = sorted(name for name in os.listdir(self.directory) if name.startswith("@") and name.endswith(".s"))
        for old in archives[: max(0, len(archives) - self.keep)]:
            os.unlink(os.path.join(self.directory, old))
        self._fd = self._open()
        self._size = 0

    def write(self, fd: int, data: bytes) -> None:
        """The output writer's sink: both streams into one log, as s6-overlay's catch-all logger;
        `current` is archived between lines once the next would take it past the size."""
        try:
            for line in self._stamped(data).splitlines(keepends=True):
                if self._size and self._size + len(line) > self.max_size:
                    self._rotate()
                view = memoryview(line)
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
                    self._size += written
        except OSError:
            pass  # a full disk must not stop PID 1; what was lost is lost, as with a closed stdout


# --- s6-log's log directory, for pys6-log ---------------------------------------------------

LINE_LIMIT = 8192  # s6-log's -l default: a longer line is cut into lines of this many bytes
LINE_LIMIT_MIN = 48
TOLERANCE = 2000  # s6-log's lN default: `current` is archived once a write takes it within this of sN
READ_SIZE = 8191  # what s6-log's stdin buffer takes at once: its writes, and so its archives, split there


def _archive_names(directory: str) -> list[str]:
    """The archives s6-log counts against nN: @<TAI64N>.s and @<TAI64N>.u, oldest first."""
    return sorted(name for name in os.listdir(directory)
                  if len(name) == 27 and name[0] == "@" and name[25] == "." and name[26] in "su")


class S6LogDir:
    """One log directory kept as s6-log (2.11 to 2.15) keeps it, so that what a service or a
    reader of the directory sees is s6-log's: the directory made 0700 (with s6-log's setgid
    request), a `lock` it holds locked (a second logger on it fails), a `state` file, `current`
    written at 0666 less the umask and given the owner's execute bit once the logger is done
    with it (s6-log's mark of a cleanly closed `current`; one found without it was being
    written when its logger died, and is archived as @<TAI64N>.u at start). Each line is
    written whole with its stamps; `current` is archived as @<TAI64N>.s once a line takes it
    within lN (default 2000) of sN bytes, and archives beyond nN are removed, oldest first."""

    def __init__(self, directory: str, keep: int, max_size: int, stamps: str, tolerance: int = TOLERANCE) -> None:
        self.directory = directory
        self.keep = keep
        self.max_size = max_size
        self.stamps = stamps
        self.tolerance = min(tolerance, max_size // 2)  # s6-log refuses more than half of s; here it is capped
        mask = os.umask(0)
        os.umask(mask)
        self._mode = 0o666 & ~mask
        try:
            os.mkdir(directory, 0o2700)
        except FileExistsError:
            pass
        # no link followed in a directory its service may write: a link there must not aim our writes elsewhere
        self._lock = os.open(self._path("lock"), os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o666)
        import fcntl

        try:
            fcntl.lockf(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # s6-log's fd_lock: a POSIX lock, not flock
        except OSError as exc:
            os.close(self._lock)
            raise OSError(exc.errno, f"{self._path('lock')} is held by another logger") from exc
        current = self._path("current")
        try:
            clean = bool(os.stat(current).st_mode & 0o100)
        except FileNotFoundError:
            clean = False
        if not clean:
            self._recover()
        self._fd = os.open(current, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        os.fchmod(self._fd, self._mode)  # being written: no execute bit
        self._size = os.fstat(self._fd).st_size

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def _unlink(self, name: str) -> None:
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            pass

    def _finish(self, name: str, suffix: str) -> None:
        """s6-log's finish(): a non-empty file it alone links becomes an archive; it goes either way."""
        try:
            st = os.lstat(self._path(name))  # link(2) links a symbolic link itself, not what it names
        except FileNotFoundError:
            return
        if st.st_nlink == 1 and st.st_size:
            os.link(self._path(name), self._path(tai64.label(time.time()) + "." + suffix))
        os.unlink(self._path(name))
        self._trim()

    def _recover(self) -> None:
        """A directory whose last logger did not close `current` cleanly (or a new one): what was
        mid-rotation and `current` itself become .u archives, and `state` starts empty."""
        self._unlink("state")
        self._unlink("newstate")
        try:
            processed = bool(os.stat(self._path("processed")).st_mode & 0o100)
        except FileNotFoundError:
            processed = False
        if processed:
            self._unlink("previous")
            self._finish("processed", "s")
        else:
            self._unlink("processed")
            self._finish("previous", "u")
        self._finish("current", "u")
        os.close(os.open(self._path("state"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o666))

    def _trim(self) -> None:
        archives = _archive_names(self.directory)
        for old in archives[: max(0, len(archives) - self.keep)]:
            self._unlink(old)

    def rotate(self) -> None:
        """s6-log's rotation without a processor: current -> previous (marked done) -> @<TAI64N>.s."""
        os.fsync(self._fd)
        os.rename(self._path("current"), self._path("previous"))
        fd = os.open(self._path("current"), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o666)
        os.close(self._fd)
        self._fd = fd
        self._size = 0
        os.chmod(self._path("previous"), self._mode | 0o100)
        self._finish("previous", "s")

    def _stamp(self) -> bytes:
        return stamp_prefix(self.stamps)

    def write_lines(self, lines: "list[bytes]") -> None:
        """Whole lines (without their newlines), each stamped and newline-terminated, in one write as
        s6-log writes what it has; then, as s6-log, `current` is archived if it is within the
        tolerance (lN) of sN."""
        if not lines:
            return
        view = memoryview(b"".join(self._stamp() + line + b"\n" for line in lines))
        while view:
            try:
                written = os.write(self._fd, view)
            except InterruptedError:
                continue
            view = view[written:]
            self._size += written
        if self._size + self.tolerance >= self.max_size:
            self.rotate()

    def close(self) -> None:
        """s6-log's exit: `current` synced and given the owner's execute bit (closed cleanly)."""
        os.fsync(self._fd)
        os.fchmod(self._fd, self._mode | 0o100)
        os.close(self._fd)
        os.close(self._lock)
