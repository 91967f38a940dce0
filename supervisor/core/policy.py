"""The service state machine and restart policy: pure, time passed in.

`step(spec, state, event, now, grace)` returns the next state and the actions the
effect layer must perform, like s6-supervise's actions[state][event] table.
"""

from __future__ import annotations

import signal
from typing import assert_never

from ..base.terms import signal_name
from .model import (
    Action,
    Boot,
    Command,
    CrashPolicy,
    EssentialBailed,
    Event,
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
    death_code,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # mypy reads dataclasses; base/record builds them without importing dataclasses
    from dataclasses import replace
else:
    from ..base.record import replace

MIN_START_INTERVAL = 1.0  # s6: two starts of one service are at least 1 s apart...
READY_LONG_ENOUGH = 1.0  # ...unless it had been ready for more than 1 s when it died
FINISH_NO_RESTART = 125  # s6: ./finish exiting 125 means "do not restart"

Result = tuple[ServiceState, list[Action]]


# --- the crash window --------------------------------------------------------


def deaths_in_window(deaths: tuple[float, ...], now: float, crash: CrashPolicy) -> tuple[float, ...]:
    """The deaths that still count at `now`: those strictly less than `window` ago."""
    return tuple(t for t in deaths if t > now - crash.window)


def record_death(deaths: tuple[float, ...], now: float, crash: CrashPolicy) -> tuple[float, ...]:
    return deaths_in_window(deaths, now, crash) + (now,)


def is_crashlooping(deaths: tuple[float, ...], crash: CrashPolicy) -> bool:
    """Deaths enough to bail; never with the bail off (PYS6_CRASH_BAIL=0: s6 restarts for ever)."""
    return crash.bail and len(deaths) >= crash.max_deaths


def next_start(spec: ServiceSpec, state: ServiceState, died_at: float, now: float) -> float:
    """When a service that died at `died_at` may start again, at `now` down (its finish done).

    pys6: two starts at least 1 s apart, unless it had been ready for more than 1 s (a service
    without notification-fd is ready once up). With the bail off (PYS6_CRASH_BAIL=0) exactly
    s6-supervise's pacing: 1 s after it went down, or 1 s after its readiness notification
    when it sent one."""
    if not spec.crash.bail:
        if spec.notification_fd is not None and state.ready_at is not None:
            return max(now, state.ready_at + MIN_START_INTERVAL)
        return now + MIN_START_INTERVAL
    if state.ready_at is not None and died_at - state.ready_at > READY_LONG_ENOUGH:
        return now
    if state.last_start is None:
        return now
    return max(now, state.last_start + MIN_START_INTERVAL)


# --- helpers that build results ----------------------------------------------


def _note(event: str, spec: ServiceSpec, level: str = "info", **fields: object) -> Note:
    return Note(event, level, (("service", spec.name), *fields.items()))


def _arm(state: ServiceState, timer: Timer | None, deadline: float | None) -> ServiceState:
    return replace(state, timer=timer, deadline=deadline)


def asked_start(spec: ServiceSpec, state: ServiceState, now: float) -> float:
    """When a service that is down may start on a command (s6-svc -u, -o): s6-supervise starts it at
    once; pys6 keeps its two starts 1 s apart."""
    return now if not spec.crash.bail else next_start(spec, state, now, now)


def _start_or_schedule(spec: ServiceSpec, state: ServiceState, now: float, at: float) -> Result:
    if at <= now:
        return _arm(state, None, None), [Spawn()]
    return _arm(replace(state, phase=Phase.WAITING), Timer.START, at), []


def kill_delay(spec: ServiceSpec, shutting_down: bool, grace: float) -> float | None:
    """Seconds from the down-signal to SIGKILL; None for never.

    timeout-kill as s6 reads it (0: never), the grace time when there is no such
    file (SPEC.md), and never more than the grace time once the container stops.
    With s6-supervise's signals (spec.group_signals False) only timeout-kill: s6
    never kills at a grace time; s6-overlay's shutdown waits the grace time, goes
    on, and the service meets the final SIGTERM and SIGKILL to everyone.
    """
    own = spec.timeout_kill_ms / 1000 if spec.timeout_kill_ms else None
    if not spec.group_signals:
        return own
    if spec.timeout_kill_ms is None:
        return grace
    if shutting_down:
        return grace if own is None else min(own, grace)
    return own


def finish_delay(spec: ServiceSpec, shutting_down: bool, grace: float) -> float | None:
    """Seconds a finish script may run; None for ever (timeout-finish 0, s6), capped once stopping
    (not with s6-supervise's signals: it kills a finish at timeout-finish alone)."""
    own = spec.timeout_finish_ms / 1000 if spec.timeout_finish_ms > 0 else None
    if shutting_down and spec.group_signals:
        return grace if own is None else min(own, grace)
    return own


def _stop(spec: ServiceSpec, state: ServiceState, now: float, grace: float) -> Result:
    """Send the down-signal (and SIGCONT, so a stopped process can act on it), to the group or the pid."""
    delay = kill_delay(spec, state.shutting_down, grace)
    actions: list[Action] = [SendSignal(spec.down_signal, spec.group_signals)]
    if spec.down_signal not in (signal.SIGCONT, signal.SIGKILL):
        actions.append(SendSignal(signal.SIGCONT, spec.group_signals))
    state = replace(state, stopping=True)
    if delay is None:
        return _arm(state, None, None), actions
    return _arm(state, Timer.KILL, now + delay), actions


def _went_down(spec: ServiceSpec, state: ServiceState, now: float, died_at: float) -> Result:
    """The process and its finish are over: decide between restart, rest and bail."""
    state = replace(state, phase=Phase.DOWN, pid=None, finish_pid=None, stopping=False, down_ready_at=now)
    state = _arm(state, None, None)
    if state.want is Want.ONCE:
        state = replace(state, want=Want.DOWN)
    if state.want is not Want.UP or state.bailed:
        return state, []
    return _start_or_schedule(spec, state, now, next_start(spec, state, died_at, now))


# --- the table ---------------------------------------------------------------


def _on_boot(spec: ServiceSpec, state: ServiceState, event: Boot, now: float, grace: float) -> Result:
    want = Want.UP if spec.normally_up else Want.DOWN
    state = replace(state, want=want, since=now)
    if want is Want.UP:
        return state, [Spawn()]
    return state, []


def _on_spawned(spec: ServiceSpec, state: ServiceState, event: Spawned, now: float, grace: float) -> Result:
    # Started by the start path and adopted now: up since its real start, but ready (for the
    # restart rule) and paced from now, the loop's first sight of it. One that died before the
    # loop existed is seen dead only now, and its finish runs only now: that finish (s6-overlay's
    # `exec halt` after writing the exit code) gets its full second before a restart, as under
    # s6-supervise, which ran it at once; a death seen late is no sign of a long readiness.
    started = now if event.at is None else min(now, event.at)
    # With a health check and no notification-fd, its first passing check makes it ready (core/health).
    ready_at = now if spec.notification_fd is None and spec.health is None else None
    state = replace(
        state,
        phase=Phase.UP,
        pid=event.pid,
        pgid=event.pid,
        started=True,
        since=started,
        last_start=now,
        ready_at=ready_at,
        stopping=False,
        unhealthy=False,
    )
    return _arm(state, None, None), [_note("service started", spec, pid=event.pid)]


def _death(
    spec: ServiceSpec, state: ServiceState, exitcode: int | None, signum: int | None, now: float, grace: float
) -> Result:
    """The run process is gone (or never ran): record it, then finish or go down."""
    # A restart for failed health checks was asked for, but counts as a crash would (cause unhealthy).
    expected = (state.stopping and not state.unhealthy) or state.want is not Want.UP
    deaths = state.deaths if expected else record_death(state.deaths, now, spec.crash)
    bails = not expected and is_crashlooping(deaths, spec.crash)
    pgid = state.pid if state.pid is not None else 0
    unhealthy = state.unhealthy and not expected
    state = replace(state, exitcode=exitcode, signum=signum, deaths=deaths, bailed=state.bailed or bails, since=now,
                    died_at=now, unhealthy=False)
    level = "info" if expected else "warning"
    how = ("signal", signal_name(signum)) if signum is not None else ("exitcode", exitcode)
    actions: list[Action] = [
        Note("service died", level, (("service", spec.name), how, ("deaths", len(deaths)), ("expected", expected),
                                     *((("cause", "unhealthy"),) if unhealthy else ())))
    ]
    if bails:
        actions.append(
            _note(
                "service bailed", spec, "error", deaths=len(deaths), window=spec.crash.window, essential=spec.essential,
                # how to recover; an essential one's bail stops the container, nothing is left to start
                **({} if spec.essential else {"hint": f"pysvc -u {spec.name} clears the bail and starts it"}),
            )
        )
        actions.append(Forensics("bailed"))
        if spec.essential:
            actions.append(EssentialBailed(death_code(exitcode, signum)))
    if spec.has_finish:
        code_arg = "256" if signum is not None else str(exitcode if exitcode is not None else 0)
        args = (code_arg, str(signum if signum is not None else 0), spec.name, str(pgid))
        delay = finish_delay(spec, state.shutting_down, grace)
        state = replace(state, phase=Phase.FINISHING, pid=None)
        state = _arm(state, None, None) if delay is None else _arm(state, Timer.KILL_FINISH, now + delay)
        return state, [*actions, RunFinish(args)]
    new_state, more = _went_down(spec, state, now, now)
    return new_state, [*actions, *more]


def _on_exited(spec: ServiceSpec, state: ServiceState, event: Exited, now: float, grace: float) -> Result:
    if state.phase is not Phase.UP or (event.pid is not None and event.pid != state.pid):
        return state, []
    return _death(spec, state, event.exitcode, event.signum, now, grace)


def _on_spawn_failed(spec: ServiceSpec, state: ServiceState, event: SpawnFailed, now: float, grace: float) -> Result:
    state = replace(state, started=True, last_start=now, ready_at=None, pid=None)
    state, actions = _death(spec, replace(state, phase=Phase.UP), event.exitcode, None, now, grace)
    hint = {"hint": event.hint} if event.hint else {}
    return state, [_note("service could not start", spec, "error", reason=event.reason, **hint), *actions]


def _on_finish_spawned(
    spec: ServiceSpec, state: ServiceState, event: FinishSpawned, now: float, grace: float
) -> Result:
    if state.phase is not Phase.FINISHING:
        return state, []
    return replace(state, finish_pid=event.pid), []


def _on_finish_exited(spec: ServiceSpec, state: ServiceState, event: FinishExited, now: float, grace: float) -> Result:
    if state.phase is not Phase.FINISHING:
        return state, []
    actions: list[Action] = []
    if event.exitcode == FINISH_NO_RESTART and state.want is not Want.DOWN:
        state = replace(state, want=Want.DOWN)
        actions.append(_note("finish asked not to restart", spec, exitcode=FINISH_NO_RESTART))
    died_at = state.died_at if state.died_at is not None else now
    new_state, more = _went_down(spec, state, now, died_at)
    return new_state, [*actions, *more]


def _on_ready(spec: ServiceSpec, state: ServiceState, event: Ready, now: float, grace: float) -> Result:
    # A newline from an earlier incarnation (or an orphan of it) says nothing of this one.
    if state.phase is not Phase.UP or state.ready_at is not None or event.pid != state.pid:
        return state, []
    return replace(state, ready_at=now), [_note("service ready", spec)]


def _on_timer(spec: ServiceSpec, state: ServiceState, event: TimerFired, now: float, grace: float) -> Result:
    timer = state.timer
    state = _arm(state, None, None)
    if timer is Timer.START and state.phase is Phase.WAITING:
        return replace(state, phase=Phase.DOWN), [Spawn()]
    if timer is Timer.KILL and state.phase is Phase.UP:
        what = "killing its group" if spec.group_signals else "killing it"
        return state, [_note(f"service did not stop in time, {what}", spec, "warning"),
                       SendSignal(signal.SIGKILL, spec.group_signals)]
    if timer is Timer.KILL_FINISH and state.phase is Phase.FINISHING:
        return state, [_note("finish timed out, killing it", spec, "warning"), KillFinish(spec.group_signals)]
    return state, []


def _on_command(spec: ServiceSpec, state: ServiceState, event: Command, now: float, grace: float) -> Result:
    verb = event.verb
    if state.shutting_down and verb is not Verb.SHUTDOWN:
        return state, []
    if verb is Verb.UP:
        state = replace(state, want=Want.UP, bailed=False, deaths=())
        if state.phase is Phase.DOWN:
            return _start_or_schedule(spec, state, now, asked_start(spec, state, now))
        return state, []
    if verb is Verb.ONCE_AT_MOST:
        # s6-svc -O: not restarted when it dies; a service waiting to restart stays down.
        if state.phase in (Phase.UP, Phase.FINISHING):
            return replace(state, want=Want.ONCE), []
        if state.phase is Phase.WAITING:
            return _arm(replace(state, phase=Phase.DOWN, want=Want.DOWN), None, None), []
        return replace(state, want=Want.DOWN), []
    if verb is Verb.ONCE:
        state = replace(state, want=Want.ONCE, bailed=False)
        if state.phase is Phase.DOWN:
            return _start_or_schedule(spec, state, now, asked_start(spec, state, now))
        return state, []
    if verb is Verb.RESTART:
        if state.phase is Phase.UP:
            return _stop(spec, state, now, grace)
        return state, []
    if verb is Verb.UNHEALTHY:
        # pysvc -r's restart, for failed health checks: its death counts toward the bail.
        if state.phase is Phase.UP and not state.stopping and state.want is Want.UP:
            return _stop(spec, replace(state, unhealthy=True), now, grace)
        return state, []
    # DOWN and SHUTDOWN
    state = replace(state, want=Want.DOWN, shutting_down=state.shutting_down or verb is Verb.SHUTDOWN)
    if state.phase is Phase.WAITING:
        return _arm(replace(state, phase=Phase.DOWN), None, None), []
    if state.phase is Phase.UP and not state.stopping:
        return _stop(spec, state, now, grace)
    if not spec.group_signals:
        return state, []  # s6-supervise: its own timeout-kill and timeout-finish, no grace time
    if state.phase is Phase.UP and state.shutting_down:
        # Already stopping on its own timeout-kill (or none): the container's grace time caps it.
        deadline = now + grace if state.deadline is None else min(state.deadline, now + grace)
        return _arm(state, Timer.KILL, deadline), []
    if state.phase is Phase.FINISHING and state.shutting_down:
        deadline = now + grace if state.deadline is None else min(state.deadline, now + grace)
        return _arm(state, Timer.KILL_FINISH, deadline), []
    return state, []


def step(spec: ServiceSpec, state: ServiceState, event: Event, now: float, grace: float) -> Result:
    """Advance one service by one event at monotonic time `now` (seconds).

    `grace` is the container's S6_SERVICES_GRACETIME in seconds: how long a
    stopping service has before SIGKILL when it has no timeout-kill of its own.
    Each handler decides by the service's phase; a new event type that is not
    handled here is a type error (assert_never).
    """
    match event:
        case Boot():
            return _on_boot(spec, state, event, now, grace)
        case Spawned():
            return _on_spawned(spec, state, event, now, grace)
        case SpawnFailed():
            return _on_spawn_failed(spec, state, event, now, grace)
        case Exited():
            return _on_exited(spec, state, event, now, grace)
        case FinishSpawned():
            return _on_finish_spawned(spec, state, event, now, grace)
        case FinishExited():
            return _on_finish_exited(spec, state, event, now, grace)
        case Ready():
            return _on_ready(spec, state, event, now, grace)
        case TimerFired():
            return _on_timer(spec, state, event, now, grace)
        case Command():
            return _on_command(spec, state, event, now, grace)
        case _:
            assert_never(event)


def is_settled_down(state: ServiceState) -> bool:
    """Down, wanted down, nothing running or scheduled: the end of a shutdown."""
    return state.phase is Phase.DOWN and (state.want is not Want.UP or state.bailed)


def s6_ready(spec: ServiceSpec, state: ServiceState) -> bool:
    """Up and ready as s6-supervise would say it (its status file's ready flag, s6-svwait -U): the
    service said so on its notification-fd, or (pys6's addition) its health check passed once.
    One with neither is up but never ready to s6's tools; pyinit's own waits (pysvc -wU,
    pysvstat --check, S6_CMD_WAIT_FOR_SERVICES, s6-rc's dependencies) count it ready once up,
    as s6-overlay and s6-rc wait for it with s6-svwait -u."""
    return (state.phase is Phase.UP and state.ready_at is not None
            and (spec.notification_fd is not None or spec.health is not None))


def s6_ready_moment(spec: ServiceSpec, state: ServiceState) -> float | None:
    """s6-supervise's readiness stamp (monotonic): its readiness while ready up (s6_ready); else
    the moment it was last down with its finish done, which an up service not ready keeps, as
    s6-supervise's readystamp does; else when it last went up or down; None never started."""
    if s6_ready(spec, state):
        return state.ready_at
    if state.down_ready_at is not None:
        return state.down_ready_at
    return state.since if state.started else None
