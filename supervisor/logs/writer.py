"""The one writer of PID 1's stdout and stderr.

Everything that reaches the container's log goes through here, in one queue, so
lines from different sources never interleave mid-line and each stream keeps its
order. Writes happen in a worker thread: PID 1's stdout may be a slow pipe, and a
blocking write there must not stop the event loop (respawns, signals, control).
Setting O_NONBLOCK on fd 1 instead would leak into every process sharing it.
When more than `limit` bytes wait, the writer is `full`: readers pause (see
logpipe), the services' pipes fill and the services slow down, instead of their
lines being dropped. `when_room` callbacks resume them.

Nothing waits on a wedged stdout for ever: a blocked write is abandoned when
the task is cancelled (shutdown's deadline), and what never got out is counted
so pyinit can say so on stderr, if stderr can take it.
"""

from __future__ import annotations

import os
import select
from collections import deque
from collections.abc import Callable

import anyio
import anyio.to_thread


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except InterruptedError:
            continue
        except BlockingIOError:
            # Someone else made the shared file description non-blocking: wait for room.
            select.select([], [fd], [])
            continue
        except OSError:
            return  # EPIPE, EIO, ENOSPC...: nobody can read our log any more; PID 1 goes on regardless
        view = view[written:]


def write_if_room(fd: int, data: bytes) -> bool:
    """Write a short message only if `fd` can take it now (a wedged pipe is left alone)."""
    try:
        _, writable, _ = select.select([], [fd], [], 0)
        if writable:
            os.write(fd, data[:4096])  # one pipe page: a writable pipe takes it without blocking
            return True
    except OSError:
        pass
    return False


class OutputWriter:
    def __init__(self, limit: int = 1 << 20, sink: Callable[[int, bytes], None] = write_all) -> None:
        """`sink(fd, data)` does each write, in the worker thread: fd 1 and 2 by default,
        the catch-all log with S6_LOGGING=2."""
        self.limit = limit
        self._sink = sink
        self._thread = anyio.CapacityLimiter(1)  # its own: forensics threads never delay the log
        self._queue: deque[tuple[int, bytes]] = deque()
        self._pending = 0  # bytes queued or being written
        self._wake = anyio.Event()
        self._waiting_for_room: list[Callable[[], None]] = []
        self._idle = anyio.Event()
        self._idle.set()

    @property
    def to_console(self) -> bool:
        """Whether what it writes goes to PID 1's own fds 1 and 2 (not to S6_LOGGING's catch-all
        log): then a raw child (PYS6_LOG_PREFIX=0) can be handed those fds instead of a pipe."""
        return self._sink is write_all

    @property
    def full(self) -> bool:
        return self._pending >= self.limit

    def when_room(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the queue is below the limit again."""
        self._waiting_for_room.append(callback)

    def write_nowait(self, fd: int, data: bytes) -> None:
        """Queue; callers that can be paused check `full` afterwards."""
        if not data:
            return
        self._queue.append((fd, data))
        self._pending += len(data)
        if self._idle.is_set():
            self._idle = anyio.Event()
        self._wake.set()

    def _take_batch(self) -> list[tuple[int, bytes]]:
        """All that is queued, neighbours for the same fd joined into one write."""
        batch: list[tuple[int, list[bytes]]] = []
        while self._queue:
            fd, data = self._queue.popleft()
            if batch and batch[-1][0] == fd:
                batch[-1][1].append(data)
            else:
                batch.append((fd, [data]))
        return [(fd, b"".join(parts)) for fd, parts in batch]

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            while self._queue:
                for fd, data in self._take_batch():
                    await anyio.to_thread.run_sync(self._sink, fd, data, abandon_on_cancel=True,
                                                   limiter=self._thread)
                    self._pending -= len(data)
                    if not self.full and self._waiting_for_room:
                        resume, self._waiting_for_room = self._waiting_for_room, []
                        for callback in resume:
                            callback()
            self._idle.set()

    async def flush(self) -> None:
        await self._idle.wait()

    @property
    def unwritten(self) -> int:
        """Bytes queued or in a write that has not finished."""
        return self._pending
