"""A pipe whose lines are prefixed and sent to PID 1's stdout or stderr.

A service keeps one pipe per stream for its whole life (as s6 keeps its log pipe),
and we keep the write end too, so a restart loses nothing and no EOF ends the pump
while orphans of the service still hold the pipe. When the service dies, `drain()`
reads what it left and completes its unfinished last line.
"""

from __future__ import annotations

import os
from collections import deque

import anyio

from .lines import READ_SIZE, Formatter, LineSplitter
from .output import OutputWriter


class LogPipe:
    def __init__(
        self,
        writer: OutputWriter,
        target_fd: int,
        formatter: Formatter,
        keep_write_end: bool,
        recent: deque[tuple[str, bytes]] | None = None,
    ) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self._writer = writer
        self._target_fd = target_fd
        self._format = formatter
        self._splitter = LineSplitter()
        self._keep_write_end = keep_write_end
        self._lock = anyio.Lock()
        self._closed = False
        self._recent = recent  # the last lines, for pysvstat --log and forensics
        self._stream = "stdout" if target_fd == 1 else "stderr"

    def child_started(self) -> None:
        """The child has its copy of the write end; drop ours unless we keep it."""
        if not self._keep_write_end and self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def _remember(self, lines: bytes) -> None:
        """Keep the block's last lines; rsplit with a limit scans only the end of a big block."""
        assert self._recent is not None and self._recent.maxlen is not None
        keep = self._recent.maxlen
        parts = lines[:-1].rsplit(b"\n", keep)
        if len(parts) > keep:
            parts = parts[1:]
        self._recent.extend((self._stream, part) for part in parts)

    async def _emit(self, lines: bytes) -> None:
        if lines:
            if self._recent is not None:
                self._remember(lines)
            await self._writer.write(self._target_fd, self._format(lines))

    async def _read_once(self) -> bool:
        """Read one chunk and send its lines; False at EOF or when nothing is there."""
        try:
            chunk = os.read(self.read_fd, READ_SIZE)
        except BlockingIOError:
            return False
        if not chunk:
            await self._emit(self._splitter.flush())
            self._closed = True
            return False
        await self._emit(self._splitter.feed(chunk))
        return True

    async def pump(self) -> None:
        """Copy lines until EOF (all write ends closed); one chunk per wake-up, for fairness."""
        try:
            while not self._closed:
                await anyio.wait_readable(self.read_fd)
                async with self._lock:
                    await self._read_once()
        except anyio.ClosedResourceError:
            pass  # closed under us at shutdown
        finally:
            self.close()

    async def drain(self) -> None:
        """Send everything readable now, then the unfinished last line."""
        async with self._lock:
            while not self._closed and await self._read_once():
                pass
            await self._emit(self._splitter.flush())

    def close(self) -> None:
        if self.read_fd >= 0:
            anyio.notify_closing(self.read_fd)
            os.close(self.read_fd)
            self.read_fd = -1
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1
        self._closed = True
