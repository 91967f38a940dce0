"""pycrond's proof that its scheduler is scheduling: a heartbeat file, and s6's readiness
notification, both given by the scheduling loop itself (scheduler.Scheduler.run calls
`Pulse.beat` each time it is about to sleep, that is once every job due by then was started).

The heartbeat file holds one line, the Unix time by which pycrond promises its next beat: twice
the interval from now (a loaded machine's late wake-up is no failure). A health check (the pod's
services.d/cron/health) only compares that time with its clock. Written only by the loop, the
file goes stale whenever the loop does not run: pycrond stopped (SIGSTOP), its event loop
blocked by a call that never returns, or the scheduler stuck starting a job. An idle pycrond
wakes for it once an interval (and not at all without --heartbeat-file); a busy one writes it at
most twice an interval, however often the loop wakes.

The notification (`--notify-fd`, s6's notification-fd protocol: a newline, then the fd closed)
is sent at the first beat, once the crontab was read and the loop scheduled its jobs: a service
that waits for cron to be ready waits for it to be scheduling.
"""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..logs.events import Logger

PROMISE = 2.0  # the promised next beat, in intervals from now


class Pulse:
    def __init__(self, log: Logger, path: str | None = None, interval: float = 15.0,
                 notify_fd: int | None = None) -> None:
        self.log = log
        self.path = os.path.abspath(path) if path else None
        self.interval = interval
        self.notify_fd = notify_fd
        self._last: float | None = None  # monotonic time of the last beat written
        self._failing: str | None = None  # the error last logged, said once until it changes

    def beat(self) -> float | None:
        """The loop is alive: write the heartbeat if half an interval passed since the last one,
        notify readiness the first time. Returns how long the loop may sleep before it must beat
        again (None: as long as it likes)."""
        if self.notify_fd is not None:
            self._notify()
        if self.path is None:
            return None
        now = time.monotonic()
        if self._last is None or now - self._last >= self.interval / 2:
            self._write()
            self._last = now
        return max(0.0, self._last + self.interval - now)

    def _notify(self) -> None:
        fd, self.notify_fd = self.notify_fd, None
        assert fd is not None
        try:
            os.write(fd, b"\n")
        except OSError as exc:  # no supervisor listening: nothing to tell, the jobs still run
            self.log.warning("cannot notify readiness", fd=fd, reason=exc.strerror)
        finally:
            try:
                os.close(fd)
            except OSError:
                pass  # already closed (a bad fd): the warning above said so

    def _write(self) -> None:
        assert self.path is not None
        promise = math.ceil(time.time() + PROMISE * self.interval)
        temporary = f"{self.path}.new"
        try:
            # O_NONBLOCK: a FIFO squatting the name fails (ENXIO) instead of stalling the scheduler
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         0o644)
            try:
                os.write(fd, f"{promise}\n".encode())
            finally:
                os.close(fd)
            os.replace(temporary, self.path)  # a check never reads a half-written line
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if reason != self._failing:  # its check fails and says why; the log says it once
                self.log.error("cannot write the heartbeat file", path=self.path, reason=reason)
                self._failing = reason
            return
        if self._failing is not None:
            self.log.info("heartbeat file written again", path=self.path)
            self._failing = None
