"""Running pycrond's jobs as processes: spawn, merged output, timeout, shutdown.

Each run gets its own session and process group (so a timeout or the shutdown
can take the whole run down), its lines carry the job's identity, and its end is
reported by the single reaper.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from collections.abc import Callable
from datetime import datetime, timezone

import anyio

from ..base.environ import exec_environment
from ..base.terms import signal_name
from ..logs.events import Logger
from ..logs.lines import Formatter, text_formatter
from ..logs.pipe import LogPipe
from ..logs.writer import OutputWriter
from ..proc.reaper import ChildExit, Reaper
from ..proc.spawn import Child, signal_group, spawn_child
from .logrus import exit_error, go_duration, go_reason, go_time_string, line_template
from .scheduler import JobState


def run_formatter(state: JobState, run: int, iteration: int, stream: str, log_format: str) -> Formatter:
    spec = state.spec
    if log_format == "text":
        command = spec.command if len(spec.command) <= 40 else spec.command[:37] + "..."
        return text_formatter(f"[line {spec.line} run {run}: {command}] ".encode("utf-8", "backslashreplace"))
    as_json = log_format == "json"
    line = line_template("info", {"channel": stream, **spec.log_fields(iteration)}, as_json)
    errors = "replace" if as_json else "surrogateescape"  # Go: U+FFFD in JSON, \xNN in text

    def format_block(block: bytes) -> tuple[bytes, int]:
        when = datetime.now().astimezone()
        lines = [line(text.decode("utf-8", errors), when) for text in block[:-1].split(b"\n")]
        return ("\n".join(lines) + "\n").encode("utf-8", "backslashreplace"), len(lines)

    return format_block


class JobProcesses:
    def __init__(self, writer: OutputWriter, reaper: Reaper, log: Logger, task_group: anyio.abc.TaskGroup,
                 args: argparse.Namespace, on_finished: Callable[[JobState], None],
                 on_started: Callable[[JobState], None] | None = None) -> None:
        self.writer = writer
        self.reaper = reaper
        self.log = log
        self.task_group = task_group
        self.log_format: str = args.log_format
        self.passthrough: bool = args.passthrough_logs
        self.split_logs: bool = args.split_logs
        self.overlapping: bool = args.overlapping
        self.kill_after: float = args.kill_after
        self.on_finished = on_finished
        self.on_started = on_started
        self.running: dict[int, JobState] = {}  # pid -> job
        self._all_done = anyio.Event()
        self._all_done.set()

    def _pipes(self, state: JobState, run: int, iteration: int) -> tuple[Callable[[], LogPipe], ...]:
        """The makers of a run's two log pipes (stdout's, stderr's), or none: spawn_child makes them."""
        if self.passthrough:
            return ()  # the job writes to our stdout and stderr itself, as with supercronic
        if self.log_format == "text":  # pycrond's own: each stream to its own
            targets = (1, 2)
        else:  # supercronic's: log lines (info, whatever the channel) to stderr, or to stdout with -split-logs
            targets = (1, 1) if self.split_logs else (2, 2)

        def maker(target_fd: int, stream: str) -> Callable[[], LogPipe]:
            formatter = run_formatter(state, run, iteration, stream, self.log_format)
            return lambda: LogPipe(self.writer, target_fd, formatter, keep_write_end=False)

        return maker(targets[0], "stdout"), maker(targets[1], "stderr")

    @staticmethod
    def _job_environment(crontab: dict[str, str]) -> dict[str, str]:
        """pycrond's own environment as it was exec'd (not Python's: its C-locale coercion would
        hand every job an LC_CTYPE supercronic never sets), then the crontab's variables."""
        execd = exec_environment()
        inherited = dict(os.environ) if execd is None else {os.fsdecode(k): os.fsdecode(v) for k, v in execd.items()}
        return {**inherited, **crontab}

    async def launch(self, state: JobState, run: int, scheduled: datetime) -> None:
        spec = state.spec
        iteration = state.runs - 1
        job_log = self.log.bind(iteration=iteration, **spec.log_fields())
        job_log.info("starting")
        started = time.monotonic()
        try:
            child = spawn_child([spec.shell, "-c", spec.command], self.reaper, self._pipes(state, run, iteration),
                                stdout=1, stderr=2, env=self._job_environment(spec.environ))
        except OSError as exc:
            job_log.error(f"fork/exec {spec.shell}: {go_reason(exc)}")
            state.finished(False, False, 0.0, time.time())
            self.on_finished(state)
            return
        self.running[child.pid] = state
        if self._all_done.is_set():
            self._all_done = anyio.Event()
        job_log.debug("job started", pid=child.pid, run=run, scheduled=scheduled.isoformat(timespec="seconds"))
        if self.on_started is not None:
            self.on_started(state)
        self.task_group.start_soon(self._watch, state, job_log, child, started, scheduled)

    async def _monitor(self, state: JobState, job_log: Logger, scheduled: datetime, exited: ChildExit) -> None:
        """supercronic's watch on a run: at each tick it is still running, a warning and a missed deadline."""
        due_at = scheduled.astimezone(getattr(state.spec.schedule, "zone", None))
        tick: datetime | None = scheduled
        what = "overlapping jobs" if self.overlapping else "not starting"
        while not exited.done:
            tick = state.spec.schedule.next_after(tick) if tick is not None else None
            if tick is None:
                return
            with anyio.move_on_after(max(0.0, tick.timestamp() - time.time())):
                await exited.wait()
            if exited.done:
                return
            elapsed = go_duration((tick - scheduled).total_seconds())
            job_log.warning(f"{what}: job is still running since {go_time_string(due_at)} ({elapsed} elapsed)")
            state.deadline_exceeded += 1

    async def _watch(self, state: JobState, job_log: Logger, child: Child, started: float, scheduled: datetime) -> None:
        pid, exited = child.pid, child.exited
        timed_out = False
        timeout = state.spec.timeout.total_seconds() if state.spec.timeout else float("inf")
        async with anyio.create_task_group() as watch:
            watch.start_soon(self._monitor, state, job_log, scheduled, exited)
            with anyio.move_on_after(timeout):
                await exited.wait()
            if not exited.done:
                timed_out = True
                job_log.warning("job timed out, stopping it", timeout=go_duration(timeout))
                await self.stop_group(pid, exited)
        child.drain()
        code, sig = exited.exitcode, exited.signum
        duration = time.monotonic() - started
        ok = code == 0 and sig is None and not timed_out
        if ok:
            job_log.info("job succeeded")
        else:
            job_log.error(f"error running command: {exit_error(code, sig)}")
        ending = {"signal": signal_name(sig)} if sig is not None else {"exitcode": code}
        job_log.debug("job finished", pid=pid, duration=go_duration(round(duration, 6)), **ending)
        del self.running[pid]
        state.finished(ok, timed_out, duration, time.time())
        if not self.overlapping:  # said by the job's scheduler in supercronic: no iteration field
            self._report_lateness(state, self.log.bind(**state.spec.log_fields()), scheduled)
        self.on_finished(state)
        if not self.running:
            self._all_done.set()

    @staticmethod
    def _report_lateness(state: JobState, job_log: Logger, scheduled: datetime) -> None:
        """supercronic's word when a run outlasted the next tick: the ticks it covered were skipped."""
        following = state.spec.schedule.next_after(scheduled)
        now = datetime.now(timezone.utc)
        if following is not None and following < now:
            late = go_duration((now - following).total_seconds())
            job_log.warning(f"job took too long to run: it should have started {late} ago")

    async def stop_group(self, pid: int, exited: ChildExit) -> None:
        """SIGTERM the run's process group, SIGKILL it after kill_after, and wait for the run."""
        signal_group(pid, signal.SIGTERM)
        signal_group(pid, signal.SIGCONT)
        with anyio.move_on_after(self.kill_after):
            await exited.wait()
        if not exited.done:
            signal_group(pid, signal.SIGKILL)
            await exited.wait()
        signal_group(pid, signal.SIGKILL)  # whatever of its group outlived it

    async def shutdown(self, grace: float) -> None:
        """Give running jobs `grace` seconds, then TERM and later KILL their groups."""
        if self.running:
            self.log.info("waiting for running jobs", count=len(self.running), grace_s=grace)
        with anyio.move_on_after(grace):
            await self._all_done.wait()
        if self.running:
            self.log.warning("jobs still running after the grace time, stopping them", count=len(self.running))
            for pid in list(self.running):
                signal_group(pid, signal.SIGTERM)
                signal_group(pid, signal.SIGCONT)
            with anyio.move_on_after(self.kill_after):
                await self._all_done.wait()
            for pid in list(self.running):
                signal_group(pid, signal.SIGKILL)
            with anyio.move_on_after(5.0):
                await self._all_done.wait()
