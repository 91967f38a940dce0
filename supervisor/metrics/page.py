"""pyinit's metrics page and where it goes: the HTTP endpoint, the textfile, pysvstat --prometheus.

The page is pyinit's own families (podmetrics) followed by the metrics files that
services drop into $PYS6_METRICS_DIR (pycrond's among them), merged so that the
pod needs one scrape target. The textfile is rewritten when something changed
(a service, a stage, a file in that directory), at most once a second, and once
more at exit: nothing runs while nothing changes.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from ..base.files import read_regular_file, write_atomically
from ..core.telemetry import ControlTally, PodRecords
from . import promtext
from . import render as podmetrics
from .process import process_figures

if TYPE_CHECKING:
    from ..logs.events import Logger

MAX_FILES = 64
MAX_SKIPPED_REPORTED = 8  # names past MAX_FILES shown in pys6_metrics_file_rejected_lines
MAX_FILE_BYTES = 1 << 20
MAX_TOTAL_BYTES = 4 << 20
FILE_MIN_INTERVAL = 1.0
RESERVED_PREFIXES = ("pys6_", "process_")  # pyinit's own families: a service's file cannot shadow them
HOME_PAGE = (b"<html><head><title>pyinit</title></head><body><h1>pyinit</h1>"
             b"<p><a href='/metrics'>Metrics</a></p></body></html>\n")


class ServicesFiles:
    """The services' metrics files (*.prom, regular files, never links, in name order), merged; what is wrong
    is counted.

    Parsed again only when the listing or a file's inode, size or time changed, so a scrape of an
    unchanged directory costs a stat per file; at most MAX_TOTAL_BYTES are parsed in all, which
    bounds the time one render holds PID 1's loop (about 85 ms a MiB).
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._key: tuple[tuple[tuple[object, ...], ...], tuple[str, ...]] | None = None
        self._merged = promtext.Merged()

    def read(self) -> promtext.Merged:
        if not self.directory:
            return self._merged  # none could be used: nothing to serve
        # No link is followed, the directory's own included: pyinit may be root, and a *.prom link
        # to a root-only file of `name value` lines (or the directory swapped for a link to another
        # directory) would serve it. Each file is then opened relative to this descriptor.
        try:
            directory: int | None = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                            | os.O_CLOEXEC)
        except OSError:
            directory = None  # gone, or now a link: nothing to serve
        try:
            return self._read(directory)
        finally:
            if directory is not None:
                os.close(directory)

    def _read(self, directory: int | None) -> promtext.Merged:
        try:
            listing = os.listdir(directory) if directory is not None else []
        except OSError:
            listing = []
        names = sorted(n for n in listing if n.endswith(".prom") and not n.startswith("."))
        # Past MAX_FILES, a few names are reported and none is looked at: a service that makes
        # 100,000 files costs a listing, not 100,000 stats and as many series.
        skipped = names[MAX_FILES:MAX_FILES + MAX_SKIPPED_REPORTED]
        names = names[:MAX_FILES]
        key = (tuple(self._identity(directory, name) for name in names), tuple(skipped))
        if key != self._key:
            self._merged, self._key = self._merge(directory, names), key
            self._merged.rejected.update(dict.fromkeys(skipped, -1))  # not read at all
        return self._merged

    @staticmethod
    def _identity(directory: int | None, name: str) -> tuple[object, ...]:
        try:
            info = os.stat(name, dir_fd=directory, follow_symlinks=False)
        except OSError:
            return (name,)
        return name, info.st_ino, info.st_size, info.st_mtime_ns

    @staticmethod
    def _merge(directory: int | None, names: list[str]) -> promtext.Merged:
        merged = promtext.Merged()
        budget = MAX_TOTAL_BYTES
        for name in names:
            try:
                data = read_regular_file(name, min(MAX_FILE_BYTES, budget), dir_fd=directory, follow_symlinks=False)
            except FileNotFoundError:
                continue  # replaced between the listing and the read
            except OSError:
                merged.rejected[name] = -1
                continue
            budget -= len(data)
            promtext.merge(merged, name, data.decode("utf-8", "replace"), RESERVED_PREFIXES)
        return merged


class PodMetrics:
    """Reads the pod's records into one page; owns the textfile writer.

    `records` is called at each render: whoever holds the services (root.py wires it)
    hands plain records, and metrics imports nothing of the container.
    """

    def __init__(self, records: Callable[[], PodRecords], control: ControlTally, directory: str,
                 log: Logger) -> None:
        self.records = records
        self.control = control
        self.directory = directory
        self.services_files = ServicesFiles(directory)
        self.log = log
        self._dirty: anyio.Event | None = None  # set when the textfile is out of date

    def figures(self, rejected: dict[str, int], with_process: bool = True) -> podmetrics.PodFigures:
        pod = self.records()
        return podmetrics.PodFigures(pod.services, pod.stage, pod.stages, self.control, pod.orphans_reaped, rejected,
                                     process_figures() if with_process else {})

    def text(self, with_process: bool = True) -> str:
        dropins = self.services_files.read()
        own = podmetrics.render(self.figures(dropins.rejected, with_process), anyio.current_time(), time.time())
        return own + dropins.text()

    def page(self, path: str) -> tuple[str, bytes] | None:
        if path == "/metrics":
            return promtext.CONTENT_TYPE, self.text().encode()
        if path in ("/health", "/healthz"):
            return "text/plain; charset=utf-8", b"OK\n"
        if path == "/":
            return "text/html; charset=utf-8", HOME_PAGE
        return None

    # --- the textfile ---------------------------------------------------------------------

    def changed(self) -> None:
        if self._dirty is not None:
            self._dirty.set()

    async def keep_file_written(self, path: str) -> None:
        """Rewrite `path` after each change (at most once a second); the directory's changes count too."""
        self._dirty = anyio.Event()
        self._dirty.set()
        async with anyio.create_task_group() as group:
            group.start_soon(self._watch_dropins)
            while True:
                await self._dirty.wait()
                self._dirty = anyio.Event()
                await self.write_file(path)
                await anyio.sleep(FILE_MIN_INTERVAL)

    async def write_file(self, path: str) -> None:
        try:
            # Not process_*: node-exporter has its own, and a textfile's would collide with them
            # (its every scrape then logs "collected before with the same name"); they describe the
            # process that serves a page, and a file has none.
            text = self.text(with_process=False)
            await anyio.to_thread.run_sync(write_atomically, path, text, ".pys6-metrics-", abandon_on_cancel=True)
        except OSError as exc:
            self.log.error("cannot write the metrics file", path=path, reason=exc.strerror or str(exc))
        except Exception:  # noqa: BLE001 (metrics are never worth PID 1)
            self.log.error("metrics file failed", path=path, traceback=traceback.format_exc())

    async def _watch_dropins(self) -> None:
        from ..base.dirwatch import DirectoryWatch

        if not self.directory:
            return

        try:
            watch = DirectoryWatch(self.directory)
        except OSError as exc:
            self.log.warning("services' metrics files not watched: the textfile follows pyinit's own changes only",
                             directory=self.directory, reason=exc.strerror)
            return
        try:
            while True:
                await watch.changed()
                self.changed()
        except Exception as exc:  # noqa: BLE001 (an inotify read that fails must not reach PID 1's root)
            self.log.warning("services' metrics files no longer watched", directory=self.directory,
                             reason=str(exc))
        finally:
            watch.close()

