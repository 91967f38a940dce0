"""pycrond's running life: load and watch the crontab, schedule, report metrics, stop cleanly."""

from __future__ import annotations

import argparse
import os
import signal
from datetime import datetime, timezone
from typing import Any

import anyio
import anyio.to_thread

from .. import log
from ..output import OutputWriter
from ..reaper import Reaper, become_subreaper
from ..signames import signal_name
from . import metrics
from .jobs import JobProcesses
from .main import read_crontabs
from .runner import CronRunner, JobState, RealClock
from .watch import DirectoryWatch

HTTP_TIMEOUT = 5.0


class Pycrond:
    def __init__(self, args: argparse.Namespace, writer: OutputWriter, reaper: Reaper) -> None:
        self.args = args
        self.log = log.get()
        self.writer = writer
        self.reaper = reaper
        self.digest: str | None = None
        self.runner: CronRunner | None = None
        self.processes: JobProcesses | None = None
        self._pushing = False
        self._push_again = False
        self._group: anyio.abc.TaskGroup | None = None

    # --- the crontab ---------------------------------------------------------------

    def reload(self, why: str, boot: bool = False) -> None:
        assert self.runner is not None
        try:
            jobs, bad, digest = read_crontabs(self.args.crontab, datetime.now(timezone.utc))
        except OSError as exc:
            if boot and isinstance(exc, FileNotFoundError):
                return  # no crontab yet: serve() says we wait for one
            kept = len(self.runner.jobs)
            self.log.error("crontab unreadable, keeping the previous jobs", path=self.args.crontab,
                           reason=exc.strerror, jobs_kept=kept)
            return
        if digest == self.digest:
            return
        for line in bad:
            self.log.error("bad crontab line", file=line.source, line=line.line, reason=line.reason, text=line.text)
        if bad and not boot:
            self.log.error("crontab has errors, keeping the previous jobs", errors=len(bad),
                           jobs_kept=len(self.runner.jobs))
            self.digest = digest  # said once; a further edit is read again
            return
        self.digest = digest
        self.runner.load(jobs, boot=boot)
        self.log.info("crontab loaded", path=self.args.crontab, jobs=len(jobs), errors=len(bad), why=why)
        self.publish_metrics()

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
                await watcher.changed()
                await anyio.sleep(0.05)  # let an editor finish its rename dance
                self.reload("the crontab changed")
        finally:
            watcher.close()

    # --- metrics -------------------------------------------------------------------

    def job_finished(self, state: JobState) -> None:
        self.publish_metrics()

    def publish_metrics(self) -> None:
        if self.runner is None:
            return
        if self.args.metrics_file:
            try:
                metrics.write_atomically(self.args.metrics_file, metrics.render(self.runner.jobs))
            except OSError as exc:
                self.log.error("cannot write the metrics file", path=self.args.metrics_file, reason=exc.strerror)
        if self.args.pushgateway and self._group is not None:
            if self._pushing:
                self._push_again = True
            else:
                self._group.start_soon(self._push)

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

    async def serve_metrics(self) -> None:
        host, port = self.args.metrics_address
        listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        self.log.info("serving metrics", address=f"{host}:{port}")
        await listener.serve(self._http)

    async def _http(self, stream: Any) -> None:
        async with stream:
            request = b""
            with anyio.move_on_after(HTTP_TIMEOUT):
                while b"\r\n\r\n" not in request and b"\n\n" not in request and len(request) < 8192:
                    try:
                        request += await stream.receive(4096)
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        break
            parts = request.split(b" ", 2)
            path = parts[1].decode("latin-1") if len(parts) > 1 else ""
            if path.split("?")[0] == "/metrics" and self.runner is not None:
                body = metrics.render(self.runner.jobs).encode()
                head = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
            else:
                body, head = b"not found: try /metrics\n", b"HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n"
            try:
                with anyio.move_on_after(HTTP_TIMEOUT):
                    await stream.send(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass

    # --- signals and the end -----------------------------------------------------------

    async def signals(self, receiver: Any) -> None:
        assert self.runner is not None
        async for signum in receiver:
            if signum == signal.SIGCHLD:
                self.reaper.reap()
            elif signum in (signal.SIGTERM, signal.SIGINT):
                self.log.info("stopping", signal=signal_name(signum))
                self.runner.stop()
            else:
                self.digest = None  # an explicit reload reads and reports even an unchanged file
                self.reload(f"received {signal_name(signum)}")

    async def kill_leftovers(self) -> None:
        """As a subreaper, daemons that jobs left behind are our children: end them too."""
        import psutil

        for sig in (signal.SIGTERM, signal.SIGKILL):
            leftovers = psutil.Process().children(recursive=True)
            if not leftovers:
                return
            for child in leftovers:
                try:
                    child.send_signal(sig)
                except psutil.Error:
                    pass
            with anyio.move_on_after(self.args.kill_after):
                await self.reaper.wait_childless()


async def serve(args: argparse.Namespace) -> int:
    writer = OutputWriter()
    reaper = Reaper()
    daemon = Pycrond(args, writer, reaper)
    try:
        become_subreaper()
    except OSError:
        pass  # then a job's daemons re-parent to PID 1, which reaps them
    async with anyio.create_task_group() as root:
        root.start_soon(writer.run)
        log.route_to(lambda data: writer.write_nowait(2, data))
        with anyio.open_signal_receiver(signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGUSR2,
                                        signal.SIGHUP) as receiver:
            async with anyio.create_task_group() as group:
                daemon._group = group
                processes = JobProcesses(writer, reaper, daemon.log, group, args.json, args.kill_after,
                                         daemon.job_finished)
                daemon.processes = processes
                runner = CronRunner(RealClock(), processes.launch, daemon.log, args.overlapping)
                daemon.runner = runner
                group.start_soon(daemon.signals, receiver)
                daemon.log.info("starting", crontab=args.crontab, pid=os.getpid())
                daemon.reload("start", boot=True)
                if daemon.digest is None:
                    daemon.log.warning("no jobs yet: waiting for the crontab to appear", path=args.crontab)
                group.start_soon(daemon.watch)
                if getattr(args, "metrics_address", None):
                    group.start_soon(daemon.serve_metrics)
                await runner.run()
                await processes.shutdown(args.grace)
                await daemon.kill_leftovers()
                daemon.publish_metrics()
                daemon.log.info("stopped")
                group.cancel_scope.cancel()
        with anyio.move_on_after(1.0):
            await writer.flush()
        log.route_to_stderr()
        root.cancel_scope.cancel()
    return 0
