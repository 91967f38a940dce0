"""A pipe whose lines are prefixed and sent to PID 1's stdout or stderr.

A service keeps one pipe per stream for its whole life (as s6 keeps its log pipe),
and we keep the write end too, so a restart loses nothing and no EOF ends the pump
while orphans of the service still hold the pipe. When the service dies, `drain()`
reads what it left and completes its unfinished last line.

The pipe is read from an event-loop reader callback, not a task: an idle task
costs about 5 KiB, and every service has two streams. Each wake-up reads one
chunk (fairness between services); when the output writer is full the reader is
paused until it has room again (back-pressure, nothing dropped).

With PYS6_LOG_PREFIX=0 (s6-overlay's way) a child whose output would reach PID 1's
own stdout and stderr gets no pipe at all: `DirectOutput` hands it PID 1's fds 1
and 2, as s6-overlay hands its children the container's, and the kernel merges
the writes; nothing is read, counted or kept for pysvstat --log.

A pipe with no formatter is for the rest of raw mode: output that goes elsewhere
than PID 1's fds (S6_LOGGING's catch-all log). The bytes go out as the child
wrote them: no prefix, no escapes, no cut marks, no newline added. They are
still cut at line ends, so a line of one service is not split by another's: an
unfinished line waits for its newline, but at most RAW_HOLD seconds (a prompt, a
progress bar), MAX_LINE bytes, or the end of the writer, then goes out as it is.
The lines are still counted and kept for pysvstat --log.
"""

from __future__ import annotations

import asyncio
import fcntl
import os

from .lines import MAX_LINE, READ_SIZE, Formatter, LineSplitter, RecentLines
from .writer import OutputWriter

DRAIN_CHUNKS = 16  # a dead writer left at most a pipe's capacity; more comes from others
# A pipe found full at a read (a chatty service: its writes were waiting for us) grows, once, to
# this: each wake-up then finds a whole read's worth, and the service blocks less (pyinit spent
# some 15 % less CPU on a flood). Only such pipes, and at most GROWN_PIPES of them at a time: the
# kernel counts every pipe's pages against its user (fs.pipe-user-pages-soft, 64 MiB by default),
# and a user past that limit gets one-page pipes everywhere. Past fs.pipe-max-size it stays as is.
GROWN_PIPE = 1024 * 1024
GROWN_PIPES = 8
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
RAW_HOLD = 0.25  # seconds an unfinished line waits for its newline before it goes out as it is (raw)


class LogPipe:
    grown = 0  # pipes grown to GROWN_PIPE and not closed yet, all services' together

    def __init__(
        self,
        writer: OutputWriter,
        target_fd: int,
        formatter: Formatter | None,
        keep_write_end: bool,
        recent: RecentLines | None = None,
        fds: tuple[int, int] | None = None,
    ) -> None:
        """`fds`: a pipe made before the event loop existed (container/early), its (read, write)
        ends, write -1 when already dropped; else a new pipe."""
        self.read_fd, self.write_fd = os.pipe() if fds is None else fds
        os.set_blocking(self.read_fd, False)
        self._writer = writer
        self._target_fd = target_fd
        self._format = formatter  # None: raw, the bytes as written
        self._held = b""  # raw: the unfinished last line, not written yet
        self._hold_timer: asyncio.TimerHandle | None = None
        self._splitter = LineSplitter()
        self._keep_write_end = keep_write_end
        self._recent = recent  # the last lines, for pysvstat --log and forensics
        self._stream = "stdout" if target_fd == 1 else "stderr"
        self._grown = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reading = False
        self.lines = 0  # merged so far, for the metrics
        self.bytes = 0

    def child_started(self) -> None:
        """The child has its copy of the write end; drop ours unless we keep it."""
        if not self._keep_write_end and self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def start(self) -> None:
        """Begin copying lines as they come, until EOF (every write end closed) or close()."""
        self._loop = asyncio.get_running_loop()
        self._resume()

    def _resume(self) -> None:
        if self._loop is not None and self.read_fd >= 0 and not self._reading:
            self._loop.add_reader(self.read_fd, self._on_readable)
            self._reading = True

    def _pause(self) -> None:
        if self._loop is not None and self._reading:
            self._loop.remove_reader(self.read_fd)
            self._reading = False

    def _on_readable(self) -> None:
        self._read_once()
        if self._writer.full and self.read_fd >= 0:
            self._pause()
            self._writer.when_room(self._resume)

    def _emit(self, lines: bytes) -> None:
        if lines:
            if self._format is not None:
                out, count = self._format(lines)
                self._writer.write_nowait(self._target_fd, out)
            else:
                count = lines.count(b"\n")
            self.lines += count
            self.bytes += len(lines)
            if self._recent is not None:
                self._recent.add_block(self._stream, lines, count)

    def _pass_raw(self, chunk: bytes) -> None:
        """Raw: write what `chunk` completes, up to its last newline; hold the rest (RAW_HOLD)."""
        data = self._held + chunk if self._held else chunk
        end = data.rfind(b"\n") + 1
        if len(data) - end > MAX_LINE:
            end = len(data)  # a line without end goes out as it comes
        if end:
            self._writer.write_nowait(self._target_fd, data[:end])
        self._held = data[end:]
        if not self._held:
            self._cancel_hold()
        elif self._hold_timer is None:
            if self._loop is None:
                self._release()
            else:
                self._hold_timer = self._loop.call_later(RAW_HOLD, self._release)

    def _cancel_hold(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None

    def _release(self) -> None:
        """Raw: the unfinished line goes out as it is (its newline did not come in time, or never will)."""
        self._cancel_hold()
        held, self._held = self._held, b""
        if held:
            self._writer.write_nowait(self._target_fd, held)

    def _take(self, chunk: bytes) -> None:
        self._emit(self._splitter.feed(chunk))
        if self._format is None:
            self._pass_raw(chunk)

    def _flush(self) -> None:
        """The unfinished last line: completed by a newline, or raw, as it is."""
        self._emit(self._splitter.flush())
        self._release()

    def _read_once(self) -> bool:
        """Read one chunk and send its lines; False at EOF or when nothing is there."""
        if self.read_fd < 0:
            return False
        try:
            chunk = os.read(self.read_fd, READ_SIZE)
        except BlockingIOError:
            return False
        except OSError:
            chunk = b""  # a broken pipe ends like EOF: never take PID 1 down with it
        if not chunk:
            self._flush()
            self.close()
            return False
        if len(chunk) == READ_SIZE and not self._grown and LogPipe.grown < GROWN_PIPES:
            try:
                fcntl.fcntl(self.read_fd, F_SETPIPE_SZ, GROWN_PIPE)
                self._grown = True
                LogPipe.grown += 1
            except OSError:
                pass  # EPERM past the user's pipe pages or fs.pipe-max-size: it stays as it is
        self._take(chunk)
        return True

    def drain(self) -> None:
        """Send what is readable now (bounded), then the unfinished last line."""
        for _ in range(DRAIN_CHUNKS):
            if not self._read_once():
                break
        self._flush()

    def close(self) -> None:
        self._release()  # lose nothing, even an unfinished line
        self._pause()
        if self._grown:
            self._grown = False
            LogPipe.grown -= 1
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self.read_fd = -1
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1


class DirectOutput:
    """PID 1's own fd 1 or 2 for the child, in place of a pipe (PYS6_LOG_PREFIX=0 with the output
    on PID 1's own descriptors): the child writes where the container's output goes, as under
    s6-overlay. Nothing is read, so nothing is counted or kept; closing it leaves PID 1's fd alone."""

    read_fd = -1
    lines = 0
    bytes = 0

    def __init__(self, target_fd: int) -> None:
        self.write_fd = target_fd

    def child_started(self) -> None:
        pass  # the fd is PID 1's: it stays open

    def start(self) -> None:
        pass  # nothing to read

    def drain(self) -> None:
        pass

    def close(self) -> None:
        pass  # never PID 1's stdout or stderr


Output = LogPipe | DirectOutput  # what a child's stdout or stderr is, as pyinit keeps it
