"""Stage 3's report: what the shutdown still waits for, once a second, and one summary at its end.

"shutdown waiting" names what still runs (services by name, orphans and the main program by pid
and command, at most MAX_NAMED of them and a count of the rest), from a timer that exists only
while stage 3 runs: a running container has no wake-up for it. "shutdown summary" gives each
phase's duration (services, s6-rc down, cont-finish, the final kill), what had to be SIGKILLed,
by name and pid, and what outlived even that (a process in uninterruptible sleep, say).

What runs is read from /proc: as PID 1 every process of our PID namespace but us, as a
subreaper our descendants, as the final kill reaches them (proc/killall). Zombies are dead
already and not listed.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import anyio

from ..core.model import ServiceSpec, ServiceState
from ..logs.events import Logger

INTERVAL = 1.0  # seconds between two "shutdown waiting" events
MAX_NAMED = 20  # processes named in one event; the rest are counted
MAX_COMMAND = 120  # characters of a command line shown
PHASES = {"services": "services_s", "s6-rc down": "s6rc_down_s", "cont-finish": "cont_finish_s",
          "final kill": "final_kill_s"}  # each phase and its summary field (seconds)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, process group) of `pid`, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return None
    rest = text[text.rfind(b")") + 2:].split()  # the command in parentheses may hold anything
    if len(rest) < 3:
        return None
    return rest[0].decode(), int(rest[2])


def command_of(pid: int) -> str:
    """Its command line, shortened; [comm] for a kernel-style name (an empty cmdline)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            raw = cmdline.read(4 * MAX_COMMAND)
        text = raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "backslashreplace")
        if not text:
            with open(f"/proc/{pid}/comm", "rb") as comm:
                text = f"[{comm.read().strip().decode('utf-8', 'backslashreplace')}]"
    except OSError:
        return "?"
    return text if len(text) <= MAX_COMMAND else text[:MAX_COMMAND - 1] + "…"


def _candidates(is_pid1: bool) -> list[int]:
    if is_pid1:
        return sorted(int(name) for name in os.listdir("/proc") if name.isdecimal())
    import psutil  # as a subreaper: only our descendants, never a developer's whole session

    try:
        return sorted(child.pid for child in psutil.Process().children(recursive=True))
    except psutil.Error:
        return []


def running(is_pid1: bool) -> list[tuple[int, int]]:
    """(pid, pgid) of every live process we may own but us, zombies left out."""
    me = os.getpid()
    found = []
    for pid in _candidates(is_pid1):
        if pid == me:
            continue
        stat = _stat(pid)
        if stat is not None and stat[0] not in ("Z", "X"):
            found.append((pid, stat[1]))
    return found


class ShutdownReport:
    """One stage 3's phases, progress events and summary. `known` gives labels of pids pyinit
    knows (a service, its finish script, the main program) and `groups` the service of a
    process group, so a service's children are named by it too."""

    def __init__(self, log: Logger, is_pid1: bool, known: Callable[[], Mapping[int, str]],
                 groups: Callable[[], Mapping[int, str]]) -> None:
        self.log = log
        self.is_pid1 = is_pid1
        self._known = known
        self._groups = groups
        self.started = anyio.current_time()
        self.phase_name = "starting"
        self.durations: dict[str, float] = dict.fromkeys(PHASES, 0.0)
        self.killed: list[dict[str, object]] = []  # SIGKILLed: by the services' stop sequence or the final kill
        self.unkillable: list[dict[str, object]] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        before, self.phase_name = self.phase_name, name
        began = anyio.current_time()
        try:
            yield
        finally:
            self.durations[name] = self.durations.get(name, 0.0) + anyio.current_time() - began
            self.phase_name = before

    def describe(self, pids: list[tuple[int, int]]) -> list[dict[str, object]]:
        """Each process as {pid, command[, service]}, at most MAX_NAMED of them, those pyinit knows first."""
        known, groups = self._known(), self._groups()
        ordered = sorted(pids, key=lambda entry: (entry[0] not in known, entry[0]))
        described: list[dict[str, object]] = []
        for pid, pgid in ordered[:MAX_NAMED]:
            entry: dict[str, object] = {"pid": pid, "command": command_of(pid)}
            label = known.get(pid) or groups.get(pgid)
            if label:
                entry["name"] = label
            described.append(entry)
        return described

    def tick(self) -> None:
        pids = running(self.is_pid1)
        named = self.describe(pids)
        self.log.info("shutdown waiting", phase=self.phase_name,
                      elapsed=round(anyio.current_time() - self.started, 1), count=len(pids),
                      waiting=named, more=len(pids) - len(named))

    async def keep_telling(self) -> None:
        """The once-a-second timer; it lives only inside stage 3's task group."""
        while True:
            await anyio.sleep(INTERVAL)
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 (a report must not stop the shutdown)
                self.log.warning("shutdown progress unavailable", reason=str(exc))
                return

    def service_changed(self, spec: ServiceSpec, before: ServiceState, after: ServiceState) -> None:
        """A service's run ended by SIGKILL while stopping: its stop sequence had to force it."""
        if before.pid is not None and after.pid is None and after.signum == signal.SIGKILL and \
                all(entry["pid"] != before.pid for entry in self.killed):
            self.killed.append({"pid": before.pid, "name": spec.name})

    def before_sigkill(self) -> None:
        """The final kill is about to SIGKILL everyone left: note who that is."""
        try:
            listed = {entry["pid"] for entry in self.killed}
            self.killed.extend(entry for entry in self.describe(running(self.is_pid1)) if entry["pid"] not in listed)
        except Exception as exc:  # noqa: BLE001
            self.log.warning("shutdown progress unavailable", reason=str(exc))

    def after_final_kill(self) -> None:
        try:
            self.unkillable = self.describe(running(self.is_pid1))
        except Exception as exc:  # noqa: BLE001
            self.log.warning("shutdown progress unavailable", reason=str(exc))

    def summary(self) -> None:
        durations = {PHASES[name]: round(seconds, 3) for name, seconds in self.durations.items()}
        fields: dict[str, object] = {**durations, "total_s": round(anyio.current_time() - self.started, 3),
                                     "killed": self.killed[:MAX_NAMED], "unkillable": self.unkillable}
        if len(self.killed) > MAX_NAMED:
            fields["killed_more"] = len(self.killed) - MAX_NAMED
        (self.log.warning if self.unkillable else self.log.info)("shutdown summary", **fields)
