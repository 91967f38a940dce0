"""Fakes for the in-process tests of the service table and the stage sequence (not a test module).

FakeServices makes the runners a ServiceTable supervises (its `make_runner`): each is a plain
state that comes up, goes down, or refuses to, as the test says, with no process behind it;
every command is written to one journal, in order. FakeReaper has no children. FakeScripts
stands in for the scripts' spawner: each script "exits" with the code the test gave its source.
"""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import anyio.lowlevel

from supervisor.base.record import replace
from supervisor.core.model import Phase, ServiceSpec, ServiceState, Verb, Want
from supervisor.core.telemetry import ServiceTally
from supervisor.logs.lines import RecentLines

FAKE_PIDS = itertools.count(2**22 + 100)  # above any pid_max: no /proc entry, no real process signalled


class FakeOutcome:
    def __init__(self) -> None:
        self.problems: list[str] = []

    async def wait(self) -> None:
        await anyio.lowlevel.checkpoint()


class FakeRunner:
    """What the table, the stages, rcrun and the bridge use of a ServiceRunner."""

    def __init__(self, spec: ServiceSpec, runtime: Any, services: FakeServices,
                 stdout_to: int | None = None, stdin_from: int | None = None) -> None:
        self.spec = spec
        self.runtime = runtime
        self.services = services
        self.stdout_to, self.stdin_from = stdout_to, stdin_from
        self.state = ServiceState()
        self.recent = RecentLines()
        self.tally = ServiceTally()
        self._changed: anyio.Event | None = None

    def _become(self, **changes: Any) -> None:
        before, self.state = self.state, replace(self.state, **changes)
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        self.runtime.service_changed(self.spec, before, self.state)

    def _come_up(self) -> None:
        now = anyio.current_time()
        pid = next(FAKE_PIDS)
        ready = None if self.spec.name in self.services.never_ready else now
        self._become(phase=Phase.UP, want=Want.UP, pid=pid, pgid=pid, started=True, since=now, last_start=now,
                     ready_at=ready, stopping=False)

    def _go_down(self, shutting_down: bool) -> None:
        self._become(phase=Phase.DOWN, want=Want.DOWN, pid=None, since=anyio.current_time(), ready_at=None,
                     shutting_down=shutting_down)

    def start(self, task_group: Any) -> None:
        self.services.journal.append((self.spec.name, "start"))
        if self.spec.normally_up:
            self._come_up()

    def command(self, verb: Verb) -> FakeOutcome:
        self.services.journal.append((self.spec.name, verb))
        if verb is Verb.UP and self.state.phase is not Phase.UP:
            self._come_up()
        elif verb in (Verb.DOWN, Verb.SHUTDOWN) and self.spec.name not in self.services.stubborn:
            self._go_down(verb is Verb.SHUTDOWN)
        elif verb in (Verb.DOWN, Verb.SHUTDOWN):
            self._become(want=Want.DOWN, stopping=True)  # asked, yet it stays up
        elif verb is Verb.ONCE_AT_MOST and self.spec.name in self.services.ends_at_eof:
            self._go_down(False)
        elif verb is Verb.RESTART and self.state.phase is Phase.UP:
            self._come_up()
        return FakeOutcome()

    async def wait_until(self, predicate: Any) -> None:
        while not predicate(self.state):
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()

    def drain(self) -> None:
        self.services.journal.append((self.spec.name, "drain"))

    def close(self) -> None:
        self.services.journal.append((self.spec.name, "close"))


class FakeServices:
    """The table's make_runner, and what the test tells its runners to do."""

    def __init__(self, stubborn: tuple[str, ...] = (), never_ready: tuple[str, ...] = (),
                 ends_at_eof: tuple[str, ...] = ()) -> None:
        self.stubborn = set(stubborn)  # stays up whatever it is told
        self.never_ready = set(never_ready)
        self.ends_at_eof = set(ends_at_eof)  # a logger that exits once told "once at most"
        self.journal: list[tuple[str, Any]] = []
        self.runners: dict[str, FakeRunner] = {}

    def make(self, spec: ServiceSpec, runtime: Any, stdout_to: int | None, stdin_from: int | None) -> FakeRunner:
        runner = FakeRunner(spec, runtime, self, stdout_to, stdin_from)
        self.runners[spec.name] = runner
        return runner

    def commands(self) -> list[tuple[str, Any]]:
        return [entry for entry in self.journal if isinstance(entry[1], Verb)]


class FakeReaper:
    orphans_reaped = 0

    def reap(self) -> None:
        pass

    def has_children(self) -> bool:
        return False

    async def wait_childless(self) -> None:
        pass


class FakeScripts:
    """Replaces Scripts.run_script: a script's fate is the code given for its source (0 otherwise)."""

    def __init__(self, codes: dict[str, int] | None = None) -> None:
        self.codes = codes or {}
        self.ran: list[str] = []

    async def __call__(self, path: str, source: str, timeout_ms: int = 0, argv: list[str] | None = None,
                       rc_name: str | None = None, shell: bool = False) -> int:
        self.ran.append(source)
        await anyio.lowlevel.checkpoint()
        return self.codes.get(source, 0)
