"""The scan directories' control FIFOs (`.s6-svscan/control`): what s6-svscanctl and
s6-overlay's halt write to stop the container.

Opened read-write and non-blocking, so a writer never waits for a reader and the FIFO
never reads end-of-file; each byte is one of s6-svscan's command letters.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

import anyio

from ..logs.events import Logger

# s6-svscanctl's letters that end an s6-overlay container: -t (terminate: halt's path),
# -q quit, -b abort, -i interrupt, -0 halt, -6 reboot, -7 poweroff, -8 "other".
STOP_LETTERS = {"t": "-t", "q": "-q", "b": "-b", "i": "-i", "0": "-0", "6": "-6", "7": "-7", "8": "-8"}
# Rescan (-a) and hangup (-h): look at services.d again and start the services added since.
RESCAN_LETTERS = {"a": "-a", "h": "-h"}
# The nukes (-n, -N) ask s6-svscan to drop services whose directory is gone: noted, ignored.
NOTED_LETTERS = {"n": "-n", "N": "-N"}
MAX_READ = 512


class ScanTarget(Protocol):
    """What the scan FIFOs' letters reach (container/stages.Stages)."""

    def request_shutdown(self, reason: str, exit_code: int | None = None) -> None: ...

    def rescan_soon(self) -> None: ...


def open_fifos(paths: list[str], log: Logger) -> list[tuple[str, int]]:
    opened = []
    for path in paths:
        try:
            opened.append((path, os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)))
        except OSError as exc:
            log.warning("scan control FIFO cannot be opened: s6-svscanctl and halt will not reach pyinit",
                        fifo=path, reason=exc.strerror)
    return opened


def handle(data: bytes, path: str, target: ScanTarget, reap: Callable[[], object], log: Logger) -> None:
    for letter in data.decode("ascii", "replace"):
        if letter in STOP_LETTERS:
            target.request_shutdown(f"s6-svscanctl {STOP_LETTERS[letter]} {os.path.dirname(os.path.dirname(path))}")
        elif letter == "z":
            reap()
        elif letter in RESCAN_LETTERS:
            log.info("s6-svscanctl: looking for new services", command=RESCAN_LETTERS[letter])
            target.rescan_soon()
        elif letter in NOTED_LETTERS:
            log.info("s6-svscanctl command ignored: a service whose directory is gone keeps running",
                     command=NOTED_LETTERS[letter])
        elif not letter.isspace():
            log.warning("unknown s6-svscanctl command ignored", command=repr(letter), fifo=path)


async def _serve_one(path: str, fd: int, target: ScanTarget, reap: Callable[[], object], log: Logger) -> None:
    try:
        while True:
            await anyio.wait_readable(fd)
            try:
                data = os.read(fd, MAX_READ)
                handle(data, path, target, reap, log)
            except BlockingIOError:
                continue
            except Exception as exc:  # noqa: BLE001 (a FIFO's trouble must not end the container)
                log.error("scan control FIFO failed, no longer read", fifo=path, reason=str(exc))
                return
    finally:
        os.close(fd)


async def serve_scan_control(paths: list[str], target: ScanTarget, reap: Callable[[], object], log: Logger) -> None:
    async with anyio.create_task_group() as group:
        for path, fd in open_fifos(paths, log):
            group.start_soon(_serve_one, path, fd, target, reap, log)
