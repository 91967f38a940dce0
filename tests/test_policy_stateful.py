"""Random lives of one service through the pure policy, with the invariants every life must keep.

The machine plays the effect layer: it answers Spawn with Spawned (or SpawnFailed),
RunFinish with FinishSpawned, and lets processes die, get ready, and finish,
while commands arrive and the clock moves. Stale events (another incarnation's
pid) must change nothing.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from supervisor.base.record import replace
from supervisor.core import policy
from supervisor.core.model import (
    Action,
    Boot,
    Command,
    CrashPolicy,
    Event,
    Exited,
    FinishExited,
    FinishSpawned,
    KillFinish,
    Phase,
    Ready,
    RunFinish,
    SendSignal,
    ServiceSpec,
    ServiceState,
    Spawn,
    Spawned,
    SpawnFailed,
    TimerFired,
    Verb,
    Want,
)

GRACE = 3.0
EPSILON = 1e-9


class ServiceLife(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.spec = ServiceSpec(name="svc", directory="/x")
        self.state = ServiceState()
        self.now = 0.0
        self.alive: int | None = None  # the run process, as the effect layer knows it
        self.finishing: int | None = None  # the finish process
        self.next_pid = 100
        self.fail_next_spawn = False
        self.last_spawn: float | None = None
        self.ready_at: float | None = None
        self.died_at: float | None = None

    @initialize(finish=st.booleans(), notify=st.booleans(), normally_up=st.booleans(),
                deaths=st.integers(1, 6), window=st.floats(1.0, 120.0), timeout_kill=st.sampled_from([None, 0, 500]))
    def boot(self, finish: bool, notify: bool, normally_up: bool, deaths: int, window: float,
             timeout_kill: int | None) -> None:
        self.spec = replace(self.spec, has_finish=finish, notification_fd=3 if notify else None,
                            normally_up=normally_up, crash=CrashPolicy(deaths, window), timeout_kill_ms=timeout_kill)
        self.apply(Boot())

    # --- the effect layer ---------------------------------------------------------

    def apply(self, first: Event) -> None:
        pending = [first]
        while pending:
            event = pending.pop(0)
            before = self.state
            self.state, actions = policy.step(self.spec, self.state, event, self.now, GRACE)
            self.check_bail(before)
            for action in actions:
                follow_up = self.perform(action)
                if follow_up is not None:
                    pending.append(follow_up)

    def perform(self, action: Action) -> Event | None:
        if isinstance(action, Spawn):
            assert self.alive is None and self.finishing is None, "two incarnations at once"
            assert self.state.want is not Want.DOWN and not self.state.bailed, "a down service started"
            if self.last_spawn is not None and self.now - self.last_spawn < policy.MIN_START_INTERVAL - EPSILON:
                ready_long = (self.ready_at is not None and self.died_at is not None
                              and self.died_at - self.ready_at > policy.READY_LONG_ENOUGH)
                assert ready_long, f"started {self.now - self.last_spawn:.3f} s after the last start"
            self.last_spawn, self.ready_at, self.died_at = self.now, None, None
            if self.fail_next_spawn:
                self.fail_next_spawn = False
                self.died_at = self.now
                return SpawnFailed(127, "no such file")
            self.next_pid += 1
            self.alive = self.next_pid
            if self.spec.notification_fd is None:
                self.ready_at = self.now
            return Spawned(self.next_pid)
        if isinstance(action, RunFinish):
            assert self.spec.has_finish and self.alive is None and self.finishing is None
            self.next_pid += 1
            self.finishing = self.next_pid
            return FinishSpawned(self.next_pid)
        if isinstance(action, SendSignal):
            assert self.state.phase is Phase.UP and self.alive is not None, "a signal with no process"
        if isinstance(action, KillFinish):
            assert self.finishing is not None, "killing a finish that does not run"
        return None

    def check_bail(self, before: ServiceState) -> None:
        counted = len(policy.deaths_in_window(self.state.deaths, self.now, self.spec.crash))
        if self.state.bailed and not before.bailed:
            assert counted == self.spec.crash.max_deaths, f"bailed after {counted} deaths"
        if not self.state.bailed:
            assert counted < self.spec.crash.max_deaths or self.state.deaths == before.deaths

    # --- what happens ----------------------------------------------------------

    @rule(seconds=st.floats(0.0, 5.0))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        if self.state.deadline is not None and self.state.deadline <= self.now:
            self.apply(TimerFired())

    @precondition(lambda self: self.state.deadline is not None)
    @rule()
    def until_the_deadline(self) -> None:
        assert self.state.deadline is not None
        self.now = max(self.now, self.state.deadline)
        self.apply(TimerFired())

    @precondition(lambda self: self.alive is not None)
    @rule(code=st.integers(0, 3), signum=st.sampled_from([None, 9, 15, 40]))
    def the_process_dies(self, code: int, signum: int | None) -> None:
        pid, self.alive = self.alive, None
        self.died_at = self.now
        self.apply(Exited(None if signum else code, signum, pid))

    @precondition(lambda self: self.alive is not None)
    @rule()
    def it_says_ready(self) -> None:
        if self.ready_at is None and self.spec.notification_fd is not None:
            self.ready_at = self.now
        self.apply(Ready(self.alive or 0))

    @rule(pid=st.integers(1, 99))
    def a_stale_incarnation_speaks(self, pid: int) -> None:
        before = self.state
        self.apply(Ready(pid))
        self.apply(Exited(1, None, pid))
        assert self.state == before, "a stale event changed the state"

    @precondition(lambda self: self.finishing is not None)
    @rule(code=st.sampled_from([0, 1, 125]))
    def finish_ends(self, code: int) -> None:
        self.finishing = None
        self.apply(FinishExited(code))
        if code == 125:
            assert self.state.want is not Want.UP

    @rule(verb=st.sampled_from(list(Verb)))
    def a_command_arrives(self, verb: Verb) -> None:
        self.apply(Command(verb))
        if verb in (Verb.DOWN, Verb.SHUTDOWN):
            assert self.state.want is Want.DOWN

    @rule()
    def the_next_start_will_fail(self) -> None:
        self.fail_next_spawn = True

    # --- what always holds ----------------------------------------------------------

    @invariant()
    def the_phase_matches_the_processes(self) -> None:
        if self.state.phase is Phase.UP:
            assert self.alive is not None and self.state.pid == self.alive
        if self.state.phase is Phase.FINISHING:
            assert self.alive is None
        if self.state.phase in (Phase.DOWN, Phase.WAITING):
            assert self.alive is None and self.finishing is None

    @invariant()
    def a_waiting_service_has_its_start_time(self) -> None:
        if self.state.phase is Phase.WAITING:
            assert self.state.deadline is not None and self.state.want is not Want.DOWN


ServiceLife.TestCase.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
test_random_lives_keep_the_invariants = ServiceLife.TestCase
