"""pycrond's running life: load and watch the crontab, schedule, report metrics, stop cleanly."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import traceback
from datetime import datetime, timezone

import anyio
import anyio.to_thread

from ..base.dirwatch import DirectoryWatch
from ..base.terms import wait_status
from ..logs import events as log
from ..logs.events import Logger
from ..logs.pyreports import route_loop_reports, route_python_reports
from ..logs.writer import OutputWriter
from ..metrics.http import MetricsHttp, listen
from ..metrics.promtext import CONTENT_TYPE
from ..proc.killall import kill_everyone
from ..proc.reaper import Reaper, become_subreaper
from ..proc.signals import SignalReceiver, open_signal_receiver
from . import metrics
from .heartbeat import Pulse
from .jobs import JobProcesses
from .load import parse_crontab_texts, read_crontab_texts
from .logrus import go_reason, go_signal_word
from .scheduler import JobState, RealClock, Scheduler
from .statusfile import StatusFile, edit_refused, missing, refused_at_start, unreadable

RELOAD_ANNOUNCEMENT = f"received {go_signal_word(signal.SIGUSR2)}, reloading crontab"
# An edit seen by the watch. supercronic watches only with -inotify, and then signals itself, so its
# line names SIGUSR2: with -inotify pycrond says that too; otherwise (its own watch) what happened.
EDIT_ANNOUNCEMENT = "crontab file changed, reloading crontab"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)  # supercronic's
HOME_PAGE = (b"<html>\n<head><title>Supercronic</title></head>\n<body>\n<h1>Supercronic</h1>\n"
             b"<p><a href='/metrics'>Metrics</a></p>\n</body>\n</html>")


class Pycrond:
    def __init__(self, args: argparse.Namespace, writer: OutputWriter, reaper: Reaper) -> None:
        self.args = args
        self.log = log.get()
        self.writer = writer
        self.reaper = reaper
        self.digest: str | None = None
        self.fatal = False  # supercronic's log.Fatal: the crontab was refused at start
        self.runner: Scheduler | None = None
        self.processes: JobProcesses | None = None
        self._pushing = False
        self._push_again = False
        self._group: anyio.abc.TaskGroup | None = None
        self._reloading = anyio.Lock()
        self.status = StatusFile(args.status_file, self.log)

    # --- the crontab ---------------------------------------------------------------

    def reload_soon(self, announce: str, *, force: bool = False) -> None:
        """Reload in a task of its own, so that SIGTERM is read at once even while a crontab is parsed."""
        if self._group is not None:
            self._group.start_soon(self.reload, announce, False, force)

    async def reload(self, announce: str | None, boot: bool = False, force: bool = False) -> None:
        async with self._reloading:  # one at a time, in the order asked
            try:
                await self._reload(announce, boot, force)
            except Exception:  # noqa: BLE001 (a crontab must never end pycrond)
                self.log.error("crontab reload failed, keeping the previous jobs", traceback=traceback.format_exc())

    async def _reload(self, announce: str | None, boot: bool, force: bool) -> None:
        """Read and apply the crontab. `announce` is said once the content is known to have changed."""
        assert self.runner is not None
        path = self.args.crontab
        try:
            texts, digest = await anyio.to_thread.run_sync(read_crontab_texts, path, abandon_on_cancel=True)
        except OSError as exc:
            if boot and not self.args.keep_going:
                self.log.critical(f"open {path}: {go_reason(exc)}")
                self.fatal = True
            elif boot and isinstance(exc, FileNotFoundError):
                self.status.say(missing(path))  # serve() says in the log that we wait for one
            else:
                self.log.error("crontab unreadable, keeping the previous jobs", path=path, reason=go_reason(exc),
                               jobs_kept=len(self.runner.jobs))
                self.status.say(missing(path) if self.digest is None and isinstance(exc, FileNotFoundError)
                                else unreadable(go_reason(exc), len(self.runner.jobs)))
            return
        if digest == self.digest and not force:
            return  # compared before parsing: an unchanged file costs one read
        if announce:
            self.log.info(announce)
        self.log.info(f"read crontab: {path}")
        parsed = await anyio.to_thread.run_sync(parse_crontab_texts, texts, datetime.now(timezone.utc),
                                                abandon_on_cancel=True)
        for notice in parsed.notices:
            getattr(self.log, notice.level)(notice.message)
        for line in parsed.bad:
            self.log.error("bad crontab line", file=line.source, line=line.line, reason=line.reason, text=line.text)
        if parsed.bad and boot and not self.args.keep_going:
            self.log.critical(parsed.bad[0].supercronic_message)
            self.fatal = True
            return
        if parsed.bad and not boot:
            self.log.error("crontab has errors, keeping the previous jobs", errors=len(parsed.bad),
                           jobs_kept=len(self.runner.jobs))
            self.digest = digest  # said once; a further edit is read again
            self.status.say(edit_refused(len(parsed.bad), len(self.runner.jobs), path))
            return
        self.digest = digest
        self.runner.load(parsed.jobs, boot=boot)
        self.log.info("crontab loaded", jobs=len(parsed.jobs), errors=len(parsed.bad))
        self.status.say(refused_at_start(len(parsed.bad), path) if parsed.bad else "")
        self.publish_metrics()

    def _watched_names(self) -> set[str] | None:
        """The names in the watched directory whose change can change the crontab (None: any)."""
        path = self.args.crontab
        if os.path.isdir(path):
            return None
        name = os.path.basename(path)
        names = {name}
        try:
            target = os.readlink(path)
        except OSError:
            return names
        if not os.path.isabs(target):  # Kubernetes: crontab -> ..data/crontab, and ..data is swapped
            names.add(target.split("/", 1)[0])
        return names

    async def watch(self) -> None:
        path = self.args.crontab
        directory = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
        try:
            watcher = DirectoryWatch(directory)
        except OSError as exc:
            self.log.warning("cannot watch the crontab; edits apply on SIGUSR2", reason=str(exc))
            return
        try:
            while True:
                await watcher.changed(self._watched_names)
                self.log.debug("watched file changed")
                await anyio.sleep(0.05)  # let an editor finish its rename dance
                await self.reload(RELOAD_ANNOUNCEMENT if self.args.inotify else EDIT_ANNOUNCEMENT)
        finally:
            watcher.close()

    # --- metrics -------------------------------------------------------------------

    def job_finished(self, state: JobState) -> None:
        self.publish_metrics()

    def job_started(self, state: JobState) -> None:
        """The file only (a textfile reader sees it running, its last start, its next run); pushes stay
        one per run, after it."""
        if self.runner is not None and self.args.metrics_file:
            self._write_metrics_file()

    def publish_metrics(self) -> None:
        if self.runner is None:
            return
        if self.args.metrics_file:
            self._write_metrics_file()
        if self.args.pushgateway and self._group is not None:
            if self._pushing:
                self._push_again = True
            else:
                self._group.start_soon(self._push)

    def _write_metrics_file(self) -> None:
        assert self.runner is not None
        try:
            metrics.write_atomically(self.args.metrics_file, metrics.render(self.runner.jobs))
        except OSError as exc:
            self.log.error("cannot write the metrics file", path=self.args.metrics_file, reason=exc.strerror)

    async def _push(self) -> None:
        assert self.runner is not None
        self._pushing = True
        try:
            while True:
                self._push_again = False
                text = metrics.render(self.runner.jobs)
                try:
                    await anyio.to_thread.run_sync(metrics.push, self.args.pushgateway, text,
                                                   self.args.push_timeout, abandon_on_cancel=True)
                except Exception as exc:  # noqa: BLE001 (any failure of the gateway is only logged)
                    self.log.warning("pushgateway push failed", url=self.args.pushgateway, reason=str(exc))
                if not self._push_again:
                    return
        finally:
            self._pushing = False

    async def listen_for_metrics(self) -> socket.socket | None:
        """Bind before the first job runs: an address that cannot be had ends pycrond, as in supercronic."""
        host, port = self.args.metrics_address
        try:
            listener = listen(host, port)
        except OSError as exc:
            self.log.critical(f"prometheus http startup failed: listen tcp {host}:{port}: {go_reason(exc)}")
            self.fatal = True
            return None
        self.log.info("serving metrics", address=f"{host}:{port}")
        return listener

    async def serve_metrics(self, listener: socket.socket) -> None:
        try:
            await MetricsHttp(listener, self._page, self.log).serve()
        except Exception as exc:  # noqa: BLE001 (no metrics is no reason to stop running jobs)
            self.log.error("cannot serve metrics", reason=str(exc))

    def _page(self, path: str) -> tuple[str, bytes]:
        if path == "/metrics" and self.runner is not None:
            return CONTENT_TYPE, metrics.render(self.runner.jobs).encode()
        if path == "/health":
            return "text/plain; charset=utf-8", b"OK"
        return "text/html; charset=utf-8", HOME_PAGE  # supercronic answers every other path with its page

    # --- signals and the end -----------------------------------------------------------

    async def signals(self, receiver: SignalReceiver) -> None:
        assert self.runner is not None
        async for signum in receiver:
            if signum == signal.SIGCHLD:
                self.reaper.reap()
            elif signum in STOP_SIGNALS:
                self.log.info(f"received {go_signal_word(signum)}, shutting down")
                self.runner.stop()
            else:  # an explicit reload reads and reports even an unchanged file
                self.reload_soon(RELOAD_ANNOUNCEMENT, force=True)

    async def kill_leftovers(self) -> None:
        """As a subreaper, daemons that jobs left behind are our children: end them too. Only our
        descendants, even as PID 1 (a `docker exec`'s shell is not ours to end), said nowhere."""
        await kill_everyone(self.reaper, False, self.args.kill_after, self.args.kill_after, wake_stopped=False)


def start_reaping(args: argparse.Namespace, logger: Logger) -> None:
    """Adopt the orphans of the jobs (as supercronic does as PID 1; pycrond as a subreaper anywhere)."""
    if args.no_reap:
        return
    try:
        if os.getpid() != 1:
            become_subreaper()
        logger.info("reaping dead processes")
    except OSError:
        logger.warning("process reaping disabled, not pid 1")


async def serve(args: argparse.Namespace) -> int:
    writer = OutputWriter()
    daemon_log = log.get()

    def orphan_reaped(pid: int, exitcode: int | None, signum: int | None) -> None:
        # the raw status, as Go prints it
        daemon_log.warning(f"reaper cleanup: pid={pid}, wstatus={wait_status(exitcode, signum)}")

    reaper = Reaper(on_orphan=orphan_reaped)
    daemon = Pycrond(args, writer, reaper)
    async with anyio.create_task_group() as root:
        root.start_soon(writer.run)
        if args.split_logs:
            log.route_to(lambda data: writer.write_nowait(2, data), lambda data: writer.write_nowait(1, data))
        else:  # supercronic's lines all go to stderr
            log.route_to(lambda data: writer.write_nowait(2, data))
        route_python_reports(daemon.log)  # Python's own complaints, as log lines of ours
        route_loop_reports(daemon.log)
        start_reaping(args, daemon.log)
        if args.inotify:
            daemon.log.info("using inotify to detect crontab file changes")
            daemon.log.info(f"adding file watch for '{args.crontab}'")
        # Not SIGHUP: as for supercronic, it ends pycrond (its supervisor restarts it).
        with open_signal_receiver(signal.SIGCHLD, *STOP_SIGNALS, signal.SIGUSR2) as receiver:  # never loses one
            async with anyio.create_task_group() as group:
                daemon._group = group
                processes = JobProcesses(writer, reaper, daemon.log, group, args, daemon.job_finished, daemon.job_started)
                daemon.processes = processes
                pulse = Pulse(daemon.log, args.heartbeat_file, args.heartbeat_interval, args.notify_fd) \
                    if args.heartbeat_file or args.notify_fd is not None else None
                runner = Scheduler(RealClock(), processes.launch, daemon.log, args.overlapping,
                                   pulse.beat if pulse is not None else None)
                daemon.runner = runner
                group.start_soon(daemon.signals, receiver)
                listener = await daemon.listen_for_metrics() if args.metrics_address else None
                if not daemon.fatal:
                    await daemon.reload(None, boot=True)
                if daemon.fatal:
                    runner.stop()
                elif daemon.digest is None:
                    daemon.log.warning("no jobs yet: waiting for the crontab to appear", path=args.crontab)
                group.start_soon(daemon.watch)
                if listener is not None:
                    group.start_soon(daemon.serve_metrics, listener)
                await runner.run()
                if not daemon.fatal:
                    daemon.log.info("waiting for jobs to finish")
                await processes.shutdown(args.grace)
                await daemon.kill_leftovers()
                daemon.publish_metrics()
                if not daemon.fatal:
                    daemon.log.info("exiting")
                group.cancel_scope.cancel()
        with anyio.move_on_after(1.0):
            await writer.flush()
        log.route_to_stderr_if_room()  # a wedged stderr must not hold up pycrond's exit
        root.cancel_scope.cancel()
    return 1 if daemon.fatal else 0
