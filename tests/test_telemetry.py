"""What the metrics count, read off the pure policy's steps: no processes, time passed in."""

from __future__ import annotations

import signal

from hypothesis import given
from hypothesis import strategies as st

from supervisor.core import policy
from supervisor.core.model import (
    Boot,
    Command,
    Event,
    Exited,
    ServiceSpec,
    ServiceState,
    Spawn,
    Spawned,
    SpawnFailed,
    TimerFired,
    Verb,
)
from supervisor.core.telemetry import ControlTally, ServiceTally, StageRecord, count_step

SPEC = ServiceSpec(name="svc", directory="/x")
GRACE = 3.0


class Driven:
    """A service driven through policy.step as the runner drives it, spawns answered with pids."""

    def __init__(self) -> None:
        self.state = ServiceState()
        self.tally = ServiceTally()
        self.next_pid = 100

    def send(self, event: Event, now: float) -> None:
        pending = [event]
        while pending:
            current = pending.pop(0)
            before = self.state
            self.state, actions = policy.step(SPEC, before, current, now, GRACE)
            count_step(self.tally, current, before, self.state)
            for action in actions:
                if isinstance(action, Spawn):
                    self.next_pid += 1
                    pending.append(Spawned(self.next_pid))


def test_a_crash_loop_counts_each_start_and_each_unexpected_exit_until_the_bail():
    service = Driven()
    service.send(Boot(), 0.0)
    now = 0.0
    for _ in range(5):
        service.send(Exited(1, None, service.state.pid), now)
        now += 1.0
        if service.state.deadline is not None:
            service.send(TimerFired(), service.state.deadline)
    assert service.state.bailed
    assert service.tally.starts == 5
    assert service.tally.deaths == {("exit", False): 5}


def test_a_stop_that_was_asked_for_is_an_expected_death_by_signal():
    service = Driven()
    service.send(Boot(), 0.0)
    service.send(Command(Verb.DOWN), 1.0)
    service.send(Exited(None, signal.SIGTERM, service.state.pid), 1.1)
    assert service.tally.deaths == {("signal", True): 1}
    assert service.tally.starts == 1


def test_a_run_that_cannot_exec_is_a_start_and_a_spawn_failure():
    tally = ServiceTally()
    before = policy.step(SPEC, ServiceState(), Boot(), 0.0, GRACE)[0]
    after = policy.step(SPEC, before, SpawnFailed(126, "permission denied"), 0.0, GRACE)[0]
    count_step(tally, SpawnFailed(126, "permission denied"), before, after)
    assert (tally.starts, tally.deaths) == (1, {("spawn_failure", False): 1})


def test_news_of_an_earlier_incarnation_counts_nothing():
    service = Driven()
    service.send(Boot(), 0.0)
    old_pid = service.state.pid
    service.send(Exited(0, None, old_pid), 5.0)  # dies, restarts at once (no notification-fd: ready)
    assert service.state.pid != old_pid
    service.send(Exited(0, None, old_pid), 6.0)  # a stale report of the same pid
    assert service.tally.deaths == {("exit", False): 1}
    assert service.tally.starts == 2


@given(st.lists(st.sampled_from(["exit", "kill", "down", "up", "timer"]), max_size=40))
def test_deaths_never_outnumber_starts(moves):
    service = Driven()
    service.send(Boot(), 0.0)
    for step, move in enumerate(moves, start=1):
        now = float(step)
        if move == "exit":
            service.send(Exited(3, None, service.state.pid), now)
        elif move == "kill":
            service.send(Exited(None, signal.SIGKILL, service.state.pid), now)
        elif move == "down":
            service.send(Command(Verb.DOWN), now)
        elif move == "up":
            service.send(Command(Verb.UP), now)
        elif service.state.deadline is not None:
            service.send(TimerFired(), max(now, service.state.deadline))
    assert sum((service.tally.deaths or {}).values()) <= service.tally.starts


def test_control_verbs_outside_the_known_set_share_one_label_value():
    tally = ControlTally(("status", "control"))
    for verb in ("status", "status", "x" * 1000, "drop table"):
        tally.request(verb, "ok")
    assert tally.requests == {("status", "ok"): 2, ("other", "ok"): 2}


def test_a_stage_counts_its_failed_scripts():
    record = StageRecord("cont-init")
    record.scripts += [("10-a", 0, 0.1), ("20-b", 3, 0.2), ("30-c", 137, 5.0)]
    assert record.failures == 2
