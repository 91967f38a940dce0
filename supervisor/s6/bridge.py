"""s6-supervise's on-disk interface for every service of the table, so s6-svc, s6-svstat and
s6-svwait work on pys6's services.

Each service's supervise directory is made just before it starts, as s6-supervise makes its
own (a run script may use s6-notifyoncheck, s6-svc or s6-svwait at once); every change of a
service's state is written to its status file and announced to its event listeners; each
letter written to its supervise/control FIFO becomes an order given to the service table's one
path (core/services.ServiceTable.apply), exactly as the control socket's are: the same check,
the same forensics before force, the same log event's place.

Once closed (the container is exiting) the bridge writes nothing more: a service's last
change, or a letter still queued, no longer races the directories' closing.
"""

from __future__ import annotations

import os
import signal
import time

import anyio

from ..base.terms import signal_name
from ..control.protocol import SIGNAL_LETTERS, STATE_LETTERS
from ..core.model import ServiceSpec, ServiceState
from ..core.services import ServiceTable, Signal, StateChange
from ..logs.events import Logger
from . import status as s6status
from .layout import Layout
from .supervisedir import ControlFifos, SuperviseDir, make_supervise_dir


class S6Bridge:
    """Listens to the table (a service started, changed, changed its down file) and serves the FIFOs."""

    def __init__(self, table: ServiceTable, layout: Layout, log: Logger,
                 prepared: dict[str, SuperviseDir] | None = None) -> None:
        """`prepared`: directories the start path made before it started their services (container/early)."""
        self.table = table
        self._prepared = dict(prepared or {})
        self.layout = layout
        self.log = log
        self.supervise_dirs: dict[str, SuperviseDir] = {}
        self.control_fifos = ControlFifos(self.apply_letter, log)
        self._snapshots: set[tuple[str, int | None]] = set()  # a FIFO has no requests: once per process
        self._paused: dict[str, int] = {}  # service: the process s6-svc -p (-P) stopped, not -c (-C) since
        self._closed = False
        table.started_listeners.append(self.make_supervise_dir)
        table.change_listeners.append(self.service_changed)
        table.normally_up_listeners.append(self.normally_up_changed)
        table.signal_listeners.append(self.signal_sent)

    async def serve(self) -> None:
        await self.control_fifos.serve()

    def make_supervise_dir(self, spec: ServiceSpec) -> None:
        if self._closed:
            return
        directory = self._prepared.pop(spec.name, None)
        try:
            if directory is None:
                directory = make_supervise_dir(spec, self.layout)
        except OSError as exc:
            self.log.warning("s6's supervise interface cannot be made: s6-svc and s6-svstat will not reach it",
                             service=spec.name, directory=os.path.join(self.layout.scandirs[0], spec.name),
                             reason=exc.strerror or str(exc))
            return
        self.supervise_dirs[spec.name] = directory
        self.control_fifos.watch(directory)

    def service_changed(self, spec: ServiceSpec, before: ServiceState, after: ServiceState) -> None:
        if before.pid != after.pid:
            self._snapshots.discard((spec.name, before.pid))  # that process is gone: its mark too
        if self._paused.get(spec.name) not in (None, after.pid):
            del self._paused[spec.name]  # s6-supervise clears its paused flag as the process dies
        directory = self.supervise_dirs.get(spec.name)
        if directory is None or self._closed:
            return
        try:
            self._write(directory, spec, after)
            directory.announce(s6status.events(spec, before, after))
        except OSError as exc:
            self.log.error("s6 status cannot be written", service=spec.name, reason=exc.strerror)

    def _write(self, directory: SuperviseDir, spec: ServiceSpec, state: ServiceState) -> None:
        paused = state.pid is not None and self._paused.get(spec.name) == state.pid
        directory.write_status(s6status.pack(spec, state, anyio.current_time(), time.time(), paused))

    def signal_sent(self, name: str, signum: int) -> None:
        """s6-svc -p / -P (SIGSTOP) sets s6-supervise's paused flag, -c / -C (SIGCONT) clears it,
        whichever way the letter came (the FIFO, pysvc, pys6's s6-svc); a signal that another
        process sent is not seen, as s6-supervise does not see it."""
        if signum not in (signal.SIGSTOP, signal.SIGCONT):
            return
        view = self.table.view(name)
        if signum == signal.SIGSTOP and view.state.pid is not None:
            self._paused[name] = view.state.pid
        else:
            self._paused.pop(name, None)
        directory = self.supervise_dirs.get(name)
        if directory is None or self._closed:
            return
        try:
            self._write(directory, view.spec, view.state)
        except OSError as exc:
            self.log.error("s6 status cannot be written", service=name, reason=exc.strerror)

    def normally_up_changed(self, name: str, up: bool) -> None:
        if name in self.supervise_dirs and not self._closed:
            self.supervise_dirs[name].set_normally_up(up)

    async def apply_letter(self, name: str, letter: str) -> None:
        """One byte from supervise/control, as s6-supervise takes it, through the table's one path."""
        if self._closed:
            return
        if letter in SIGNAL_LETTERS:
            signum, group = SIGNAL_LETTERS[letter]
            await self.table.apply(name, Signal(signum, group), "s6-svc",
                                   {"command": letter, "signal": signal_name(signum)}, self._snapshots,
                                   self.table.command_timeout)
            return
        action = STATE_LETTERS.get(letter)
        if action is None:
            if not letter.isspace():
                self.log.info("s6-svc command ignored", service=name, command=letter)
            return
        await self.table.apply(name, StateChange(action), "s6-svc", {"command": letter, "action": action},
                               self._snapshots, self.table.command_timeout)

    def stop_reading(self) -> None:
        """The container is done: a writer PID 1 cannot kill must not hold its exit."""
        self.control_fifos.close()

    def close(self) -> None:
        """What s6-supervise does as it exits, for every service: an 'x' event, the lock released."""
        self._closed = True
        self.control_fifos.close()
        for directory in self._prepared.values():  # their services never started (a stop came first)
            directory.close()
        self._prepared.clear()
        for directory in self.supervise_dirs.values():
            self.control_fifos.forget(directory)
            directory.close()
