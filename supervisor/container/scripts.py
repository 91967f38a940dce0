"""One-shot scripts (cont-init.d, cont-finish.d, S6_STAGE2_HOOK, s6-rc's oneshots) and the
main program (pyinit PROG ARGS...): run to completion, their output through pyinit's writer."""

from __future__ import annotations

import math
import os
import signal
from collections.abc import Callable, Sequence

import anyio

from ..base.terms import EXIT_SYSTEM, death_code, exec_failure_code
from ..core.service import formatter_for, output_for
from ..core.servicedir import is_executable_file
from ..core.services import STOP_MARGIN, ServiceTable
from ..core.settings import Settings
from ..core.telemetry import StageRecord
from ..logs.events import TIME_KEY
from ..logs.pipe import DirectOutput, LogPipe, Output
from ..proc.reaper import ChildExit
from ..proc.spawn import Child, send_signal, spawn_child
from ..s6.childenv import main_program_environment
from .early import LEGACY_CONT_INIT as LEGACY_CONT_INIT  # s6-overlay's oneshot: cont-init.d and cont-finish.d
from .early import EarlyScript, place
from .shutdown import Shutdown

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..proc.spawn import OutputPipe


class Scripts:
    """Runs scripts and the main program; keeps their pipes (closed at the end) and their records."""

    def __init__(self, settings: Settings, table: ServiceTable, shutdown: Shutdown,
                 changed: Callable[[], None]) -> None:
        self.settings = settings
        self.table = table  # the writer, the reaper, the environment, the log format: the services'
        self.log = table.log
        self.shutdown = shutdown
        self.changed = changed  # the metrics are out of date
        self.stage_records: list[StageRecord] = []  # cont-init, then cont-finish, for the metrics
        self.main_pid: int | None = None
        self._main_recorded: anyio.Event | None = None  # set once the main program's end is recorded
        self._main_exit = ChildExit()
        self._pipes_made: list[OutputPipe] = []  # closed at the end, whatever still holds them
        # s6-rc's oneshot runner's directory (s6/layout), where s6-overlay runs every oneshot and
        # cont-init.d/cont-finish.d script; None: each runs in its own directory
        self.oneshot_directory: str | None = None
        # the stage-2 hook or cont-init.d's first script, started before the loop (container/early)
        self.early: list[EarlyScript] = []

    def _pipes(self, source: str) -> tuple[Callable[[], Output], Callable[[], Output]]:
        """The makers of a one-shot's two log pipes (stdout's, stderr's; raw: PID 1's own fds, see
        core.service.output_for): proc.spawn_child makes them."""

        def pipe(fd: int) -> Callable[[], Output]:
            return lambda: output_for(self.table, source, fd, keep_write_end=False)

        return pipe(1), pipe(2)

    def _place(self, path: str, rc_name: str | None, shell: bool) -> tuple[str, dict[bytes, bytes]]:
        """Where a script runs and its environment. Run as s6-rc runs oneshots (`rc_name`): in
        the oneshot runner's directory with RC_NAME, plus, from s6-overlay's /bin/sh loop
        (`shell`, cont-init.d and cont-finish.d), the PWD that shell exports; else in its own
        directory with the children's environment."""
        env = dict(self.table.child_environment())  # a copy of our own to add to
        try:
            return place(env, path, rc_name, shell, self.oneshot_directory), env
        except OSError:  # the directory cannot be resolved: spawning there fails and says so
            return place(env, path, rc_name, False, self.oneshot_directory), env

    def take_early(self, kind: str, name: str = "") -> EarlyScript | None:
        """The next script the start path started, when it is `kind`'s ("hook", "cont-init.d") and,
        for cont-init.d, `name`; for an s6-rc "oneshot", the one named `name`, whatever its place; once."""
        for index, script in enumerate(self.early):  # s6-rc's oneshots may come between two cont-init scripts
            if script.kind == kind and (script.name == name or kind != "oneshot"):
                return self.early.pop(index) if script.name == name else None
        return None

    def _first_early(self, kind: str) -> EarlyScript | None:
        return next((script for script in self.early if script.kind == kind), None)

    def _adopt(self, early: EarlyScript, source: str) -> Child:
        """The script the start path started (container/early): its pipes become LogPipes (raw:
        PID 1's own fds, as output_for gives them), read from now on; the reaper watches it already."""
        assert early.exited is not None  # Stages watched it before the loop's first reap
        pipes: tuple[Output, ...]
        if early.fds is None:
            pipes = (DirectOutput(1), DirectOutput(2))
        else:
            pipes = tuple(LogPipe(self.table.writer, fd, formatter_for(self.table, source, stream), False,
                                  fds=(read_fd, -1))
                          for fd, stream, read_fd in ((1, "stdout", early.fds[0]), (2, "stderr", early.fds[1])))
        for pipe in pipes:
            pipe.start()
        return Child(early.pid, early.exited, pipes)

    async def run_script(self, path: str, source: str, timeout_ms: int = 0, argv: list[str] | None = None,
                         rc_name: str | None = None, shell: bool = False, early: EarlyScript | None = None) -> int:
        """Run one script (or `argv`, from `path`'s directory) to completion, its output merged;
        return its fate as an exit code. `rc_name`, `shell`: see _place; `early`: that script,
        already started (container/early), adopted instead."""
        try:
            if early is not None:
                if early.error is not None:
                    raise early.error  # it could not be executed: said below, as for any script
                child = self._adopt(early, source)
            else:
                cwd, env = self._place(path, rc_name, shell)
                # PYS6_GROUP_SIGNALS=0: in pyinit's session and group, as s6-rc's runner leaves them
                # under s6-overlay; else a session of its own, so a timeout kills what it started too
                child = spawn_child(argv or [path], self.table.reaper, self._pipes(source), cwd=cwd,
                                    env=env, search_path=argv is not None, new_session=self.settings.group_signals)
        except OSError as exc:  # any errno, EMFILE from the pipes included
            self.log.error("script could not start", script=source, reason=exc.strerror)
            return exec_failure_code(exc)
        pid, exited = child.pid, child.exited
        # The pipes outlive the script while something it started still holds them.
        self._pipes_made += child.pipes
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
        child.drain()
        if not exited.done:
            return EXIT_SYSTEM
        return death_code(exited.exitcode, exited.signum)

    async def _kill_script(self, pid: int, source: str, exited: ChildExit) -> None:
        """SIGKILL its group (PYS6_GROUP_SIGNALS=0: it has none of its own, the pid) and wait for
        it, but not for ever: a kill can fail (EPERM)."""
        failure = send_signal(pid, signal.SIGKILL, group=self.settings.group_signals)
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
            # the start path's listing, taken before its first script ran, as s6-overlay's loop takes it
            first = self._first_early(kind)
            names = first.names if first is not None else sorted(os.listdir(os.fsencode(directory)))
        except FileNotFoundError:
            return []
        except OSError as exc:
            self.log.error("cannot read scripts directory", directory=directory, reason=exc.strerror)
            return [(directory, EXIT_SYSTEM)]
        failures: list[tuple[str, int]] = []
        record = StageRecord(kind.removesuffix(".d"))
        self.stage_records.append(record)
        stage_started = anyio.current_time()  # the loop's clock: time.monotonic(), as the start path's
        first = self._first_early(kind)
        if first is not None:
            stage_started = first.stage_started
        try:
            await self._run_each(names, directory, kind, timeout_ms, record, failures)
        finally:
            record.seconds, record.done = anyio.current_time() - stage_started, True
            self.changed()
        return failures

    async def _run_each(self, names: list[bytes], directory: str, kind: str, timeout_ms: int, record: StageRecord,
                        failures: list[tuple[str, int]]) -> None:
        for raw in names:
            name = os.fsdecode(raw)
            path = os.path.join(directory, name)
            source = f"{kind}/{name}"
            if os.path.isdir(path) or name.startswith("."):
                continue
            early = self.take_early(kind, name)  # started by the start path: whatever it has become since
            if early is None and not is_executable_file(path):
                self.log.warning("script is not executable, skipped", script=source)
                continue
            if early is not None:
                started = early.started
                if not early.said:  # said now, after the lines of the one before, with its own time
                    self.log.info("script starting", script=source, **{TIME_KEY: early.started_at})
            else:
                self.log.info("script starting", script=source)
                started = anyio.current_time()
            # s6-overlay runs them from its legacy-cont-init oneshot's up (cont-init) and down
            # (cont-finish), both /bin/sh loops
            if early is not None:
                code = await self.run_script(path, source, timeout_ms, rc_name=LEGACY_CONT_INIT, shell=True,
                                             early=early)
            else:
                code = await self.run_script(path, source, timeout_ms, rc_name=LEGACY_CONT_INIT, shell=True)
            ended, when = anyio.current_time(), {}
            if early is not None and early.result is not None:  # it ended before the loop ran: then
                ended, when = early.ended, {TIME_KEY: early.ended_at}
            record.scripts.append((name, code, ended - started))
            self.changed()
            if code == 0:
                self.log.info("script done", script=source, **when)
            else:
                level = "warning" if kind != "cont-init.d" or self.settings.behaviour_if_stage2_fails else "info"
                getattr(self.log, level)("script failed", script=source, exitcode=code, **when)
                failures.append((source, code))

    # --- the main program (pyinit PROG ARGS...) -----------------------------------

    def _main_program_output(self) -> tuple[tuple[Callable[[], Output], ...], int | None]:
        """Where PROG writes: pyinit's own stdout and stderr; with S6_LOGGING=2 pipes to the
        catch-all log, unless S6_CMD_USE_TERMINAL asks for the terminal on stdin (s6-overlay's
        `redirfd -w 1 $(tty) fdmove -c 2 1`): then that terminal, both streams."""
        if self.settings.logging < 2:
            return (), None
        if self.settings.cmd_use_terminal and os.isatty(0):
            return (), os.open(os.ttyname(0), os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
        return self._pipes("main"), None

    async def run_main_program(self, argv: Sequence[str]) -> None:
        terminal: int | None = None
        try:
            pipes, terminal = self._main_program_output()
            child = spawn_child(argv, self.table.reaper, pipes, stdout=terminal, stderr=terminal, new_session=False,
                                search_path=True, keep_stdin=True, env=main_program_environment(
                                    dict(self.table.child_environment()), os.environb.get(b"PWD")))
        except OSError as exc:
            if terminal is not None:
                os.close(terminal)
            self.log.error("main program could not start", program=argv[0], reason=exc.strerror)
            self.shutdown.request("main program could not start", exec_failure_code(exc))
            return
        if terminal is not None:
            os.close(terminal)
        self._pipes_made += child.pipes
        self.main_pid = child.pid
        self._main_recorded = recorded = anyio.Event()
        self._main_exit = child.exited
        self.log.info("main program started", program=argv[0], pid=child.pid)
        try:
            await child.exited.wait()
            child.drain()
            self.main_pid = None
            code = death_code(child.exited.exitcode, child.exited.signum)
            self.log.info("main program exited", exitcode=code)
            if self.shutdown.stopping.is_set():
                # The shutdown ended it (SIGTERM, halt, a bail): as under s6-overlay, whose rc.init
                # dies beside it and never writes its code, the container keeps the one it had: 0,
                # a bail's or a failed stage's, or what a script left in the exitcode file.
                return
            self.shutdown.request("main program exited", code)
        finally:
            recorded.set()

    async def main_program_recorded(self, timeout: float) -> None:
        """Until a main program's end is recorded (it died in stage 3's last kill a moment ago: its
        task has yet to run), at most `timeout` seconds; at once when there is none, or it did not die."""
        if self._main_recorded is None or self._main_recorded.is_set() or not self._main_exit.done:
            return  # none, recorded, or it outlived SIGKILL (another uid's?): nothing to wait for
        with anyio.move_on_after(timeout):
            await self._main_recorded.wait()

    def close(self) -> None:
        for pipe in self._pipes_made:
            pipe.close()
        for early in self.early:  # never adopted: a shutdown came first
            for fd in early.fds or ():
                os.close(fd)
        self.early = []
