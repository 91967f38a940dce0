"""pyinit as a real PID 1: stages, supervision, isolation, crash loops, reaping, shutdown."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from harness import SLEEPER, Pod, alive, is_zombie, lines_of, read_int, wait_for, wait_ready_for_more_than

# --- stage 1: cont-init.d ----------------------------------------------------


def test_cont_init_runs_in_byte_order_each_to_completion(pod: Pod):
    for name in ("9-y", "10-x", "B-upper", "a-lower"):
        pod.script(f"cont-init.d/{name}", f'echo start {name} >> "$STATE/order"; sleep 0.1; echo end {name} >> "$STATE/order"; echo said {name}')
    pod.script("cont-init.d/50-not-executable", 'echo ran >> "$STATE/order"', executable=False)
    pod.start()
    pod.wait_event("services started")
    names = ["10-x", "9-y", "B-upper", "a-lower"]
    assert pod.read_state("order").split("\n")[:-1] == [f"{w} {n}" for n in names for w in ("start", "end")]
    for name in names:
        assert f"[cont-init.d/{name}] said {name}" in pod.stdout()
    assert pod.event("script is not executable, skipped", script="cont-init.d/50-not-executable")


@pytest.mark.parametrize(("behaviour", "services_start", "warned"),
                         [("0", True, False), ("1", True, True), ("2", False, False), ("3", False, False)])
def test_a_failing_cont_init_follows_s6_behaviour_if_stage2_fails(pod: Pod, behaviour, services_start, warned):
    pod.script("cont-init.d/10-fail", "exit 3")
    pod.script("cont-init.d/20-after", 'touch "$STATE/after"')
    pod.service("svc", SLEEPER)
    pod.script("cont-finish.d/10-hook", 'touch "$STATE/finished"')
    pod.start(env={"S6_BEHAVIOUR_IF_STAGE2_FAILS": behaviour})
    if services_start:
        wait_for(lambda: read_int(pod, "svc.pid"), what="the service to start")
        if warned:  # the log line follows through the output writer: wait for it
            pod.wait_event("cont-init scripts failed, continuing")
        else:
            assert not pod.events("cont-init scripts failed, continuing")
        assert pod.stop() == 0
    else:
        assert pod.wait_exit() == 1  # s6-overlay's: s6-rc fails with 1 and the container halts with it
        assert not pod.read_state("svc.pid")
        # cont-finish.d is s6-overlay's legacy-cont-init down, and that oneshot never came up:
        # s6-overlay 3.2.3.2 runs no cont-finish script here (the differential suite's
        # minimal-stage2-fails-2 case), and nor does pyinit
        assert not (pod.state / "finished").exists()
        assert pod.event("exiting") is not None  # stage 3 still ran
    assert (pod.state / "after").exists()  # every script runs even after one fails


# --- stage 2: services -------------------------------------------------------


def test_each_service_runs_in_its_own_session_with_stdin_from_dev_null(pod: Pod):
    pod.service("probe", 'echo "$$ $(ps -o sid= -p $$) $(ps -o pgid= -p $$) $(readlink /proc/$$/fd/0) $1 $PWD" > "$STATE/probe"\nexec sleep 1000')
    pod.start()
    fields = wait_for(lambda: pod.read_state("probe").split(), what="the probe service")
    pid, sid, pgid, stdin, arg, cwd = fields
    assert pid == sid == pgid
    assert stdin == "/dev/null"
    assert arg == "probe" and cwd.endswith("legacy-services/probe")  # its copy, as s6-overlay runs it


def test_a_dying_service_is_restarted_no_sooner_than_a_second_after_its_start(pod: Pod):
    # The kernel stamps each incarnation with the moment pyinit forked it (field 22 of
    # /proc/PID/stat, in clock ticks): the spawn itself, free of the shell's start-up time,
    # which varies by tens of milliseconds on a loaded machine.
    pod.service("crasher", 'cat /proc/$$/stat >> "$STATE/starts"; exit 1')
    pod.start(env={"PYS6_CRASH_DEATHS": "100"})

    def forked_at() -> list[int] | None:
        lines = pod.read_state("starts").splitlines()
        return [int(line.rsplit(")", 1)[1].split()[19]) for line in lines[:4]] if len(lines) >= 4 else None

    ticks = wait_for(forked_at, 15, "four starts")
    per_second = os.sysconf("SC_CLK_TCK")
    gaps = [(b - a) / per_second for a, b in zip(ticks, ticks[1:], strict=False)]
    # Each stamp is rounded down to a tick, so a gap can read one tick short.
    assert all(gap >= 1.0 - 1 / per_second for gap in gaps), gaps


def test_a_long_lived_service_is_back_at_once_after_sigkill(pod: Pod):
    pod.service("svc", SLEEPER)
    pod.start()
    first = wait_for(lambda: read_int(pod, "svc.pid"), what="first start")
    wait_ready_for_more_than(pod, "svc", 1.0)  # ready for more than a second (s6's rule)
    pod.host_pid(first)
    psutil.Process(pod.host_pid(first)).kill()
    killed_at = time.monotonic()
    second = wait_for(lambda: read_int(pod, "svc.pid") != first and read_int(pod, "svc.pid"), 5, "the respawn")
    assert second != first
    assert time.monotonic() - killed_at < 0.9  # not paced: it had been ready for more than 1 s


def test_finish_runs_after_each_death_with_s6s_arguments(pod: Pod):
    pod.service("svc", 'echo $$ > "$STATE/svc.pid"; exit 7', finish='echo "$@" >> "$STATE/finish"')
    pod.start(env={"PYS6_CRASH_DEATHS": "2"})
    wait_for(lambda: len(pod.read_state("finish").splitlines()) >= 2, 10, "two finish runs")
    code, sig, name, pgid = pod.read_state("finish").splitlines()[0].split()
    assert (code, sig, name) == ("7", "0", "svc") and int(pgid) > 1


def test_finish_exit_125_keeps_the_service_down(pod: Pod):
    pod.service("svc", 'echo x >> "$STATE/starts"; exit 1', finish="exit 125")
    pod.start()
    pod.wait_event("finish asked not to restart")
    time.sleep(1.3)  # a restart would have come within a second
    assert pod.read_state("starts") == "x\n"


def test_a_down_file_keeps_a_service_down(pod: Pod):
    pod.service("idle", 'touch "$STATE/idle-ran"; exec sleep 1000', down="")
    pod.service("busy", SLEEPER)
    pod.start()
    wait_for(lambda: read_int(pod, "busy.pid"), what="busy")
    assert not (pod.state / "idle-ran").exists()


def test_broken_service_definitions_are_reported_and_disturb_nothing(pod: Pod):
    pod.service("good", SLEEPER)
    pod.script("services.d/noexec/run", "exec sleep 1000", executable=False)
    (pod.etc / "services.d" / "norun").mkdir()
    pod.script("services.d/badexec/run", "\x7fELF garbage, not a program")
    (pod.etc / "services.d" / "badexec" / "run").write_text("no shebang here")
    (pod.etc / "services.d" / "stray-file").write_text("")
    pod.start(env={"PYS6_CRASH_DEATHS": "2"})
    good = wait_for(lambda: read_int(pod, "good.pid"), what="the good service")
    for name in ("noexec", "norun", "badexec"):
        pod.wait_event("service bailed", 15, service=name)
    broken = pod.event("service definition is broken", service="noexec")
    assert broken is not None and broken["problem"].startswith("run is not an executable file (chmod +x /")
    assert broken["problem"].endswith("/noexec/run)")
    could_not = pod.event("service could not start", service="noexec")
    assert could_not is not None and could_not["hint"] == broken["problem"].split("(", 1)[1][:-1]
    assert pod.event("service definition is broken", service="norun", problem="no run file")
    assert pod.event("services.d entry skipped", entry="stray-file: not a directory")
    assert pod.event("service could not start", service="badexec")
    assert read_int(pod, "good.pid") == good and alive(pod.init_pid)
    assert pod.stop() == 0


# --- crash loops -------------------------------------------------------------


def test_a_crash_looping_service_bails_after_five_deaths_while_others_run(pod: Pod):
    pod.service("crasher", 'echo x >> "$STATE/starts"; echo dying; exit 4')
    pod.service("steady", SLEEPER)
    pod.start()
    steady = wait_for(lambda: read_int(pod, "steady.pid"), what="steady")
    pod.wait_event("service bailed", 15, service="crasher", deaths=5)
    time.sleep(1.2)  # a sixth start would come within a second
    assert pod.read_state("starts") == "x\n" * 5
    assert read_int(pod, "steady.pid") == steady and alive(pod.host_pid(steady))
    assert alive(pod.init_pid)
    assert pod.stop() == 0


def test_the_crash_window_is_settable(pod: Pod):
    pod.service("crasher", 'echo x >> "$STATE/starts"; exit 4')
    pod.start(env={"PYS6_CRASH_DEATHS": "2", "PYS6_CRASH_WINDOW": "30"})
    pod.wait_event("service bailed", service="crasher", deaths=2, window=30.0)
    assert pod.read_state("starts") == "x\n" * 2


def test_an_essential_service_that_bails_stops_the_container_with_its_exit_code(pod: Pod):
    pod.service("core", "exit 42", essential="")
    pod.service("other", SLEEPER)
    pod.script("cont-finish.d/10-hook", 'touch "$STATE/finished"')
    pod.start(env={"PYS6_CRASH_DEATHS": "2"})
    assert pod.wait_exit(20) == 42
    assert (pod.state / "finished").exists()
    assert pod.event("shutting down", reason="essential service core bailed", exit_code=42)


# --- isolation (the 2026-04-26 SIGHUP incident) --------------------------------


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM, signal.SIGKILL])
def test_a_signal_to_one_services_group_reaches_only_that_service(pod: Pod, signum):
    for name in ("one", "two", "three"):
        pod.service(name, f'echo $$ > "$STATE/{name}.pid"\nsleep 1000 &\nwait')
    pod.start()
    pids = {n: wait_for(lambda n=n: read_int(pod, f"{n}.pid"), what=n) for n in ("one", "two", "three")}
    hosts = {n: pod.host_pid(p) for n, p in pids.items()}
    init = pod.init_pid
    psutil.Process(hosts["two"]).send_signal(0)
    import os

    os.killpg(hosts["two"], signum)
    wait_for(lambda: read_int(pod, "two.pid") not in (None, pids["two"]), 5, "service two to respawn")
    assert read_int(pod, "one.pid") == pids["one"] and alive(hosts["one"])
    assert read_int(pod, "three.pid") == pids["three"] and alive(hosts["three"])
    assert alive(init)
    assert pod.stop() == 0


# --- reaping -----------------------------------------------------------------


def test_a_thousand_orphans_made_in_a_burst_are_all_reaped(pod: Pod):
    pod.service("forker", '''
        for i in $(seq 1000); do ( sleep 0.5 & ) ; done
        echo done > "$STATE/forked"
        exec sleep 1000
    ''')
    pod.start(env={"S6_VERBOSITY": "3"})
    wait_for(lambda: pod.read_state("forked"), 60, "the orphans to be made")

    def no_sleepers_left() -> bool:
        return not [pid for pid, _status, cmd in pod.descendant_info() if cmd == ["sleep", "0.5"]]

    wait_for(no_sleepers_left, 30, "every orphan to exit and be reaped")
    wait_for(lambda: not any(st == psutil.STATUS_ZOMBIE for _p, st, _c in pod.descendant_info()), 10, "no zombies")
    assert len(pod.events("orphan reaped")) >= 1000


def test_a_double_forked_daemon_is_reaped_when_it_exits(pod: Pod):
    pod.service("svc", '''
        ( setsid sh -c 'echo $$ > "$STATE/daemon.pid"; while [ ! -e "$STATE/go" ]; do sleep 0.05; done' & )
        exec sleep 1000
    ''')
    pod.start()
    daemon = wait_for(lambda: read_int(pod, "daemon.pid"), what="the daemon")
    host = pod.host_pid(daemon)
    assert psutil.Process(host).ppid() == pod.init_pid  # re-parented to PID 1
    (pod.state / "go").touch()  # it exits when told, not after a fixed time a loaded machine may outlast
    wait_for(lambda: not psutil.pid_exists(host) or not is_zombie(host) and not alive(host), 10, "the daemon to be reaped")
    assert not psutil.pid_exists(host)


# --- stage 3: shutdown -------------------------------------------------------


@pytest.mark.parametrize(("switch", "seen"), [("0", "alive"), ("1", "gone"), (None, "gone")])
def test_cont_finish_runs_in_order_after_the_services_or_while_they_run_with_the_switch(pod: Pod, switch, seen):
    # s6-overlay v3's order by default (and at 1): the services are down when cont-finish runs;
    # PYS6_FINISH_AFTER_SERVICES=0: cont-finish first, while they still run
    pod.service("svc", SLEEPER)
    for name in ("02-second", "01-first", "10-third"):
        pod.script(f"cont-finish.d/{name}", f'''
            pid=$(cat "$STATE/svc.pid")
            if kill -0 "$pid" 2>/dev/null; then state=alive; else state=gone; fi
            echo "{name} $state" >> "$STATE/finish-order"
        ''')
    pod.start(env={} if switch is None else {"PYS6_FINISH_AFTER_SERVICES": switch})
    wait_for(lambda: read_int(pod, "svc.pid"), what="svc")
    assert pod.stop() == 0
    assert pod.read_state("finish-order").splitlines() == [f"01-first {seen}", f"02-second {seen}", f"10-third {seen}"]


def test_a_cont_finish_script_that_hangs_is_cut_at_s6_kill_finish_maxtime(pod: Pod):
    pod.script("cont-finish.d/01-hang", "exec sleep 1000")
    pod.script("cont-finish.d/02-next", 'touch "$STATE/next"')
    pod.start(env={"S6_KILL_FINISH_MAXTIME": "300"})
    pod.wait_event("services started")
    assert pod.stop(10) == 0
    assert (pod.state / "next").exists()
    assert pod.event("script timed out, killing it", script="cont-finish.d/01-hang", timeout_ms=300)


def test_stubborn_and_daemonized_processes_are_gone_inside_the_budget(pod: Pod):
    pod.service("stubborn", "trap '' TERM\necho $$ > \"$STATE/stubborn.pid\"\nwhile :; do sleep 0.1; done")
    pod.service("daemonizer", '''
        ( setsid bash -c 'trap "" TERM; echo $$ > "$STATE/daemon.pid"; while :; do sleep 0.1; done' & )
        exec sleep 1000
    ''')
    pod.start(env={"S6_SERVICES_GRACETIME": "500", "S6_KILL_GRACETIME": "500"})
    stubborn = pod.host_pid(wait_for(lambda: read_int(pod, "stubborn.pid"), what="stubborn"))
    daemon = pod.host_pid(wait_for(lambda: read_int(pod, "daemon.pid"), what="daemon"))
    started = time.monotonic()
    assert pod.stop(10) == 0
    elapsed = time.monotonic() - started
    assert not psutil.pid_exists(stubborn) and not psutil.pid_exists(daemon)
    assert elapsed < 0.5 + 0.5 + 5  # both grace times and a generous margin, far from a 30 s budget
    assert pod.event("service did not stop in time, killing its group", service="stubborn")
    assert pod.event("sending SIGKILL to remaining processes")


def test_a_second_sigterm_during_shutdown_changes_nothing(pod: Pod):
    pod.service("slow", "trap 'sleep 0.5; exit 0' TERM\necho $$ > \"$STATE/slow.pid\"\nsleep 1000 & wait")
    pod.start()
    wait_for(lambda: read_int(pod, "slow.pid"), what="slow")
    pod.signal(signal.SIGTERM)
    pod.wait_event("shutting down")
    pod.signal(signal.SIGTERM)
    assert pod.wait_exit(15) == 0
    assert len([e for e in pod.events("shutting down") if "reason" in e.fields]) == 1
    assert pod.event("already shutting down")
    assert len(pod.events("services started")) == 1


def test_polite_services_stop_without_waiting_out_any_grace_time(pod: Pod):
    for n in range(5):
        pod.service(f"s{n}", SLEEPER)
    pod.start()
    wait_for(lambda: all(read_int(pod, f"s{n}.pid") for n in range(5)), what="five services")
    started = time.monotonic()
    assert pod.stop() == 0
    assert time.monotonic() - started < 2.5  # well under S6_SERVICES_GRACETIME + S6_KILL_GRACETIME (6 s)


# --- the main program --------------------------------------------------------


def test_the_main_programs_exit_code_is_the_containers(pod: Pod):
    pod.service("svc", SLEEPER)
    pod.script("cont-finish.d/01-hook", 'touch "$STATE/finished"')
    pod.start("sh", "-c", 'test -s "$STATE/svc.pid" || sleep 0.5; echo main says hi; exit 9',
              env={"S6_CMD_WAIT_FOR_SERVICES": "1"})
    assert pod.wait_exit(20) == 9
    assert "main says hi" in pod.stdout()
    assert (pod.state / "finished").exists()


def test_a_main_program_killed_by_a_signal_gives_128_plus_the_signal(pod: Pod):
    pod.start("sh", "-c", "kill -USR1 $$")
    assert pod.wait_exit(20) == 128 + signal.SIGUSR1


def test_a_main_program_that_cannot_be_run_gives_127(pod: Pod):
    pod.start("/nonexistent/program")
    assert pod.wait_exit(20) == 127
    assert pod.event("main program could not start")


# --- configuration -------------------------------------------------------------


def test_bad_configuration_stops_pyinit_before_anything_starts(pod: Pod):
    pod.script("cont-init.d/01-mark", 'touch "$STATE/init-ran"')
    pod.start(env={"PYS6_CONTROL_TIMEOUT": "soon"})
    assert pod.wait_exit(10) == 100
    assert "pyinit: fatal: bad configuration: PYS6_CONTROL_TIMEOUT: bad value 'soon'" in pod.stderr()
    assert not (pod.state / "init-ran").exists()


def test_bad_yaml_names_the_key(pod: Pod):
    (pod.etc / "pys6.yaml").write_text("services:\n  sshd:\n    crash_deaths: lots\n")
    pod.start()
    assert pod.wait_exit(10) == 100
    assert "services.sshd.crash_deaths" in pod.stderr()


def test_log_lines_are_prefixed(pod: Pod):
    pod.service("svc", 'echo to-out; echo to-err >&2; exec sleep 1000')
    pod.start()
    pod.wait_stdout("[svc] to-out")
    pod.wait_stderr("[svc] to-err")
    assert lines_of(pod.stdout(), "[svc] ") == ["to-out"]
