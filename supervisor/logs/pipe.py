"""A pipe whose lines are prefixed and sent to PID 1's stdout or stderr.

A service keeps one pipe per stream for its whole life (as s6 keeps its log pipe),
and we keep the write end too, so a restart loses nothing and no EOF ends the pump
while orphans of the service still hold the pipe. When the service dies, `drain()`
reads what it left and completes its unfinished last line.

The pipe is read from an event-loop reader callback, not a task: an idle task
costs about 5 KiB, and every service has two streams. Each wake-up reads one
chunk (fairness between services); when the output writer is full the reader is
paused until it has room again (back-pressure, nothing dropped).
"""

from __future__ import annotations

import asyncio
import os

from .lines import READ_SIZE, Formatter, LineSplitter, RecentLines
from .writer import OutputWriter

DRAIN_CHUNKS = 16  # a dead writer left at most a pipe's capacity; more comes from others


class LogPipe:
    def __init__(
        self,
        writer: OutputWriter,
        target_fd: int,
        formatter: Formatter,
        keep_write_end: bool,
        recent: RecentLines | None = None,
    ) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self._writer = writer
        self._target_fd = target_fd
        self._format = formatter
        self._splitter = LineSplitter()
        self._keep_write_end = keep_write_end
        self._recent = recent  # the last lines, for pysvstat --log and forensics
        self._stream = "stdout" if target_fd == 1 else "stderr"
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
            count = lines.count(b"\n")
            self.lines += count
            self.bytes += len(lines)
            if self._recent is not None:
                self._recent.add_block(self._stream, lines, count)
            self._writer.write_nowait(self._target_fd, self._format(lines))

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
            self._emit(self._splitter.flush())
            self.close()
            return False
        self._emit(self._splitter.feed(chunk))
        return True

    def drain(self) -> None:
        """Send what is readable now (bounded), then the unfinished last line."""
        for _ in range(DRAIN_CHUNKS):
            if not self._read_once():
                break
        self._emit(self._splitter.flush())

    def close(self) -> None:
        self._pause()
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self.read_fd = -1
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1
