"""The service table in process: core/services.ServiceTable against fake runners, and the one
path a command takes (apply_order), from the socket's side and the s6 FIFO's (s6/bridge).

Events are read as structlog hands them over (capture_logs), never rendered. The same orders
go through a real pyinit in test_one_path.py.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import structlog
from fakes import FakeReaper, FakeServices
from structlog.testing import capture_logs

from supervisor.base.record import replace  # Settings is a record (base/record), not a dataclass
from supervisor.control.protocol import WireAction
from supervisor.core.model import Phase, ServiceSpec, Verb
from supervisor.core.services import ServiceTable, Signal, StateChange
from supervisor.core.settings import Settings
from supervisor.logs.writer import OutputWriter
from supervisor.s6.bridge import S6Bridge
from supervisor.s6.layout import Layout


def _table(tmp: Path, fakes: FakeServices, **settings: Any) -> ServiceTable:
    chosen = replace(Settings(), etc=str(tmp / "etc"), services_gracetime=100, **settings)
    table = ServiceTable(chosen, FakeReaper(), OutputWriter(), structlog.get_logger(), dict,  # type: ignore[arg-type]
                         lambda: "running", lambda name, code: None)
    table.make_runner = fakes.make  # type: ignore[assignment]
    return table


def _run(body: Callable[[anyio.abc.TaskGroup], Awaitable[None]]) -> list[dict[str, Any]]:
    with capture_logs() as events:

        async def main() -> None:
            async with anyio.create_task_group() as group:
                with anyio.fail_after(10):
                    await body(group)
                group.cancel_scope.cancel()

        anyio.run(main)
    return events


def _spec(tmp: Path, name: str, normally_up: bool = True) -> ServiceSpec:
    directory = tmp / "services" / name
    directory.mkdir(parents=True, exist_ok=True)
    return ServiceSpec(name=name, directory=str(directory), normally_up=normally_up)


def test_a_second_service_of_one_name_is_not_started(tmp_path: Path):
    fakes = FakeServices()
    table = _table(tmp_path, fakes)

    async def body(group: anyio.abc.TaskGroup) -> None:
        assert await table.start_runner(_spec(tmp_path, "web"), group) is not None
        assert await table.start_runner(_spec(tmp_path, "web"), group) is None

    events = _run(body)
    assert fakes.journal == [("web", "start")]
    (event,) = [e for e in events if e["event"] == "two services have one name: the second is not started"]
    assert event["service"] == "web" and event["log_level"] == "error"


def test_listeners_hear_a_start_before_the_first_change(tmp_path: Path):
    fakes = FakeServices()
    table = _table(tmp_path, fakes)
    heard: list[tuple[str, str]] = []
    table.started_listeners.append(lambda spec: heard.append(("started", spec.name)))
    table.change_listeners.append(lambda spec, before, after: heard.append(("changed", after.phase.value)))

    async def body(group: anyio.abc.TaskGroup) -> None:
        await table.start_runner(_spec(tmp_path, "web"), group)

    _run(body)
    assert heard == [("started", "web"), ("changed", Phase.UP.value)]


def test_a_signal_to_a_down_service_is_refused_and_does_nothing(tmp_path: Path):
    fakes = FakeServices()
    table = _table(tmp_path, fakes)
    order = WireAction("signal", signal.SIGKILL)

    async def body(group: anyio.abc.TaskGroup) -> None:
        await table.start_runner(_spec(tmp_path, "idle", normally_up=False), group)
        assert table.refusal("idle", order) == "idle is down: no process to signal"
        assert await table.apply("idle", order, "control", {"action": "signal"}, set(), 1.0) == []

    events = _run(body)
    assert [e["event"] for e in events] == []  # neither a "control" event nor forensics
    assert fakes.commands() == []


def test_forensics_come_before_force_once_per_process_and_sender(tmp_path: Path):
    fakes = FakeServices()
    table = _table(tmp_path, fakes)
    snapshots: set[tuple[str, int | None]] = set()

    async def body(group: anyio.abc.TaskGroup) -> None:
        await table.start_runner(_spec(tmp_path, "web"), group)
        for _ in range(2):
            await table.apply("web", Signal(signal.SIGCONT), "s6-svc", {"command": "c"}, snapshots, 1.0)
        await table.apply("web", StateChange("down"), "s6-svc", {"command": "d"}, snapshots, 1.0)

    events = _run(body)
    assert [(e["event"], e.get("command"), e.get("reason")) for e in events] == [
        ("s6-svc", "c", None), ("forensics", None, "before signal"),
        ("s6-svc", "c", None),  # the same process: its record once
        ("s6-svc", "d", None),
    ]
    assert fakes.commands() == [("web", Verb.DOWN)]


def test_the_socket_and_the_fifo_give_the_same_order_the_same_path(tmp_path: Path):
    """pysvc -d and s6-svc -d: one forensics record each, before the same command; only the
    event's name and fields tell them apart."""
    results = {}
    for sender in ("control", "s6-svc"):
        fakes = FakeServices()
        table = _table(tmp_path / sender, fakes)
        (tmp_path / sender / "service").mkdir(parents=True)
        layout = Layout(str(tmp_path / sender / "env"), [str(tmp_path / sender / "service")],
                        [str(tmp_path / sender / "exitcode")])
        bridge = S6Bridge(table, layout, table.log)

        async def body(group: anyio.abc.TaskGroup, sender: str = sender, table: ServiceTable = table,
                       bridge: S6Bridge = bridge) -> None:
            await table.start_runner(_spec(tmp_path / sender, "web"), group)
            if sender == "control":
                await table.apply("web", WireAction("down"), "control", {"action": "down", "peer_uid": 0}, set(), 1.0)
            else:
                await bridge.apply_letter("web", "d")
            bridge.close()

        events = _run(body)
        results[sender] = (fakes.commands(), [(e["event"], e.get("reason")) for e in events if e["event"] == "forensics"],
                           table.runners["web"].state.phase, events[0]["event"])
    assert results["control"][:3] == results["s6-svc"][:3] == ([("web", Verb.DOWN)], [("forensics", "before down")],
                                                              Phase.DOWN)
    assert (results["control"][3], results["s6-svc"][3]) == ("control", "s6-svc")


def test_the_down_file_follows_dash_d_capital_and_the_listeners_hear_it(tmp_path: Path):
    fakes = FakeServices()
    table = _table(tmp_path, fakes)
    heard: list[tuple[str, bool]] = []
    table.normally_up_listeners.append(lambda name, up: heard.append((name, up)))
    spec = _spec(tmp_path, "web")

    async def body(group: anyio.abc.TaskGroup) -> None:
        await table.start_runner(spec, group)
        await table.apply("web", StateChange("down-create-down"), "s6-svc", {"command": "D"}, set(), 1.0)
        assert (Path(spec.directory) / "down").exists() and not table.runners["web"].spec.normally_up
        await table.apply("web", StateChange("up-remove-down"), "s6-svc", {"command": "U"}, set(), 1.0)
        assert not (Path(spec.directory) / "down").exists() and table.runners["web"].spec.normally_up

    _run(body)
    assert heard == [("web", False), ("web", True)]
    assert fakes.commands() == [("web", Verb.DOWN), ("web", Verb.UP)]


def test_a_command_the_service_does_not_take_in_time_is_a_problem(tmp_path: Path):
    fakes = FakeServices()
    table = _table(tmp_path, fakes)

    async def body(group: anyio.abc.TaskGroup) -> None:
        runner = await table.start_runner(_spec(tmp_path, "web"), group)
        assert runner is not None

        class Hangs:
            problems: list[str] = []

            async def wait(self) -> None:
                await anyio.sleep_forever()

        runner.command = lambda verb: Hangs()  # type: ignore[method-assign, assignment, return-value]
        problems = await table.apply("web", StateChange("up"), "s6-svc", {"command": "u"}, set(), 0.05)
        assert problems == ["web: the service did not take the command in time"]

    _run(body)


def test_stop_gives_every_service_shutdown_before_waiting_and_names_those_that_stay(tmp_path: Path):
    fakes = FakeServices(stubborn=("stubborn",))
    table = _table(tmp_path, fakes)
    table.stop_timeout = 0.2

    async def body(group: anyio.abc.TaskGroup) -> None:
        for name in ("stubborn", "web"):
            await table.start_runner(_spec(tmp_path, name), group)
        in_time, stuck = await table.stop(dict(table.runners))
        assert (in_time, stuck) == (False, ["stubborn"])
        await table.stop_and_tell({"web": table.runners["web"]})

    events = _run(body)
    assert fakes.commands()[:2] == [("stubborn", Verb.SHUTDOWN), ("web", Verb.SHUTDOWN)]
    assert [e["event"] for e in events] == ["services stopped"]


def test_loggers_are_told_to_end_at_end_of_input_then_stopped(tmp_path: Path):
    fakes = FakeServices(ends_at_eof=("web-log",))
    table = _table(tmp_path, fakes)

    async def body(group: anyio.abc.TaskGroup) -> None:
        read_end, write_end = table.logger_pipe("web", "web-log")
        await table.start_runner(_spec(tmp_path, "web-log"), group, stdin_from=read_end)
        table.end_of_input("web-log")
        assert table.logger_pipe("web", "web-log") == (read_end, -1)
        await table.stop_loggers({"web-log": table.runners["web-log"]})
        table.close()

    events = _run(body)
    assert fakes.commands() == [("web-log", Verb.ONCE_AT_MOST), ("web-log", Verb.SHUTDOWN)]
    assert [e["event"] for e in events] == ["services stopped"]


def test_the_stop_sequence_takes_the_one_path_and_logs_no_event_per_service(tmp_path: Path):
    fakes = FakeServices(ends_at_eof=("web-log",))
    table = _table(tmp_path, fakes)
    table.command_timeout = 0.05
    orders: list[tuple[str, str, str | None]] = []
    one_path = table.apply

    async def spied(name: str, order: Any, event: str | None, *rest: Any) -> list[str]:
        orders.append((name, order.do, event))
        return await one_path(name, order, event, *rest)

    table.apply = spied  # type: ignore[method-assign]

    async def body(group: anyio.abc.TaskGroup) -> None:
        read_end, _write_end = table.logger_pipe("web", "web-log")
        for name in ("web", "db"):
            await table.start_runner(_spec(tmp_path, name), group)
        await table.start_runner(_spec(tmp_path, "web-log"), group, stdin_from=read_end)
        web = table.runners["web"]

        class Hangs:  # a runner that never acts on its shutdown must not hold the others' back
            problems: list[str] = []

            async def wait(self) -> None:
                await anyio.sleep_forever()

        real_command = web.command
        web.command = lambda verb: Hangs() if verb is Verb.SHUTDOWN else real_command(verb)  # type: ignore[method-assign, assignment, return-value]
        await table.stop({"web": web, "db": table.runners["db"]})
        table.end_of_input("web-log")
        await table.stop_loggers({"web-log": table.runners["web-log"]})
        table.close()

    _run(body)
    assert orders == [("web", "shutdown", None), ("db", "shutdown", None),
                      ("web-log", "once-at-most", None), ("web-log", "shutdown", None)]
    assert ("db", Verb.SHUTDOWN) in fakes.commands()
