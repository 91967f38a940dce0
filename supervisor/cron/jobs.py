"""Running pycrond's jobs as processes: spawn, merged output, timeout, shutdown.

Each run gets its own session and process group (so a timeout or the shutdown
can take the whole run down), its lines carry the job's identity, and its end is
reported by the single reaper.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import anyio

from ..lines import Formatter, record_formatter, text_formatter
from ..logpipe import LogPipe
from ..output import OutputWriter
from ..reaper import ChildExit, Reaper
from ..signames import signal_name
from ..spawn import signal_group, spawn
from .scheduler import JobState


def run_formatter(state: JobState, run: int, stream: str, json_lines: bool) -> Formatter:
    spec = state.spec
    if json_lines:
        return record_formatter(job_line=spec.line, run=run, command=spec.command, stream=stream)
    command = spec.command if len(spec.command) <= 40 else spec.command[:37] + "..."
    return text_formatter(f"[line {spec.line} run {run}: {command}] ".encode("utf-8", "backslashreplace"))


class JobProcesses:
    def __init__(self, writer: OutputWriter, reaper: Reaper, log: Any, task_group: anyio.abc.TaskGroup,
                 json_lines: bool, kill_after: float, on_finished: Callable[[JobState], None]) -> None:
        self.writer = writer
        self.reaper = reaper
        self.log = log
        self.task_group = task_group
        self.json_lines = json_lines
        self.kill_after = kill_after
        self.on_finished = on_finished
        self.running: dict[int, JobState] = {}  # pid -> job
        self._all_done = anyio.Event()
        self._all_done.set()

    async def launch(self, state: JobState, run: int, scheduled: datetime) -> None:
        spec = state.spec
        out = LogPipe(self.writer, 1, run_formatter(state, run, "stdout", self.json_lines), keep_write_end=False)
        err = LogPipe(self.writer, 2, run_formatter(state, run, "stderr", self.json_lines), keep_write_end=False)
        started = time.monotonic()
        try:
            pid = spawn([spec.shell, "-c", spec.command], stdout=out.write_fd, stderr=err.write_fd,
                        env={**os.environ, **spec.environ})
        except OSError as exc:
            out.close()
            err.close()
            self.log.error("job could not start", job_line=spec.line, run=run, shell=spec.shell, reason=exc.strerror)
            state.finished(False, False, 0.0, time.time())
            self.on_finished(state)
            return
        exited = self.reaper.watch_exit(pid)
        out.child_started()
        err.child_started()
        self.running[pid] = state
        if self._all_done.is_set():
            self._all_done = anyio.Event()
        self.log.info("job started", job_line=spec.line, run=run, pid=pid, command=spec.command,
                      scheduled=scheduled.isoformat(timespec="seconds"))
        out.start()  # each closes itself at EOF, when the run and all it started are gone
        err.start()
        self.task_group.start_soon(self._watch, state, run, pid, exited, (out, err), started)

    async def _watch(self, state: JobState, run: int, pid: int, exited: ChildExit,
                     pipes: tuple[LogPipe, LogPipe], started: float) -> None:
        timed_out = False
        timeout = state.spec.timeout.total_seconds() if state.spec.timeout else float("inf")
        with anyio.move_on_after(timeout):
            await exited.wait()
        if not exited.done:
            timed_out = True
            self.log.warning("job timed out, stopping it", job_line=state.spec.line, run=run, timeout_s=timeout)
            await self.stop_group(pid, exited)
        for pipe in pipes:
            pipe.drain()
        code, sig = exited.exitcode, exited.signum
        duration = time.monotonic() - started
        ok = code == 0 and sig is None and not timed_out
        fields: dict[str, Any] = {"job_line": state.spec.line, "run": run, "duration_s": round(duration, 3)}
        fields |= {"signal": signal_name(sig)} if sig is not None else {"exitcode": code}
        (self.log.info if ok else self.log.warning)("job finished" if ok else "job failed", **fields)
        del self.running[pid]
        state.finished(ok, timed_out, duration, time.time())
        self.on_finished(state)
        if not self.running:
            self._all_done.set()

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
