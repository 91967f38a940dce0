"""Tell when a directory's files may have changed: inotify on the directory, through ctypes.

pycrond watches its crontab's directory (the directory, not the file, sees an editor's
write-then-rename and Kubernetes' atomic swap of the `..data` symlink) and re-reads the
file, so a spurious wake-up costs one read. pyinit watches the container environment
and re-reads it only when something there changed.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Callable

import anyio

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000  # the watch was removed: its directory is gone
SELF_EVENTS = IN_DELETE_SELF | IN_MOVE_SELF | IN_Q_OVERFLOW  # the directory itself, or events lost: re-read
EVENT_HEADER = struct.Struct("iIII")
MASK = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
        | IN_DELETE_SELF | IN_MOVE_SELF)


class DirectoryWatch:
    def __init__(self, directory: str) -> None:
        self._blind = False
        libc = ctypes.CDLL(None, use_errno=True)  # libc, as linked in: find_library would run ldconfig
        self.fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        if libc.inotify_add_watch(self.fd, os.fsencode(directory), MASK) < 0:
            err = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(err, f"cannot watch {directory}: {os.strerror(err)}")

    async def changed(self, names: Callable[[], set[str] | None] | None = None) -> None:
        """Return after a batch of events that touches one of `names()` (None: any name).

        A write to another file of the directory ($HOME's .bash_history) costs one
        read of the inotify queue, and no read of the crontab.
        """
        while True:
            await anyio.wait_readable(self.fd)
            events = self._read_events()
            wanted = names() if names is not None else None
            if wanted is None or any(mask & SELF_EVENTS or name in wanted for mask, name in events):
                return

    def changed_since_last_asked(self) -> bool:
        """Whether any event is queued now (then all are consumed): the kernel queues an event
        when the write happens, so a script's write is seen by the time its exit is. Once the
        directory itself was removed or moved (or events were lost), always True: the watch
        no longer sees what is at that path."""
        events = self._read_events()
        if any(mask & (SELF_EVENTS | IN_IGNORED) for mask, _ in events):
            self._blind = True
        return self._blind or bool(events)

    def _read_events(self) -> list[tuple[int, str]]:
        events: list[tuple[int, str]] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return events
            if not data:
                return events
            offset = 0
            while offset + EVENT_HEADER.size <= len(data):
                _wd, mask, _cookie, length = EVENT_HEADER.unpack_from(data, offset)
                raw = data[offset + EVENT_HEADER.size: offset + EVENT_HEADER.size + length]
                events.append((mask, os.fsdecode(raw.rstrip(b"\0"))))
                offset += EVENT_HEADER.size + length

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
