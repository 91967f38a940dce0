"""The container's life in order: stage 1 (fix-attrs, the stage-2 hook, cont-init), stage 2
(s6-rc's user bundle, services.d, user2, the main program), stage 3 (shutdown).

Stage 2 brings s6-rc's `user` and `user2` bundles up as one s6-rc change does: each
service once its own dependencies are up, so a user2 service that needs only `base`
starts with the user ones; services.d starts once all of `user` is up (and ready, where
it says when), as s6-overlay's legacy-services depends on `user`; a user2 service that
depends on legacy-services waits for that.

Stage 3 follows SPEC.md, s6-overlay v3's order by default: each service's down-signal
(user2's, services.d's, then user's, in reverse dependency order, oneshots' `down`
run), then cont-finish scripts while orphans (tmux servers) still live, then SIGTERM and
SIGKILL to whatever else is left, the main program included, as s6-overlay's final
kill reaches it; moving on as soon as nothing is left to wait for.
PYS6_FINISH_AFTER_SERVICES=0 gives pys6's other order: cont-finish scripts while
everything still runs, then SIGTERM to the main program, then the services.

S6_BEHAVIOUR_IF_STAGE2_FAILS is read in one place, `_stage2_failed`: at 0 a failure is only
what its own event said, at 1 it is also warned about ("..., continuing"), at 2 or more the
container stops with the failure's exit code.
"""

from __future__ import annotations

import math
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TypeVar

import anyio
import anyio.abc
import anyio.to_thread

from ..base.terms import EXIT_USAGE
from ..core.service import ServiceRunner
from ..core.servicedir import held, read_service
from ..core.services import STOP_MARGIN, ServiceTable
from ..core.settings import Settings
from ..core.telemetry import PodRecords, StageRecord
from ..logs.events import TIME_KEY, Logger, Recorder
from ..logs.writer import OutputWriter
from ..proc.killall import kill_everyone
from ..proc.reaper import ChildExit, Reaper
from ..proc.spawn import send_signal
from ..s6 import fixattrs as compat
from ..s6 import layout as s6layout
from ..s6 import rcplan as s6rc
from ..s6 import rcrun as s6rc_run
from ..s6.bridge import S6Bridge
from ..s6.layout import Layout
from ..s6.rcplan import Plan
from ..s6.rcrun import RcServices
from . import early
from .early import HeadStart
from .progress import ShutdownReport
from .scripts import Scripts
from .shutdown import Shutdown
from .verdict import Verdict, verdict_of

TYPE_CHECKING = False
if TYPE_CHECKING:  # mypy reads dataclasses; base/record builds them without importing dataclasses
    from dataclasses import dataclass as record
    from dataclasses import field, replace
else:
    from ..base.record import field, record, replace

EXIT_STAGE2_FAILED = 1  # s6-overlay: the failing oneshot makes s6-rc exit 1, and the container with it

T = TypeVar("T")
Said = tuple[str, str] | None  # (log level, event), or nothing said


@record(frozen=True)
class Stage2Failure:
    """One thing of stage 2 that failed: the shutdown's reason and code at 2, and what is said at 0, 1, 2."""

    reason: str
    code: int = EXIT_STAGE2_FAILED
    said: tuple[Said, Said, Said] | None = None  # None: at 1 only, "<reason>, continuing"
    fields: Mapping[str, object] = field(default_factory=dict)


def stage2_ladder(behaviour: int, failure: Stage2Failure) -> tuple[Said, bool]:
    """S6_BEHAVIOUR_IF_STAGE2_FAILS (pure): what is said of `failure`, and whether the container stops."""
    rung = 2 if behaviour >= 2 else 1 if behaviour == 1 else 0
    said = failure.said if failure.said is not None else (None, ("warning", f"{failure.reason}, continuing"), None)
    return said[rung], rung == 2


class Stages:
    """The stage sequence over the service table, the scripts and the s6 bridge; it is what the
    scan FIFOs need (s6/scanctl.ScanTarget) and what the signal loop and the metrics read."""

    def __init__(self, settings: Settings, reaper: Reaper, writer: OutputWriter, log: Logger, is_pid1: bool,
                 environment: Callable[[], Mapping[bytes, bytes]], layout: Layout,
                 head: HeadStart | None = None) -> None:
        """`head`: what pyinit's start path did before the loop (container/early), adopted here."""
        self.settings = settings
        self.head = head
        self.layout = layout
        self.reaper = reaper
        self.log = log
        self.is_pid1 = is_pid1
        self._stage = "starting"  # starting (cont-init), running (services started)
        self.shutdown = Shutdown(layout, log)
        self._cont_init_done = False  # cont-init.d ran to its end without stopping the container
        self.table = ServiceTable(settings, reaper, writer, log, environment, lambda: self.stage,
                                  self.essential_bailed)
        self.metrics_changed: Callable[[], None] = lambda: None  # the metrics textfile is out of date
        self.table.change_listeners.append(lambda spec, before, after: self.metrics_changed())
        self.bridge = S6Bridge(self.table, layout, log, None if head is None else head.supervise_dirs)
        self.scripts = Scripts(settings, self.table, self.shutdown, lambda: self.metrics_changed())
        self.scripts.oneshot_directory = layout.oneshot_runner
        for script in head.scripts if head is not None else ():  # before the loop's first reap: it may be dead
            if script.result is not None:  # reaped by the start path: its exit, as the reaper would tell it
                script.exited = ChildExit()
                script.exited(*script.result)
            elif script.error is None:
                script.exited = reaper.watch_exit(script.pid)
            self.scripts.early.append(script)
        for started in head.prestarted.values() if head is not None else ():  # so too its services' run scripts
            reaper.watch(started.pid, started.exited)
        if head is not None:
            self.table.prestarted = dict(head.prestarted)
            for producer, (logger, read_end, write_end) in head.logger_pipes.items():
                self.table.adopt_logger_pipe(producer, logger, (read_end, write_end))
        self.rc = RcServices(self.scripts, self.table, Plan((), (), {}, {}), layout.rc_compiled,
                             self.table.stop_timeout)
        self.rc.early_specs = dict(head.rc_specs) if head is not None else {}
        self._stage2_started = 0.0
        self._exit_code_file = ""  # where a script left the exit code, when it changed it
        self.report: ShutdownReport | None = None  # stage 3's progress and summary, while it runs

    # --- what others read and ask ------------------------------------------------------

    @property
    def stage(self) -> str:
        return "stopping" if self.shutdown.stopping.is_set() else self._stage

    @property
    def services(self) -> dict[str, ServiceRunner]:
        return self.table.runners

    @property
    def stage_records(self) -> list[StageRecord]:
        return self.scripts.stage_records

    @property
    def main_pid(self) -> int | None:
        return self.scripts.main_pid

    @property
    def exit_code(self) -> int:
        return self.shutdown.exit_code

    def records(self) -> PodRecords:
        """What the metrics page reads of the pod, as plain records (metrics imports nothing of ours)."""
        return PodRecords(self.table.figures(), self.stage, self.scripts.stage_records, self.reaper.orphans_reaped)

    def request_shutdown(self, reason: str, exit_code: int | None = None, service: str = "") -> None:
        self.shutdown.request(reason, exit_code, service)

    def essential_bailed(self, name: str, exitcode: int) -> None:
        self.request_shutdown(f"essential service {name} bailed", exitcode, service=name)

    def verdict(self) -> Verdict:
        """Why the container ends, for the termination log (container/verdict)."""
        return verdict_of(self.shutdown, self.table.runners, self._exit_code_file)

    def rescan_soon(self) -> None:
        """s6-svscanctl -a/-h: start the services.d services added since boot (none removed)."""
        if self.table.task_group is None or self.stage != "running":
            self.log.info("rescan ignored: services are not running yet, or no more")
            return
        self.table.task_group.start_soon(self.table.rescan)

    # --- the whole life ----------------------------------------------------------------

    async def run(self, main_argv: Sequence[str]) -> int:
        """The whole container life; returns the exit code."""
        self._stage2_started = anyio.current_time()
        async with anyio.create_task_group() as services_group:
            self.table.task_group = services_group
            services_group.start_soon(self.bridge.serve)
            if await self._stage2(services_group, main_argv):
                await self.shutdown.stopping.wait()
            await self._stage3()
            self.bridge.stop_reading()  # a writer PID 1 cannot kill must not hold its exit
            services_group.cancel_scope.cancel()
        self.table.close()
        self.bridge.close()
        self.scripts.close()
        left = s6layout.read_exit_code(self.layout)
        if left is not None and left != self.shutdown.exit_code:
            self._exit_code_file = ", ".join(self.layout.exitcode_files)
            self.log.info("exit code left by a script", exit_code=left, file=self._exit_code_file)
            self.shutdown.exit_code = left
        return self.shutdown.exit_code

    def _stage2_failed(self, failure: Stage2Failure) -> bool:
        """S6_BEHAVIOUR_IF_STAGE2_FAILS on one failure: its event, then False (and a shutdown) at 2."""
        if self._said(failure):
            self.request_shutdown(failure.reason, failure.code)
            return False
        return True

    async def _until_stopping(self, work: Callable[[], Awaitable[T]]) -> T | None:
        """`work`'s result, or None when a shutdown request cut it short (one helper for every such wait)."""
        result: T | None = None
        async with anyio.create_task_group() as group:

            async def stop_on_request() -> None:
                await self.shutdown.stopping.wait()
                group.cancel_scope.cancel()

            group.start_soon(stop_on_request)
            result = await work()
            group.cancel_scope.cancel()
        return result

    async def _stage2(self, services_group: anyio.abc.TaskGroup, main_argv: Sequence[str]) -> bool:
        head = self.head
        if head is None or not head.said_starting:
            compat.report_unhandled_trees(self.settings.etc, self.log)
        if self.settings.stage2_hook and not await self._stage2_hook():
            return False
        if head is not None and head.unsaid is not None:  # the start path read the plan after the hook
            head.unsaid.replay(self.log)
        # rc.init compiles the s6-rc source before anything runs (a cont-init script that writes
        # s6-rc.d changes nothing): read it now, unless the start path did
        self.rc.plan = head.plan if head is not None and head.plan is not None else self._rc_plan()
        if self.rc.plan.problems and not self._stage2_failed(Stage2Failure("the s6-rc services have problems")):
            return False
        failures = await self._until_stopping(lambda: self._change(services_group))
        if failures is None:
            return False
        stopping = next((failure for failure, stops in failures if stops), None)
        if stopping is not None:  # rc.init halts once s6-rc's change is over, with s6-rc's code
            self.request_shutdown(stopping.reason, stopping.code)
            return False
        self._stage = "running"
        if self.settings.cmd_wait_for_services and not await self._wait_for_services():
            return True
        if main_argv:
            argv = [*self.settings.cmd_arg0.split(), *main_argv]
            services_group.start_soon(self.scripts.run_main_program, argv)
        return True

    def _rc_plan(self) -> Plan:
        return early.read_plan(self.settings, self.log)

    def _said(self, failure: Stage2Failure) -> bool:
        """S6_BEHAVIOUR_IF_STAGE2_FAILS on one failure: its event; whether it stops the container."""
        said, stops = stage2_ladder(self.settings.behaviour_if_stage2_fails, failure)
        if said is not None:
            getattr(self.log, said[0])(said[1], **dict(failure.fields))
        return stops

    async def _change(self, services_group: anyio.abc.TaskGroup) -> list[tuple[Stage2Failure, bool]]:
        """rc.init's `s6-rc change top`, as one graph (s6-overlay's s6-rc sources): fix-attrs, then
        legacy-cont-init (cont-init.d), together `base`; every service of `user` and `user2` once its
        own dependencies are up, so one that needs nothing (not even base) starts beside cont-init.d;
        legacy-services (services.d) once base and all of `user` are up, never when one failed; a
        user2 service that depends on legacy-services after that. What failed, each with whether
        S6_BEHAVIOUR_IF_STAGE2_FAILS stops the container once the change is over (s6-rc carries
        on with all that does not depend on what failed)."""
        failures: list[tuple[Stage2Failure, bool]] = []

        def failed(failure: Stage2Failure) -> bool:
            stops = self._said(failure)
            failures.append((failure, stops))
            return stops

        async def base() -> None:
            head = self.head
            fixed = (self._fix_attrs_failure(head.fix_failures) if head is not None and head.fix_failures is not None
                     else await self._fix_attrs())
            ok = fixed is None or not failed(fixed)
            self.rc.stage_finished(s6rc_run.FIX_ATTRS, ok)
            if not ok:  # legacy-cont-init depends on fix-attrs: cont-init.d does not run
                self.rc.stage_finished(s6rc_run.CONT_INIT, False)
                return
            scripts_failed = await self.scripts.run_scripts("cont-init.d")
            ok = not scripts_failed or not failed(Stage2Failure(
                "a cont-init script failed", said=(None, ("warning", "cont-init scripts failed, continuing"),
                                                   ("warning", "cont-init scripts failed")),
                fields={"failed": ", ".join(name for name, _ in scripts_failed)}))
            self._cont_init_done = ok  # legacy-cont-init is up: its down (cont-finish.d) runs at stage 3
            self.rc.stage_finished(s6rc_run.CONT_INIT, ok)

        async def user2() -> None:
            failed_names.extend(await self.rc.bring_up(self.rc.plan.second))

        failed_names: list[str] = []
        async with anyio.create_task_group() as group:
            group.start_soon(base)
            if self.rc.plan.second:
                group.start_soon(user2)
            user_failed = await self.rc.bring_up(self.rc.plan.first) if self.rc.plan.first else []
            failed_names.extend(user_failed)
            await self.rc.stage_done[s6rc_run.CONT_INIT].wait()
            started = False
            if not user_failed and s6rc_run.CONT_INIT not in self.rc.stage_failed:
                with anyio.CancelScope(shield=True):  # started at all or not at all; stage 3 stops them
                    started = await self.start_services(services_group)
            else:
                self.log.warning("services.d not started: a service it depends on failed",
                                 failed=", ".join(user_failed) or s6rc_run.CONT_INIT)
            self.rc.stage_finished(s6rc.AFTER_SERVICES, started)
        if failed_names:
            failed(Stage2Failure(f"s6-rc services failed: {', '.join(failed_names)}"))
        return failures

    async def start_services(self, task_group: anyio.abc.TaskGroup) -> bool:
        """Start every service; False (and a shutdown with 100) when services.d cannot be read at all."""
        services = self.head.services if self.head is not None else None  # read (and said?) by the start path
        if services is not None and not services.told:
            early.say(services.said, self.log)
        if services is None:
            # all in one worker-thread call: a hop to the thread and back per service cost more than the copies
            services = await anyio.to_thread.run_sync(early.prepare_services_d, self.settings, self.layout,
                                                      set(self.rc.plan.definitions))
            early.say(services.said, self.log)
            if services.unreadable:
                self.request_shutdown("services.d cannot be read", EXIT_USAGE)
                return False
        self.table.copy_root = self.layout.legacy_services
        specs = services.specs
        # Each service's s6 directory is made just before it starts (s6/bridge).
        for spec in specs:
            logger = os.path.join(spec.directory, "log")
            if os.path.isfile(os.path.join(logger, "run")):  # s6's services.d/<name>/log: its logger
                logger_spec = held(replace(read_service(logger, self.settings), name=f"{spec.name}-log"), spec)
                read_end, write_end = self.table.logger_pipe(spec.name, logger_spec.name)
                await self.table.start_runner(logger_spec, task_group, stdin_from=read_end)
                await self.table.start_runner(spec, task_group, stdout_to=write_end)
            else:
                await self.table.start_runner(spec, task_group)
        self.log.info("services started", count=len(specs))
        return True

    async def _wait_for_services(self) -> bool:
        """S6_CMD_WAIT_FOR_SERVICES(_MAXTIME); False when S6_BEHAVIOUR_IF_STAGE2_FAILS stops the container."""
        maxtime = self.settings.cmd_wait_for_services_maxtime
        remaining = math.inf if not maxtime else max(0.0, self._stage2_started + maxtime / 1000 - anyio.current_time())
        with anyio.move_on_after(remaining) as scope:
            await self.table.wait_ready()
        if not scope.cancelled_caught:
            return True
        late = ", ".join(self.table.not_ready())
        return self._stage2_failed(Stage2Failure(
            "services were not ready in time", said=(None, ("warning", "services were not ready in time, going on"),
                                                     ("error", "services were not ready in time, stopping the container")),
            fields={"services": late}))

    async def _stage2_hook(self) -> bool:
        """S6_STAGE2_HOOK, before anything else of stage 2; False when its failure stops the container."""
        hook = self.settings.stage2_hook
        early = self.scripts.take_early("hook")  # started by the start path (container/early)
        if early is not None:
            code = await self.scripts.run_script(os.path.join(self.settings.etc, "S6_STAGE2_HOOK"), "S6_STAGE2_HOOK",
                                                 argv=["/bin/sh", "-c", hook], early=early)
        else:
            code = await self.scripts.run_script(os.path.join(self.settings.etc, "S6_STAGE2_HOOK"), "S6_STAGE2_HOOK",
                                                 argv=["/bin/sh", "-c", hook])
        when = {TIME_KEY: early.ended_at} if early is not None and early.result is not None else {}
        if code == 0:
            self.log.info("stage 2 hook done", hook=hook, **when)
            return True
        failed = ("warning", "stage 2 hook failed")
        return self._stage2_failed(Stage2Failure("S6_STAGE2_HOOK failed", code, fields={"hook": hook, "exitcode": code},
                                                 said=(failed, failed, ("error", "stage 2 hook failed, stopping the container"))))

    async def _fix_attrs(self) -> Stage2Failure | None:
        """v2's fix-attrs.d, before cont-init: what failed, or None. Applied in a worker thread, its
        words said here, in the loop's (the output writer is not the worker's to call)."""
        said = Recorder()
        failures = await anyio.to_thread.run_sync(compat.apply_fix_attrs, self.settings.dirs("fix-attrs.d"),
                                                  self.settings.fix_attrs_hidden, said.as_logger())
        said.replay(self.log)
        return self._fix_attrs_failure(failures)

    @staticmethod
    def _fix_attrs_failure(failures: list[str]) -> Stage2Failure | None:
        if not failures:
            return None
        return Stage2Failure("fix-attrs.d failed", said=(None, ("warning", "fix-attrs.d failed, continuing"), None),
                             fields={"failed": len(failures)})

    # --- stage 3 -----------------------------------------------------------------------

    async def _stage3(self) -> None:
        self.report = report = ShutdownReport(self.log, self.is_pid1, self._known_pids, self._service_groups)
        self.table.change_listeners.append(report.service_changed)
        async with anyio.create_task_group() as progress:  # the report's timer: only while stage 3 runs
            progress.start_soon(report.keep_telling)
            await self._stage3_steps(report)
            progress.cancel_scope.cancel()
        report.summary()
        self.log.info("exiting", exit_code=self.shutdown.exit_code)

    async def _stage3_steps(self, report: ShutdownReport) -> None:
        if self.settings.finish_after_services:  # s6-overlay v3: s6-rc -bda change, cont-finish its last down
            await self.stop_services()
            # cont-finish.d is the down of s6-overlay's legacy-cont-init oneshot: a stage-1 failure
            # that stops the container (S6_BEHAVIOUR_IF_STAGE2_FAILS=2: a cont-init script's, the
            # stage-2 hook's, fix-attrs') means that oneshot never came up, so it never runs
            if self._cont_init_done or not self.shutdown.exit_code_fixed:
                with report.phase("cont-finish"):
                    await self.scripts.run_scripts("cont-finish.d", self.settings.kill_finish_maxtime)
        else:
            with report.phase("cont-finish"):
                await self.scripts.run_scripts("cont-finish.d", self.settings.kill_finish_maxtime)
            if self.scripts.main_pid is not None:
                send_signal(self.scripts.main_pid, signal.SIGTERM, group=False)
            await self.stop_services()
        with report.phase("final kill"):
            await self.kill_everything()  # the main program too, when it still runs (v3: rc.init's child)
            report.after_final_kill()
        await self.scripts.main_program_recorded(STOP_MARGIN)  # its end logged before "exiting", if it died just now
        if self.settings.sync_disks:
            self.log.info("syncing disks")
            await anyio.to_thread.run_sync(os.sync)

    def _known_pids(self) -> dict[int, str]:
        """The processes pyinit can name: services' runs and finish scripts, the main program."""
        known: dict[int, str] = {}
        for name, runner in self.table.runners.items():
            if runner.state.pid is not None:
                known[runner.state.pid] = name
            if runner.state.finish_pid is not None:
                known[runner.state.finish_pid] = f"{name} finish"
        if self.scripts.main_pid is not None:
            known[self.scripts.main_pid] = "main program"
        return known

    def _service_groups(self) -> dict[int, str]:
        return {runner.state.pgid: name for name, runner in self.table.runners.items() if runner.state.pgid}

    def _phase(self, name: str) -> AbstractContextManager[None]:
        return self.report.phase(name) if self.report is not None else nullcontext()

    async def stop_services(self) -> None:
        """s6-rc's user2 services, then services.d's, then s6-rc's user ones, each in reverse
        dependency order, through the table's one stop sequence; loggers after their producers."""
        with self._phase("s6-rc down"):
            await self.rc.bring_down(self.rc.plan.second)
        legacy = {name: runner for name, runner in self.table.runners.items() if name not in self.rc.runners}
        producers = {name: runner for name, runner in legacy.items() if name not in self.table.loggers}
        loggers = {name: runner for name, runner in legacy.items() if name in self.table.loggers}
        with self._phase("services"):
            await self.table.stop_and_tell(producers)
            for name in loggers:
                self.table.end_of_input(name)
            await self.table.stop_loggers(loggers)
        with self._phase("s6-rc down"):
            await self.rc.bring_down(self.rc.plan.first)

    async def kill_everything(self) -> None:
        """SIGTERM to whatever is left, SIGKILL after S6_KILL_GRACETIME (proc/killall: the one home)."""
        await kill_everyone(self.reaper, self.is_pid1, self.settings.kill_gracetime / 1000, log=self.log,
                            before_kill=self.report.before_sigkill if self.report is not None else None)
