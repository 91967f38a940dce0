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
        if kind == "n" and value.isdigit() and len(value) <= 6:
            keep = int(value)
        elif kind == "s" and value.isdigit() and len(value) <= 10:
            size = min(max(int(value), 4096), MAX_SIZE)
        elif directive in ("t", "T"):
            stamps += directive if directive not in stamps else ""
        else:
            ignored.append(directive)
    return keep, size, "".join(sorted(stamps, reverse=True)), ignored  # t before T, as s6-log writes them


def iso8601(now: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f".{int((now % 1) * 1e9):09d}"


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
        now = time.time()
        parts = [tai64.label(now) if stamp == "t" else iso8601(now) for stamp in self.stamps]
        return (" ".join(parts) + " ").encode() if parts else b""

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
