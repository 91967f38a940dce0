"""One supervised service (our s6-supervise): an inbox of events, the pure policy, its effects.

Everything that happens to the service (its death from the reaper, readiness,
commands, the deadline passing) becomes an event in one inbox; `policy.step`
decides, and this module only performs the actions it returns.
"""

from __future__ import annotations

import math
import os
import signal
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import anyio

from . import control, policy
from .lines import Formatter, json_formatter, text_formatter
from .logpipe import LogPipe
from .model import (
    Action,
    Boot,
    Command,
    EssentialBailed,
    Event,
    Exited,
    FinishExited,
    FinishSpawned,
    Forensics,
    KillFinish,
    Note,
    Ready,
    RunFinish,
    ServiceSpec,
    ServiceState,
    SignalGroup,
    Spawn,
    Spawned,
    SpawnFailed,
    TimerFired,
    Verb,
)
from .output import OutputWriter
from .reaper import Reaper
from .spawn import exec_failure_code, signal_group, spawn


class Runtime(Protocol):
    """What a service needs from the supervisor around it."""

    reaper: Reaper
    writer: OutputWriter
    log: Any
    log_format: str
    services_gracetime: float  # seconds

    def essential_bailed(self, name: str, exitcode: int) -> None: ...


def formatter_for(runtime: Runtime, source: str, stream: str) -> Formatter:
    if runtime.log_format == "json":
        return json_formatter(source, stream)
    return text_formatter(f"[{source}] ".encode("utf-8", "backslashreplace"))


class ServiceRunner:
    def __init__(self, spec: ServiceSpec, runtime: Runtime) -> None:
        self.spec = spec
        self.state = ServiceState()
        self._runtime = runtime
        self._inbox_in, self._inbox = anyio.create_memory_object_stream[Event](math.inf)
        self.recent: deque[tuple[str, bytes]] = deque(maxlen=control.RECENT_LINES)
        out_format = formatter_for(runtime, spec.name, "stdout")
        err_format = formatter_for(runtime, spec.name, "stderr")
        self.stdout = LogPipe(runtime.writer, 1, out_format, keep_write_end=True, recent=self.recent)
        self.stderr = LogPipe(runtime.writer, 2, err_format, keep_write_end=True, recent=self.recent)
        self._changed = anyio.Event()
        self._task_group: anyio.abc.TaskGroup | None = None

    def send(self, event: Event) -> None:
        """Queue an event; safe from synchronous callbacks (the reaper)."""
        self._inbox_in.send_nowait(event)

    def command(self, verb: Verb) -> None:
        self.send(Command(verb))

    async def wait_until(self, predicate: Callable[[ServiceState], bool]) -> None:
        while not predicate(self.state):
            await self._changed.wait()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        for problem in self.spec.problems:
            self._runtime.log.error("service definition is broken", service=self.spec.name, problem=problem)
        async with anyio.create_task_group() as tg:
            self._task_group = tg
            self.stdout.start()
            self.stderr.start()
            task_status.started()
            await self._handle(Boot())
            while True:
                deadline = self.state.deadline
                event: Event = TimerFired()
                with anyio.move_on_at(math.inf if deadline is None else deadline):
                    event = await self._inbox.receive()
                await self._handle(event)

    def drain(self) -> None:
        self.stdout.drain()
        self.stderr.drain()

    async def _handle(self, first: Event) -> None:
        pending = [first]
        while pending:
            event = pending.pop(0)
            if isinstance(event, Exited):
                self.drain()  # its last words come before the news of its death
            self.state, actions = policy.step(
                self.spec, self.state, event, anyio.current_time(), self._runtime.services_gracetime
            )
            for action in actions:
                follow_up = self._perform(action)
                if follow_up is not None:
                    pending.append(follow_up)
        self._changed.set()
        self._changed = anyio.Event()

    def _perform(self, action: Action) -> Event | None:
        if isinstance(action, Spawn):
            return self._spawn_run()
        if isinstance(action, RunFinish):
            return self._spawn_finish(action.args)
        if isinstance(action, SignalGroup):
            if self.state.pid is not None:
                signal_group(self.state.pid, action.signum)
            return None
        if isinstance(action, KillFinish):
            if self.state.finish_pid is not None:
                signal_group(self.state.finish_pid, signal.SIGKILL)
            return None
        if isinstance(action, Note):
            getattr(self._runtime.log, action.level)(action.event, **dict(action.fields))
            return None
        if isinstance(action, Forensics):
            control.log_forensics(self, anyio.current_time(), action.reason, self._runtime.log)
            return None
        if isinstance(action, EssentialBailed):
            self._runtime.essential_bailed(self.spec.name, action.exitcode)
            return None
        raise TypeError(f"unknown action {action!r}")

    def _spawn_run(self) -> Event:
        notify_fds: tuple[int, int] | None = None
        extra: dict[int, int] = {}
        if self.spec.notification_fd is not None:
            notify_fds = os.pipe()
            extra[self.spec.notification_fd] = notify_fds[1]
        try:
            pid = spawn(
                ["./run", self.spec.name],
                cwd=self.spec.directory,
                stdout=self.stdout.write_fd,
                stderr=self.stderr.write_fd,
                extra_fds=extra,
            )
        except OSError as exc:
            return SpawnFailed(exec_failure_code(exc), f"{self.spec.directory}/run: {exc.strerror}")
        finally:
            if notify_fds is not None:
                os.close(notify_fds[1])
        self._runtime.reaper.watch(pid, lambda code, sig: self.send(Exited(code, sig)))
        if notify_fds is not None and self._task_group is not None:
            self._task_group.start_soon(self._watch_readiness, notify_fds[0])
        elif notify_fds is not None:
            os.close(notify_fds[0])
        return Spawned(pid)

    def _spawn_finish(self, args: tuple[str, ...]) -> Event | None:
        try:
            pid = spawn(
                ["./finish", *args],
                cwd=self.spec.directory,
                stdout=self.stdout.write_fd,
                stderr=self.stderr.write_fd,
            )
        except OSError as exc:
            self._runtime.log.error("finish could not start", service=self.spec.name, reason=exc.strerror)
            return FinishExited(exec_failure_code(exc))
        self._runtime.reaper.watch(pid, lambda code, sig: self.send(FinishExited(code)))
        return FinishSpawned(pid)

    async def _watch_readiness(self, read_fd: int) -> None:
        """s6's notification-fd: the service is ready when it writes a newline."""
        try:
            while True:
                await anyio.wait_readable(read_fd)
                data = os.read(read_fd, 512)
                if not data:
                    return
                if b"\n" in data:
                    self.send(Ready())
                    return
        finally:
            os.close(read_fd)

    def close(self) -> None:
        self.stdout.close()
        self.stderr.close()
