"""The control verbs in process: control/handlers.Handlers against a fake ControlTarget.

The fake keeps plain records (a spec, a state, recent lines) per service and a journal of
what the handlers asked of it, in order; the log is read as structured events
(structlog.testing.capture_logs), never as rendered text. No process is started: the
black-box tests (test_control.py, test_control_bounds.py) drive the same verbs through a
real pyinit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import structlog
from structlog.testing import capture_logs

from supervisor.base.record import replace
from supervisor.control import protocol
from supervisor.control.handlers import (
    S6_WAIT_PREDICATES,
    WAIT_PREDICATES,
    Answer,
    Handlers,
    Peer,
    ServiceView,
    chunks_of,
    wait_predicate,
)
from supervisor.control.protocol import ProtocolError, Request, WireAction
from supervisor.core import services as one_path  # the one path every command takes, whatever sent it
from supervisor.core.model import Phase, ServiceSpec, ServiceState, Verb, Want
from supervisor.logs.lines import RecentLines

NO_SUCH_PID = 2**22 + 12345  # above any pid_max: a fake service's process has no /proc entry


class FakeTarget:
    """The ControlTarget Protocol, with services as plain records and a journal of every call.

    Its refusal and apply are the real one path (core/services: refusal, apply_order) over the
    fake's view, command, send_signal and set_normally_up, as the service table's are."""

    def __init__(self, log: Any, names: tuple[str, ...] = ("web", "db"), stage: str = "running") -> None:
        self.log = log
        self._stage = stage
        self.specs = {name: ServiceSpec(name=name, directory=f"/run/service/{name}") for name in names}
        self.states = {name: ServiceState() for name in names}
        self.recent = {name: RecentLines() for name in names}
        self.journal: list[tuple[Any, ...]] = []  # ("command", name, verb), ("signal", ...), ("normally", ...)
        self.signal_problem: str | None = None
        self.command_problems: list[str] = []
        self.command_hangs = False
        self.down_file_error: OSError | None = None
        self.on_command: Callable[[str, Verb], None] | None = None
        self._changed: anyio.Event | None = None

    # --- the Protocol ----------------------------------------------------------------

    @property
    def stage(self) -> str:
        return self._stage

    def service_names(self) -> list[str]:
        return list(self.specs)

    def view(self, name: str) -> ServiceView:
        return ServiceView(self.specs[name], self.states[name], self.recent[name])

    async def command(self, name: str, verb: Verb) -> list[str]:
        self.journal.append(("command", name, verb))
        if self.on_command is not None:
            self.on_command(name, verb)
        if self.command_hangs:
            await anyio.sleep_forever()
        return list(self.command_problems)

    def send_signal(self, name: str, signum: int, group: bool) -> str | None:
        self.journal.append(("signal", name, signum, group))
        return self.signal_problem

    def set_normally_up(self, name: str, up: bool) -> None:
        if self.down_file_error is not None:
            raise self.down_file_error
        self.journal.append(("normally", name, up))
        self.specs[name] = replace(self.specs[name], normally_up=up)

    async def wait_until(self, name: str, predicate: Callable[[ServiceState], bool]) -> None:
        while not predicate(self.states[name]):
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()

    def refusal(self, name: str, order: Any) -> str | None:
        return one_path.refusal(self.view(name), order)

    async def apply(self, name: str, order: Any, event: str, fields: Any, snapshots: set[tuple[str, int | None]],
                    timeout: float) -> list[str]:
        return await one_path.apply_order(self, name, order, event, fields, snapshots, timeout)

    # --- the test's side ---------------------------------------------------------------

    def set_state(self, name: str, **changes: Any) -> None:
        self.states[name] = replace(self.states[name], **changes)
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def bring_up(self, name: str, pid: int = NO_SUCH_PID, ready: bool = False) -> None:
        now = anyio.current_time()
        self.set_state(name, phase=Phase.UP, want=Want.UP, pid=pid, pgid=pid, started=True, since=now,
                       last_start=now, ready_at=now if ready else None)

    def bring_down(self, name: str, exitcode: int = 0) -> None:
        self.set_state(name, phase=Phase.DOWN, want=Want.DOWN, pid=None, since=anyio.current_time(),
                       exitcode=exitcode, ready_at=None)

    def commands(self) -> list[tuple[Any, ...]]:
        return [entry for entry in self.journal if entry[0] == "command"]


async def _never() -> None:
    await anyio.sleep_forever()


PEER = Peer(pid=4242, uid=1000, gid=1000, hangup=_never)


@pytest.fixture
def events() -> Iterator[list[dict[str, Any]]]:
    """pyinit's log events while the test runs, as structlog hands them to the renderer."""
    with capture_logs() as captured:
        yield captured


def run(body: Callable[[], Awaitable[Any]]) -> Any:
    return anyio.run(body)


def handlers_for(target: FakeTarget, command_timeout: float = 5.0,
                 metrics_text: Callable[[], str] | None = None) -> Handlers:
    return Handlers(target, command_timeout, metrics_text)


def target_with(*up: str, names: tuple[str, ...] = ("web", "db"), stage: str = "running") -> FakeTarget:
    target = FakeTarget(structlog.get_logger(), names, stage)
    for name in up:
        target.states[name] = ServiceState(phase=Phase.UP, want=Want.UP, pid=NO_SUCH_PID, pgid=NO_SUCH_PID,
                                           started=True, last_start=0.0)
    return target


async def ask(handlers: Handlers, request: Request, peer: Peer = PEER) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The answer as a client reads it: the head and its items, after a trip through the wire's encoding."""
    head, items = await handlers.handle(request, peer)
    listed = list(items)
    assert head.get("items", 0) == len(listed)
    for line in (head, *listed):  # every line of it must be one the server can send
        json.loads(protocol.encode_answer_line(line))
    return head, listed


def control(*services: str, actions: tuple[WireAction, ...] = (), wait: str | None = None,
            timeout_ms: int = 0) -> Request:
    return Request("control", services, actions, wait, timeout_ms)


UP, DOWN, RESTART = WireAction("up"), WireAction("down"), WireAction("restart")


def sig(signum: int, group: bool = False) -> WireAction:
    return WireAction("signal", signum, group)


def named(events: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [record for record in events if record["event"] == event]


# --- the reporting verbs ---------------------------------------------------------------


def test_ping_answers_with_pyinits_pid() -> None:
    head, items = run(lambda: ask(handlers_for(target_with()), Request("ping")))
    assert head == {"ok": True, "pid": os.getpid()} and items == []


def test_status_lists_every_service_in_order_with_the_stage() -> None:
    target = target_with("web", stage="starting")

    async def body() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return await ask(handlers_for(target), Request("status"))

    head, items = run(body)
    assert head == {"ok": True, "stage": "starting", "items": 2}
    assert [(item["name"], item["state"], item["pid"]) for item in items] == [("web", "up", NO_SUCH_PID),
                                                                              ("db", "down", None)]


def test_status_of_named_services_only_those() -> None:
    head, items = run(lambda: ask(handlers_for(target_with()), Request("status", ("db",))))
    assert head["items"] == 1 and items[0]["name"] == "db"


@pytest.mark.parametrize("request_", [
    Request("status", ("web", "nosuch", "gone")),
    Request("log", ("nosuch",)),
    Request("forensics", ("nosuch",)),
    Request("control", ("web", "nosuch"), (UP,)),
], ids=["status", "log", "forensics", "control"])
def test_an_unknown_service_is_a_usage_error(request_: Request) -> None:
    target = target_with()
    head, items = run(lambda: ask(handlers_for(target), request_))
    unknown = ", ".join(name for name in request_.services if name not in target.specs)
    known = ", ".join(sorted(target.specs))  # a typo is answered with the names there are
    assert head == {"ok": False, "error": f"unknown service: {unknown} (known: {known})", "code": protocol.EXIT_USAGE}
    assert items == [] and target.journal == []  # nothing done to the known one either


def test_log_tails_the_recent_lines_with_their_streams() -> None:
    target = target_with()
    target.recent["web"].add_block("stdout", b"one\ntwo\n")
    target.recent["web"].add_block("stderr", b"three \xff\n")
    head, items = run(lambda: ask(handlers_for(target), Request("log", ("web",), lines=2)))
    assert head == {"ok": True, "service": "web", "items": 2}
    assert items == [{"stream": "stdout", "line": "two"}, {"stream": "stderr", "line": "three \\xff"}]


def test_forensics_on_request_is_a_snapshot_asked_for(events: list[dict[str, Any]]) -> None:
    target = target_with("web")
    target.recent["web"].add_block("stdout", b"last words\n")
    head, items = run(lambda: ask(handlers_for(target), Request("forensics", ("web",))))
    assert head["ok"] is True and head["items"] == len(items) == 0  # the fake pid has no processes
    record = head["forensics"]
    assert record["service"] == "web" and record["reason"] == "asked"
    assert record["last_lines"] == ["last words"] and record["processes_total"] == 0
    assert "processes" not in record
    assert named(events, "forensics") == []  # asked for: answered, not logged
    assert target.journal == []


def test_forensics_lists_the_services_processes() -> None:
    # A session of its own, which nothing else joins or leaves meanwhile (the test runner's own
    # session gains and loses processes as other workers run).
    with subprocess.Popen(["sleep", "60"], start_new_session=True) as service:
        try:
            target = target_with()
            target.states["web"] = ServiceState(phase=Phase.UP, pid=service.pid, pgid=service.pid, started=True)
            head, items = run(lambda: ask(handlers_for(target), Request("forensics", ("web",))))
        finally:
            service.kill()
    assert head["forensics"]["processes_total"] == len(items) == 1
    assert items[0]["pid"] == service.pid


def test_metrics_come_in_chunks_that_rebuild_the_page() -> None:
    page = "".join(f"pys6_metric{{n=\"{i}\"}} {i}\n" for i in range(40_000))
    head, items = run(lambda: ask(handlers_for(target_with(), metrics_text=lambda: page), Request("metrics")))
    assert head == {"ok": True, "items": len(items)} and len(items) > 1
    assert "".join(item["text"] for item in items) == page
    assert all(item["text"].endswith("\n") for item in items)


def test_metrics_without_a_registry_is_a_system_error() -> None:
    head, _ = run(lambda: ask(handlers_for(target_with()), Request("metrics")))
    assert head == {"ok": False, "error": "metrics are not available in this pyinit", "code": protocol.EXIT_SYSTEM}


def test_chunks_cut_after_a_newline_and_never_lose_a_character() -> None:
    assert chunks_of("") == []
    assert chunks_of("ab\ncd\nef", size=4) == ["ab\n", "cd\n", "ef"]
    assert chunks_of("abcdefgh", size=3) == ["abc", "def", "gh"]  # no newline near: cut at the size


def test_an_audit_is_logged_as_a_warning_with_who_sent_it(events: list[dict[str, Any]]) -> None:
    head, _ = run(lambda: ask(handlers_for(target_with()), Request("audit", message="pysvc -k refused")))
    assert head == {"ok": True}
    assert named(events, "client refused a command") == [{
        "event": "client refused a command", "log_level": "warning", "peer_pid": 4242, "peer_uid": 1000,
        "message": "pysvc -k refused"}]


# --- control: what is done, and what is logged ----------------------------------------------


def test_up_on_a_down_service_is_one_command_and_one_event(events: list[dict[str, Any]]) -> None:
    target = target_with()
    head, _ = run(lambda: ask(handlers_for(target), control("db", actions=(UP,))))
    assert head == {"ok": True}
    assert target.journal == [("command", "db", Verb.UP)]
    assert events == [{"event": "control", "log_level": "info", "service": "db", "action": "up", "peer_uid": 1000}]


@pytest.mark.parametrize("action, verb", [
    ("up", Verb.UP), ("down", Verb.DOWN), ("once", Verb.ONCE), ("once-at-most", Verb.ONCE_AT_MOST),
    ("restart", Verb.RESTART), ("up-remove-down", Verb.UP), ("down-create-down", Verb.DOWN),
])
def test_each_state_action_becomes_its_verb(action: str, verb: Verb) -> None:
    target = target_with("web")
    head, _ = run(lambda: ask(handlers_for(target), control("web", actions=(WireAction(action),))))
    assert head == {"ok": True}
    assert target.commands() == [("command", "web", verb)]
    normally = [entry for entry in target.journal if entry[0] == "normally"]
    expected = {"up-remove-down": [("normally", "web", True)], "down-create-down": [("normally", "web", False)]}
    assert normally == expected.get(action, [])
    if normally:  # the down file changes before the command is given
        assert target.journal.index(normally[0]) < target.journal.index(target.commands()[0])


def test_actions_apply_in_order_each_to_every_service() -> None:
    target = target_with("web", "db")
    head, _ = run(lambda: ask(handlers_for(target), control("web", "db", actions=(DOWN, UP))))
    assert head == {"ok": True}
    assert target.commands() == [("command", "web", Verb.DOWN), ("command", "db", Verb.DOWN),
                                 ("command", "web", Verb.UP), ("command", "db", Verb.UP)]


@pytest.mark.parametrize("action", ["down", "down-create-down", "restart", "signal"])
def test_forensics_before_force_on_an_up_service(action: str, events: list[dict[str, Any]]) -> None:
    target = target_with("web")
    target.recent["web"].add_block("stderr", b"about to be killed\n")
    wire = sig(signal.SIGKILL) if action == "signal" else WireAction(action)
    head, _ = run(lambda: ask(handlers_for(target), control("web", actions=(wire,))))
    assert head == {"ok": True}
    assert [record["event"] for record in events] == ["control", "forensics"]  # then the force itself
    (snapshot,) = named(events, "forensics")
    # asked for by a client: at info (pyinit's own orders, a health restart, at warning)
    assert snapshot["log_level"] == "info" and snapshot["service"] == "web"
    assert snapshot["reason"] == f"before {action}" and snapshot["last_lines"] == ["about to be killed"]
    assert snapshot["processes"] == [] and snapshot["processes_total"] == 0
    assert len(target.journal) == (2 if action == "down-create-down" else 1)


@pytest.mark.parametrize("action", ["up", "once", "once-at-most", "up-remove-down"])
def test_no_forensics_for_a_gentle_action(action: str, events: list[dict[str, Any]]) -> None:
    target = target_with("web")
    run(lambda: ask(handlers_for(target), control("web", actions=(WireAction(action),))))
    assert named(events, "forensics") == []


def test_no_forensics_before_down_of_a_service_already_down(events: list[dict[str, Any]]) -> None:
    target = target_with()
    run(lambda: ask(handlers_for(target), control("web", actions=(DOWN,))))
    assert named(events, "forensics") == [] and target.commands() == [("command", "web", Verb.DOWN)]


def test_one_snapshot_per_process_and_request(events: list[dict[str, Any]]) -> None:
    target = target_with("web", "db")
    actions = (sig(signal.SIGTERM), sig(signal.SIGCONT), sig(signal.SIGKILL, group=True))
    head, _ = run(lambda: ask(handlers_for(target), control("web", "db", actions=actions)))
    assert head == {"ok": True}
    assert sorted(record["service"] for record in named(events, "forensics")) == ["db", "web"]
    assert [record["reason"] for record in named(events, "forensics")] == ["before signal", "before signal"]
    assert [entry for entry in target.journal if entry[1] == "web"] == [
        ("signal", "web", signal.SIGTERM, False), ("signal", "web", signal.SIGCONT, False),
        ("signal", "web", signal.SIGKILL, True)]
    controls = named(events, "control")
    assert [(c["service"], c["signal"], c["group"]) for c in controls] == [
        ("web", "SIGTERM", False), ("db", "SIGTERM", False), ("web", "SIGCONT", False), ("db", "SIGCONT", False),
        ("web", "SIGKILL", True), ("db", "SIGKILL", True)]
    assert all(c["action"] == "signal" and c["peer_uid"] == 1000 for c in controls)


def test_a_new_process_gets_its_own_snapshot_within_one_request(events: list[dict[str, Any]]) -> None:
    target = target_with("web")

    def restarted(name: str, verb: Verb) -> None:  # the service comes back at once, as another process
        target.states[name] = replace(target.states[name], pid=NO_SUCH_PID + 1)

    target.on_command = restarted
    run(lambda: ask(handlers_for(target), control("web", actions=(RESTART, RESTART))))
    assert [record["reason"] for record in named(events, "forensics")] == ["before restart", "before restart"]


# --- control: the refusals --------------------------------------------------------------


def test_a_signal_to_a_down_service_is_refused_before_anything_is_done(events: list[dict[str, Any]]) -> None:
    target = target_with("web")
    head, _ = run(lambda: ask(handlers_for(target), control("web", "db", actions=(sig(signal.SIGHUP),))))
    assert head == {"ok": False, "error": "db is down: no process to signal", "code": protocol.EXIT_FORBIDDEN}
    assert target.journal == [] and events == []


def test_a_restart_of_a_down_service_is_refused() -> None:
    target = target_with("web")
    head, _ = run(lambda: ask(handlers_for(target), control("web", "db", actions=(UP, RESTART))))
    assert head == {"ok": False, "error": "db is down: nothing to restart (use -u)", "code": protocol.EXIT_FORBIDDEN}
    assert target.journal == []  # checked before changing anything, the first action included


@pytest.mark.parametrize("action", ["up", "down", "once", "restart", "up-remove-down", "down-create-down"])
def test_nothing_but_a_signal_while_the_container_stops(action: str) -> None:
    target = target_with("web", stage="stopping")
    head, _ = run(lambda: ask(handlers_for(target), control("web", actions=(sig(signal.SIGTERM), WireAction(action)))))
    assert head == {"ok": False, "error": "the container is shutting down", "code": protocol.EXIT_FORBIDDEN}
    assert target.journal == []


def test_a_signal_still_goes_while_the_container_stops() -> None:
    target = target_with("web", stage="stopping")
    head, _ = run(lambda: ask(handlers_for(target), control("web", actions=(sig(signal.SIGKILL),))))
    assert head == {"ok": True} and target.journal == [("signal", "web", signal.SIGKILL, False)]


def test_a_stop_that_begins_during_the_request_ends_it() -> None:
    target = target_with("web", "db")

    def the_container_stops(name: str, verb: Verb) -> None:
        target._stage = "stopping"

    target.on_command = the_container_stops
    head, _ = run(lambda: ask(handlers_for(target), control("web", "db", actions=(DOWN,))))
    assert head == {"ok": False, "error": "the container is shutting down: down not done",
                    "code": protocol.EXIT_FORBIDDEN}
    assert target.commands() == [("command", "web", Verb.DOWN)]


def test_a_failed_signal_is_reported_after_the_rest_is_done() -> None:
    target = target_with("web", "db")
    target.signal_problem = "kill: Operation not permitted"
    head, _ = run(lambda: ask(handlers_for(target), control("web", "db", actions=(sig(signal.SIGTERM),), wait="down",
                                                            timeout_ms=1)))
    assert head == {"ok": False, "error": "kill: Operation not permitted; kill: Operation not permitted",
                    "code": protocol.EXIT_SYSTEM}
    assert len(target.journal) == 2  # both were tried; the wait was not


def test_the_problems_are_cut_to_4000_characters() -> None:
    target = target_with("web", "db")
    target.command_problems = ["x" * 3000]
    head, _ = run(lambda: ask(handlers_for(target), control("web", "db", actions=(UP,))))
    assert head["code"] == protocol.EXIT_SYSTEM and head["error"] == ("x" * 3000 + "; " + "x" * 3000)[:4000]


def test_a_down_file_that_cannot_be_written_is_a_system_error() -> None:
    target = target_with("web")
    target.down_file_error = PermissionError(13, "Permission denied")
    head, _ = run(lambda: ask(handlers_for(target), control("web", actions=(WireAction("down-create-down"),))))
    assert head == {"ok": False, "error": "web: down file: Permission denied", "code": protocol.EXIT_SYSTEM}
    assert target.commands() == []


def test_a_command_the_service_does_not_take_in_time() -> None:
    target = target_with("web", "db")
    target.command_hangs = True
    head, _ = run(lambda: ask(handlers_for(target, command_timeout=0.05), control("web", "db", actions=(UP,))))
    assert head == {"ok": False, "code": protocol.EXIT_SYSTEM, "error": (
        "web: the service did not take the command in time; db: the service did not take the command in time")}


# --- control: the waits -------------------------------------------------------------------


def test_a_wait_answers_once_every_service_is_there() -> None:
    target = target_with()
    answers: list[dict[str, Any]] = []

    async def body() -> None:
        handlers = handlers_for(target)
        async with anyio.create_task_group() as group:
            async def asking() -> None:
                answers.append((await ask(handlers, control("web", "db", actions=(UP,), wait="up")))[0])

            group.start_soon(asking)
            await wait_for_journal(target, 2)
            target.bring_up("db")
            await settle()
            assert answers == []  # web is not up yet
            target.bring_up("web")

    run(body)
    assert answers == [{"ok": True}]


def test_a_wait_that_times_out() -> None:
    target = target_with()

    async def body() -> tuple[dict[str, Any], float]:
        started = anyio.current_time()
        head, _ = await ask(handlers_for(target), control("web", actions=(UP,), wait="up", timeout_ms=50))
        return head, anyio.current_time() - started

    head, took = run(body)
    # the fake takes the command but never moves: the answer says where the service was left
    assert head == {"ok": False, "error": "web: timed out after 0.05 s waiting for up; it is down, wanted down",
                    "code": protocol.EXIT_TIMEOUT}
    assert 0.04 <= took < 5


def test_a_wait_that_times_out_names_each_service_still_short_of_it() -> None:
    target = target_with("db")
    target.states["web"] = ServiceState(want=Want.UP, deaths=(0.0,), exitcode=2)
    head, _ = run(lambda: ask(handlers_for(target), control("web", "db", wait="ready", timeout_ms=50)))
    assert head["error"] == ("timed out after 0.05 s waiting for ready: web is down (exitcode 2), wanted up; "
                             f"db is up, pid {NO_SUCH_PID}, not ready, wanted up")


def give_up(request: Request) -> Request:
    return Request("control", request.services, request.actions, request.wait, request.timeout_ms, give_up=True)


@pytest.mark.parametrize("wait", ["up", "ready", "restarted", "restarted-ready"])
def test_pysvcs_up_wait_on_a_service_wanted_down_fails_at_once(wait: str) -> None:
    target = target_with()  # both down, wanted down
    head, _ = run(lambda: ask(handlers_for(target), give_up(control("web", wait=wait))))
    assert head == {"ok": False, "code": protocol.EXIT_FORBIDDEN,
                    "error": f"web: waiting for {wait} cannot be met: it is down, wanted down (pysvc -u web starts it)"}


def test_pysvcs_up_wait_ends_when_the_service_bails_meanwhile() -> None:
    target = target_with()
    target.states["web"] = ServiceState(phase=Phase.WAITING, want=Want.UP)

    async def body() -> dict[str, Any]:
        answers: list[dict[str, Any]] = []
        async with anyio.create_task_group() as group:
            async def asking() -> None:
                answers.append((await ask(handlers_for(target), give_up(control("web", wait="up"))))[0])

            group.start_soon(asking)
            await settle()
            assert answers == []  # about to start: it may still come up
            target.set_state("web", phase=Phase.DOWN, bailed=True, deaths=(0.0,) * 5)
        return answers[0]

    head = run(body)
    assert head["code"] == protocol.EXIT_FORBIDDEN and "bailed" in head["error"]
    assert head["error"].endswith("(pysvc -u web clears the bail and starts it)")


def test_without_give_up_the_same_wait_waits_as_s6_svcs() -> None:
    target = target_with()
    head, _ = run(lambda: ask(handlers_for(target), control("web", wait="up", timeout_ms=50)))
    assert head["code"] == protocol.EXIT_TIMEOUT


def test_a_down_wait_is_never_given_up() -> None:
    target = target_with("web")
    head, _ = run(lambda: ask(handlers_for(target), give_up(control("web", wait="down", timeout_ms=50))))
    assert head["code"] == protocol.EXIT_TIMEOUT


def test_a_report_gives_each_service_before_and_after() -> None:
    target = target_with("web")
    target.on_command = lambda name, verb: target.bring_down(name)
    request = Request("control", ("web", "db"), (DOWN,), report=True)
    head, items = run(lambda: ask(handlers_for(target), request))
    assert head == {"ok": True, "items": 2}
    assert [item["name"] for item in items] == ["web", "db"]
    assert (items[0]["before"]["phase"], items[0]["before"]["pid"]) == ("up", NO_SUCH_PID)
    assert (items[0]["after"]["phase"], items[0]["after"]["pid"]) == ("down", None)
    assert protocol.describe_state(items[1]["after"]) == "down (exitcode 0), wanted down"


def test_a_report_settles_for_a_restart_and_never_fails_for_it() -> None:
    target = target_with("web")
    request = Request("control", ("web",), (RESTART,), report=True, settle_ms=100)

    async def body() -> tuple[dict[str, Any], list[dict[str, Any]], float]:
        started = anyio.current_time()
        head, items = await ask(handlers_for(target), request)  # the fake never restarts it
        return head, items, anyio.current_time() - started

    head, items, took = run(body)
    assert head["ok"] is True and items[0]["after"]["pid"] == NO_SUCH_PID and 0.09 <= took < 5
    target.on_command = lambda name, verb: target.bring_up(name, pid=NO_SUCH_PID - 1)
    head, items = run(lambda: ask(handlers_for(target), request))
    assert items[0]["after"]["pid"] == NO_SUCH_PID - 1


def test_a_wait_alone_does_nothing_but_wait() -> None:
    target = target_with("web")
    head, _ = run(lambda: ask(handlers_for(target), control("web", wait="up", timeout_ms=50)))
    assert head == {"ok": True} and target.journal == []


def test_restarted_waits_for_a_start_after_the_request() -> None:
    target = target_with("web")  # up since time 0, before the request
    answers: list[dict[str, Any]] = []

    async def body() -> None:
        handlers = handlers_for(target)
        async with anyio.create_task_group() as group:
            async def asking() -> None:
                answers.append((await ask(handlers, control("web", actions=(RESTART,), wait="restarted-ready")))[0])

            group.start_soon(asking)
            await wait_for_journal(target, 1)
            target.bring_up("web")  # started again, not ready yet
            await settle()
            assert answers == []
            target.set_state("web", ready_at=anyio.current_time())

    run(body)
    assert answers == [{"ok": True}]


def _state(phase: Phase, ready_at: float | None = None, last_start: float | None = None) -> ServiceState:
    return ServiceState(phase=phase, ready_at=ready_at, last_start=last_start)


@pytest.mark.parametrize("wait, state, met", [
    ("up", _state(Phase.UP), True), ("up", _state(Phase.FINISHING), False),
    ("ready", _state(Phase.UP), False), ("ready", _state(Phase.UP, ready_at=1.0), True),
    ("down", _state(Phase.FINISHING), True), ("down", _state(Phase.WAITING), True), ("down", _state(Phase.UP), False),
    ("finished", _state(Phase.FINISHING), False), ("finished", _state(Phase.DOWN), True),
    ("finished", _state(Phase.WAITING), True),
    ("restarted", _state(Phase.UP, last_start=9.0), False), ("restarted", _state(Phase.UP, last_start=10.0), True),
    ("restarted", _state(Phase.DOWN, last_start=11.0), False),
    ("restarted-ready", _state(Phase.UP, last_start=11.0, ready_at=9.0), False),
    ("restarted-ready", _state(Phase.UP, last_start=11.0, ready_at=12.0), True),
    # pys6's s6-svc -wU / s6-svwait -U: s6's readiness, never for a service without notification-fd
    ("s6-ready", _state(Phase.UP, ready_at=1.0), False), ("s6-ready", _state(Phase.UP), False),
    ("s6-restarted-ready", _state(Phase.UP, last_start=11.0, ready_at=12.0), False),
])
def test_what_each_wait_waits_for(wait: str, state: ServiceState, met: bool) -> None:
    assert set(WAIT_PREDICATES) | set(S6_WAIT_PREDICATES) == set(protocol.WAITS)
    assert wait_predicate(wait, 10.0, ServiceSpec(name="x", directory="/x"))(state) is met


@pytest.mark.parametrize("wait, state, met", [
    ("s6-ready", _state(Phase.UP, ready_at=1.0), True), ("s6-ready", _state(Phase.UP), False),
    ("s6-ready", _state(Phase.DOWN, ready_at=1.0), False),
    ("s6-restarted-ready", _state(Phase.UP, last_start=11.0, ready_at=9.0), False),
    ("s6-restarted-ready", _state(Phase.UP, last_start=11.0, ready_at=12.0), True),
    ("ready", _state(Phase.UP, ready_at=1.0), True),
])
def test_s6_waits_with_a_notification_fd(wait: str, state: ServiceState, met: bool) -> None:
    assert wait_predicate(wait, 10.0, ServiceSpec(name="x", directory="/x", notification_fd=3))(state) is met


# --- control: the client leaving ------------------------------------------------------------


class Hangup:
    """A peer's hangup() that returns when the test says the client left."""

    def __init__(self) -> None:
        self.left: anyio.Event | None = None
        self.waiting = False

    async def __call__(self) -> None:
        if self.left is None:
            self.left = anyio.Event()
        self.waiting = True
        await self.left.wait()


@pytest.mark.parametrize("stuck_in", ["wait", "command"])
def test_the_client_leaving_ends_the_request(stuck_in: str) -> None:
    target = target_with()
    target.command_hangs = stuck_in == "command"
    hangup = Hangup()
    peer = Peer(pid=1, uid=0, gid=0, hangup=hangup)

    async def body() -> tuple[dict[str, Any], float]:
        async with anyio.create_task_group() as group:
            answer: list[dict[str, Any]] = []

            async def asking() -> None:
                answer.append((await ask(handlers_for(target, command_timeout=3600),
                                         control("web", actions=(UP,), wait="up"), peer))[0])

            group.start_soon(asking)
            await wait_for_journal(target, 1)
            await settle()
            assert answer == [] and hangup.waiting
            left_at = anyio.current_time()
            assert hangup.left is not None
            hangup.left.set()
        return answer[0], anyio.current_time() - left_at

    head, took = run(body)
    assert head == {"ok": False, "error": "the client left", "code": protocol.EXIT_SYSTEM}
    assert took < 1


def test_a_request_that_ends_stops_watching_its_client() -> None:
    target = target_with()
    hangup = Hangup()
    head, _ = run(lambda: ask(handlers_for(target), control("web", actions=(UP,)), Peer(1, 0, 0, hangup)))
    assert head == {"ok": True}  # and anyio.run returned: the hangup watcher was cancelled


# --- control: the request's bounds -------------------------------------------------------


def _frame(services: list[str], actions: int) -> bytes:
    return json.dumps({"v": protocol.VERSION, "verb": "control", "services": services,
                       "actions": [{"do": "up"}] * actions}).encode()


def test_at_most_max_actions_in_one_request() -> None:
    assert len(protocol.decode_request(_frame(["web"], protocol.MAX_ACTIONS)).actions) == protocol.MAX_ACTIONS
    with pytest.raises(ProtocolError, match="too many actions: 64 ") as refused:
        protocol.decode_request(_frame(["web"], protocol.MAX_ACTIONS + 1))
    assert refused.value.code == protocol.EXIT_USAGE


def test_at_most_max_applications_counting_each_service_once() -> None:
    names = [f"s{i}" for i in range(65)]
    assert protocol.MAX_APPLICATIONS // protocol.MAX_ACTIONS == len(names)  # 65 x 63 = 4,095: the most actions
    assert len(protocol.decode_request(_frame(names, protocol.MAX_ACTIONS)).services) == 65
    assert len(protocol.decode_request(_frame(names + names, protocol.MAX_ACTIONS)).services) == 65
    with pytest.raises(ProtocolError, match="too much at once: 63 actions to 66 services") as refused:
        protocol.decode_request(_frame([*names, "s65"], protocol.MAX_ACTIONS))
    assert refused.value.code == protocol.EXIT_USAGE
    many = [f"s{i}" for i in range(protocol.MAX_APPLICATIONS)]
    assert len(protocol.decode_request(_frame(many, 1)).services) == protocol.MAX_APPLICATIONS
    with pytest.raises(ProtocolError, match="too much at once: 1 actions to 4097 services"):
        protocol.decode_request(_frame([*many, "one-more"], 1))


def test_pyinit_runs_between_two_applications_of_the_largest_request() -> None:
    names = tuple(f"s{i}" for i in range(protocol.MAX_APPLICATIONS))
    target = target_with(names=names)
    request = control(*names, actions=(UP,))
    turns: list[int] = []

    async def body() -> None:
        handlers = handlers_for(target)
        async with anyio.create_task_group() as group:

            async def the_rest_of_pid1() -> None:  # counts the applications done each time it runs
                while True:
                    turns.append(len(target.journal))
                    await anyio.lowlevel.checkpoint()

            group.start_soon(the_rest_of_pid1)
            await anyio.lowlevel.checkpoint()
            head, _ = await handlers.handle(request, PEER)
            assert head == {"ok": True}
            group.cancel_scope.cancel()

    with capture_logs():
        run(body)
    assert len(target.journal) == protocol.MAX_APPLICATIONS
    ran_between = {count for count in turns if 0 < count < protocol.MAX_APPLICATIONS}
    assert len(ran_between) >= protocol.MAX_APPLICATIONS - 1  # after every application but the last


# --- helpers for the concurrent tests --------------------------------------------------------


async def settle() -> None:
    """Let every task run until it blocks (the fake target never sleeps on a clock)."""
    for _ in range(20):
        await anyio.lowlevel.checkpoint()


async def wait_for_journal(target: FakeTarget, entries: int) -> None:
    with anyio.fail_after(5):
        while len(target.journal) < entries:
            await anyio.sleep(0.001)


def test_handle_turns_a_protocol_error_into_its_answer() -> None:
    class Refusing(FakeTarget):
        def service_names(self) -> list[str]:
            raise ProtocolError("nope", protocol.EXIT_NOT_RUNNING)

    answer: Answer = run(lambda: handlers_for(Refusing(structlog.get_logger())).handle(Request("status"), PEER))
    assert answer[0] == {"ok": False, "error": "nope", "code": protocol.EXIT_NOT_RUNNING}
