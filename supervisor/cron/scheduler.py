"""pycrond's scheduling loop. The clock and the launcher are parameters, so tests can run
hours of schedule against a fake clock without processes; jobs.py launches real ones.

The next run is always computed from the previous scheduled time (no drift), and
the loop sleeps until the next due time, woken early only by a reload or a stop, and
late by no more than its heartbeat allows (heartbeat.py): each time it is about to
sleep, every due job started, it beats.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Protocol

import anyio
import anyio.lowlevel

from .crontab import JobSpec
from .schedule import RebootSchedule

if TYPE_CHECKING:
    from ..logs.events import Logger

UTC = timezone.utc
LATE_LIMIT = timedelta(seconds=1)  # later than this (a suspended machine): skip to the next time
MAX_SLEEP = 60.0  # re-read the wall clock at least this often: it may have been stepped
BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)  # supercronic's histogram


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep_until(self, when: datetime | None, wake: anyio.Event) -> None: ...


class RealClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime | None, wake: anyio.Event) -> None:
        delay = MAX_SLEEP if when is None else (when - self.now()).total_seconds()
        with anyio.move_on_after(max(0.0, min(delay, MAX_SLEEP))):
            await wake.wait()


@dataclass
class JobState:
    spec: JobSpec
    next_due: datetime | None = None
    running: int = 0
    runs: int = 0
    successes: int = 0
    failures: int = 0
    deadline_exceeded: int = 0  # supercronic's meaning: ticks that found a run of the job still running
    timeouts: int = 0  # runs stopped by PYCROND_TIMEOUT
    last_start: float | None = None
    last_success: float | None = None
    last_failure: float | None = None
    duration_sum: float = 0.0
    bucket_counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    retired: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.spec.schedule_text, self.spec.command)

    def finished(self, ok: bool, timed_out: bool, duration: float, at: float) -> None:
        self.running -= 1
        self.duration_sum += duration
        for index, bound in enumerate(BUCKETS):
            if duration <= bound:
                self.bucket_counts[index] += 1
        if timed_out:
            self.timeouts += 1
        if ok:
            self.successes += 1
            self.last_success = at
        else:
            self.failures += 1
            self.last_failure = at


Launcher = Callable[[JobState, int, datetime], Awaitable[None]]


class Scheduler:
    def __init__(self, clock: Clock, launch: Launcher, log: Logger, overlapping: bool = False,
                 beat: Callable[[], float | None] | None = None) -> None:
        self.clock = clock
        self.beat = beat  # called before each sleep; returns the longest sleep it allows
        self.launch = launch
        self.log = log
        self.overlapping = overlapping
        self.jobs: list[JobState] = []
        self.run_numbers = 0
        self.stopping = False
        self._wake = anyio.Event()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self.stopping = True
        self.wake()

    def load(self, specs: list[JobSpec], boot: bool = False) -> None:
        """Replace the jobs; a job that stays keeps its counters. Runs in progress are left alone."""
        now = self.clock.now()
        old = {state.key: state for state in self.jobs}
        self.jobs = []
        for spec in specs:
            kept = old.pop((spec.schedule_text, spec.command), None)
            state = kept or JobState(spec)
            state.spec = spec
            # A kept job whose due run the loop had not started yet (a reload amid a batch of starts) keeps it.
            pending = kept is not None and kept.next_due is not None and kept.next_due <= now
            if isinstance(spec.schedule, RebootSchedule):
                state.next_due = now if boot or pending else None
            elif not pending:
                state.next_due = spec.schedule.next_after(now)
                state.retired = state.next_due is None
                if state.retired:
                    self._retire(state)
            self.jobs.append(state)
        self.wake()

    def _retire(self, state: JobState) -> None:
        self.log.warning("job can never run again, retired", **state.spec.log_fields())

    def _advance(self, state: JobState, now: datetime) -> None:
        if isinstance(state.spec.schedule, RebootSchedule) or state.next_due is None:
            state.next_due = None
            return
        following = state.spec.schedule.next_after(state.next_due)
        if following is not None and following < now - LATE_LIMIT:
            following = state.spec.schedule.next_after(now)  # we were asleep: do not replay the past
        state.next_due = following
        if following is None and not state.retired:
            state.retired = True
            self._retire(state)

    async def _fire(self, state: JobState, scheduled: datetime, now: datetime) -> bool:
        """Start a run of the job, unless one still runs; whether one was started."""
        if state.running and not self.overlapping:
            return False  # the run's own watch says so, as supercronic does, and counts the missed deadline
        self.run_numbers += 1
        state.running += 1
        state.runs += 1
        state.last_start = now.timestamp()
        await self.launch(state, self.run_numbers, scheduled)
        return True

    async def run(self) -> None:
        while not self.stopping:
            now = self.clock.now()
            due = [state for state in self.jobs if state.next_due is not None and state.next_due <= now]
            for state in due:
                if self._wake.is_set():
                    break  # a stop or a reload came during the batch: look again before starting more
                if state.next_due is None or state.next_due > now:
                    continue
                scheduled = state.next_due
                self._advance(state, now)
                if await self._fire(state, scheduled, now):
                    # Each start blocks the loop about a millisecond: between two, let it read signals
                    # (a SIGTERM amid 3,000 starts is obeyed at once) and the output of the runs.
                    await anyio.lowlevel.checkpoint()
            if self.stopping:
                break
            upcoming = [s.next_due for s in self.jobs if s.next_due is not None]
            if self._wake.is_set():
                self._wake = anyio.Event()
                continue
            when = min(upcoming) if upcoming else None
            if self.beat is not None:
                # Here, and only here: the loop reached its sleep with every due job started.
                allowed = self.beat()
                if allowed is not None:
                    latest = now + timedelta(seconds=allowed)
                    when = latest if when is None else min(when, latest)
            await self.clock.sleep_until(when, self._wake)

