"""The service table: every supervised service, and the one path a command takes to reach one.

It is what a service needs around it (service.Runtime) and what the control verbs need
(control/handlers.ControlTarget). Whoever else cares about a service (s6's on-disk bridge,
the metrics) hears of it through listeners: a service started, changed, or changed its
normal state. The table imports nothing of control, s6 or metrics.

**One path per command.** `apply(name, order, ...)` is the only way a state or signal
command reaches a service, whatever sent it (the control socket, s6's supervise/control
FIFO, the stop sequence at shutdown): one check (a signal reaches only a live process:
s6-supervise ignores a signal letter while the service is down, and pysvc is answered "down: no process to signal" before
anything is done, through `refusal`), one log event (its name tells where the command came
from: "control" for the socket, "s6-svc" for the FIFO, their fields as they always were; the
stop sequence logs its own "services stopped" once, not one event per service), the
forensics snapshot before force (a down, a restart or a signal to a live process; once per
process and request, or per process for a FIFO, which has no requests), then the command
itself, bounded by the control timeout. The figures it moves (starts, deaths) are the
runner's own, so every path counts alike. A crash bail is no command: the policy decides it
inside the runner (core/policy), with the same forensics record as a forceful command.

**One stop sequence.** `stop(runners)` is the only way services are stopped at the end:
services.d's all at once, s6-rc's one at a time in reverse dependency order (s6/rcrun), each
SHUTDOWN, then waited for, bounded even when a kill fails (EPERM).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

import anyio
import anyio.abc
import anyio.to_thread

from ..base.terms import signal_name
from ..logs.events import Logger
from ..logs.writer import OutputWriter
from ..proc.reaper import Reaper
from ..proc.spawn import send_signal
from . import policy
from .model import Phase, Ready, ServiceSpec, ServiceState, ServiceView, Verb
from .prestart import Prestarted
from .service import ServiceRunner
from .servicedir import copy_service, read_service, scan
from .settings import ConfigError, Settings
from .telemetry import ServiceFigures

if TYPE_CHECKING:  # mypy reads dataclasses; base/record builds them without importing dataclasses
    from dataclasses import dataclass as record
    from dataclasses import replace
else:
    from ..base.record import record, replace

if TYPE_CHECKING:
    from .health import HealthReport
    from .healthrun import HealthMonitor

STOP_MARGIN = 2.0  # seconds beyond the grace times before a service that cannot be killed is given up

# An action word (the control protocol's `do`, s6-svc's letters once read) -> the runner's verb.
VERB_OF_ACTION = {"up": Verb.UP, "up-remove-down": Verb.UP, "down": Verb.DOWN, "down-create-down": Verb.DOWN,
                  "once": Verb.ONCE, "once-at-most": Verb.ONCE_AT_MOST, "restart": Verb.RESTART,
                  "shutdown": Verb.SHUTDOWN, "unhealthy": Verb.UNHEALTHY}
# forensics before these, on a live process ("unhealthy": pyinit's own restart for failed health checks)
FORCEFUL = ("down", "down-create-down", "restart", "signal", "unhealthy")
NORMAL_STATE = {"up-remove-down": True, "down-create-down": False}  # s6-svc -U / -D: the down file


class Order(Protocol):
    """One command to one service: an action word of VERB_OF_ACTION, or "signal" with its signal
    (control/protocol.WireAction is one)."""

    @property
    def do(self) -> str: ...

    @property
    def signum(self) -> int: ...

    @property
    def group(self) -> bool: ...


@record(frozen=True)
class Signal:
    """An order to send a signal, as s6-svc's signal letters give it."""

    signum: int
    group: bool = False
    do: str = "signal"


@record(frozen=True)
class StateChange:
    """An order to change a service's state, as s6-svc's state letters give it."""

    do: str
    signum: int = 0
    group: bool = False


class OrderTarget(Protocol):
    """What the one path needs of the services (the ServiceTable; a test's fake)."""

    log: Logger

    def view(self, name: str) -> ServiceView: ...

    async def command(self, name: str, verb: Verb) -> list[str]: ...  # the problems met (a failed kill)

    def send_signal(self, name: str, signum: int, group: bool) -> str | None: ...  # a problem, or None

    def set_normally_up(self, name: str, up: bool) -> None: ...  # the down file; OSError if it cannot


def refusal(view: ServiceView, order: Order) -> str | None:
    """Why `order` does nothing to the service now, or None: a signal needs a live process."""
    if order.do == "signal" and view.state.phase is not Phase.UP:
        return f"{view.spec.name} is down: no process to signal"
    return None


async def apply_order(target: OrderTarget, name: str, order: Order, event: str | None, fields: Mapping[str, object],
                      snapshots: set[tuple[str, int | None]], timeout: float) -> list[str]:
    """The one path: do one order to one service, whatever sent it; the problems it met (a failed kill).

    `event` and `fields` are the log event that tells who asked (after `service=`), None for
    the stop sequence, which tells of all its services at once;
    `snapshots` the (service, pid) already given their forensics by this sender: a second
    forceful order to the same process would only log the same record again. A refused
    order (see `refusal`) is not logged and does nothing. The command waits at most
    `timeout` seconds. OSError from the down file is the caller's to report."""
    view = target.view(name)
    if refusal(view, order) is not None:
        return []
    if event is not None:
        target.log.info(event, service=name, **fields)
    if order.do in FORCEFUL and view.state.phase is Phase.UP and (name, view.state.pid) not in snapshots:
        snapshots.add((name, view.state.pid))
        from . import forensics  # only when a snapshot is taken

        record = await forensics.snapshot(view.spec, view.state, view.recent, anyio.current_time(),
                                          f"before {order.do}", health=view.health)  # forensics before force
        # Asked for by a client (pysvc -r): a record of what was done, at info; pyinit's own orders
        # (the health check's restart, the stop sequence) are what an operator must notice.
        automatic = event is None or order.do == "unhealthy"
        (target.log.warning if automatic else target.log.info)("forensics", **forensics.for_the_log(record))
    if order.do == "signal":
        problem = target.send_signal(name, order.signum, order.group)
        return [] if problem is None else [problem]
    if order.do in NORMAL_STATE:
        target.set_normally_up(name, NORMAL_STATE[order.do])
    with anyio.move_on_after(timeout):
        return await target.command(name, VERB_OF_ACTION[order.do])
    return [f"{name}: the service did not take the command in time"]


SHUTDOWN = StateChange("shutdown")  # the stop sequence's order: down, and never up again
ONCE_AT_MOST = StateChange("once-at-most")  # a logger's at the end: its exit at end of input is no crash

ChangeListener = Callable[[ServiceSpec, ServiceState, ServiceState], None]


class ServiceTable:
    """The runners by name, their logger pipes, the control target, the stop sequence."""

    def __init__(self, settings: Settings, reaper: Reaper, writer: OutputWriter, log: Logger,
                 environment: Callable[[], Mapping[bytes, bytes]], stage: Callable[[], str],
                 essential_bailed: Callable[[str, int], None]) -> None:
        self.settings = settings
        self.reaper = reaper
        self.writer = writer
        self.log = log
        self.log_format = settings.log_format
        self.log_prefix = settings.log_prefix
        self.services_gracetime = settings.services_gracetime / 1000
        self.command_timeout = settings.control_timeout / 1000
        # Settling, then its finish; with s6-supervise's signals (PYS6_GROUP_SIGNALS=0) nothing kills at
        # the grace time, and s6-overlay's services-down waits just that long (s6-svwait -D -t), then goes on.
        self.stop_timeout = (2 * self.services_gracetime + STOP_MARGIN if settings.group_signals
                             else self.services_gracetime)
        self.runners: dict[str, ServiceRunner] = {}
        # What supervises one service: ServiceRunner; an in-process test gives a fake that spawns nothing.
        self.make_runner: Callable[[ServiceSpec, ServiceTable, int | None, int | None], ServiceRunner] = ServiceRunner
        self._environment = environment
        self._stage = stage
        self._essential_bailed = essential_bailed
        self._logger_pipes: dict[str, tuple[int, int]] = {}  # producer -> (read end, write end or -1)
        self.loggers: dict[str, str] = {}  # logger -> its producer
        self.task_group: anyio.abc.TaskGroup | None = None  # where runners run, once services may start
        self.copy_root: str | None = None  # where services.d's services run from (servicedir.copy_service)
        # Listeners, in the order they were added: a service about to start, its state changed,
        # its normal state (the down file) changed, a command's signal was sent to it.
        self.started_listeners: list[Callable[[ServiceSpec], None]] = []
        self.change_listeners: list[ChangeListener] = []
        self.normally_up_listeners: list[Callable[[str, bool], None]] = []
        self.signal_listeners: list[Callable[[str, int], None]] = []
        self.health: dict[str, HealthMonitor] = {}  # the services that have a health check
        self.prestarted: dict[str, Prestarted] = {}  # run scripts the start path started, until adopted

    # --- what a service needs around it (service.Runtime) -----------------------------

    def essential_bailed(self, name: str, exitcode: int) -> None:
        self._essential_bailed(name, exitcode)

    def child_environment(self) -> Mapping[bytes, bytes]:
        return self._environment()

    def take_prestarted(self, name: str) -> Prestarted | None:
        return self.prestarted.pop(name, None)

    def service_changed(self, spec: ServiceSpec, before: ServiceState, after: ServiceState) -> None:
        if spec.name in self.health:
            self.health[spec.name].service_changed(after)
        for listener in self.change_listeners:
            listener(spec, before, after)

    # --- the table ---------------------------------------------------------------------

    async def start_runner(self, spec: ServiceSpec, task_group: anyio.abc.TaskGroup | None = None,
                           stdout_to: int | None = None, stdin_from: int | None = None) -> ServiceRunner | None:
        """Supervise one service from now on; the ServiceRunner, or None when it cannot be."""
        if spec.name in self.runners:
            self.log.error("two services have one name: the second is not started", service=spec.name,
                           directory=spec.directory)
            return None
        try:
            runner = self.make_runner(spec, self, stdout_to, stdin_from)
        except OSError as exc:  # its log pipes: EMFILE, ENFILE
            self.log.error("service cannot be set up", service=spec.name, reason=exc.strerror)
            return None
        group = task_group or self.task_group
        assert group is not None
        self.runners[spec.name] = runner
        for listener in self.started_listeners:
            listener(spec)
        if spec.health is not None:
            self.health[spec.name] = self._health_monitor(runner, spec, group)
        runner.start(group)
        return runner

    def _health_monitor(self, runner: ServiceRunner, spec: ServiceSpec, group: anyio.abc.TaskGroup) -> HealthMonitor:
        """Its checks: a first pass is its Ready, too many failures a restart through the one path."""
        from .healthrun import HealthMonitor  # only for a service that has a check

        assert spec.health is not None
        check = spec.health

        async def restart(failures: int) -> None:
            order = StateChange("unhealthy")
            await self.apply(spec.name, order, "service unhealthy, restarting",
                             {"failures": failures, "retries": check.retries, "check": check.describe()},
                             set(), self.command_timeout)

        return HealthMonitor(spec, check, self.reaper, self.log, self._environment, group,
                             lambda pid: runner.send(Ready(pid)), restart)

    def read_rc_service(self, directory: str) -> ServiceSpec:
        return read_service(directory, self.settings)

    def logger_pipe(self, producer: str, logger: str) -> tuple[int, int]:
        """The pipe from a service's stdout to its logger's stdin, made once, held open by pyinit
        for the container's life: a restart of either side loses nothing (s6-svscan's way)."""
        if producer not in self._logger_pipes:
            self._logger_pipes[producer] = os.pipe()
            self.loggers[logger] = producer
        return self._logger_pipes[producer]

    def adopt_logger_pipe(self, producer: str, logger: str, ends: tuple[int, int]) -> None:
        """A logger pipe the start path made (container/early), held as logger_pipe holds its own."""
        self._logger_pipes[producer] = ends
        self.loggers[logger] = producer

    def end_of_input(self, logger: str) -> None:
        """Its producer is down: close pyinit's write end, so the logger reads the rest, then EOF."""
        producer = self.loggers.get(logger, "")
        read_end, write_end = self._logger_pipes.get(producer, (-1, -1))
        if write_end >= 0:
            os.close(write_end)
            self._logger_pipes[producer] = (read_end, -1)

    async def rescan(self) -> None:
        """s6-svscanctl -a/-h: start the services.d services added since boot (none removed)."""
        try:
            specs, _skipped = scan(self.settings.dirs("services.d"), self.settings)
        except ConfigError as exc:
            self.log.error("cannot read the services", reason=str(exc))
            return
        added = [spec for spec in specs if spec.name not in self.runners]
        for spec in added:
            if self.copy_root is not None:  # from its copy, as at boot, never from services.d itself
                spec = await anyio.to_thread.run_sync(copy_service, spec, self.copy_root, self.settings)
            await self.start_runner(spec)
        self.log.info("rescan done", added=" ".join(spec.name for spec in added) or "none")

    async def wait_ready(self) -> None:
        """For S6_CMD_WAIT_FOR_SERVICES: every normally-up service up and ready (or given up)."""

        def settled(state: ServiceState) -> bool:
            return state.bailed or state.ready_at is not None

        for runner in list(self.runners.values()):
            if runner.spec.normally_up:
                await runner.wait_until(settled)

    def not_ready(self) -> list[str]:
        return [name for name, runner in self.runners.items() if runner.spec.normally_up and runner.state.ready_at is None]

    def figures(self) -> list[ServiceFigures]:
        """Every service as the metrics page reads it: plain records, read now."""
        return [ServiceFigures(runner.spec, runner.state, runner.tally, (runner.stdout.lines, runner.stderr.lines),
                               (runner.stdout.bytes, runner.stderr.bytes), self._health_report(name))
                for name, runner in list(self.runners.items())]

    def _health_report(self, name: str) -> HealthReport | None:
        monitor = self.health.get(name)
        return None if monitor is None else monitor.report()

    def close(self) -> None:
        """No more supervision; pyinit's ends of the logger pipes closed."""
        for monitor in self.health.values():
            monitor.close()
        for runner in self.runners.values():
            runner.close()
        for early in self.prestarted.values():
            early.close()
        self.prestarted.clear()
        for ends in self._logger_pipes.values():
            for fd in ends:
                if fd >= 0:
                    os.close(fd)
        self._logger_pipes.clear()

    # --- what the control verbs need (control/handlers.ControlTarget) -------------------

    @property
    def stage(self) -> str:
        return self._stage()

    def service_names(self) -> list[str]:
        return list(self.runners)

    def view(self, name: str) -> ServiceView:
        runner = self.runners[name]
        return ServiceView(runner.spec, runner.state, runner.recent, self._health_report(name))

    async def command(self, name: str, verb: Verb) -> list[str]:
        outcome = self.runners[name].command(verb)
        await outcome.wait()
        return outcome.problems

    def send_signal(self, name: str, signum: int, group: bool) -> str | None:
        """A signal to the service's main process (or its group), as s6-svc sends it."""
        target = self.runners[name].state.pid
        failure = send_signal(target, signum, group) if target is not None else None
        if failure is None:
            for listener in self.signal_listeners if target is not None else ():
                listener(name, signum)
            return None
        self.log.error("cannot signal service", service=name, pid=target, signal=signal_name(signum),
                       reason=failure.strerror)
        what = "process group" if group else "process"
        return f"{name}: cannot send {signal_name(signum)} to {what} {target}: {failure.strerror}"

    def set_normally_up(self, name: str, up: bool) -> None:
        """s6-svc -U / -D: remove or create the service's down file."""
        runner = self.runners[name]
        path = os.path.join(runner.spec.directory, "down")
        try:
            if up:
                os.unlink(path)
            else:
                flags = os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
                os.close(os.open(path, flags, 0o644))
        except FileNotFoundError:
            pass
        runner.spec = replace(runner.spec, normally_up=up)
        for listener in self.normally_up_listeners:
            listener(name, up)

    async def wait_until(self, name: str, predicate: Callable[[ServiceState], bool]) -> None:
        await self.runners[name].wait_until(predicate)

    # --- the one path for a command -------------------------------------------------------

    def refusal(self, name: str, order: Order) -> str | None:
        return refusal(self.view(name), order)

    async def apply(self, name: str, order: Order, event: str | None, fields: Mapping[str, object],
                    snapshots: set[tuple[str, int | None]], timeout: float) -> list[str]:
        return await apply_order(self, name, order, event, fields, snapshots, timeout)

    # --- the one stop sequence ---------------------------------------------------------

    async def stop(self, runners: Mapping[str, ServiceRunner]) -> tuple[bool, list[str]]:
        """SHUTDOWN to each, then each waited for (its output drained) within the grace time and
        its finish's as much again; (all of them in time, the names still not down)."""
        snapshots: set[tuple[str, int | None]] = set()
        for name in runners:
            await self.apply(name, SHUTDOWN, None, {}, snapshots, self.command_timeout)
        in_time = False
        with anyio.move_on_after(self.stop_timeout):
            for runner in runners.values():
                await runner.wait_until(policy.is_settled_down)
                runner.drain()
            in_time = True
        return in_time, [name for name, runner in runners.items() if not policy.is_settled_down(runner.state)]

    async def stop_loggers(self, loggers: Mapping[str, ServiceRunner]) -> None:
        """Loggers read to the end of their input (EOF once their producer is down), then exit
        by themselves; those still running after the grace time get the stop sequence."""
        if not loggers:
            return
        snapshots: set[tuple[str, int | None]] = set()
        for name in loggers:  # its exit at end of input is the end, not a crash
            await self.apply(name, ONCE_AT_MOST, None, {}, snapshots, self.command_timeout)
        with anyio.move_on_after(self.services_gracetime):
            for runner in loggers.values():
                await runner.wait_until(lambda state: state.pid is None)
        await self.stop_and_tell(loggers)

    async def stop_and_tell(self, runners: Mapping[str, ServiceRunner]) -> None:
        """The stop sequence for services.d's services, with its log events."""
        in_time, stuck = await self.stop(runners)
        if in_time and runners:
            self.log.info("services stopped")
        if stuck:
            self.log.error("services could not be stopped, going on", services=", ".join(stuck))

    async def stop_logger(self, name: str, runner: ServiceRunner) -> None:
        await self.stop_loggers({name: runner})
