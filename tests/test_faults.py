"""Issue 7: no single fault ends or hangs PID 1. Each case against a live pyinit, PID 1 of a namespace."""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import psutil
import pytest

from harness import SLEEPER, Pod, alias_bomb, alive, pyinit_alive, read_int, wait_for

SHORT_GRACES = {"S6_SERVICES_GRACETIME": "1000", "S6_KILL_GRACETIME": "1000", "S6_KILL_FINISH_MAXTIME": "1000"}


def exchange(pod: Pod, data: bytes, timeout: float = 20.0) -> list[bytes]:
    """Send raw bytes, keep the connection open, return the answer's lines."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(pod.rundir / "control.sock"))
        sock.settimeout(timeout)
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).splitlines()


def head(pod: Pod, data: bytes) -> dict:
    lines = exchange(pod, data)
    assert lines, "no answer"
    return json.loads(lines[0])


# --- answers of any size ------------------------------------------------------------------


def test_a_log_of_long_lines_and_the_ring_bounded_by_bytes(pod: Pod):
    pod.service("talker", 'for i in 1 2 3 4; do head -c 65000 /dev/zero | tr "\\0" "$i"; echo; done\n'
                          'echo short; exec sleep 1000\n')
    pod.start()
    pod.wait_stdout("[talker] short")
    result = pod.cli("svstat", "--log", "talker", "-n", "1000")
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and lines[-1] == "short"
    # 128 KiB kept: the last two long lines and the short one, nothing older.
    assert [line[:1] for line in lines] == ["3", "4", "s"] and len(lines[0]) == 65000
    forced = pod.cli("svc", "--ssh-forced", env={"SSH_ORIGINAL_COMMAND": "log talker"})
    assert forced.returncode == 0 and forced.stdout.splitlines()[-1] == "short"
    pyinit_alive(pod)


def test_a_service_killed_by_a_real_time_signal_is_named_and_respawned(pod: Pod):
    pod.service("svc", SLEEPER)
    pod.start()
    first = wait_for(lambda: read_int(pod, "svc.pid"), what="svc")
    os.kill(pod.host_pid(first), signal.SIGRTMIN + 6)
    pod.wait_event("service died", service="svc", signal="SIGRTMIN+6")
    wait_for(lambda: read_int(pod, "svc.pid") not in (None, first), 10, "the respawn")
    pyinit_alive(pod)


def test_deep_huge_and_out_of_range_requests_get_errors(pod: Pod):
    pod.service("svc", SLEEPER)
    pod.start()
    pod.wait_control()
    deep = b'{"v":2,"verb":"status","services":' + b"[" * 1000 + b"]" * 1000 + b"}\n"
    assert head(pod, deep)["ok"] is False
    assert "nested too deep" in head(pod, b"[" * 30000 + b"]" * 30000 + b"\n")["error"]
    wait = {"v": 2, "verb": "control", "services": ["svc"], "wait": "down", "timeout_ms": int("9" * 400)}
    answer = head(pod, json.dumps(wait).encode() + b"\n")
    assert answer["ok"] is False and "timeout_ms" in answer["error"]
    pyinit_alive(pod)


def test_out_of_range_and_fifo_service_files_are_reported_and_harm_nothing(pod: Pod):
    pod.service("huge", SLEEPER, timeout_kill="9" * 400, timeout_finish="9" * 400)
    directory = pod.service("fifo", SLEEPER)
    os.mkfifo(directory / "timeout-kill")
    pod.start(env=SHORT_GRACES)
    pod.wait_event("service definition is broken", service="fifo",
                   problem="timeout-kill: not a regular file (a FIFO); the default is used")
    wait_for(lambda: read_int(pod, "huge.pid") and read_int(pod, "fifo.pid"), what="both services")
    assert any(e["problem"].startswith("timeout-finish: must be a whole number of milliseconds")
               for e in pod.events("service definition is broken", service="huge"))
    assert pod.cli("svc", "-d", "-wD", "-T", "10000", "huge").returncode == 0
    started = time.monotonic()
    assert pod.stop() == 0 and time.monotonic() - started < 10


# --- EPERM ------------------------------------------------------------------------------


@pytest.mark.machine_wide  # the default runtime directory
def test_a_failed_kill_is_reported_and_never_ends_pid1(unprivileged_pod: Pod, setuid_setpriv: str):
    pod = unprivileged_pod
    pod.service("rooted", f'echo $$ > "$STATE/rooted.pid"\nexec {setuid_setpriv} --reuid=0 --regid=0 '
                          "--clear-groups sleep 1000\n")
    pod.start(default_rundir=True, env=SHORT_GRACES)
    pid = wait_for(lambda: read_int(pod, "rooted.pid"), 15, "the service")
    wait_for(lambda: psutil.Process(pod.host_pid(pid)).uids().real == 0, 10, "the service to become root")
    env = {"PYS6_RUNDIR": "/tmp/pys6-1000"}
    down = pod.cli("svc", "-d", "rooted", env=env, rundir=False)
    assert down.returncode == 111 and "Operation not permitted" in down.stderr, down
    signal_it = pod.cli("svc", "-h", "rooted", env=env, rundir=False)
    assert signal_it.returncode == 111 and "cannot send SIGHUP" in signal_it.stderr
    pod.wait_event("cannot signal service", service="rooted")
    assert pod.cli("svstat", "-u", "rooted", env=env, rundir=False).stdout == "true\n"
    started = time.monotonic()
    assert pod.stop() == 0
    assert time.monotonic() - started < 15
    assert pod.event("services could not be stopped, going on", services="rooted")
    assert "Traceback" not in pod.stderr()


# --- readiness pipes tied to one incarnation -----------------------------------------------------


def test_a_newline_from_an_orphan_of_the_last_incarnation_does_not_mark_the_new_one_ready(pod: Pod):
    run = '''n=$(( $(cat "$STATE/count" 2>/dev/null || echo 0) + 1 )); echo $n > "$STATE/count"
if [ $n -eq 1 ]; then (sleep 2; echo >&3) & exit 1; fi
echo $$ > "$STATE/second.pid"; exec sleep 1000
'''
    pod.service("late", run, notification_fd="3")
    pod.start()
    wait_for(lambda: read_int(pod, "second.pid"), 10, "the second incarnation")
    time.sleep(0.1)
    wait_for(lambda: pod.events("orphan reaped") or _orphan_gone(pod), 10, "the orphan's newline")
    assert pod.cli("svstat", "-r", "late").stdout == "false\n"


def _orphan_gone(pod: Pod) -> bool:
    return not any("sleep 2" in " ".join(cmd) for _pid, _status, cmd in pod.descendant_info())


# --- nothing blocks PID 1 ---------------------------------------------------------------------


def test_sigterm_with_a_stdout_nobody_reads_ends_within_the_deadline(pod: Pod):
    pod.service("flood", 'yes "flooding the log with a line" & exec sleep 1000\n')
    read_end, write_end = os.pipe()
    try:
        pod.start(env=SHORT_GRACES, stdout=write_end)
        wait_for(lambda: _pipe_full(write_end), 20, "the stdout pipe to fill")
        started = time.monotonic()
        pod.signal(signal.SIGTERM)
        code = pod.wait_exit(30)
        assert time.monotonic() - started < 12
        assert code == 0
        lost = pod.event("log output lost")  # written by hand at exit, as the text renderer would
        assert lost is not None and lost["bytes"].isdigit()
    finally:
        os.close(read_end)
        os.close(write_end)


def _pipe_full(write_end: int) -> bool:
    """Whether the pipe takes no more: poll's answer, not a byte count (Linux gives new pipes
    fewer pages once a user's pipes exceed fs.pipe-user-pages-soft, as in parallel tests)."""
    import select

    _, writable, _ = select.select([], [write_end], [], 0)
    return not writable


def test_an_unreadable_services_directory_exits_100_without_a_traceback(unprivileged_pod: Pod):
    pod = unprivileged_pod
    pod.script("cont-finish.d/01-bye", 'echo bye > "$STATE/finish"\n')
    os.chmod(pod.etc / "services.d", 0)
    pod.start()
    assert pod.wait_exit(30) == 100
    assert pod.event("cannot read the services") is not None and "Traceback" not in pod.stderr()
    assert pod.read_state("finish") == "bye\n"


def test_a_yaml_alias_bomb_stops_pyinit_at_once_with_100(pod: Pod):
    (pod.etc / "pys6.yaml").write_text(alias_bomb())
    pod.start()
    assert pod.wait_exit(20) == 100
    assert "services.x.crash_window: bad value a list" in pod.stderr()  # "pyinit: fatal: ...": before the logger


# --- the control socket: abandoned waits, caps, refusals ----------------------------------------


def test_abandoned_waits_release_their_slots(pod: Pod):
    pod.service("svc", SLEEPER)
    pod.start()
    pod.wait_control()
    request = b'{"v":2,"verb":"control","services":["svc"],"wait":"down","timeout_ms":0}\n'
    clients = []
    try:
        for _ in range(300):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(pod.rundir / "control.sock"))
            sock.sendall(request)
            clients.append(sock)
        pod.wait_event("control connections at the cap, closing new ones", limit=256)
    finally:
        for sock in clients:
            sock.close()
    wait_for(lambda: pod.cli("svstat", "svc").returncode == 0, 10, "the socket to serve again")
    assert "more" in pod.wait_event("control connections at the cap, closing new ones (burst)").fields
    assert len([e for e in pod.events("control connections at the cap, closing new ones") if "limit" in e.fields]) == 1


def test_a_main_program_the_sigterm_ends_does_not_set_the_containers_code(pod: Pod):
    # as s6-overlay: its rc.init dies beside the CMD at the shutdown and never writes its code
    pod.service("svc", SLEEPER)
    pod.start("sh", "-c", 'trap "exit 42" TERM; echo $$ > "$STATE/main.pid"; sleep 1000 & wait')
    wait_for(lambda: read_int(pod, "main.pid"), what="the main program")
    assert pod.stop() == 0
    assert pod.wait_event("main program exited")["exitcode"] == "42"  # it did end with its code, logged


def test_a_main_program_killed_by_the_shutdowns_sigterm_leaves_the_container_at_0(pod: Pod):
    pod.start("sleep", "1000")
    pod.wait_event("main program started")
    assert pod.stop() == 0
    assert pod.wait_event("main program exited")["exitcode"] == "143"


def test_once_at_most_keeps_a_service_that_waits_to_restart_down(pod: Pod):
    pod.service("crashy", 'echo x >> "$STATE/starts"\nexit 1\n')
    pod.start()
    wait_for(lambda: pod.read_state("starts").count("x") == 1, what="the first start")
    assert pod.cli("svc", "-O", "crashy").returncode == 0
    time.sleep(1.5)  # longer than the 1 s pacing: a restart would have happened by now
    assert pod.read_state("starts").count("x") == 1
    assert pod.cli("svstat", "-w", "crashy").stdout == "false\n"


def test_service_lines_cannot_pose_as_another_services(pod: Pod):
    pod.service("liar", r"""printf 'ok\r[sshd] accepted root\n\e[2K\e[1A[sshd] up\n\e[31mred\e[0m\n\xe2\x80\xa8[sshd] x\n'
exec sleep 1000
""")
    pod.start()
    pod.wait_stdout("red")
    out = pod.stdout()
    assert "[liar] ok\\x0d[sshd] accepted root\n" in out
    assert "[liar] \\x1b[2K\\x1b[1A[sshd] up\n" in out
    assert "[liar] \x1b[31mred\x1b[0m\n" in out  # colours survive
    assert "[liar] \\u2028[sshd] x\n" in out
    assert all(line.startswith("[liar] ") for line in out.splitlines())


def test_empty_ill_typed_and_huge_number_frames_get_errors(pod: Pod):
    pod.service("svc", SLEEPER)
    pod.start()
    pod.wait_control()
    for frame in (b"\n", b"{}\n", b'{"v":2}\n', b'{"v":2,"verb":"log","services":["svc"],"lines":' + b"9" * 400 + b"}\n"):
        assert head(pod, frame)["ok"] is False
    assert alive(pod.init_pid)


def test_running_out_of_file_descriptors_is_a_failed_start_not_a_dead_pid1(pod: Pod):
    # 30 services with a notification-fd under a limit of 64 fds: some cannot even get their log
    # pipes, others cannot get a readiness pipe at spawn. Whatever fails is logged; PID 1 goes on.
    for i in range(30):
        pod.service(f"s{i:02d}", "echo >&3; exec sleep 1000\n", notification_fd="3")
    pod.start(env={**SHORT_GRACES, "PYS6_CRASH_DEATHS": "1"}, wrapper=["prlimit", "--nofile=64:64"])
    pod.wait_event("services started")
    wait_for(lambda: any("Too many open files" in str(value) for e in pod.events() for value in e.fields.values()),
             20, "an EMFILE to be met")
    assert "Traceback" not in pod.stderr()
    assert alive(pod.init_pid)
    assert pod.stop() == 0
