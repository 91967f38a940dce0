"""The container's life in order: cont-init, services (and the main program), shutdown.

Stage 3 follows SPEC.md: cont-finish scripts while everything still runs (unless
PYS6_FINISH_AFTER_SERVICES), then each service's down-signal and SIGKILL after the
grace time, then SIGTERM and SIGKILL to whatever else is left, moving on as soon as
nothing is left to wait for.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import anyio
import anyio.to_thread

from ..base.signames import signal_name
from ..control.handlers import ServiceView
from ..control.protocol import SIGNAL_LETTERS, STATE_LETTERS
from ..core import policy
from ..core.model import Phase, ServiceSpec, ServiceState, Verb, death_code
from ..core.service import ServiceRunner, formatter_for
from ..core.servicedir import is_executable_file, read_service, scan
from ..core.settings import ConfigError, Settings
from ..core.telemetry import StageRecord
from ..logs.pipe import LogPipe
from ..logs.writer import OutputWriter
from ..proc.reaper import ChildExit, Reaper
from ..proc.spawn import exec_failure_code, send_signal, signal_everyone, signal_group, spawn
from ..s6 import fixattrs as compat
from ..s6 import layout as s6layout
from ..s6 import rcplan as s6rc
from ..s6 import status as s6status
from ..s6.layout import Layout
from ..s6.rcplan import Plan
from ..s6.rcrun import RcServices
from ..s6.supervisedir import ControlFifos, SuperviseDir

EXIT_BAD_CONFIG = 100
EXIT_SYSTEM = 111
STOP_MARGIN = 2.0  # seconds beyond the grace times before a service that cannot be killed is given up


class Container:
    """The container's life and state: stages, services, shutdown.

    It is what a service needs around it (service.Runtime) and what the control
    verbs need (handlers.ControlTarget).
    """

    def __init__(self, settings: Settings, reaper: Reaper, writer: OutputWriter, log: Any, is_pid1: bool,
                 environment: Callable[[], Mapping[bytes, bytes]], layout: Layout) -> None:
        self.settings = settings
        self.child_environment = environment
        self.layout = layout
        self.reaper = reaper
        self.writer = writer
        self.log = log
        self.log_format = settings.log_format
        self.services_gracetime = settings.services_gracetime / 1000
        self.is_pid1 = is_pid1
        self.services: dict[str, ServiceRunner] = {}
        self.exit_code = 0
        self._exit_code_fixed = False  # by a bail or a failed stage: the main program's end does not change it
        self.stopping = anyio.Event()
        self._stage = "starting"  # starting (cont-init), running (services started)
        self.main_pid: int | None = None
        self._script_pipes: list[LogPipe] = []
        self.supervise_dirs: dict[str, SuperviseDir] = {}
        self._control_fifos = ControlFifos(self.apply_s6_command, log)
        self._logger_pipes: dict[str, tuple[int, int]] = {}  # producer -> (read end, write end or -1)
        self._loggers: dict[str, str] = {}  # logger -> its producer
        self._services_group: anyio.abc.TaskGroup | None = None
        self.stage_records: list[StageRecord] = []  # cont-init, then cont-finish, for the metrics
        self.metrics_changed: Callable[[], None] = lambda: None  # the metrics textfile is out of date
        compiled = os.path.join(os.path.dirname(layout.container_environment), "s6-rc")
        self.rc = RcServices(self, Plan((), (), {}, {}), compiled, 2 * self.services_gracetime + STOP_MARGIN)

    # --- shutdown requests -----------------------------------------------------

    def request_shutdown(self, reason: str, exit_code: int | None = None) -> None:
        if self.stopping.is_set():
            self.log.info("already shutting down", reason=reason)
            return
        if exit_code is not None:
            self._set_exit_code(exit_code)
            self._exit_code_fixed = True
        self.log.info("shutting down", reason=reason, exit_code=self.exit_code)
        self.stopping.set()

    def _set_exit_code(self, code: int) -> None:
        """Also where s6-overlay keeps it, so a finish script may read it or set another (its recipe)."""
        self.exit_code = code
        s6layout.record_exit_code(self.layout, code)

    def essential_bailed(self, name: str, exitcode: int) -> None:
        self.request_shutdown(f"essential service {name} bailed", exitcode)

    # --- what the control verbs need (handlers.ControlTarget) -------------------

    @property
    def stage(self) -> str:
        return "stopping" if self.stopping.is_set() else self._stage

    def service_names(self) -> list[str]:
        return list(self.services)

    def view(self, name: str) -> ServiceView:
        runner = self.services[name]
        return ServiceView(runner.spec, runner.state, runner.recent)

    async def command(self, name: str, verb: Verb) -> list[str]:
        outcome = self.services[name].command(verb)
        await outcome.wait()
        return outcome.problems

    def send_signal(self, name: str, signum: int, group: bool) -> str | None:
        """A signal to the service's main process (or its group), as s6-svc sends it."""
        target = self.services[name].state.pid
        failure = send_signal(target, signum, group) if target is not None else None
        if failure is None:
            return None
        self.log.error("cannot signal service", service=name, pid=target, signal=signal_name(signum),
                       reason=failure.strerror)
        what = "process group" if group else "process"
        return f"{name}: cannot send {signal_name(signum)} to {what} {target}: {failure.strerror}"

    def set_normally_up(self, name: str, up: bool) -> None:
        """s6-svc -U / -D: remove or create the service's down file."""
        runner = self.services[name]
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
        if name in self.supervise_dirs:
            self.supervise_dirs[name].set_normally_up(up)

    async def wait_until(self, name: str, predicate: Callable[[ServiceState], bool]) -> None:
        await self.services[name].wait_until(predicate)

    # --- one-shot scripts (cont-init.d, cont-finish.d) -------------------------

    async def run_script(self, path: str, source: str, timeout_ms: int = 0, argv: list[str] | None = None) -> int:
        """Run one script (or `argv`, from `path`'s directory) to completion, its output merged;
        return its fate as an exit code."""
        pipes: list[LogPipe] = []
        try:
            pipes.append(LogPipe(self.writer, 1, formatter_for(self, source, "stdout"), keep_write_end=False))
            pipes.append(LogPipe(self.writer, 2, formatter_for(self, source, "stderr"), keep_write_end=False))
            out, err = pipes
            pid = spawn(argv or [path], cwd=os.path.dirname(path), stdout=out.write_fd, stderr=err.write_fd,
                        env=self.child_environment(), search_path=argv is not None)
        except OSError as exc:  # any errno, EMFILE from the pipes included
            for pipe in pipes:
                pipe.close()
            self.log.error("script could not start", script=source, reason=exc.strerror)
            return exec_failure_code(exc)
        exited = self.reaper.watch_exit(pid)
        out.child_started()
        err.child_started()
        # The pipes outlive the script while something it started still holds them.
        out.start()
        err.start()
        self._script_pipes += [out, err]
        try:
            with anyio.move_on_after(timeout_ms / 1000 if timeout_ms > 0 else math.inf) as scope:
                await exited.wait()
            if scope.cancelled_caught:
                self.log.warning("script timed out, killing it", script=source, timeout_ms=timeout_ms)
                await self._kill_script(pid, source, exited)
        except BaseException:
            with anyio.CancelScope(shield=True):  # never leave it behind
                await self._kill_script(pid, source, exited)
            raise
        out.drain()
        err.drain()
        if not exited.done:
            return EXIT_SYSTEM
        return death_code(exited.exitcode, exited.signum)

    async def _kill_script(self, pid: int, source: str, exited: ChildExit) -> None:
        """SIGKILL its group and wait for it, but not for ever: a kill can fail (EPERM)."""
        failure = signal_group(pid, signal.SIGKILL)
        if failure is not None:
            self.log.error("cannot kill script", script=source, pid=pid, reason=failure.strerror)
        with anyio.move_on_after(STOP_MARGIN):
            await exited.wait()
        if not exited.done:
            self.log.error("script outlived SIGKILL, going on without it", script=source, pid=pid)

    async def run_scripts(self, kind: str, timeout_ms: int = 0) -> list[tuple[str, int]]:
        """Every executable in $PYS6_ETC/<kind>, in byte order; the failures."""
        directory = self.settings.dirs(kind)
        try:
            names = sorted(os.listdir(os.fsencode(directory)))
        except FileNotFoundError:
            return []
        except OSError as exc:
            self.log.error("cannot read scripts directory", directory=directory, reason=exc.strerror)
            return [(directory, 111)]
        failures: list[tuple[str, int]] = []
        record = StageRecord(kind.removesuffix(".d"))
        self.stage_records.append(record)
        stage_started = anyio.current_time()
        try:
            await self._run_each(names, directory, kind, timeout_ms, record, failures)
        finally:
            record.seconds, record.done = anyio.current_time() - stage_started, True
            self.metrics_changed()
        return failures

    async def _run_each(self, names: list[bytes], directory: str, kind: str, timeout_ms: int, record: StageRecord,
                        failures: list[tuple[str, int]]) -> None:
        for raw in names:
            name = os.fsdecode(raw)
            path = os.path.join(directory, name)
            source = f"{kind}/{name}"
            if os.path.isdir(path) or name.startswith("."):
                continue
            if not is_executable_file(path):
                self.log.warning("script is not executable, skipped", script=source)
                continue
            self.log.info("script starting", script=source)
            started = anyio.current_time()
            code = await self.run_script(path, source, timeout_ms)
            record.scripts.append((name, code, anyio.current_time() - started))
            self.metrics_changed()
            if code == 0:
                self.log.info("script done", script=source)
            else:
                level = "warning" if kind != "cont-init.d" or self.settings.behaviour_if_stage2_fails else "info"
                getattr(self.log, level)("script failed", script=source, exitcode=code)
                failures.append((source, code))

    # --- services ----------------------------------------------------------------

    async def start_services(self, task_group: anyio.abc.TaskGroup) -> bool:
        """Start every service; False (and a shutdown with 100) when services.d cannot be read at all."""
        try:
            specs, skipped = scan(self.settings.dirs("services.d"), self.settings)
        except ConfigError as exc:
            self.log.error("cannot read the services", reason=str(exc))
            self.request_shutdown("services.d cannot be read", EXIT_BAD_CONFIG)
            return False
        for entry in skipped:
            self.log.warning("services.d entry skipped", entry=entry)
        # Each service's s6 directory is made just before it starts, as s6-supervise makes its own
        # (a run script may use s6-notifyoncheck, s6-svc or s6-svwait at once).
        s6layout.link_legacy_services(self.layout, {spec.name: spec.directory for spec in specs})
        s6layout.forget_other_services(self.layout, {spec.name for spec in specs} | set(self.rc.plan.definitions))
        for spec in specs:
            logger = os.path.join(spec.directory, "log")
            if os.path.isfile(os.path.join(logger, "run")):  # s6's services.d/<name>/log: its logger
                logger_spec = replace(read_service(logger, self.settings), name=f"{spec.name}-log")
                read_end, write_end = self.logger_pipe(spec.name, logger_spec.name)
                await self.start_runner(logger_spec, task_group, stdin_from=read_end)
                await self.start_runner(spec, task_group, stdout_to=write_end)
            else:
                await self.start_runner(spec, task_group)
        self.log.info("services started", count=len(specs))
        return True

    def logger_pipe(self, producer: str, logger: str) -> tuple[int, int]:
        """The pipe from a service's stdout to its logger's stdin, made once, held open by pyinit
        for the container's life: a restart of either side loses nothing (s6-svscan's way)."""
        if producer not in self._logger_pipes:
            self._logger_pipes[producer] = os.pipe()
            self._loggers[logger] = producer
        return self._logger_pipes[producer]

    def end_of_input(self, logger: str) -> None:
        """Its producer is down: close pyinit's write end, so the logger reads the rest, then EOF."""
        producer = self._loggers.get(logger, "")
        read_end, write_end = self._logger_pipes.get(producer, (-1, -1))
        if write_end >= 0:
            os.close(write_end)
            self._logger_pipes[producer] = (read_end, -1)

    def rescan_soon(self) -> None:
        """s6-svscanctl -a/-h: start the services.d services added since boot (none removed)."""
        if self._services_group is None or self.stage != "running":
            self.log.info("rescan ignored: services are not running yet, or no more")
            return
        self._services_group.start_soon(self._rescan)

    async def _rescan(self) -> None:
        try:
            specs, _skipped = scan(self.settings.dirs("services.d"), self.settings)
        except ConfigError as exc:
            self.log.error("cannot read the services", reason=str(exc))
            return
        added = [spec for spec in specs if spec.name not in self.services]
        for spec in added:
            await self.start_runner(spec)
        self.log.info("rescan done", added=" ".join(spec.name for spec in added) or "none")

    async def start_runner(self, spec: ServiceSpec, task_group: anyio.abc.TaskGroup | None = None,
                           stdout_to: int | None = None, stdin_from: int | None = None) -> Any:
        """Supervise one service from now on; the ServiceRunner, or None when it cannot be."""
        if spec.name in self.services:
            self.log.error("two services have one name: the second is not started", service=spec.name,
                           directory=spec.directory)
            return None
        try:
            runner = ServiceRunner(spec, self, stdout_to=stdout_to, stdin_from=stdin_from)
        except OSError as exc:  # its log pipes: EMFILE, ENFILE
            self.log.error("service cannot be set up", service=spec.name, reason=exc.strerror)
            return None
        group = task_group or self._services_group
        assert group is not None
        self.services[spec.name] = runner
        self._make_supervise_dir(spec)
        runner.start(group)
        return runner

    def read_rc_service(self, directory: str) -> ServiceSpec:
        return read_service(directory, self.settings)

    # --- s6's on-disk interface (supervisedir), so s6-svc, s6-svstat, s6-svwait work ---------

    def _make_supervise_dir(self, spec: ServiceSpec) -> None:
        scandir, *others = self.layout.scandirs
        try:
            directory = SuperviseDir(spec, scandir)
            for other in others:
                s6layout.link_into(other, spec.name, directory.path)
        except OSError as exc:
            self.log.warning("s6's supervise interface cannot be made: s6-svc and s6-svstat will not reach it",
                             service=spec.name, directory=os.path.join(scandir, spec.name),
                             reason=exc.strerror or str(exc))
            return
        self.supervise_dirs[spec.name] = directory
        self._control_fifos.watch(directory)

    def service_changed(self, spec: ServiceSpec, before: ServiceState, after: ServiceState) -> None:
        self.metrics_changed()
        directory = self.supervise_dirs.get(spec.name)
        if directory is None:
            return
        try:
            directory.write_status(s6status.pack(after, anyio.current_time(), time.time()))
            directory.announce(s6status.events(before, after))
        except OSError as exc:
            self.log.error("s6 status cannot be written", service=spec.name, reason=exc.strerror)

    async def apply_s6_command(self, name: str, letter: str) -> None:
        """One byte from supervise/control, as s6-supervise takes it: signals only to a live process."""
        runner = self.services[name]
        up = runner.state.phase is Phase.UP
        if letter in SIGNAL_LETTERS:
            signum, group = SIGNAL_LETTERS[letter]
            if up:
                self.log.info("s6-svc", service=name, command=letter, signal=signal_name(signum))
                self.send_signal(name, signum, group)
            return
        action = STATE_LETTERS.get(letter)
        if action is None:
            if not letter.isspace():
                self.log.info("s6-svc command ignored", service=name, command=letter)
            return
        self.log.info("s6-svc", service=name, command=letter, action=action)
        if action in ("up-remove-down", "down-create-down"):
            self.set_normally_up(name, action == "up-remove-down")
        if action == "restart" and not up:
            return
        verb = {"up": Verb.UP, "up-remove-down": Verb.UP, "down": Verb.DOWN, "down-create-down": Verb.DOWN,
                "once": Verb.ONCE, "once-at-most": Verb.ONCE_AT_MOST, "restart": Verb.RESTART}[action]
        await self.command(name, verb)

    def close_supervise_dirs(self) -> None:
        for directory in self.supervise_dirs.values():
            self._control_fifos.forget(directory)
            directory.close()

    async def wait_services_ready(self) -> None:
        """For S6_CMD_WAIT_FOR_SERVICES: every normally-up service up and ready (or given up)."""

        def settled(state: ServiceState) -> bool:
            return state.bailed or state.ready_at is not None

        for runner in self.services.values():
            if runner.spec.normally_up:
                await runner.wait_until(settled)

    async def stop_services(self) -> None:
        """s6-rc's user2 services, then services.d's, then s6-rc's user ones, each in reverse
        dependency order: down-signal, then SIGKILL at the grace time; bounded even when a kill
        fails (EPERM)."""
        await self.rc.bring_down(self.rc.plan.second)
        legacy = {name: runner for name, runner in self.services.items() if name not in self.rc.runners}
        producers = {name: runner for name, runner in legacy.items() if name not in self._loggers}
        loggers = {name: runner for name, runner in legacy.items() if name in self._loggers}
        await self._stop_all(producers)
        for name in loggers:
            self.end_of_input(name)
        await self._stop_loggers(loggers)
        await self.rc.bring_down(self.rc.plan.first)

    async def _stop_all(self, runners: dict[str, Any]) -> None:
        for runner in runners.values():
            runner.command(Verb.SHUTDOWN)
        # A service settles within the grace time, and its finish within as much again.
        with anyio.move_on_after(2 * self.services_gracetime + STOP_MARGIN):
            for runner in runners.values():
                await runner.wait_until(policy.is_settled_down)
                runner.drain()
            if runners:
                self.log.info("services stopped")
        stuck = [name for name, runner in runners.items() if not policy.is_settled_down(runner.state)]
        if stuck:
            self.log.error("services could not be stopped, going on", services=", ".join(stuck))

    async def stop_logger(self, name: str, runner: Any) -> None:
        await self._stop_loggers({name: runner})

    async def _stop_loggers(self, loggers: dict[str, Any]) -> None:
        """Loggers read to the end of their input (EOF once their producer is down), then exit
        by themselves; those still running after the grace time get their down-signal."""
        if not loggers:
            return
        for runner in loggers.values():
            runner.command(Verb.ONCE_AT_MOST)  # its exit at end of input is the end, not a crash
        with anyio.move_on_after(self.services_gracetime):
            for runner in loggers.values():
                await runner.wait_until(lambda state: state.pid is None)
        await self._stop_all(loggers)

    # --- the main program (pyinit PROG ARGS...) -----------------------------------

    def _main_program_output(self) -> tuple[list[LogPipe], int | None]:
        """Where PROG writes: pyinit's own stdout and stderr; with S6_LOGGING=2 pipes to the
        catch-all log, unless S6_CMD_USE_TERMINAL asks for the terminal on stdin (s6-overlay's
        `redirfd -w 1 $(tty) fdmove -c 2 1`): then that terminal, both streams."""
        if self.settings.logging < 2:
            return [], None
        if self.settings.cmd_use_terminal and os.isatty(0):
            return [], os.open(os.ttyname(0), os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
        return [LogPipe(self.writer, 1, formatter_for(self, "main", "stdout"), keep_write_end=False),
                LogPipe(self.writer, 2, formatter_for(self, "main", "stderr"), keep_write_end=False)], None

    async def run_main_program(self, argv: Sequence[str]) -> None:
        pipes: list[LogPipe] = []
        terminal: int | None = None
        try:
            pipes, terminal = self._main_program_output()
            out = pipes[0].write_fd if pipes else terminal
            err = pipes[1].write_fd if pipes else terminal
            pid = spawn(argv, new_session=False, search_path=True, env=self.child_environment(),
                        stdout=out, stderr=err, keep_stdin=True)
        except OSError as exc:
            for pipe in pipes:
                pipe.close()
            if terminal is not None:
                os.close(terminal)
            self.log.error("main program could not start", program=argv[0], reason=exc.strerror)
            self.request_shutdown("main program could not start", exec_failure_code(exc))
            return
        if terminal is not None:
            os.close(terminal)
        for pipe in pipes:
            pipe.child_started()
            pipe.start()
        self._script_pipes += pipes
        self.main_pid = pid
        exited = self.reaper.watch_exit(pid)
        self.log.info("main program started", program=argv[0], pid=pid)
        await exited.wait()
        for pipe in pipes:
            pipe.drain()
        self.main_pid = None
        code = death_code(exited.exitcode, exited.signum)
        self.log.info("main program exited", exitcode=code)
        if self.stopping.is_set() and not self._exit_code_fixed:
            self._set_exit_code(code)  # a SIGTERM's shutdown ended it: the container still exits with its code
            return
        self.request_shutdown("main program exited", code)

    # --- the end -----------------------------------------------------------------

    async def kill_everything(self) -> None:
        self.reaper.reap()
        if not self.reaper.has_children():
            return
        self.log.info("sending SIGTERM to remaining processes")
        signal_everyone(self.is_pid1, signal.SIGTERM)
        signal_everyone(self.is_pid1, signal.SIGCONT)
        with anyio.move_on_after(self.settings.kill_gracetime / 1000):
            await self.reaper.wait_childless()
            return
        self.log.warning("sending SIGKILL to remaining processes")
        signal_everyone(self.is_pid1, signal.SIGKILL)
        with anyio.move_on_after(1.0):
            await self.reaper.wait_childless()

    async def run(self, main_argv: Sequence[str]) -> int:
        """The whole container life; returns the exit code."""
        self._stage2_started = anyio.current_time()
        async with anyio.create_task_group() as services_group:
            self._services_group = services_group
            services_group.start_soon(self._control_fifos.serve)
            stage2_ok = await self._stage2(services_group, main_argv)
            if stage2_ok:
                await self.stopping.wait()
            await self._stage3()
            self._control_fifos.close()  # a writer PID 1 cannot kill must not hold its exit
            services_group.cancel_scope.cancel()
        for runner in self.services.values():
            runner.close()
        self.close_supervise_dirs()
        for ends in self._logger_pipes.values():
            for fd in ends:
                if fd >= 0:
                    os.close(fd)
        for pipe in self._script_pipes:
            pipe.close()
        left = s6layout.read_exit_code(self.layout)
        if left is not None and left != self.exit_code:
            self.log.info("exit code left by a script", exit_code=left,
                          file=", ".join(self.layout.exitcode_files))
            self.exit_code = left
        return self.exit_code

    _stage2_started = 0.0

    async def _cont_init(self) -> list[tuple[str, int]] | None:
        """Stage 1 scripts; None when a shutdown request cut them short."""
        failures: list[tuple[str, int]] | None = None
        async with anyio.create_task_group() as group:

            async def stop_on_request() -> None:
                await self.stopping.wait()
                group.cancel_scope.cancel()

            group.start_soon(stop_on_request)
            failures = await self.run_scripts("cont-init.d")
            group.cancel_scope.cancel()
        return failures

    async def _stage2(self, services_group: anyio.abc.TaskGroup, main_argv: Sequence[str]) -> bool:
        behaviour = self.settings.behaviour_if_stage2_fails
        compat.report_unhandled_trees(self.settings.etc, self.log)
        if self.settings.stage2_hook and not await self._stage2_hook(behaviour):
            return False
        if not await self._fix_attrs(behaviour):
            return False
        failures = await self._cont_init()
        if failures is None:
            return False
        if failures and behaviour >= 1:
            self.log.warning("cont-init scripts failed, continuing" if behaviour == 1 else "cont-init scripts failed",
                             failed=", ".join(name for name, _ in failures))
        if failures and behaviour >= 2:
            # s6-overlay: the cont-init oneshot fails, s6-rc exits 1, and the container halts with it
            self.request_shutdown("a cont-init script failed", 1)
            return False
        self.rc.plan = self._rc_plan()
        if self.rc.plan.problems and not self._stage2_failure_allows("the s6-rc services have problems"):
            return False
        if not await self._rc_bring_up(self.rc.plan.first, "user"):
            return False
        if not await self.start_services(services_group):
            return False
        if not await self._rc_bring_up(self.rc.plan.second, "user2"):
            return False
        self._stage = "running"
        if self.settings.cmd_wait_for_services and not await self._wait_for_services(behaviour):
            return True
        if main_argv:
            argv = [*self.settings.cmd_arg0.split(), *main_argv]
            services_group.start_soon(self.run_main_program, argv)
        return True

    def _rc_plan(self) -> Plan:
        base = self.settings.dirs("s6-overlay")
        source = os.path.join(base, "s6-rc.d")
        bundles = [self.settings.runtime_bundledir or os.path.join(base, "user-bundles.d")]
        the_plan = s6rc.plan(s6rc.load(source, bundles))
        for problem in the_plan.problems:
            self.log.error("s6-rc service definition problem", problem=problem)
        if the_plan.first or the_plan.second:
            self.log.info("s6-rc services", user=" ".join(the_plan.first), user2=" ".join(the_plan.second))
        return the_plan

    def _stage2_failure_allows(self, what: str) -> bool:
        """S6_BEHAVIOUR_IF_STAGE2_FAILS on a failure: False (and a shutdown, exit 1) at 2 or more."""
        behaviour = self.settings.behaviour_if_stage2_fails
        if behaviour >= 2:
            self.request_shutdown(what, 1)
            return False
        if behaviour == 1:
            self.log.warning(f"{what}, continuing")
        return True

    async def _rc_bring_up(self, names: Sequence[str], bundle: str) -> bool:
        """One bundle's services, cut short by a shutdown request; False when the container stops."""
        if not names:
            return True
        failed: list[str] | None = None
        async with anyio.create_task_group() as group:

            async def stop_on_request() -> None:
                await self.stopping.wait()
                group.cancel_scope.cancel()

            group.start_soon(stop_on_request)
            failed = await self.rc.bring_up(names)
            group.cancel_scope.cancel()
        if failed is None:
            return False
        if failed and not self._stage2_failure_allows(f"s6-rc {bundle} services failed: {', '.join(failed)}"):
            return False
        return True

    async def _wait_for_services(self, behaviour: int) -> bool:
        """S6_CMD_WAIT_FOR_SERVICES(_MAXTIME); False when S6_BEHAVIOUR_IF_STAGE2_FAILS stops the container."""
        maxtime = self.settings.cmd_wait_for_services_maxtime
        remaining = math.inf if not maxtime else max(0.0, self._stage2_started + maxtime / 1000 - anyio.current_time())
        with anyio.move_on_after(remaining) as scope:
            await self.wait_services_ready()
        if not scope.cancelled_caught:
            return True
        late = ", ".join(name for name, runner in self.services.items()
                         if runner.spec.normally_up and runner.state.ready_at is None)
        if behaviour >= 2:
            self.log.error("services were not ready in time, stopping the container", services=late)
            self.request_shutdown("services were not ready in time", 1)
            return False
        if behaviour == 1:
            self.log.warning("services were not ready in time, going on", services=late)
        return True

    async def _stage2_hook(self, behaviour: int) -> bool:
        """S6_STAGE2_HOOK, before anything else of stage 2; False when its failure stops the container."""
        hook = self.settings.stage2_hook
        code = await self.run_script(os.path.join(self.settings.etc, "S6_STAGE2_HOOK"), "S6_STAGE2_HOOK",
                                     argv=["/bin/sh", "-c", hook])
        if code == 0:
            self.log.info("stage 2 hook done", hook=hook)
            return True
        if behaviour >= 2:
            self.log.error("stage 2 hook failed, stopping the container", hook=hook, exitcode=code)
            self.request_shutdown("S6_STAGE2_HOOK failed", code)
            return False
        self.log.warning("stage 2 hook failed", hook=hook, exitcode=code)
        return True

    async def _fix_attrs(self, behaviour: int) -> bool:
        """v2's fix-attrs.d, before cont-init; False when a failure stops the container."""
        failures = await anyio.to_thread.run_sync(
            compat.apply_fix_attrs, self.settings.dirs("fix-attrs.d"), self.settings.fix_attrs_hidden, self.log)
        if not failures:
            return True
        if behaviour >= 2:
            self.request_shutdown("fix-attrs.d failed", 1)
            return False
        if behaviour == 1:
            self.log.warning("fix-attrs.d failed, continuing", failed=len(failures))
        return True

    async def _stage3(self) -> None:
        if not self.settings.finish_after_services:
            await self.run_scripts("cont-finish.d", self.settings.kill_finish_maxtime)
        if self.main_pid is not None:
            send_signal(self.main_pid, signal.SIGTERM, group=False)
        await self.stop_services()
        if self.settings.finish_after_services:
            await self.run_scripts("cont-finish.d", self.settings.kill_finish_maxtime)
        await self.kill_everything()
        if self.settings.sync_disks:
            self.log.info("syncing disks")
            await anyio.to_thread.run_sync(os.sync)
        self.log.info("exiting", exit_code=self.exit_code)

