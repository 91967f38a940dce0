"""One supervised service (our s6-supervise): an inbox of events, the pure policy, its effects.

Everything that happens to the service (its death from the reaper, readiness,
commands, the deadline passing) becomes an event in one inbox; `policy.step`
decides, and this module only performs the actions it returns.

A runner is driven by event-loop callbacks, not a task: the inbox is worked
through by a `call_soon` callback and the policy's deadline is one `call_at`
timer. A task with its cancel scopes, a memory stream and its waiters would cost
each service several KiB, and a thousand services would be a thousand tasks
asleep; this way an idle service is a few plain objects.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import stat
import traceback
from collections.abc import Callable, Mapping
from typing import Protocol

import anyio

from ..base.terms import exec_failure_code, signal_name
from ..logs.events import Logger
from ..logs.lines import Formatter, RecentLines, json_formatter, text_formatter
from ..logs.pipe import DirectOutput, LogPipe, Output
from ..logs.writer import OutputWriter
from ..proc.reaper import Reaper
from ..proc.spawn import send_signal
from . import policy
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
    SendSignal,
    ServiceSpec,
    ServiceState,
    Spawn,
    Spawned,
    SpawnFailed,
    TimerFired,
    Verb,
)
from .prestart import Prestarted, spawn_run
from .telemetry import ServiceTally, count_step


class Runtime(Protocol):
    """What a service needs from the supervisor around it."""

    reaper: Reaper
    writer: OutputWriter
    log: Logger
    log_format: str
    log_prefix: bool  # False: services' output as written (PYS6_LOG_PREFIX=0)
    services_gracetime: float  # seconds

    def essential_bailed(self, name: str, exitcode: int) -> None: ...

    def child_environment(self) -> Mapping[bytes, bytes]: ...

    def service_changed(self, spec: ServiceSpec, before: ServiceState, after: ServiceState) -> None: ...

    def take_prestarted(self, name: str) -> Prestarted | None: ...  # its run, started by the start path


def formatter_for(runtime: Runtime, source: str, stream: str) -> Formatter | None:
    """How `source`'s lines reach PID 1's output; None: raw, as written (PYS6_LOG_PREFIX=0, which
    also wins over PYS6_LOG_FORMAT=json: s6-overlay's services write to the container's output)."""
    if not runtime.log_prefix:
        return None
    if runtime.log_format == "json":
        return json_formatter(source, stream)
    return text_formatter(f"[{source}] ".encode("utf-8", "backslashreplace"))


def output_for(runtime: Runtime, source: str, target_fd: int, keep_write_end: bool,
               recent: RecentLines | None = None, fds: tuple[int, int] | None = None) -> Output:
    """Where `source` writes its fd `target_fd` (1 or 2): a pipe pyinit reads and formats (`fds`:
    one made before the loop, its read and write ends); or, raw (PYS6_LOG_PREFIX=0) while
    pyinit's output is its own fds 1 and 2 (no catch-all log), those fds themselves, as
    s6-overlay's children write to the container's own descriptors."""
    if not runtime.log_prefix and runtime.writer.to_console:
        return DirectOutput(target_fd)
    stream = "stdout" if target_fd == 1 else "stderr"
    return LogPipe(runtime.writer, target_fd, formatter_for(runtime, source, stream), keep_write_end, recent, fds)


def run_hint(path: str, exc: OSError) -> str:
    """How to fix a run file that cannot be executed, from the errno and a look at the file: the
    text for "service could not start" (the policy only passes it on). "" when there is none to give."""
    import shlex  # only when a run cannot start: not with the loop's modules

    try:
        info = os.stat(path)
    except OSError:
        info = None
    if exc.errno == errno.ENOENT and info is None:
        return f"create {path}, an executable file"
    if exc.errno == errno.EACCES and info is not None and stat.S_ISREG(info.st_mode) and not info.st_mode & 0o111:
        return f"chmod +x {shlex.quote(path)}"
    if exc.errno == errno.EACCES:
        return f"{path} is executable: is its filesystem mounted noexec, or a directory above it not searchable?"
    if exc.errno == errno.ENOEXEC:
        return f"{path} is not a program: give it a first line such as #!/bin/sh"
    if exc.errno == errno.ENOENT:  # the file is there: what it names on its #! line is not
        line = _first_line(path)
        if line.startswith(b"#!"):
            interpreter = line[2:].strip(b" \t\n").split(b" ")[0]
            if interpreter.endswith(b"\r"):
                return (f"{path} has Windows line ends (its #! line ends in a carriage return): "
                        f"sed -i 's/\\r$//' {shlex.quote(path)}")
            shown = interpreter.decode("utf-8", "backslashreplace")
            return f"its interpreter {shown!r} (the #! line) is not installed: install it or change the #! line"
    return ""


def _first_line(path: str) -> bytes:
    """The first 256 bytes' first line; b"" if it cannot be read (O_NONBLOCK: a FIFO there never stalls PID 1)."""
    try:  # O_NOCTTY: a terminal put there would become PID 1's controlling one
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        return os.read(fd, 256).split(b"\n", 1)[0] + b"\n"
    except OSError:
        return b""
    finally:
        os.close(fd)


class CommandOutcome:
    """What became of one command: the problems its actions met (a kill that failed, ...)."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self._done = anyio.Event()

    def finish(self) -> None:
        self._done.set()

    async def wait(self) -> None:
        await self._done.wait()


Inbox = tuple[Event, CommandOutcome | None]


class ServiceRunner:
    def __init__(self, spec: ServiceSpec, runtime: Runtime, stdout_to: int | None = None,
                 stdin_from: int | None = None) -> None:
        """`stdout_to`: the write end of the pipe to its logger; `stdin_from`: a logger's read end.
        Both stay open in pyinit, so neither side's restart loses a line."""
        self.spec = spec
        self.stdout_to = stdout_to
        self.stdin_from = stdin_from
        self.state = ServiceState()
        self.tally = ServiceTally()
        self._runtime = runtime
        self._inbox: list[Inbox] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._working_soon = False  # a callback to work through the inbox is scheduled
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = False
        self.recent = RecentLines()
        # its first run, started by the start path (core/prestart): its pid and pipes, adopted
        self._prestarted = runtime.take_prestarted(spec.name)
        early = self._prestarted
        # raw on PID 1's own fds, nothing reaches `recent`: pysvstat --log and forensics have no lines
        self.stdout = output_for(runtime, spec.name, 1, keep_write_end=True, recent=self.recent,
                                 fds=None if early is None else early.stdout)
        self.stderr = output_for(runtime, spec.name, 2, keep_write_end=True, recent=self.recent,
                                 fds=None if early is None else early.stderr)
        self._changed: anyio.Event | None = None  # made when someone waits for a change
        self._task_group: anyio.abc.TaskGroup | None = None
        self._readiness: tuple[int, int] | None = None  # (incarnation pid, read end of its notification pipe)
        self._problems: list[str] = []

    def send(self, event: Event) -> None:
        """Queue an event; safe from synchronous callbacks (the reaper)."""
        self._post((event, None))

    def command(self, verb: Verb) -> CommandOutcome:
        """Queue a command; its outcome completes once the service has acted on it."""
        outcome = CommandOutcome()
        self._post((Command(verb), outcome))
        return outcome

    async def wait_until(self, predicate: Callable[[ServiceState], bool]) -> None:
        while not predicate(self.state):
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()

    def start(self, task_group: anyio.abc.TaskGroup) -> None:
        """Begin supervising, from within the event loop; `task_group` runs its forensics."""
        for problem in self.spec.problems:
            self._runtime.log.error("service definition is broken", service=self.spec.name, problem=problem)
        self._task_group = task_group
        self._loop = asyncio.get_running_loop()
        self.stdout.start()
        self.stderr.start()
        self._guarded(Boot(), None)
        self._work_through_inbox()

    def _post(self, item: Inbox) -> None:
        if self._closed:
            if item[1] is not None:
                item[1].finish()  # nobody acts on it any more: its waiter must not wait for ever
            return
        self._inbox.append(item)
        if self._loop is not None and not self._working_soon:
            self._working_soon = True
            self._loop.call_soon(self._work_through_inbox)

    def _work_through_inbox(self) -> None:
        self._working_soon = False
        while self._inbox and not self._closed:
            self._guarded(*self._inbox.pop(0))
        self._arm_timer()

    def _arm_timer(self) -> None:
        """One timer at the policy's deadline, moved only when the deadline moves."""
        deadline = None if self._closed else self.state.deadline
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None and self._loop is not None:
            self._timer = self._loop.call_at(deadline, self._on_deadline)

    def _on_deadline(self) -> None:
        self._timer = self._timer_at = None
        if not self._closed:
            self._guarded(TimerFired(), None)
        self._work_through_inbox()

    def drain(self) -> None:
        self.stdout.drain()
        self.stderr.drain()

    def _guarded(self, event: Event, outcome: CommandOutcome | None) -> None:
        """One event, whatever goes wrong in it: PID 1 and the other services go on."""
        before = self.state
        try:
            self._handle(event)
        except Exception:  # noqa: BLE001 (a PID 1 has no unexpected exception: log it and go on)
            self._runtime.log.error("service event failed", service=self.spec.name, service_event=repr(event),
                                    traceback=traceback.format_exc())
            self._problems.append(f"{self.spec.name}: internal error handling {type(event).__name__}")
        finally:
            if outcome is not None:
                outcome.problems, self._problems = self._problems, []
                outcome.finish()
            else:
                self._problems = []
            if self._changed is not None:
                self._changed.set()
                self._changed = None
            if self.state is not before:
                self._runtime.service_changed(self.spec, before, self.state)

    def _handle(self, first: Event) -> None:
        pending = [first]
        while pending:
            event = pending.pop(0)
            if isinstance(event, Exited):
                self.drain()  # its last words come before the news of its death
                self._stop_readiness()
            before = self.state
            self.state, actions = policy.step(
                self.spec, before, event, anyio.current_time(), self._runtime.services_gracetime
            )
            count_step(self.tally, event, before, self.state)
            for action in actions:
                try:
                    follow_up = self._perform(action)
                except Exception:  # noqa: BLE001 (the next actions still run)
                    self._runtime.log.error("service action failed", service=self.spec.name, action=repr(action),
                                            traceback=traceback.format_exc())
                    continue
                if follow_up is not None:
                    pending.append(follow_up)

    def _signal(self, target: int | None, signum: int, what: str, group: bool = True) -> None:
        """`signum` to the process group `target` leads, or to the pid alone (PYS6_GROUP_SIGNALS=0)."""
        if target is None:
            return
        failure = send_signal(target, signum, group)
        if failure is not None:
            where = {"pgid": target} if group else {"pid": target}
            self._runtime.log.error("cannot signal service", service=self.spec.name, target=what,
                                    signal=signal_name(signum), reason=failure.strerror, **where)
            self._problems.append(f"{self.spec.name}: cannot send {signal_name(signum)} to "
                                  f"{'process group' if group else 'process'} {target}: {failure.strerror}")

    def _perform(self, action: Action) -> Event | None:
        if isinstance(action, Spawn):
            return self._spawn_run()
        if isinstance(action, RunFinish):
            return self._spawn_finish(action.args)
        if isinstance(action, SendSignal):
            self._signal(self.state.pid, action.signum, "run", action.group)
            return None
        if isinstance(action, KillFinish):
            self._signal(self.state.finish_pid, signal.SIGKILL, "finish", action.group)
            return None
        if isinstance(action, Note):
            getattr(self._runtime.log, action.level)(action.event, **dict(action.fields))
            return None
        if isinstance(action, Forensics):
            if self._task_group is not None:
                self._task_group.start_soon(self._log_forensics, action.reason)
            return None
        if isinstance(action, EssentialBailed):
            self._runtime.essential_bailed(self.spec.name, action.exitcode)
            return None
        raise TypeError(f"unknown action {action!r}")

    async def _log_forensics(self, reason: str) -> None:
        from . import forensics  # only when a snapshot is taken

        try:
            record = await forensics.snapshot(self.spec, self.state, self.recent, anyio.current_time(), reason)
            self._runtime.log.warning("forensics", **forensics.for_the_log(record))
        except Exception:  # noqa: BLE001 (a snapshot is a courtesy; its failure is only logged)
            self._runtime.log.error("forensics failed", service=self.spec.name, traceback=traceback.format_exc())

    def _spawn(self, extra_fds: dict[int, int] | None = None, stdin: int | None = None,
               finish_args: tuple[str, ...] | None = None) -> int:
        """./run (or ./finish), writing to the pipes the service keeps for its whole life (stdout to
        its logger's, if it has one). Unlike proc.spawn_child's, these pipes outlive every
        incarnation, and the exit is a callback into the inbox, not an await."""
        return spawn_run(self.spec, self.stdout.write_fd if self.stdout_to is None else self.stdout_to,
                         self.stderr.write_fd, self._runtime.child_environment(), extra_fds, stdin, finish_args)

    def _spawn_run(self) -> Event:
        if self._prestarted is not None:  # the start path's: its pid, its exit told by the reaper from the first
            early, self._prestarted = self._prestarted, None
            pid = early.pid
            early.adopt(lambda code, sig: self.send(Exited(code, sig, pid)))
            if early.notify is not None:
                self._watch_readiness(pid, early.notify)
            return Spawned(pid, early.started)
        notify: tuple[int, int] | None = None
        extra: dict[int, int] = {}
        try:
            if self.spec.notification_fd is not None:
                notify = os.pipe()
                extra[self.spec.notification_fd] = notify[1]
            pid = self._spawn(extra_fds=extra, stdin=self.stdin_from)
        except OSError as exc:  # any errno: EMFILE, ENOMEM, EAGAIN are a failed start like ENOENT
            if notify is not None:
                os.close(notify[0])
            path = f"{self.spec.directory}/run{self.spec.script_suffix}"
            return SpawnFailed(exec_failure_code(exc), f"{path}: {exc.strerror or exc}", run_hint(path, exc))
        finally:
            if notify is not None:
                os.close(notify[1])
        self._runtime.reaper.watch(pid, lambda code, sig: self.send(Exited(code, sig, pid)))
        if notify is not None:
            self._watch_readiness(pid, notify[0])
        return Spawned(pid)

    def _spawn_finish(self, args: tuple[str, ...]) -> Event | None:
        try:
            pid = self._spawn(finish_args=args)
        except OSError as exc:
            self._runtime.log.error("finish could not start", service=self.spec.name, reason=exc.strerror)
            return FinishExited(exec_failure_code(exc))
        self._runtime.reaper.watch(pid, lambda code, sig: self.send(FinishExited(code)))
        return FinishSpawned(pid)

    # --- readiness (s6's notification-fd), one pipe per incarnation ------------------

    def _watch_readiness(self, pid: int, read_fd: int) -> None:
        """Read the pipe from a loop callback; it closes when that incarnation dies, even if an orphan holds it."""
        self._stop_readiness()
        os.set_blocking(read_fd, False)
        self._readiness = (pid, read_fd)
        asyncio.get_running_loop().add_reader(read_fd, self._on_notification)

    def _on_notification(self) -> None:
        if self._readiness is None:
            return
        pid, read_fd = self._readiness
        try:
            data = os.read(read_fd, 512)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if b"\n" in data:
            self.send(Ready(pid))
        if b"\n" in data or not data:
            self._stop_readiness()

    def _stop_readiness(self) -> None:
        if self._readiness is not None:
            _pid, read_fd = self._readiness
            self._readiness = None
            asyncio.get_running_loop().remove_reader(read_fd)
            os.close(read_fd)

    def close(self) -> None:
        """No more supervision: pending and later events are dropped, their waiters released."""
        self._closed = True
        self._arm_timer()
        for _event, outcome in self._inbox:
            if outcome is not None:
                outcome.finish()
        self._inbox.clear()
        if self._readiness is not None:
            os.close(self._readiness[1])
            self._readiness = None
        self.stdout.close()
        self.stderr.close()
