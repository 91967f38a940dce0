"""The pure restart policy and state machine: no processes, time passed in."""

from __future__ import annotations

import signal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.base.record import replace
from supervisor.core import policy
from supervisor.core.model import (
    Boot,
    Command,
    CrashPolicy,
    EssentialBailed,
    Exited,
    FinishExited,
    FinishSpawned,
    Forensics,
    KillFinish,
    Note,
    Phase,
    Ready,
    RunFinish,
    SendSignal,
    ServiceSpec,
    ServiceState,
    Spawn,
    Spawned,
    SpawnFailed,
    Timer,
    TimerFired,
    Verb,
    Want,
)

GRACE = 3.0
SPEC = ServiceSpec(name="svc", directory="/x")


def step(state, event, now, spec=SPEC):
    return policy.step(spec, state, event, now, GRACE)


def effects(actions):
    """The actions that change processes, without the log notes and snapshots."""
    return [a for a in actions if not isinstance(a, Note | Forensics)]


def notes(actions):
    return [a.event for a in actions if isinstance(a, Note)]


def up(now=0.0, pid=100, spec=SPEC, state=None):
    """A service booted and started at `now`."""
    state, actions = step(state or ServiceState(), Boot(), now, spec)
    assert effects(actions) == [Spawn()]
    state, _ = step(state, Spawned(pid), now, spec)
    return state


# --- the crash window --------------------------------------------------------


def test_window_counts_only_deaths_strictly_inside_it():
    crash = CrashPolicy(5, 60.0)
    assert policy.deaths_in_window((0.0, 1.0, 59.0), 60.0, crash) == (1.0, 59.0)
    assert policy.deaths_in_window((0.0, 30.0), 59.999, crash) == (0.0, 30.0)


def test_five_deaths_in_sixty_seconds_crashloop_four_do_not():
    crash = CrashPolicy(5, 60.0)
    deaths: tuple[float, ...] = ()
    for t in (0, 10, 20, 30):
        deaths = policy.record_death(deaths, float(t), crash)
        assert not policy.is_crashlooping(deaths, crash)
    deaths = policy.record_death(deaths, 59.0, crash)
    assert policy.is_crashlooping(deaths, crash)


def test_dying_every_fifteen_seconds_forever_never_bails():
    crash = CrashPolicy(5, 60.0)
    deaths: tuple[float, ...] = ()
    for n in range(1000):
        deaths = policy.record_death(deaths, n * 15.0, crash)
        assert not policy.is_crashlooping(deaths, crash), n
        assert len(deaths) <= 4


@given(st.lists(st.floats(0, 10_000, allow_nan=False), max_size=60), st.integers(1, 10), st.floats(1, 500))
def test_window_equals_a_plain_count(times, max_deaths, window):
    crash = CrashPolicy(max_deaths, window)
    deaths: tuple[float, ...] = ()
    ordered = sorted(times)
    for index, now in enumerate(ordered):
        deaths = policy.record_death(deaths, now, crash)
        expected = [t for t in ordered[: index + 1] if now - window < t]
        assert list(deaths) == expected
        assert policy.is_crashlooping(deaths, crash) == (len(expected) >= max_deaths)


# --- boot and start ----------------------------------------------------------


def test_boot_starts_a_normally_up_service():
    state, actions = step(ServiceState(), Boot(), 0.0)
    assert state.want is Want.UP
    assert effects(actions) == [Spawn()]


def test_boot_leaves_a_normally_down_service_down():
    spec = replace(SPEC, normally_up=False)
    state, actions = step(ServiceState(), Boot(), 0.0, spec)
    assert state.want is Want.DOWN and state.phase is Phase.DOWN and not state.started
    assert actions == []


def test_spawned_is_up_and_ready_without_notification_fd():
    state = up(5.0, pid=42)
    assert (state.phase, state.pid, state.since, state.last_start, state.ready_at) == (Phase.UP, 42, 5.0, 5.0, 5.0)


def test_spawned_is_not_ready_with_notification_fd_until_it_says_so():
    spec = replace(SPEC, notification_fd=3)
    state = up(5.0, spec=spec)
    assert state.ready_at is None
    state, _ = step(state, Ready(100), 6.5, spec)
    assert state.ready_at == 6.5
    again, actions = step(state, Ready(100), 7.0, spec)
    assert again.ready_at == 6.5 and actions == []


# --- death and respawn -------------------------------------------------------


def test_a_quick_death_waits_until_one_second_after_the_start():
    spec = replace(SPEC, notification_fd=3)  # never ready
    state = up(10.0, spec=spec)
    state, actions = step(state, Exited(1, None), 10.2, spec)
    assert effects(actions) == []
    assert (state.phase, state.timer, state.deadline) == (Phase.WAITING, Timer.START, 11.0)
    assert state.exitcode == 1 and state.deaths == (10.2,)
    state, actions = step(state, TimerFired(), 11.0, spec)
    assert effects(actions) == [Spawn()]


def test_a_service_ready_for_more_than_a_second_restarts_at_once():
    state = up(10.0)
    state, actions = step(state, Exited(None, signal.SIGKILL), 11.5, SPEC)
    assert effects(actions) == [Spawn()]
    assert state.signum == signal.SIGKILL and state.exitcode is None


def test_a_service_that_dies_within_a_second_of_starting_is_paced_even_without_notification_fd():
    state = up(10.0)
    state, actions = step(state, Exited(0, None), 10.5)
    assert effects(actions) == [] and state.deadline == 11.0


def test_death_long_after_start_but_not_ready_is_not_delayed():
    spec = replace(SPEC, notification_fd=3)
    state = up(10.0, spec=spec)
    state, actions = step(state, Exited(1, None), 50.0, spec)
    assert effects(actions) == [Spawn()]  # last start + 1 s is long past


def test_crash_loop_bails_after_exactly_five_deaths_and_logs_it():
    state, _ = step(ServiceState(), Boot(), 0.0)
    now = 0.0
    starts = 0
    for _ in range(20):
        state, actions = step(state, Spawned(100 + starts), now)
        starts += 1
        state, actions = step(state, Exited(2, None), now + 0.01)
        if state.bailed:
            break
        assert state.timer is Timer.START
        now = state.deadline
        state, actions = step(state, TimerFired(), now)
        assert effects(actions) == [Spawn()]
    assert starts == 5
    assert state.bailed and state.phase is Phase.DOWN and state.want is Want.UP
    assert "service bailed" in notes(actions)
    assert Forensics("bailed") in actions
    assert state.deadline is None
    assert not any(isinstance(a, EssentialBailed) for a in actions)


def test_an_essential_service_that_bails_stops_the_container_with_its_code():
    spec = replace(SPEC, essential=True, crash=CrashPolicy(2, 60.0))
    state = up(0.0, spec=spec)
    state, _ = step(state, Exited(7, None), 0.1, spec)
    state, _ = step(state, TimerFired(), 1.0, spec)
    state, _ = step(state, Spawned(2), 1.0, spec)
    state, actions = step(state, Exited(None, signal.SIGSEGV), 1.1, spec)
    assert EssentialBailed(128 + signal.SIGSEGV) in actions


def test_a_service_the_start_path_started_is_up_since_then_and_paced_from_its_adoption():
    """Adopted at 5.0, started at 2.0 and dead before the loop saw it: up since 2.0 (status), and
    its next start 1 s after the adoption, not at once as if it had been ready 3 s: its late
    finish gets its full second."""
    state, _ = step(ServiceState(), Boot(), 5.0)
    state, _ = step(state, Spawned(100, 2.0), 5.0)
    assert state.since == 2.0 and state.ready_at == 5.0 and state.last_start == 5.0
    state, _ = step(state, Exited(3, None), 5.0)
    assert state.phase is Phase.WAITING and state.deadline == 6.0


def test_up_command_clears_a_bail_and_starts_again():
    spec = replace(SPEC, crash=CrashPolicy(1, 60.0))
    state = up(0.0, spec=spec)
    state, _ = step(state, Exited(1, None), 5.0, spec)
    assert state.bailed
    state, actions = step(state, Command(Verb.UP), 6.0, spec)
    assert not state.bailed and state.deaths == ()
    assert effects(actions) == [Spawn()]


def test_spawn_failure_counts_as_a_death_and_is_paced():
    state, _ = step(ServiceState(), Boot(), 0.0)
    state, actions = step(state, SpawnFailed(126, "Permission denied"), 0.0)
    assert state.exitcode == 126 and state.deaths == (0.0,)
    assert state.phase is Phase.WAITING and state.deadline == 1.0
    assert "service could not start" in notes(actions)


# --- finish ------------------------------------------------------------------


FINISHING = replace(SPEC, has_finish=True, timeout_finish_ms=2000)


def test_finish_gets_s6s_four_arguments():
    state = up(0.0, pid=321, spec=FINISHING)
    state, actions = step(state, Exited(3, None), 5.0, FINISHING)
    assert RunFinish(("3", "0", "svc", "321")) in actions
    assert state.phase is Phase.FINISHING and state.timer is Timer.KILL_FINISH and state.deadline == 7.0
    state2 = up(0.0, pid=321, spec=FINISHING)
    _, actions = step(state2, Exited(None, signal.SIGTERM), 5.0, FINISHING)
    assert RunFinish(("256", str(int(signal.SIGTERM)), "svc", "321")) in actions


def test_restart_waits_for_finish_then_applies_the_pacing_from_the_death():
    state = up(0.0, spec=FINISHING)
    state, _ = step(state, Exited(1, None), 5.0, FINISHING)  # ready 5 s: restart at once
    state, _ = step(state, FinishSpawned(400), 5.0, FINISHING)
    assert state.finish_pid == 400
    state, actions = step(state, FinishExited(0), 5.5, FINISHING)
    assert effects(actions) == [Spawn()]


def test_finish_exit_125_leaves_the_service_down_for_good():
    state = up(0.0, spec=FINISHING)
    state, _ = step(state, Exited(1, None), 5.0, FINISHING)
    state, actions = step(state, FinishExited(125), 5.1, FINISHING)
    assert state.want is Want.DOWN and state.phase is Phase.DOWN and effects(actions) == []


def test_finish_that_overruns_is_killed():
    state = up(0.0, spec=FINISHING)
    state, _ = step(state, Exited(1, None), 5.0, FINISHING)
    state, actions = step(state, TimerFired(), 7.0, FINISHING)
    assert effects(actions) == [KillFinish()]


# --- commands ----------------------------------------------------------------


def test_down_sends_the_down_signal_and_sigcont_then_kills_after_the_grace_time():
    spec = replace(SPEC, down_signal=signal.SIGHUP)
    state = up(0.0, spec=spec)
    state, actions = step(state, Command(Verb.DOWN), 10.0, spec)
    assert effects(actions) == [SendSignal(signal.SIGHUP), SendSignal(signal.SIGCONT)]
    assert state.want is Want.DOWN and state.timer is Timer.KILL and state.deadline == 10.0 + GRACE
    state, actions = step(state, TimerFired(), 13.0, spec)
    assert effects(actions) == [SendSignal(signal.SIGKILL)]
    state, actions = step(state, Exited(None, signal.SIGKILL), 13.01, spec)
    assert state.phase is Phase.DOWN and effects(actions) == [] and state.deaths == ()
    assert policy.is_settled_down(state)


def test_timeout_kill_replaces_the_grace_time_for_a_down_command():
    spec = replace(SPEC, timeout_kill_ms=500)
    state, _ = step(up(0.0, spec=spec), Command(Verb.DOWN), 1.0, spec)
    assert state.deadline == 1.5


def test_shutdown_caps_a_long_timeout_kill_at_the_grace_time():
    spec = replace(SPEC, timeout_kill_ms=60_000)
    state, _ = step(up(0.0, spec=spec), Command(Verb.SHUTDOWN), 1.0, spec)
    assert state.deadline == 1.0 + GRACE
    state, _ = step(up(0.0, spec=spec), Command(Verb.DOWN), 1.0, spec)
    state, _ = step(state, Command(Verb.SHUTDOWN), 2.0, spec)
    assert state.deadline == 2.0 + GRACE


def test_nothing_restarts_or_starts_once_shutting_down():
    state, _ = step(up(0.0), Command(Verb.SHUTDOWN), 1.0)
    state, actions = step(state, Command(Verb.UP), 1.1)
    assert effects(actions) == [] and state.want is Want.DOWN
    state, actions = step(state, Exited(0, None), 1.2)
    assert effects(actions) == [] and policy.is_settled_down(state)


def test_shutdown_of_a_waiting_service_cancels_its_start():
    state = up(0.0, spec=replace(SPEC, notification_fd=3))
    state, _ = step(state, Exited(1, None), 0.1)
    assert state.phase is Phase.WAITING
    state, actions = step(state, Command(Verb.SHUTDOWN), 0.2)
    assert state.phase is Phase.DOWN and state.deadline is None and policy.is_settled_down(state)


def test_restart_stops_it_without_counting_a_death_and_it_comes_back():
    state = up(0.0)
    state, actions = step(state, Command(Verb.RESTART), 5.0)
    assert effects(actions)[0] == SendSignal(signal.SIGTERM)
    state, actions = step(state, Exited(None, signal.SIGTERM), 5.1)
    assert state.deaths == () and effects(actions) == [Spawn()]


def test_once_runs_it_without_restarting():
    spec = replace(SPEC, normally_up=False)
    state, _ = step(ServiceState(), Boot(), 0.0, spec)
    state, actions = step(state, Command(Verb.ONCE), 1.0, spec)
    assert effects(actions) == [Spawn()]
    state, _ = step(state, Spawned(9), 1.0, spec)
    state, actions = step(state, Exited(0, None), 2.0, spec)
    assert effects(actions) == [] and state.want is Want.DOWN


def test_once_at_most_does_nothing_to_a_down_service():
    spec = replace(SPEC, normally_up=False)
    state, _ = step(ServiceState(), Boot(), 0.0, spec)
    state, actions = step(state, Command(Verb.ONCE_AT_MOST), 1.0, spec)
    assert actions == [] and state.want is Want.DOWN


@pytest.mark.parametrize(
    "event", [Exited(0, None), FinishExited(0), Ready(1), TimerFired(), FinishSpawned(1)], ids=repr
)
def test_events_that_do_not_apply_to_a_down_service_change_nothing(event):
    state, _ = step(ServiceState(), Boot(), 0.0, replace(SPEC, normally_up=False))
    after, actions = step(state, event, 1.0)
    assert after == state and actions == []


# --- issue 7: stale readiness, -O while waiting, s6's meaning of 0 -----------------


def test_a_newline_from_an_earlier_incarnation_does_not_make_this_one_ready():
    spec = replace(SPEC, notification_fd=3)
    state = up(5.0, pid=100, spec=spec)
    state, _ = step(state, Exited(1, None), 9.0, spec)
    state, _ = step(state, Spawned(200), 9.0, spec)
    stale, actions = step(state, Ready(100), 9.5, spec)
    assert stale.ready_at is None and actions == []
    fresh, _ = step(stale, Ready(200), 9.6, spec)
    assert fresh.ready_at == 9.6


def test_once_at_most_keeps_a_service_waiting_to_restart_down():
    state = up(0.0)
    state, actions = step(state, Exited(1, None), 0.2)
    assert state.phase is Phase.WAITING and state.timer is Timer.START
    state, actions = step(state, Command(Verb.ONCE_AT_MOST), 0.5)
    assert (state.phase, state.want, state.timer, actions) == (Phase.DOWN, Want.DOWN, None, [])
    after, actions = step(state, TimerFired(), 1.0)
    assert effects(actions) == [] and after.phase is Phase.DOWN


def test_once_at_most_during_finish_means_no_restart_after_it():
    spec = replace(SPEC, has_finish=True)
    state = up(0.0, spec=spec)
    state, _ = step(state, Exited(1, None), 5.0, spec)
    assert state.phase is Phase.FINISHING
    state, _ = step(state, Command(Verb.ONCE_AT_MOST), 5.1, spec)
    state, actions = step(state, FinishExited(0), 5.2, spec)
    assert state.phase is Phase.DOWN and effects(actions) == []


def test_timeout_kill_zero_never_kills_on_down_but_shutdown_still_does():
    spec = replace(SPEC, timeout_kill_ms=0)
    state = up(0.0, spec=spec)
    state, actions = step(state, Command(Verb.DOWN), 1.0, spec)
    assert effects(actions) == [SendSignal(signal.SIGTERM), SendSignal(signal.SIGCONT)]
    assert state.timer is None and state.deadline is None
    state, actions = step(state, Command(Verb.SHUTDOWN), 2.0, spec)
    assert (state.timer, state.deadline) == (Timer.KILL, 2.0 + GRACE)


def test_no_timeout_kill_file_means_the_grace_time():
    state = up(0.0)
    state, _ = step(state, Command(Verb.DOWN), 1.0)
    assert (state.timer, state.deadline) == (Timer.KILL, 1.0 + GRACE)


def test_timeout_finish_zero_lets_finish_run_until_the_container_stops():
    spec = replace(SPEC, has_finish=True, timeout_finish_ms=0)
    state = up(0.0, spec=spec)
    state, actions = step(state, Exited(1, None), 5.0, spec)
    assert state.phase is Phase.FINISHING and state.timer is None and state.deadline is None
    state, _ = step(state, Command(Verb.SHUTDOWN), 6.0, spec)
    assert (state.timer, state.deadline) == (Timer.KILL_FINISH, 6.0 + GRACE)
    state, actions = step(state, TimerFired(), 6.0 + GRACE, spec)
    assert effects(actions) == [KillFinish()]
