"""run_pid1: the root task group of pyinit: the output writer, the signal loop, the control server and the container.

Signal handlers only record (signalqueue's receiver); this loop turns each signal into
an action: SIGCHLD into a reap, SIGTERM/SIGINT/SIGQUIT into a shutdown request.
"""

from __future__ import annotations

import os
import signal
import socket
import traceback
from collections.abc import AsyncIterator, Callable
from contextlib import nullcontext
from typing import TYPE_CHECKING

import anyio

from .base.terms import EXIT_SYSTEM, signal_name
from .container import verdict
from .container.early import HeadStart, child_environment
from .container.stages import Stages
from .control.handlers import Handlers
from .control.protocol import VERBS
from .control.server import ControlListeners, ControlServer
from .core.settings import Settings
from .core.telemetry import ControlTally
from .logs import events as log
from .logs.events import Logger
from .logs.pyreports import route_loop_reports, route_python_reports
from .logs.writer import OutputWriter, write_all, write_if_room
from .proc.reaper import Reaper
from .proc.signals import DIVERTED_SIGNALS, HANDLED_SIGNALS, SignalReceiver, open_signal_receiver
from .proc.spawn import send_signal
from .s6.layout import Layout
from .s6.scanctl import serve_scan_control

if TYPE_CHECKING:  # mypy reads dataclasses; base/record builds them without importing dataclasses
    from dataclasses import replace
else:
    from .base.record import replace

if TYPE_CHECKING:
    from .metrics.page import PodMetrics  # imported at its first use: see _Metrics

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
FINAL_FLUSH_TIMEOUT = 1.0


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _signal_loop(signals: AsyncIterator[int], container: Stages, reaper: Reaper, logger: Logger) -> None:
    divert = container.settings.cmd_receive_signals
    async for signum in signals:
        try:
            if signum == signal.SIGCHLD:
                reaper.reap()
            elif divert and signum in DIVERTED_SIGNALS and container.main_pid is not None:
                logger.info("signal passed to the main program", signal=signal_name(signum), pid=container.main_pid)
                send_signal(container.main_pid, signum, group=False)
            elif signum in STOP_SIGNALS:
                container.request_shutdown(f"received {signal_name(signum)}")
            else:
                logger.info("signal ignored", signal=signal_name(signum))
        except Exception:  # noqa: BLE001 (the next signal must still be read)
            logger.error("signal handling failed", signal=signal_name(signum), traceback=traceback.format_exc())


def _catch_all_sink(settings: Settings, rundir: str, logger: Logger) -> Callable[[int, bytes], None]:
    """S6_LOGGING's catch-all log (1: all but the main program's output; 2: all):
    /var/log/s6-uncaught-logs, else under the runtime directory."""
    from .logs.logdir import DEFAULT_SCRIPT, DIRECTORY, CatchAllLog, parse_script

    keep, size, stamps, ignored = parse_script(settings.logging_script or DEFAULT_SCRIPT)
    if ignored:
        logger.warning("S6_LOGGING_SCRIPT directives pyinit does not apply", ignored=" ".join(ignored)[:200])
    for directory in (DIRECTORY, os.path.join(rundir, "uncaught-logs")):
        try:
            catch_all = CatchAllLog(directory, keep, size, stamps)
        except OSError as exc:
            logger.warning("catch-all log directory unusable", directory=directory, reason=exc.strerror)
            continue
        logger.info("S6_LOGGING: everything goes to the catch-all log from now on", directory=directory,
                    main_program="to the log" if settings.logging >= 2 else "to stdout and stderr")
        return catch_all.write
    logger.error("no catch-all log can be written: stdout and stderr it is")
    return write_all


class _Metrics:
    """The metrics page's maker, made (and its modules imported) at its first use: at start when an
    endpoint or a textfile is configured, else at the first `pysvstat --prometheus`."""

    def __init__(self, container: Stages, tally: ControlTally, directory: str, logger: Logger) -> None:
        self._args = (container.records, tally, directory, logger)  # plain records: metrics imports nothing of ours
        self._made: PodMetrics | None = None

    def get(self) -> PodMetrics:
        if self._made is None:
            from .metrics.page import PodMetrics

            self._made = PodMetrics(*self._args)
        return self._made

    def text(self) -> str:
        page: str = self.get().text()
        return page


async def _serve_metrics(metrics: PodMetrics, listener: socket.socket, logger: Logger) -> None:
    from .metrics.http import MetricsHttp

    try:
        await MetricsHttp(listener, metrics.page, logger).serve()
    except Exception:  # noqa: BLE001 (no metrics is no reason to stop the container)
        logger.error("metrics endpoint failed, no longer serving", traceback=traceback.format_exc())


async def run_pid1(
    settings: Settings, main_argv: list[str], rundir: str, listener: ControlListeners, is_pid1: bool, layout: Layout,
    metrics_listener: socket.socket | None = None, metrics_dir: str = "", head: HeadStart | None = None,
    receiver: SignalReceiver | None = None,
) -> int:
    """`head`: what the start path did already (container/early); `receiver`: the signals, recorded
    since the start path entered it."""
    logger = log.get()
    writer = OutputWriter(sink=_catch_all_sink(settings, rundir, logger)) if settings.logging >= 1 else OutputWriter()

    def on_orphan(pid: int, exitcode: int | None, signum: int | None) -> None:
        logger.debug("orphan reaped", pid=pid, exitcode=exitcode, signal=signum)

    reaper = Reaper(on_orphan)
    environment = head.environment if head is not None else child_environment(settings, layout, metrics_dir, logger)
    container = Stages(settings, reaper, writer, logger, is_pid1, environment, layout, head)
    said_starting = head is not None and head.said_starting
    async with anyio.create_task_group() as root:
        root.start_soon(writer.run)
        log.route_to(lambda data: writer.write_nowait(2, data))
        route_python_reports(logger)  # Python's own complaints, as events: PID 1's stderr stays ours
        route_loop_reports(logger)
        handled = HANDLED_SIGNALS + (DIVERTED_SIGNALS if settings.cmd_receive_signals else ())
        # not anyio's: it loses signals in a storm
        with nullcontext(receiver) if receiver is not None else open_signal_receiver(*handled) as signals:
            root.start_soon(_signal_loop, signals, container, reaper, logger)
            for problem in layout.problems if not said_starting else ():
                logger.warning(problem)
            root.start_soon(serve_scan_control, layout.control_fifos(), container, reaper.reap, logger)
            tally = ControlTally(VERBS)
            metrics = _Metrics(container, tally, metrics_dir, logger)
            handlers = Handlers(container.table, settings.control_timeout / 1000, metrics.text)
            server = ControlServer(listener, handlers, settings.control_group, settings.control_timeout, tally)
            root.start_soon(server.serve)
            if metrics_listener is not None:
                root.start_soon(_serve_metrics, metrics.get(), metrics_listener, logger)
                logger.info("serving metrics", address=_address(metrics_listener))
            if settings.metrics_file:
                container.metrics_changed = metrics.get().changed
                root.start_soon(metrics.get().keep_file_written, settings.metrics_file)
            if not said_starting:
                mode = "pid1" if is_pid1 else "subreaper"
                logger.info("starting", pid=os.getpid(), mode=mode, etc=settings.etc, rundir=rundir)
            reaper.reap()  # anything that died before our SIGCHLD handler existed
            try:
                code = await container.run(main_argv)
                the_verdict = container.verdict()
            except Exception as exc:  # noqa: BLE001 (PID 1 cannot go on: leave nothing behind, then exit)
                logger.critical("pyinit cannot go on, stopping everything", traceback=traceback.format_exc())
                code = EXIT_SYSTEM
                the_verdict = verdict.Verdict(f"pyinit cannot go on: {exc!r}", code)
                with anyio.CancelScope(shield=True):
                    await container.kill_everything()
            verdict.leave(settings.termination_log, replace(the_verdict, exit_code=code),
                          lambda event, reason: logger.warning(event, reason=reason))
            if settings.metrics_file:
                with anyio.move_on_after(FINAL_FLUSH_TIMEOUT):  # the last page: cont-finish's results, the exit
                    await metrics.get().write_file(settings.metrics_file)
            # stdout may be a pipe nobody reads: wait for it only this long, then abandon the writer.
            with anyio.move_on_after(FINAL_FLUSH_TIMEOUT):
                await writer.flush()
            unwritten = writer.unwritten
            log.route_to_stderr_if_room()
            root.cancel_scope.cancel()
    if unwritten:
        write_if_room(2, f"[pyinit] log output lost bytes={unwritten} reason=\"stdout or stderr blocked at exit\" "
                         "level=error\n".encode())
    return code
