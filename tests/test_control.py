"""pysvstat and pysvc against a live pyinit (PID 1 of a namespace), and the socket's defences."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading

import psutil

from harness import GREETING_SLEEPER, REPO, Pod, control_path, raw_exchange, read_int, started, wait_for

SLEEPER = GREETING_SLEEPER


# --- pysvstat ----------------------------------------------------------------


def test_pysvstat_prints_s6_words_for_all_and_for_one(pod: Pod):
    pod.service("crasher", "exit 1")
    pod.service("idle", SLEEPER, down="")
    started(pod, "sshd", env={"PYS6_CRASH_DEATHS": "2"})
    pod.wait_event("service bailed", service="crasher")
    result = pod.cli("svstat")
    lines = result.stdout.splitlines()
    assert result.returncode == 0
    assert lines[0] == "crasher: " + lines[0].split(": ", 1)[1]
    assert lines[0].startswith("crasher: down (exitcode 1) ") and lines[0].endswith(
        "seconds, normally up, want up, bailed (2 deaths in 60 seconds)")
    assert lines[1] == "idle: down (not started yet), normally down"
    pid = read_int(pod, "sshd.pid")
    assert lines[2].startswith(f"sshd: up (pid {pid} pgid {pid}) ") and ", normally up, ready " in lines[2]
    assert lines[3] == "3 services: 1 up, 2 down, 1 bailed"
    one = pod.cli("svstat", "/run/service/sshd")
    assert one.stdout.startswith(f"up (pid {pid} pgid {pid}) ") and one.stdout.count("\n") == 1


def test_pysvstat_fields_json_and_check(pod: Pod):
    pod.service("crasher", "exit 3")
    started(pod, "web", env={"PYS6_CRASH_DEATHS": "1"})
    pod.wait_event("service bailed", service="crasher")
    pid = read_int(pod, "web.pid")
    assert pod.cli("svstat", "-upes", "web").stdout == f"true {pid} -1 NA\n"
    assert pod.cli("svstat", "-o", "up,exitcode,normallyup", "crasher").stdout == "false 3 true\n"
    records = [json.loads(line) for line in pod.cli("svstat", "--json").stdout.splitlines()]
    crasher = next(r for r in records if r["name"] == "crasher")
    for key in ("name", "state", "pid", "pgid", "seconds", "exitcode", "signal", "normally", "want", "ready",
                "bailed", "deaths"):
        assert key in crasher
    assert (crasher["state"], crasher["bailed"], crasher["deaths"], crasher["exitcode"]) == ("down", True, 1, 3)
    check = pod.cli("svstat", "--check")
    assert check.returncode == 1 and check.stdout.startswith("crasher: down")
    snapshot = pod.event("forensics", service="crasher", reason="bailed", processes=[])
    assert snapshot is not None and isinstance(snapshot["deaths_seconds_ago"], list)
    assert list(snapshot.fields)[:4] == ["service", "reason", "processes", "deaths_seconds_ago"]
    snapshot = json.loads(pod.cli("svstat", "--forensics", "web").stdout)
    assert snapshot["service"] == "web" and snapshot["processes"][0]["pid"] == pid
    assert snapshot["processes"][0]["cmd"] == "sleep 1000" and snapshot["last_lines"] == ["web says hello"]
    assert pod.cli("svstat", "--check", "web").returncode == 0


def test_check_waits_for_readiness_from_notification_fd(pod: Pod):
    pod.service("slow", 'touch "$STATE/started"; read -t 100 < "$STATE/go-fifo"; echo >&3; exec sleep 1000',
                notification_fd="3")
    os.mkfifo(pod.state / "go-fifo")
    pod.start()
    pod.wait_control()
    wait_for(lambda: (pod.state / "started").exists(), what="slow to start")
    assert pod.cli("svstat", "--check").returncode == 1
    assert pod.cli("svstat", "-ur", "slow").stdout == "true false\n"
    waiter = subprocess.Popen([sys.executable, "-m", "supervisor.control.svc", "-wU", "-T", "10000", "slow"],
                              env={**os.environ, "PYS6_RUNDIR": str(pod.rundir), "PYTHONPATH": str(REPO)})
    try:
        with open(pod.state / "go-fifo", "w") as fifo:
            fifo.write("go\n")
        assert waiter.wait(15) == 0
    finally:
        waiter.kill()
    assert pod.cli("svstat", "--check").returncode == 0


def test_log_tail_keeps_the_last_lines(pod: Pod):
    pod.service("talker", 'seq 1 1500; echo to-err >&2; exec sleep 1000')
    pod.start()
    pod.wait_control()
    pod.wait_stderr("[talker] to-err")
    result = pod.cli("svstat", "--log", "talker", "-n", "3")
    assert result.stdout == "1499\n1500\nto-err\n" and result.stderr == ""  # every stream on stdout
    full = pod.cli("svstat", "--log", "talker", "-n", "5000")
    assert len(full.stdout.splitlines()) == 1000  # the ring keeps 1,000


# --- pysvc -------------------------------------------------------------------


def test_signals_go_to_the_main_process_and_capitals_to_the_group(pod: Pod):
    pod.service("fam", 'echo $$ > "$STATE/fam.pid"; sleep 1000 & echo $! > "$STATE/child.pid"; trap "echo got-hup" HUP; while :; do wait; done')
    pod.start()
    pod.wait_control()
    child = pod.host_pid(wait_for(lambda: read_int(pod, "child.pid"), what="the child"))
    assert pod.cli("svc", "-h", "fam").returncode == 0
    pod.wait_stdout("[fam] got-hup")
    assert psutil.Process(child).is_running()
    assert pod.cli("svc", "-P", "fam").returncode == 0
    wait_for(lambda: psutil.Process(child).status() == psutil.STATUS_STOPPED, 5, "the group to stop")
    assert "paused" in pod.cli("svstat", "fam").stdout
    assert pod.cli("svc", "-C", "fam").returncode == 0
    wait_for(lambda: psutil.Process(child).status() != psutil.STATUS_STOPPED, 5, "the group to continue")


def test_down_up_restart_once_and_their_waits(pod: Pod):
    started(pod, "svc")
    first = read_int(pod, "svc.pid")
    assert pod.cli("svc", "-d", "-wD", "-T", "5000", "svc").returncode == 0
    assert pod.cli("svstat", "-u", "svc").stdout == "false\n"
    pod.wait_event("forensics", service="svc", reason="before down")  # the log line follows through the writer
    assert pod.cli("svc", "-u", "-wu", "-T", "5000", "svc").returncode == 0
    # -wu returns once it is spawned; the shell writes its pid file a moment later
    second = wait_for(lambda: read_int(pod, "svc.pid") not in (None, first) and read_int(pod, "svc.pid"),
                      what="the new incarnation's pid file")
    assert pod.cli("svc", "-r", "-wr", "-T", "5000", "svc").returncode == 0
    wait_for(lambda: read_int(pod, "svc.pid") not in (None, first, second), what="the restarted incarnation")
    assert pod.cli("svc", "-D", "-wd", "svc").returncode == 0
    # in the copy the service runs from, as s6-overlay's -D writes it; the image's tree is untouched
    assert (pod.scan_entry("svc") / "down").exists() and not (pod.etc / "services.d" / "svc" / "down").exists()
    assert "normally down" in pod.cli("svstat", "svc").stdout
    assert pod.cli("svc", "-U", "-wu", "-T", "5000", "svc").returncode == 0
    assert not (pod.scan_entry("svc") / "down").exists()


def test_up_clears_a_bail(pod: Pod):
    pod.service("flaky", 'n=$(cat "$STATE/n" 2>/dev/null || echo 0); echo $((n+1)) > "$STATE/n"; [ "$n" -ge 2 ] && exec sleep 1000; exit 1')
    pod.start(env={"PYS6_CRASH_DEATHS": "2"})
    pod.wait_control()
    pod.wait_event("service bailed", service="flaky")
    assert "bailed" in pod.cli("svstat", "flaky").stdout
    assert pod.cli("svc", "-u", "-wu", "-T", "5000", "flaky").returncode == 0
    status = pod.cli("svstat", "flaky").stdout
    assert status.startswith("up ") and "bailed" not in status


def test_a_wait_that_times_out_exits_1(pod: Pod):
    pod.service("never", "exit 1", down="")
    pod.service("unready", "exec sleep 1000", notification_fd="3")  # up, never ready
    pod.start()
    pod.wait_control()
    result = pod.cli("svc", "-wU", "-T", "300", "unready")
    assert result.returncode == 1 and "unready: timed out after 0.3 s waiting for ready" in result.stderr
    # wanted down, it would never come up: pysvc says so at once (3) instead of timing out (tests/test_feedback.py)
    result = pod.cli("svc", "-wu", "-T", "300", "never")
    assert result.returncode == 3 and "cannot be met" in result.stderr


def test_errors_are_one_line_with_s6_exit_codes_and_change_nothing(pod: Pod):
    pod.service("off", SLEEPER, down="")
    started(pod, "on")
    before = pod.cli("svstat").stdout
    cases = [
        (["svc", "-d", "nosuch"], 100, "unknown service: nosuch"),
        (["svc", "-d", "on", "nosuch"], 100, "unknown service"),
        (["svc", "-z", "on"], 100, "unknown option -z"),
        (["svc", "-t", "off"], 3, "off is down"),
        (["svc", "-t", "on", "off"], 3, "off is down"),
        (["svc", "-r", "off"], 3, "nothing to restart"),
        (["svstat", "-Z"], 100, "unknown option"),
        (["svstat", "nosuch"], 100, "unknown service"),
        (["svstat", "-o", "colour", "on"], 100, "unknown field"),
    ]
    for args, code, message in cases:
        result = pod.cli(*args)
        assert result.returncode == code, (args, result.stderr)
        assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    def without_times(line: str) -> str:  # a second may tick by on a loaded machine
        return re.sub(r"\d+ seconds", "N seconds", line)

    # "on" still up, same pid
    assert without_times(pod.cli("svstat").stdout.split("\n")[1]) == without_times(before.split("\n")[1])
    assert read_int(pod, "on.pid") is not None


def test_clients_say_102_when_no_pyinit_runs(tmp_path):
    env = {**os.environ, "PYS6_RUNDIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    for tool in ("svstat", "svc"):
        args = [] if tool == "svstat" else ["-d", "x"]
        result = subprocess.run([sys.executable, "-m", f"supervisor.control.{tool}", *args], env=env,
                                capture_output=True, text=True)
        assert result.returncode == 102 and "not running" in result.stderr


def test_the_clients_import_only_the_standard_library():
    code = ("import sys; import supervisor.control.svstat, supervisor.control.svc; "
            "print(' '.join(m for m in ('anyio', 'structlog', 'yaml', 'psutil', 'croniter', 'asyncio') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO), check=True)
    assert result.stdout.strip() == ""


# --- the socket --------------------------------------------------------------


def test_socket_and_directory_are_private(pod: Pod):
    started(pod, "svc")
    assert stat.S_IMODE(os.stat(pod.rundir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(control_path(pod)).st_mode) == 0o600


def test_a_stale_socket_is_replaced_and_a_live_one_is_not_stolen(pod: Pod):
    pod.rundir.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(control_path(pod))
    stale.close()  # a socket file nobody listens on: left by an earlier boot
    started(pod, "svc")
    second = subprocess.run(
        [sys.executable, "-m", "supervisor"], capture_output=True, text=True, timeout=20,
        env={**os.environ, "PYS6_ETC": str(pod.etc), "PYS6_RUNDIR": str(pod.rundir), "PYTHONPATH": str(REPO)})
    assert second.returncode == 111
    assert "served by another running pyinit" in second.stderr
    assert pod.cli("svstat", "svc").returncode == 0


def test_garbage_on_the_socket_gets_errors_and_harms_nothing(pod: Pod):
    started(pod, "a", "b")
    pids = (read_int(pod, "a.pid"), read_int(pod, "b.pid"))
    for junk in (b"\x00\xff garbage\n", b'{"v":2,"verb":"status"', b'{"v":2,"verb":"reboot"}\n', b"[]\n",
                 b'{"v":1,"verb":"ping"}\n', b'{"v":2,"verb":"control","services":["../../etc"],"actions":[{"do":"down"}]}\n',
                 b'{"v":2,"verb":"control","services":["a"],"actions":[{"do":"signal","signal":"TERM"}]}\n'):
        answer = json.loads(raw_exchange(pod, junk))
        assert answer["ok"] is False and answer["error"]
    assert b"too large" in raw_exchange(pod, b"x" * 70000)
    assert (read_int(pod, "a.pid"), read_int(pod, "b.pid")) == pids
    assert pod.cli("svstat", "a").stdout.startswith("up ")


def test_a_silent_client_is_dropped_and_others_are_served_meanwhile(pod: Pod):
    started(pod, "svc", env={"PYS6_CONTROL_TIMEOUT": "500"})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.connect(control_path(pod))
        assert pod.cli("svstat", "svc").returncode == 0  # served while the silent one waits
        silent.settimeout(5)
        answer = silent.recv(65536)
        assert b"no request in time" in answer
        assert silent.recv(65536) == b""
    pod.wait_event("control client sent no request in time")


def test_two_hundred_clients_at_once(pod: Pod):
    started(pod, "svc")
    results: list[dict] = []
    lock = threading.Lock()

    def one() -> None:
        head, *items = raw_exchange(pod, b'{"v":2,"verb":"status","services":["svc"]}\n').splitlines()
        reply = {**json.loads(head), "services": [json.loads(item) for item in items]}
        with lock:
            results.append(reply)

    threads = [threading.Thread(target=one) for _ in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 200 and all(r["ok"] and r["services"][0]["state"] == "up" for r in results)
