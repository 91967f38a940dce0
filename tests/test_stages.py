"""The stage sequence in process: container/stages.Stages against fake runners, scripts and reaper.

S6_BEHAVIOUR_IF_STAGE2_FAILS (0, 1, 2) x where stage 2 fails (the stage-2 hook, fix-attrs.d,
cont-init.d, an s6-rc oneshot, the wait for services): what is said, whether the container
stops and with which code, and whether what comes after the failure still ran. Then the stop
sequence's order. Events are read as structlog hands them over (capture_logs), never rendered.
No process is started: test_pid1.py and test_s6_overlay.py boot the same cells for real.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from fakes import FakeReaper, FakeScripts, FakeServices
from structlog.testing import capture_logs

from supervisor.base.record import replace  # Settings is a record (base/record), not a dataclass
from supervisor.container.stages import Stage2Failure, Stages, stage2_ladder
from supervisor.core.model import Verb
from supervisor.core.settings import Settings
from supervisor.logs.writer import OutputWriter
from supervisor.s6.layout import Layout

WHERE = ("hook", "fix-attrs", "cont-init", "s6-rc", "wait")


def _write(path: Path, text: str, executable: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if executable:
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _service(etc: Path, name: str, notification_fd: int | None = None) -> None:
    _write(etc / "services.d" / name / "run", "#!/bin/sh\nexec sleep 1000\n", executable=True)
    if notification_fd is not None:
        _write(etc / "services.d" / name / "notification-fd", f"{notification_fd}\n")


def _oneshot(etc: Path, name: str) -> None:
    rc = etc / "s6-overlay" / "s6-rc.d"
    _write(rc / name / "type", "oneshot\n")
    _write(rc / name / "up", "false\n")
    _write(rc / "user" / "type", "bundle\n")
    _write(rc / "user" / "contents.d" / name, "")


class Pod:
    """One Stages over a temporary /etc and /run, its runners, scripts and reaper fakes."""

    def __init__(self, tmp: Path, behaviour: int, **settings: Any) -> None:
        self.etc = tmp / "etc"
        self.etc.mkdir()
        run = tmp / "run"
        (run / "service").mkdir(parents=True)
        self.settings = replace(Settings(), etc=str(self.etc), behaviour_if_stage2_fails=behaviour,
                                            services_gracetime=100, kill_gracetime=100, **settings)
        self.layout = Layout(str(run / "s6" / "container_environment"), [str(run / "service")],
                             [str(run / "exitcode")])
        self.fakes = FakeServices(never_ready=("slow",))
        self.scripts = FakeScripts()

    def boot(self) -> tuple[int, list[dict[str, Any]]]:
        """Run the container's life with a main program: once that started, the test asks for its end."""
        with capture_logs() as events:
            stages = Stages(self.settings, FakeReaper(), OutputWriter(), structlog.get_logger(), False,  # type: ignore[arg-type]
                            dict, self.layout)
            stages.table.make_runner = self.fakes.make  # type: ignore[assignment]
            stages.scripts.run_script = self.scripts  # type: ignore[method-assign]
            self.stages = stages
            main_started = anyio.Event()

            async def main_program(argv: list[str]) -> None:  # the end of stage 2, reached
                self.fakes.journal.append(("main", "start"))
                main_started.set()
                await stages.shutdown.stopping.wait()

            stages.scripts.run_main_program = main_program  # type: ignore[method-assign]

            async def life() -> int:
                code: list[int] = []
                async with anyio.create_task_group() as group:

                    async def run() -> None:
                        code.append(await stages.run(["prog"]))
                        main_started.set()

                    group.start_soon(run)
                    with anyio.fail_after(10):
                        await main_started.wait()
                    if not code:
                        stages.request_shutdown("the test is over")
                return code[0]

            exit_code = anyio.run(life)
        return exit_code, events


def _fail_at(pod: Pod, where: str) -> None:
    _service(pod.etc, "web")
    if where == "hook":
        pod.settings = replace(pod.settings, stage2_hook="exit 3")
        pod.scripts.codes["S6_STAGE2_HOOK"] = 3
    elif where == "fix-attrs":
        _write(pod.etc / "fix-attrs.d" / "01-bad", "this is not a fix-attrs line\n")
    elif where == "cont-init":
        _write(pod.etc / "cont-init.d" / "10-fail", "#!/bin/sh\nexit 1\n", executable=True)
        pod.scripts.codes["cont-init.d/10-fail"] = 1
    elif where == "s6-rc":
        _oneshot(pod.etc, "bad")
        pod.scripts.codes["bad"] = 1
    else:
        _service(pod.etc, "slow", notification_fd=3)
        pod.settings = replace(pod.settings, cmd_wait_for_services=True, cmd_wait_for_services_maxtime=100)


# What each failure says at 0, 1 and 2 (the event, its level), and the code it stops with at 2.
SAID: dict[str, tuple[tuple[str, str] | None, tuple[str, str] | None, tuple[str, str] | None, int]] = {
    "hook": (("warning", "stage 2 hook failed"), ("warning", "stage 2 hook failed"),
             ("error", "stage 2 hook failed, stopping the container"), 3),
    "fix-attrs": (None, ("warning", "fix-attrs.d failed, continuing"), None, 1),
    "cont-init": (None, ("warning", "cont-init scripts failed, continuing"), ("warning", "cont-init scripts failed"), 1),
    "s6-rc": (None, ("warning", "s6-rc services failed: bad, continuing"), None, 1),
    "wait": (None, ("warning", "services were not ready in time, going on"),
             ("error", "services were not ready in time, stopping the container"), 1),
}
LADDER_EVENTS = {said[1] for row in SAID.values() for said in row[:3] if said is not None}


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("behaviour", (0, 1, 2))
def test_s6_behaviour_if_stage2_fails_at_each_place_a_failure_can_happen(tmp_path: Path, behaviour: int, where: str):
    pod = Pod(tmp_path, behaviour)
    _fail_at(pod, where)
    code, events = pod.boot()
    said = SAID[where][behaviour]
    ladder = [(e["log_level"], e["event"]) for e in events if e["event"] in LADDER_EVENTS]
    assert ladder == ([said] if said is not None else [])
    shutdowns = [e for e in events if e["event"] == "shutting down"]
    assert len(shutdowns) == 1
    web_started = ("web", "start") in pod.fakes.journal
    main_started = ("main", "start") in pod.fakes.journal
    if behaviour < 2:
        assert code == 0 and shutdowns[0]["reason"] == "the test is over"
        assert main_started  # the rest of stage 2 went on
        # but not services.d after a failed user service: s6-overlay's legacy-services depends on user
        assert web_started == (where != "s6-rc")
    else:
        assert code == SAID[where][3] and shutdowns[0]["exit_code"] == code
        assert web_started == (where == "wait")  # nothing after the failure ran (the wait comes last)
        assert not main_started


def test_a_failure_the_ladder_reads_names_what_failed():
    failure = Stage2Failure("the s6-rc services have problems")
    assert stage2_ladder(0, failure) == (None, False)
    assert stage2_ladder(1, failure) == (("warning", "the s6-rc services have problems, continuing"), False)
    assert stage2_ladder(2, failure) == (None, True)
    assert stage2_ladder(3, failure) == (None, True)  # s6-overlay: anything above 2 is 2
    assert stage2_ladder(-1, failure) == (None, False)


def test_cont_init_failures_are_named_in_the_event(tmp_path: Path):
    pod = Pod(tmp_path, 1)
    _fail_at(pod, "cont-init")
    _write(pod.etc / "cont-init.d" / "20-fail-too", "#!/bin/sh\nexit 2\n", executable=True)
    pod.scripts.codes["cont-init.d/20-fail-too"] = 2
    _code, events = pod.boot()
    (event,) = [e for e in events if e["event"] == "cont-init scripts failed, continuing"]
    assert event["failed"] == "cont-init.d/10-fail, cont-init.d/20-fail-too"


def test_the_hooks_code_is_the_containers_at_2(tmp_path: Path):
    pod = Pod(tmp_path, 2)
    _fail_at(pod, "hook")
    pod.scripts.codes["S6_STAGE2_HOOK"] = 42
    code, events = pod.boot()
    assert code == 42
    assert pod.scripts.ran == ["S6_STAGE2_HOOK"]  # cont-init never ran


def test_services_d_unreadable_stops_with_100(tmp_path: Path):
    pod = Pod(tmp_path, 0)
    _write(pod.etc / "services.d", "a file, not a directory")
    code, events = pod.boot()
    assert code == 100
    assert [e["reason"] for e in events if e["event"] == "shutting down"] == ["services.d cannot be read"]


# --- the stop sequence ---------------------------------------------------------------


def test_stage_3_stops_producers_then_their_loggers_each_once(tmp_path: Path):
    pod = Pod(tmp_path, 0)
    _service(pod.etc, "web")
    _write(pod.etc / "services.d" / "web" / "log" / "run", "#!/bin/sh\nexec cat\n", executable=True)
    _service(pod.etc, "db")
    pod.fakes.ends_at_eof.add("web-log")
    _code, events = pod.boot()
    commands = pod.fakes.commands()
    producers_stopped = max(commands.index((name, Verb.SHUTDOWN)) for name in ("db", "web"))
    told_to_end = commands.index(("web-log", Verb.ONCE_AT_MOST))  # it reads to its end of input, then exits
    assert producers_stopped < told_to_end < commands.index(("web-log", Verb.SHUTDOWN))  # then the stop sequence
    assert pod.stages.table.runners["web-log"].state.pid is None
    assert [e["event"] for e in events if e["event"].startswith("services ")][-1] == "services stopped"


def test_a_service_that_will_not_stop_is_given_up_after_the_bound(tmp_path: Path):
    pod = Pod(tmp_path, 0)
    _service(pod.etc, "web")
    _service(pod.etc, "stubborn")
    pod.fakes.stubborn.add("stubborn")
    _code, events = pod.boot()
    assert [(n, v) for n, v in pod.fakes.commands() if v is Verb.SHUTDOWN] == [("stubborn", Verb.SHUTDOWN),
                                                                               ("web", Verb.SHUTDOWN)]
    (given_up,) = [e for e in events if e["event"] == "services could not be stopped, going on"]
    assert given_up["services"] == "stubborn" and given_up["log_level"] == "error"
    assert "services stopped" not in [e["event"] for e in events]
    assert events[-1]["event"] == "exiting"


def test_s6_rc_longruns_stop_after_services_d_in_reverse_dependency_order(tmp_path: Path):
    pod = Pod(tmp_path, 0)
    _service(pod.etc, "web")
    rc = pod.etc / "s6-overlay" / "s6-rc.d"
    for name, needs in (("store", ()), ("app", ("store",))):
        _write(rc / name / "type", "longrun\n")
        _write(rc / name / "run", "#!/bin/sh\nexec sleep 1000\n", executable=True)
        for need in needs:
            _write(rc / name / "dependencies.d" / need, "")
        _write(rc / "user" / "contents.d" / name, "")
    _write(rc / "user" / "type", "bundle\n")
    _code, events = pod.boot()
    order = [name for name, verb in pod.fakes.commands() if verb is Verb.SHUTDOWN]
    assert order == ["web", "app", "store"]
    assert [e["service"] for e in events if e["event"] == "s6-rc longrun stopped"] == ["app", "store"]
    assert os.path.isdir(tmp_path / "run" / "s6" / "s6-rc" / "app")  # run from its compiled copy
