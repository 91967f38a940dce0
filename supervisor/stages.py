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
from collections.abc import Sequence
from typing import Any

import anyio

from . import policy
from .config import Settings
from .logpipe import LogPipe
from .model import ServiceState, Verb, death_code
from .output import OutputWriter
from .reaper import Reaper
from .service import ServiceRunner, formatter_for
from .servicedir import is_executable_file, scan
from .spawn import exec_failure_code, signal_group, spawn


class Supervisor:
    """Holds the container-wide state; implements service.Runtime."""

    def __init__(self, settings: Settings, reaper: Reaper, writer: OutputWriter, log: Any, is_pid1: bool) -> None:
        self.settings = settings
        self.reaper = reaper
        self.writer = writer
        self.log = log
        self.log_format = settings.log_format
        self.services_gracetime = settings.services_gracetime / 1000
        self.is_pid1 = is_pid1
        self.services: dict[str, ServiceRunner] = {}
        self.exit_code = 0
        self.stopping = anyio.Event()
        self.main_pid: int | None = None
        self._script_pipes: list[LogPipe] = []

    # --- shutdown requests -----------------------------------------------------

    def request_shutdown(self, reason: str, exit_code: int | None = None) -> None:
        if self.stopping.is_set():
            self.log.info("already shutting down", reason=reason)
            return
        if exit_code is not None:
            self.exit_code = exit_code
        self.log.info("shutting down", reason=reason, exit_code=self.exit_code)
        self.stopping.set()

    def essential_bailed(self, name: str, exitcode: int) -> None:
        self.request_shutdown(f"essential service {name} bailed", exitcode)

    # --- one-shot scripts (cont-init.d, cont-finish.d) -------------------------

    async def run_script(self, path: str, source: str, timeout_ms: int = 0) -> int:
        """Run one script to completion, its output merged; return its fate as an exit code."""
        out = LogPipe(self.writer, 1, formatter_for(self, source, "stdout"), keep_write_end=False)
        err = LogPipe(self.writer, 2, formatter_for(self, source, "stderr"), keep_write_end=False)
        try:
            pid = spawn([path], cwd=os.path.dirname(path), stdout=out.write_fd, stderr=err.write_fd)
        except OSError as exc:
            out.close()
            err.close()
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
                signal_group(pid, signal.SIGKILL)
                await exited.wait()
        except BaseException:
            with anyio.CancelScope(shield=True):  # never leave it behind
                signal_group(pid, signal.SIGKILL)
                await exited.wait()
            raise
        out.drain()
        err.drain()
        return death_code(exited.exitcode, exited.signum)

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
        failures = []
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
            code = await self.run_script(path, source, timeout_ms)
            if code == 0:
                self.log.info("script done", script=source)
            else:
                level = "warning" if kind != "cont-init.d" or self.settings.behaviour_if_stage2_fails else "info"
                getattr(self.log, level)("script failed", script=source, exitcode=code)
                failures.append((source, code))
        return failures

    # --- services ----------------------------------------------------------------

    async def start_services(self, task_group: anyio.abc.TaskGroup) -> None:
        specs, skipped = scan(self.settings.dirs("services.d"), self.settings)
        for entry in skipped:
            self.log.warning("services.d entry skipped", entry=entry)
        for spec in specs:
            runner = ServiceRunner(spec, self)
            self.services[spec.name] = runner
            await task_group.start(runner.run)
        self.log.info("services started", count=len(specs))

    async def wait_services_ready(self) -> None:
        """For S6_CMD_WAIT_FOR_SERVICES: every normally-up service up and ready (or given up)."""

        def settled(state: ServiceState) -> bool:
            return state.bailed or state.ready_at is not None

        for runner in self.services.values():
            if runner.spec.normally_up:
                await runner.wait_until(settled)

    async def stop_services(self) -> None:
        for runner in self.services.values():
            runner.command(Verb.SHUTDOWN)
        for runner in self.services.values():
            await runner.wait_until(policy.is_settled_down)
            runner.drain()
        self.log.info("services stopped")

    # --- the main program (pyinit PROG ARGS...) -----------------------------------

    async def run_main_program(self, argv: Sequence[str]) -> None:
        try:
            pid = spawn(argv, new_session=False, search_path=True)
        except OSError as exc:
            self.log.error("main program could not start", program=argv[0], reason=exc.strerror)
            self.request_shutdown("main program could not start", exec_failure_code(exc))
            return
        self.main_pid = pid
        exited = self.reaper.watch_exit(pid)
        self.log.info("main program started", program=argv[0], pid=pid)
        await exited.wait()
        self.main_pid = None
        code = death_code(exited.exitcode, exited.signum)
        self.log.info("main program exited", exitcode=code)
        self.request_shutdown("main program exited", code)

    # --- the end -----------------------------------------------------------------

    def _signal_everyone(self, signum: int) -> None:
        if self.is_pid1:
            try:
                os.kill(-1, signum)  # every process of our PID namespace but us
            except ProcessLookupError:
                pass
            return
        import psutil  # only here: a subreaper must not kill(-1) a developer's whole session

        for child in psutil.Process().children(recursive=True):
            try:
                child.send_signal(signum)
            except psutil.Error:
                pass

    async def kill_everything(self) -> None:
        self.reaper.reap()
        if not self.reaper.has_children():
            return
        self.log.info("sending SIGTERM to remaining processes")
        self._signal_everyone(signal.SIGTERM)
        self._signal_everyone(signal.SIGCONT)
        with anyio.move_on_after(self.settings.kill_gracetime / 1000):
            await self.reaper.wait_childless()
            return
        self.log.warning("sending SIGKILL to remaining processes")
        self._signal_everyone(signal.SIGKILL)
        with anyio.move_on_after(1.0):
            await self.reaper.wait_childless()

    async def run(self, main_argv: Sequence[str]) -> int:
        """The whole container life; returns the exit code."""
        async with anyio.create_task_group() as services_group:
            stage2_ok = await self._stage2(services_group, main_argv)
            if stage2_ok:
                await self.stopping.wait()
            await self._stage3()
            services_group.cancel_scope.cancel()
        for runner in self.services.values():
            runner.close()
        for pipe in self._script_pipes:
            pipe.close()
        return self.exit_code

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
        failures = await self._cont_init()
        if failures is None:
            return False
        behaviour = self.settings.behaviour_if_stage2_fails
        if failures and behaviour == 1:
            self.log.warning("cont-init scripts failed, continuing", failed=", ".join(name for name, _ in failures))
        if failures and behaviour == 2:
            self.request_shutdown("a cont-init script failed", failures[0][1] or 1)
            return False
        await self.start_services(services_group)
        if main_argv:
            if self.settings.cmd_wait_for_services:
                maxtime = self.settings.cmd_wait_for_services_maxtime
                with anyio.move_on_after(maxtime / 1000 if maxtime else math.inf) as scope:
                    await self.wait_services_ready()
                if scope.cancelled_caught:
                    self.request_shutdown("services were not ready in time", 1)
                    return True
            services_group.start_soon(self.run_main_program, list(main_argv))
        return True

    async def _stage3(self) -> None:
        if not self.settings.finish_after_services:
            await self.run_scripts("cont-finish.d", self.settings.kill_finish_maxtime)
        if self.main_pid is not None:
            _kill(self.main_pid, signal.SIGTERM)
        await self.stop_services()
        if self.settings.finish_after_services:
            await self.run_scripts("cont-finish.d", self.settings.kill_finish_maxtime)
        await self.kill_everything()
        self.log.info("exiting", exit_code=self.exit_code)


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
