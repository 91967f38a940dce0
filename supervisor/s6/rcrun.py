"""Running an s6-rc plan: each service once its dependencies are up (and ready, where they
say when; s6-overlay's own, fix-attrs, base and legacy-services: once the stages say so), oneshots to
completion, longruns supervised like services.d's; at shutdown, each one once everything
that depends on it is down, oneshots' `down` run.

A longrun runs from a copy of its source directory (as s6-rc-compile copies it), with run
and finish made executable; in a pipeline (producer-for, consumer-for) they are renamed
run.user and finish.user beside a wrapper run and finish, as s6-rc-compile lays it out, and
pyinit execs ./run.user (./finish.user) itself with the pipe in place (s6-rc's wrapper gets it
from its fd holder, which pyinit has no need of). s6-overlay's own services are nodes of the
same graph (`STAGES`): `fix-attrs` and `legacy-cont-init` (cont-init.d; `base` is both) and
`legacy-services` (services.d) are run by the stages, which say when each is up or failed
(`stage_done`), and a service that depends on one waits for it as for any other.

A oneshot's `up` and `down` are execline command lines, run with `execlineb -P -c` where
execlineb exists, else as one plain command line, as s6-rc's oneshot runner runs them: in
its directory (s6/layout), with RC_NAME=<the oneshot's name>.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import anyio
import anyio.abc

from ..core.model import ServiceSpec, ServiceState
from ..core.service import ServiceRunner
from ..logs.events import TIME_KEY, Logger
from .rcplan import AFTER_SERVICES, Plan

# what s6-rc-compile makes of a definition (a oneshot's command line, a longrun's copy): s6/rcsource
from .rcsource import USER_SUFFIX, find_execlineb
from .rcsource import CommandLineError as CommandLineError
from .rcsource import command_line as command_line
from .rcsource import compile_longrun as compile_longrun

TYPE_CHECKING = False
if TYPE_CHECKING:  # mypy reads dataclasses; base/record builds them without importing dataclasses
    from dataclasses import replace

    from ..container.early import EarlyScript
else:
    from ..base.record import replace

# s6-overlay's own services, which the stages run: what each name a definition may depend on
# stands for (s6-overlay's s6-rc sources: base is the bundle of fix-attrs and legacy-cont-init,
# legacy-cont-init depends on fix-attrs, legacy-services on base and user); s6-rc's oneshot
# runner and fd holder are there from the start
FIX_ATTRS = "fix-attrs"
CONT_INIT = "legacy-cont-init"
STAGES = {"base": CONT_INIT, CONT_INIT: CONT_INIT, FIX_ATTRS: FIX_ATTRS, AFTER_SERVICES: AFTER_SERVICES,
          "s6rc-oneshot-runner": "", "s6rc-fdholder": ""}


class RcScripts(Protocol):
    """What the s6-rc stages need to run a oneshot (container/scripts.Scripts)."""

    async def run_script(self, path: str, source: str, timeout_ms: int = 0, argv: list[str] | None = None,
                         rc_name: str | None = None, shell: bool = False, early: EarlyScript | None = None) -> int: ...

    def take_early(self, kind: str, name: str = "") -> EarlyScript | None: ...  # started by the start path


class RcTable(Protocol):
    """What the s6-rc stages need of the service table (core/services.ServiceTable)."""

    log: Logger

    def read_rc_service(self, directory: str) -> ServiceSpec: ...

    async def start_runner(self, spec: ServiceSpec, task_group: anyio.abc.TaskGroup | None = None,
                           stdout_to: int | None = None,
                           stdin_from: int | None = None) -> ServiceRunner | None: ...  # None if it cannot be

    def logger_pipe(self, producer: str, logger: str) -> tuple[int, int]: ...

    def end_of_input(self, logger: str) -> None: ...

    async def stop(self, runners: Mapping[str, ServiceRunner]) -> tuple[bool, list[str]]: ...


def _settled_up(spec: ServiceSpec) -> Callable[[ServiceState], bool]:
    def check(state: ServiceState) -> bool:
        return state.bailed or (state.pid is not None and (spec.notification_fd is None or state.ready_at is not None))

    return check


class RcServices:
    """An s6-rc plan's services: oneshots run by `scripts`, longruns supervised by `services`."""

    def __init__(self, scripts: RcScripts, services: RcTable, plan: Plan, compiled_root: str,
                 stop_timeout: float) -> None:
        self.scripts = scripts
        self.services = services
        self.plan = plan
        self.compiled_root = compiled_root
        self.stop_timeout = stop_timeout
        self.started: list[str] = []  # in the order they came up
        self.runners: dict[str, ServiceRunner] = {}
        self._up: dict[str, anyio.Event] = {}
        self._failed: set[str] = set()
        # s6-overlay's own services (STAGES' values), set by the stages once each is up or has failed
        self.stage_done = {name: anyio.Event() for name in (FIX_ATTRS, CONT_INIT, AFTER_SERVICES)}
        self.stage_failed: set[str] = set()
        # longruns the start path compiled and started (container/early): their specs, not compiled again
        self.early_specs: dict[str, ServiceSpec] = {}

    def stage_finished(self, name: str, up: bool) -> None:
        """One of s6-overlay's own services is up (`up`) or failed: what waits for it goes on."""
        if not up:
            self.stage_failed.add(name)
        self.stage_done[name].set()

    def _execlineb(self) -> str | None:
        return find_execlineb()

    async def bring_up(self, names: Sequence[str]) -> list[str]:
        """Start `names` in dependency order, in parallel where they do not depend on each other;
        the names that failed (or could not start because a dependency failed). `user` and
        `user2` may be brought up at once: a dependency anywhere in the plan is waited for."""
        for name in (*self.plan.first, *self.plan.second, *names):
            self._up.setdefault(name, anyio.Event())
        async with anyio.create_task_group() as group:
            for name in names:
                group.start_soon(self._bring_up_one, name)
        return [name for name in names if name in self._failed]

    async def _bring_up_one(self, name: str) -> None:
        try:
            for dependency in self.plan.needs.get(name, ()):
                stage = STAGES.get(dependency)
                if stage is not None:  # s6-overlay's own: the stages say when
                    if stage:
                        await self.stage_done[stage].wait()
                        if stage in self.stage_failed:
                            self.services.log.error("s6-rc service not started: a dependency failed", service=name,
                                                    dependency=dependency)
                            self._failed.add(name)
                            return
                elif dependency in self._up:
                    await self._up[dependency].wait()
                    if dependency in self._failed:
                        self.services.log.error("s6-rc service not started: a dependency failed", service=name,
                                            dependency=dependency)
                        self._failed.add(name)
                        return
            if not await self._start(name):
                self._failed.add(name)
        except Exception as exc:  # noqa: BLE001 (one service's trouble is not PID 1's)
            self.services.log.error("s6-rc service failed to start", service=name, reason=repr(exc)[:500])
            self._failed.add(name)
        finally:
            self._up[name].set()

    async def _start(self, name: str) -> bool:
        definition = self.plan.definitions[name]
        log = self.services.log
        if definition.type == "oneshot":
            early = self.scripts.take_early("oneshot", name)
            if early is not None:
                return await self._adopt_oneshot(name, definition.directory, early)
            try:
                argv = command_line(definition.up, name, self._execlineb())
            except CommandLineError as exc:
                log.error("s6-rc oneshot cannot run", service=name, reason=str(exc))
                return False
            if not argv:
                self.started.append(name)  # nothing to run: done, as execlineb's empty program
                return True
            log.info("s6-rc oneshot starting", service=name)
            timeout = _timeout(definition.directory, "timeout-up")
            code = await self.scripts.run_script(os.path.join(definition.directory, "up"), name, timeout, argv,
                                                 rc_name=name)
            if code != 0:  # s6-rc: it stays down, so its down is not run at shutdown
                log.error("s6-rc oneshot failed", service=name, exitcode=code)
                return False
            self.started.append(name)
            log.info("s6-rc oneshot done", service=name)
            return True
        spec = self.early_specs.pop(name, None)
        if spec is None:
            compiled = os.path.join(self.compiled_root, name)
            pipelined = bool(definition.producer_for or definition.consumer_for)
            try:
                compile_longrun(definition.directory, compiled, pipelined)
            except OSError as exc:
                log.error("s6-rc longrun cannot be prepared", service=name, reason=exc.strerror or str(exc))
                return False
            spec = self.services.read_rc_service(compiled)
            if pipelined:
                spec = replace(spec, script_suffix=USER_SUFFIX)
        pipes: dict[str, int] = {}
        if definition.producer_for:  # a pipeline: its stdout to its logger, through one lasting pipe
            pipes["stdout_to"] = self.services.logger_pipe(name, definition.producer_for)[1]
        if definition.consumer_for:
            pipes["stdin_from"] = self.services.logger_pipe(definition.consumer_for, name)[0]
        runner = await self.services.start_runner(spec, None, **pipes)
        if runner is None:
            return False
        self.runners[name] = runner
        self.started.append(name)
        await runner.wait_until(_settled_up(spec))
        if runner.state.bailed:
            log.error("s6-rc longrun did not come up", service=name)
            return False
        log.info("s6-rc longrun up" if spec.notification_fd is None else "s6-rc longrun ready", service=name)
        return True

    async def _adopt_oneshot(self, name: str, directory: str, early: EarlyScript) -> bool:
        """A oneshot the start path started (container/early): its start said now if not then, its
        end with the time it was seen (before the loop ran), as `_start` says them."""
        log = self.services.log
        if not early.said:
            log.info("s6-rc oneshot starting", service=name, **{TIME_KEY: early.started_at})
        code = await self.scripts.run_script(os.path.join(directory, "up"), name, _timeout(directory, "timeout-up"),
                                             rc_name=name, early=early)
        when = {TIME_KEY: early.ended_at} if early.result is not None else {}
        if code != 0:
            log.error("s6-rc oneshot failed", service=name, exitcode=code, **when)
            return False
        self.started.append(name)
        log.info("s6-rc oneshot done", service=name, **when)
        return True

    async def bring_down(self, names: Sequence[str]) -> None:
        """Those of `names` that started, each once all that depends on it is down: reverse
        dependency order."""
        chosen = [name for name in self.started if name in names]
        down = {name: anyio.Event() for name in chosen}
        dependents = {name: [other for other in chosen if name in self.plan.needs.get(other, ())]
                      for name in chosen}

        async def one(name: str) -> None:
            try:
                for dependent in dependents[name]:
                    await down[dependent].wait()
                await self._stop(name)
            except Exception as exc:  # noqa: BLE001 (the rest still stops)
                self.services.log.error("s6-rc service failed to stop", service=name, reason=repr(exc)[:500])
            finally:
                down[name].set()

        async with anyio.create_task_group() as group:
            for name in chosen:
                group.start_soon(one, name)

    async def _stop(self, name: str) -> None:
        definition = self.plan.definitions[name]
        log = self.services.log
        if definition.type == "oneshot":
            if not definition.down.strip():
                return
            try:
                argv = command_line(definition.down, name, self._execlineb())
            except CommandLineError as exc:
                log.error("s6-rc oneshot down cannot run", service=name, reason=str(exc))
                return
            if not argv:
                return
            log.info("s6-rc oneshot stopping", service=name)
            timeout = _timeout(definition.directory, "timeout-down") or int(self.stop_timeout * 1000)
            await self.scripts.run_script(os.path.join(definition.directory, "down"), name, timeout, argv,
                                          rc_name=name)
            return
        runner = self.runners.get(name)
        if runner is None:
            return
        if definition.consumer_for:
            # A logger: its producer is down. Its input is closed (what is left in the pipe is still
            # read by a logger that, like s6-log, finishes on SIGTERM), and it gets the stop
            # sequence at once, as s6-rc brings a consumer down right after its producer; waiting for
            # it to end by itself made a consumer that never reads its input hold the shutdown for
            # S6_SERVICES_GRACETIME.
            self.services.end_of_input(name)
        in_time, _stuck = await self.services.stop({name: runner})  # the table's one stop sequence
        if in_time:
            log.info("s6-rc longrun stopped", service=name)
        else:
            log.error("s6-rc longrun could not be stopped, going on", service=name)


def _timeout(directory: str, name: str) -> int:
    from ..base.files import read_small_text

    text = read_small_text(os.path.join(directory, name)) or ""
    return int(text) if text.isdecimal() and len(text) <= 10 else 0
