"""s6-overlay v3's order at shutdown and user2's start, and pys6's four departures from
s6-overlay with their switches back (README: Migrating from s6-overlay): each switch set
to 0 gives what the real s6-overlay v3.2.3.2 does on the boot rig (../shared/s6-overlay-real).

The rig's findings these tests hold pyinit to:
- at SIGTERM: services.d's services, then s6-rc's longruns and oneshots' `down` in reverse
  dependency order, then cont-finish (orphans and the main program still alive), then
  SIGTERM to everything left, the main program included;
- user2's services start by their own dependencies, with `user`'s: one that needs only base
  before a slow `user` longrun is ready, one that needs legacy-services once services.d started;
- s6-supervise sends the down-signal and SIGCONT to the service's pid, SIGKILL to the pid at
  timeout-kill and never at a grace time; s6-overlay's shutdown waits S6_SERVICES_GRACETIME and
  goes on, leaving the service to the final kill;
- a service's and a script's stdout and stderr are the container's own descriptors (no pipe),
  so their output reaches it as written; s6's logger pipelines are pipes;
- s6-supervise never gives up on a service: 1 s after each death (after its readiness
  notification when it sent one), for ever.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import anyio
import pytest

from harness import Pod, alive, read_int, wait_for
from supervisor.core import policy
from supervisor.core.model import (
    Boot,
    Command,
    CrashPolicy,
    Exited,
    KillFinish,
    Note,
    Ready,
    SendSignal,
    ServiceSpec,
    ServiceState,
    Spawn,
    Spawned,
    Timer,
    TimerFired,
    Verb,
)
from supervisor.core.settings import load_settings
from supervisor.logs.pipe import RAW_HOLD, LogPipe
from supervisor.logs.writer import OutputWriter

S6_WAY = {"PYS6_LOG_PREFIX": "0", "PYS6_GROUP_SIGNALS": "0", "PYS6_CRASH_BAIL": "0",
          "PYS6_FINISH_AFTER_SERVICES": "1"}


def rc(pod: Pod, name: str, kind: str, deps: tuple[str, ...] = (), bundle: str = "user", **files: str) -> Path:
    """An s6-rc definition in the source directory, in `bundle`."""
    directory = pod.etc / "s6-overlay" / "s6-rc.d" / name
    directory.mkdir(parents=True)
    (directory / "type").write_text(kind + "\n")
    (directory / "dependencies.d").mkdir()
    for dep in deps:
        (directory / "dependencies.d" / dep).touch()
    for filename, content in files.items():
        path = directory / filename.replace("_", "-")
        path.write_text(content)
        if filename in ("run", "finish"):
            path.chmod(0o755)
    contents = pod.etc / "s6-overlay" / "user-bundles.d" / bundle / "contents.d"
    contents.mkdir(parents=True, exist_ok=True)
    (contents / name).touch()
    return directory


def appends(what: str) -> str:
    """A oneshot's command line that appends `what` to $STATE/order (one plain command: no execline needed)."""
    return f'sh -c "echo {what} >> $STATE/order"\n'


def order(pod: Pod) -> list[str]:
    return pod.read_state("order").splitlines()


def event_index(pod: Pod, event: str, **fields: object) -> int:
    """Where `event` comes in pyinit's own events (one stream, in the order they happened)."""
    found = [i for i, e in enumerate(pod.events()) if e.matches(event, **fields)]
    assert found, f"no event {event!r} {fields}"
    return found[0]


# --- stage 3: s6-overlay v3's order --------------------------------------------------


LOOK = '''
    alive() { kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null && echo alive || echo gone; }
    echo "cont-finish svc=$(alive svc) orphan=$(alive orphan) main=$(alive main)" >> "$STATE/order"
'''
ORPHAN = '''setsid sh -c 'echo $$ > "$STATE/orphan.pid"; exec sleep 1000' < /dev/null > /dev/null 2>&1 &\n'''
MAIN = ('sh', '-c', 'trap "echo main-term >> $STATE/order; exit 0" TERM; echo $$ > "$STATE/main.pid"; '
        'while :; do sleep 0.05; done')


def _v3_tree(pod: Pod) -> None:
    pod.service("svc", 'echo $$ > "$STATE/svc.pid"\nexec sleep 1000\n', finish='echo svc-finish >> "$STATE/order"\n')
    rc(pod, "prep", "oneshot", ("base",), up=appends("prep-up"), down=appends("prep-down"))
    pod.script("cont-init.d/10-orphan", ORPHAN)  # a tmux server's like: nobody's service
    pod.script("cont-finish.d/10-look", LOOK)


def test_services_stop_before_cont_finish_which_still_finds_orphans_and_the_main_program(pod: Pod):
    _v3_tree(pod)
    pod.start(*MAIN)
    for name in ("svc", "orphan", "main"):
        wait_for(lambda name=name: read_int(pod, f"{name}.pid"), what=name)
    orphan = pod.host_pid(read_int(pod, "orphan.pid") or 0)
    assert pod.stop() == 0
    assert order(pod) == ["prep-up", "svc-finish", "prep-down", "cont-finish svc=gone orphan=alive main=alive",
                          "main-term"]
    assert not alive(orphan)
    # the main program met the last SIGTERM, to everyone, as s6-overlay's rc.init child does
    assert event_index(pod, "sending SIGTERM to remaining processes") < event_index(pod, "main program exited")


def test_finish_after_services_0_runs_cont_finish_first_then_stops_the_main_program_and_the_services(pod: Pod):
    _v3_tree(pod)
    pod.start(*MAIN, env={"PYS6_FINISH_AFTER_SERVICES": "0"})
    for name in ("svc", "orphan", "main"):
        wait_for(lambda name=name: read_int(pod, f"{name}.pid"), what=name)
    assert pod.stop() == 0
    seen = order(pod)
    assert seen[:2] == ["prep-up", "cont-finish svc=alive orphan=alive main=alive"], seen
    # the main program got its SIGTERM then (its trap runs once its sleep ends: its line comes when it comes)
    assert sorted(seen[2:]) == ["main-term", "prep-down", "svc-finish"], seen
    assert seen.index("svc-finish") < seen.index("prep-down"), seen


# --- stage 2: user2 with user, as one s6-rc change -----------------------------------------


def test_user2_starts_by_its_own_dependencies_not_after_user_and_services_d(pod: Pod):
    rc(pod, "slow", "longrun", ("base",), notification_fd="3\n",
       run='#!/bin/sh\nsleep 1\necho slow-ready >> "$STATE/order"\necho >&3\nexec sleep 1000\n')
    rc(pod, "early", "oneshot", ("base",), bundle="user2", up=appends("early"))
    rc(pod, "after-legacy", "oneshot", ("legacy-services",), bundle="user2", up=appends("after-legacy"))
    pod.service("legacy", 'exec sleep 1000\n')
    pod.start()
    wait_for(lambda: "after-legacy" in order(pod), 20, "the user2 oneshot after services.d")
    assert order(pod) == ["early", "slow-ready", "after-legacy"]
    # services.d waits for all of user, ready included (legacy-services depends on user) ...
    assert event_index(pod, "s6-rc longrun ready", service="slow") < event_index(pod, "services started")
    # ... and a user2 service that depends on legacy-services for services.d
    assert event_index(pod, "services started") < event_index(pod, "s6-rc oneshot starting", service="after-legacy")
    assert pod.stop() == 0


# --- PYS6_LOG_PREFIX=0: the container's own descriptors, the bytes as written --------------


RAW_WRITER = r"""
printf 'plain\ncrlf\r\n\033[2Jclear\n'
printf 'to stderr\n' >&2
head -c 70000 /dev/zero | tr '\0' x; echo
printf 'prompt> '
touch "$STATE/prompted"
exec sleep 1000
"""


def test_log_prefix_0_passes_a_services_bytes_through_as_written(pod: Pod):
    pod.service("raw", RAW_WRITER)
    pod.start(env={"PYS6_LOG_PREFIX": "0"})
    # PID 1's own stdout: the unfinished last line is there as it is, at once
    wait_for(lambda: pod.stdout_path.read_bytes().endswith(b"prompt> "), 10, "the prompt, as written")
    out = pod.stdout_path.read_bytes()
    assert out == b"plain\ncrlf\r\n\x1b[2Jclear\n" + b"x" * 70000 + b"\nprompt> "
    err = pod.stderr_path.read_bytes()
    assert b"to stderr\n" in err and b"[raw]" not in err
    assert pod.event("service started", service="raw")  # pyinit's own lines unchanged
    assert pod.stop() == 0


FDS = 'echo "{who} $(readlink /proc/$$/fd/0) $(readlink /proc/$$/fd/1) $(readlink /proc/$$/fd/2)" >> "$STATE/fds"\n'


def _fds_everywhere(pod: Pod) -> None:
    """A cont-init and a cont-finish script, an s6-rc oneshot, a services.d service with a logger
    and a finish script: each writes where its fds 0, 1 and 2 lead."""
    pod.script("cont-init.d/10-fds", FDS.format(who="cont-init"))
    pod.script("cont-finish.d/10-fds", FDS.format(who="cont-finish"))
    pod.script("fds-up", FDS.format(who="oneshot"))
    rc(pod, "fds-once", "oneshot", up=f"{pod.etc / 'fds-up'}\n")
    pod.service("logged", FDS.format(who="run") + "touch \"$STATE/run-up\"; exec sleep 1000\n",
                finish=FDS.format(who="finish"))
    pod.script("services.d/logged/log/run", FDS.format(who="logger") + "exec cat\n")


def _fds_seen(pod: Pod) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in pod.read_state("fds").splitlines()}


def test_log_prefix_0_hands_children_pid_1s_own_stdout_and_stderr(pod: Pod):
    """s6-overlay's scripts and services write to the container's own descriptors (the rig's
    facts: the console), not to a pipe; only s6's logger pipeline is one."""
    _fds_everywhere(pod)
    pod.start(env={"PYS6_LOG_PREFIX": "0"})
    wait_for(lambda: {"cont-init", "oneshot", "run", "logger"} <= set(_fds_seen(pod)), 10, "every fd line")
    assert pod.stop() == 0
    seen = _fds_seen(pod)
    out, err = str(pod.stdout_path), str(pod.stderr_path)
    for who in ("cont-init", "cont-finish", "oneshot"):
        assert seen[who] == ["/dev/null", out, err], who
    for who in ("run", "finish"):  # stdout into its logger, as s6-supervise's
        assert seen[who][0] == "/dev/null" and seen[who][1].startswith("pipe:") and seen[who][2] == err, who
    assert seen["logger"][0] == seen["run"][1] and seen["logger"][1:] == [out, err]  # the pipeline, kept


def test_log_prefix_1_gives_children_pyinits_pipes(pod: Pod):
    _fds_everywhere(pod)
    pod.start()
    wait_for(lambda: {"cont-init", "oneshot", "run", "logger"} <= set(_fds_seen(pod)), 10, "every fd line")
    assert pod.stop() == 0
    for who, (stdin, stdout, stderr) in _fds_seen(pod).items():
        assert stdout.startswith("pipe:") and stderr.startswith("pipe:"), who
        assert stdin.startswith("pipe:") if who == "logger" else stdin == "/dev/null", who


def test_log_prefix_0_with_a_catch_all_log_keeps_the_pipes_into_it(pod: Pod):
    """S6_LOGGING=1: the services' output goes to the catch-all log (pyinit writes it), so
    they keep pyinit's pipes, raw: no prefix."""
    pod.service("raw", 'echo "raw line"; readlink /proc/$$/fd/1 > "$STATE/fd1"; exec sleep 1000\n')
    env = {"PYS6_LOG_PREFIX": "0", "S6_LOGGING": "1"}
    if os.geteuid() == 0:  # /var/log/s6-uncaught-logs, in a /var/log of its own (a tmpfs in its namespace)
        pod.start(env=env, wrapper=["sh", "-c", 'mount -t tmpfs pys6-test-log /var/log && exec "$@"', "sh"])
        current = Path(f"/proc/{pod.init_pid}/root/var/log/s6-uncaught-logs/current")
    else:
        pod.start(env=env)
        current = pod.rundir / "uncaught-logs" / "current"
    assert wait_for(lambda: pod.read_state("fd1"), 10, "the service's stdout").startswith("pipe:")
    wait_for(lambda: current.exists() and "raw line" in current.read_text(), 10, "the line in the catch-all log")
    assert "[raw]" not in current.read_text() and "raw line" not in pod.stdout()
    assert pod.stop() == 0


def test_log_prefix_by_default_prefixes_escapes_and_completes_lines(pod: Pod):
    pod.service("raw", RAW_WRITER)
    pod.start()
    wait_for(lambda: (pod.state / "prompted").exists(), 10, "everything written")
    assert pod.stop() == 0
    out = pod.stdout_path.read_bytes()
    assert out.startswith(b"[raw] plain\n[raw] crlf\n[raw] \\x1b[2Jclear\n")  # CRLF ended, the escape made visible
    assert out.endswith(b"[raw] prompt> \n")  # completed at the service's end
    assert b"[...]" in out  # the 70000-byte line, cut at 64 KiB


def _raw_pipes(script: list[tuple[int, bytes, float]]) -> bytes:
    """Two raw pipes to one writer; `script`: (which pipe, bytes, seconds to wait after); what came out."""
    out: list[bytes] = []

    async def main() -> None:
        writer = OutputWriter(sink=lambda fd, data: out.append(data))
        pipes = [LogPipe(writer, 1, None, keep_write_end=True) for _ in range(2)]
        async with anyio.create_task_group() as group:
            group.start_soon(writer.run)
            for pipe in pipes:
                pipe.start()
            for which, data, pause in script:
                os.write(pipes[which].write_fd, data)
                await asyncio.sleep(pause)
            for pipe in pipes:
                pipe.drain()
                pipe.close()
            await writer.flush()
            group.cancel_scope.cancel()

    anyio.run(main)
    return b"".join(out)


def test_a_raw_line_written_in_two_pieces_is_not_split_by_another_services_line():
    out = _raw_pipes([(0, b"first half ", 0.05), (1, b"other line\n", 0.05), (0, b"second half\n", 0.05)])
    assert out == b"other line\nfirst half second half\n"


def test_a_raw_unfinished_line_goes_out_as_it_is_after_raw_hold():
    out = _raw_pipes([(0, b"prompt> ", RAW_HOLD + 0.2), (1, b"other line\n", 0.05)])
    assert out == b"prompt> other line\n"  # as s6-overlay's shared stdout shows it


# --- PYS6_GROUP_SIGNALS=0: s6-supervise's signals ------------------------------------------


FAMILY = '''
sh -c 'trap "" TERM; echo $$ > "$STATE/child.pid"; while :; do sleep 0.1; done' &
trap 'echo parent-term >> "$STATE/order"' TERM
echo $$ > "$STATE/family.pid"
while :; do sleep 0.1 & wait $!; done
'''


@pytest.mark.parametrize(("switch", "child_lives", "what"),
                         [("0", True, "killing it"), ("1", False, "killing its group")])
def test_group_signals_decides_whether_a_down_reaches_the_services_children(pod: Pod, switch, child_lives, what):
    pod.service("family", FAMILY, timeout_kill="300\n")
    pod.start(env={"PYS6_GROUP_SIGNALS": switch, "S6_KILL_GRACETIME": "300"})
    parent = pod.host_pid(wait_for(lambda: read_int(pod, "family.pid"), what="the service"))
    child = pod.host_pid(wait_for(lambda: read_int(pod, "child.pid"), what="its child"))
    assert pod.cli("svc", "-d", "family").returncode == 0
    pod.wait_event(f"service did not stop in time, {what}", service="family")
    wait_for(lambda: not alive(parent), 10, "the service's end")
    assert order(pod) == ["parent-term"]  # the down-signal reached the service itself either way
    if child_lives:
        assert alive(child)  # s6-supervise signals the pid: its child is the final kill's
    else:
        wait_for(lambda: not alive(child), 10, "the child's end with its group")
    assert pod.stop() == 0
    assert not alive(child)


@pytest.mark.parametrize(("switch", "seen"), [("0", "alive"), ("1", "gone")])
def test_group_signals_0_sends_no_sigkill_at_the_grace_time_the_final_kill_does(pod: Pod, switch, seen):
    pod.service("stubborn", 'trap "" TERM\necho $$ > "$STATE/stubborn.pid"\nwhile :; do sleep 0.1; done\n')
    pod.script("cont-finish.d/10-look",
               'kill -0 "$(cat "$STATE/stubborn.pid")" 2>/dev/null && echo alive >> "$STATE/order" '
               '|| echo gone >> "$STATE/order"')
    pod.start(env={"PYS6_GROUP_SIGNALS": switch, "S6_SERVICES_GRACETIME": "400", "S6_KILL_GRACETIME": "400"})
    stubborn = pod.host_pid(wait_for(lambda: read_int(pod, "stubborn.pid"), what="the service"))
    assert pod.stop() == 0
    assert order(pod) == [seen]
    assert not alive(stubborn)
    killed_at_grace = pod.event("service did not stop in time, killing its group", service="stubborn")
    assert (killed_at_grace is None) == (switch == "0")
    if switch == "0":
        assert pod.event("services could not be stopped, going on", services="stubborn")
        assert pod.event("sending SIGKILL to remaining processes")


# --- PYS6_CRASH_BAIL=0: s6's restarts for ever ------------------------------------------


def _start_ticks(pod: Pod, count: int, timeout: float) -> list[float]:
    """The first `count` starts of `crasher`, as the kernel stamped them (seconds)."""

    def forked_at() -> list[int] | None:
        lines = pod.read_state("starts").splitlines()
        return [int(line.rsplit(")", 1)[1].split()[19]) for line in lines[:count]] if len(lines) >= count else None

    ticks = wait_for(forked_at, timeout, f"{count} starts")
    return [tick / os.sysconf("SC_CLK_TCK") for tick in ticks]


def test_crash_bail_0_never_bails_and_restarts_a_second_after_each_death(pod: Pod):
    pod.service("crasher", 'cat /proc/$$/stat >> "$STATE/starts"; sleep 0.4; exit 1')
    pod.start(env={"PYS6_CRASH_BAIL": "0", "PYS6_CRASH_DEATHS": "2"})
    starts = _start_ticks(pod, 4, 20)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    tick = 1 / os.sysconf("SC_CLK_TCK")
    assert all(gap >= 1.4 - 2 * tick for gap in gaps), gaps  # 0.4 s up, then 1 s down: s6-supervise's pace
    assert not pod.events("service bailed")
    assert pod.cli("svstat", "-o", "up", "crasher").returncode == 0
    assert pod.stop() == 0


def test_crash_bail_by_default_leaves_a_crash_loop_down(pod: Pod):
    pod.service("crasher", 'cat /proc/$$/stat >> "$STATE/starts"; exit 1')
    pod.start(env={"PYS6_CRASH_DEATHS": "2"})
    pod.wait_event("service bailed", 10, service="crasher")
    assert pod.stop() == 0


# --- the same switches in the pure policy ---------------------------------------------------

GRACE = 3.0
S6_SPEC = ServiceSpec(name="svc", directory="/x", group_signals=False, crash=CrashPolicy(2, 60.0, bail=False))


def _effects(actions: list[object]) -> list[object]:
    return [a for a in actions if not isinstance(a, Note)]


def _up(spec: ServiceSpec, now: float = 0.0) -> ServiceState:
    state, _ = policy.step(spec, ServiceState(), Boot(), now, GRACE)
    state, _ = policy.step(spec, state, Spawned(100), now, GRACE)
    return state


def test_policy_s6_signals_go_to_the_pid_and_sigkill_only_at_timeout_kill():
    state, actions = policy.step(S6_SPEC, _up(S6_SPEC), Command(Verb.DOWN), 5.0, GRACE)
    assert _effects(actions) == [SendSignal(signal.SIGTERM, group=False), SendSignal(signal.SIGCONT, group=False)]
    assert state.deadline is None  # no timeout-kill: s6-supervise never kills
    state, actions = policy.step(S6_SPEC, state, Command(Verb.SHUTDOWN), 6.0, GRACE)
    assert state.deadline is None and _effects(actions) == []  # nor does the grace time
    timed = ServiceSpec(name="svc", directory="/x", group_signals=False, timeout_kill_ms=10_000)
    state, _ = policy.step(timed, _up(timed), Command(Verb.SHUTDOWN), 5.0, GRACE)
    assert (state.timer, state.deadline) == (Timer.KILL, 15.0)  # its own, uncapped by the grace time
    _, actions = policy.step(timed, state, TimerFired(), 15.0, GRACE)
    assert _effects(actions) == [SendSignal(signal.SIGKILL, group=False)]
    grouped = ServiceSpec(name="svc", directory="/x")
    state, actions = policy.step(grouped, _up(grouped), Command(Verb.DOWN), 5.0, GRACE)
    assert _effects(actions) == [SendSignal(signal.SIGTERM), SendSignal(signal.SIGCONT)]
    assert state.deadline == 5.0 + GRACE


def test_policy_a_finish_is_killed_at_timeout_finish_alone_with_s6_signals():
    spec = ServiceSpec(name="svc", directory="/x", group_signals=False, has_finish=True, timeout_finish_ms=8000)
    state, _ = policy.step(spec, _up(spec), Command(Verb.SHUTDOWN), 1.0, GRACE)
    state, _ = policy.step(spec, state, Exited(0, None, 100), 2.0, GRACE)
    assert (state.timer, state.deadline) == (Timer.KILL_FINISH, 10.0)
    _, actions = policy.step(spec, state, TimerFired(), 10.0, GRACE)
    assert _effects(actions) == [KillFinish(group=False)]


def test_policy_without_the_bail_restarts_for_ever_at_s6_supervises_pace():
    state = _up(S6_SPEC)
    for death in range(10):
        now = 3.0 * death + 0.5
        state, actions = policy.step(S6_SPEC, state, Exited(1, None, 100), now, GRACE)
        assert not state.bailed and state.deadline == now + 1.0, death  # down, then 1 s
        assert len(state.deaths) == death + 1  # still counted, for the metrics
        state, _ = policy.step(S6_SPEC, state, TimerFired(), now + 1.0, GRACE)
        state, _ = policy.step(S6_SPEC, state, Spawned(100), now + 1.0, GRACE)
    # with a readiness notification: 1 s after it, at once when that is past
    notifying = ServiceSpec(name="svc", directory="/x", notification_fd=3, crash=CrashPolicy(bail=False))
    state = _up(notifying)
    state, _ = policy.step(notifying, state, Ready(100), 0.2, GRACE)
    state, actions = policy.step(notifying, state, Exited(1, None, 100), 0.5, GRACE)
    assert state.deadline == 1.2
    state, _ = policy.step(notifying, state, TimerFired(), 1.2, GRACE)
    state, _ = policy.step(notifying, state, Spawned(101), 1.2, GRACE)
    state, _ = policy.step(notifying, state, Ready(101), 1.3, GRACE)
    state, actions = policy.step(notifying, state, Exited(1, None, 101), 5.0, GRACE)
    assert Spawn() in actions
    # s6-svc -u on a service that is down: s6-supervise starts it at once
    state, _ = policy.step(S6_SPEC, _up(S6_SPEC, 0.0), Command(Verb.DOWN), 0.1, GRACE)
    state, _ = policy.step(S6_SPEC, state, Exited(0, None, 100), 0.2, GRACE)
    _, actions = policy.step(S6_SPEC, state, Command(Verb.UP), 0.3, GRACE)
    assert Spawn() in actions


# --- the knobs ---------------------------------------------------------------------------


def test_the_switches_default_to_pys6s_way_and_each_is_a_variable_and_a_yaml_key(tmp_path: Path):
    settings = load_settings({"PYS6_ETC": str(tmp_path)})
    assert (settings.log_prefix, settings.group_signals, settings.crash_bail, settings.finish_after_services) == (
        True, True, True, True)
    settings = load_settings({"PYS6_ETC": str(tmp_path), **S6_WAY, "PYS6_FINISH_AFTER_SERVICES": "0"})
    assert (settings.log_prefix, settings.group_signals, settings.crash_bail, settings.finish_after_services) == (
        False, False, False, False)
    assert settings.crash == CrashPolicy(5, 60.0, bail=False)
    (tmp_path / "pys6.yaml").write_text("log_prefix: false\ngroup_signals: 0\ncrash_bail: no\n"
                                        "services:\n  svc:\n    crash_deaths: 3\n")
    settings = load_settings({"PYS6_ETC": str(tmp_path)})
    assert (settings.log_prefix, settings.group_signals, settings.crash_bail) == (False, False, False)
    from supervisor.core.servicedir import read_service

    (tmp_path / "svc").mkdir()
    spec = read_service(str(tmp_path / "svc"), settings)
    assert spec.crash == CrashPolicy(3, 60.0, bail=False) and not spec.group_signals  # an override keeps the switch


# --- PYS6_GROUP_SIGNALS=0: scripts in pyinit's session, as s6-rc's runner leaves them ------


LEADS = 'set -- $(cut -d")" -f2 /proc/$$/stat); echo "{who} $$ $3 $4" >> "$STATE/leads"\n'  # pid pgrp session


@pytest.mark.parametrize(("switch", "leader"), [("0", False), ("1", True)])
def test_group_signals_decides_whether_scripts_lead_a_session(pod: Pod, switch, leader):
    """The rig's facts: under s6-overlay cont-init and cont-finish scripts and oneshots lead
    neither a session nor a process group; pys6 gives each its own (a timeout kills its group).
    A oneshot past its timeout-up is killed either way."""
    pod.script("cont-init.d/10-leads", LEADS.format(who="cont-init"))
    pod.script("cont-finish.d/10-leads", LEADS.format(who="cont-finish"))
    pod.script("leads-up", LEADS.format(who="oneshot"))
    rc(pod, "leads-once", "oneshot", up=f"{pod.etc / 'leads-up'}\n")
    pod.script("stuck-up", 'echo $$ > "$STATE/stuck.pid"; exec sleep 1000\n')
    rc(pod, "stuck", "oneshot", up=f"{pod.etc / 'stuck-up'}\n", timeout_up="300\n")
    pod.start(env={"PYS6_GROUP_SIGNALS": switch})
    pod.wait_event("s6-rc oneshot failed", service="stuck")
    assert pod.event("script timed out, killing it", script="stuck")
    assert not pod.event("cannot kill script") and not pod.event("script outlived SIGKILL, going on without it")
    assert pod.stop() == 0
    seen = {line.split()[0]: line.split()[1:] for line in pod.read_state("leads").splitlines()}
    assert set(seen) == {"cont-init", "cont-finish", "oneshot"}
    for who, (pid, pgrp, session) in seen.items():
        assert (pid == pgrp, pid == session) == (leader, leader), who
