"""Feedback where a person is waiting (issue 25): on a terminal pysvc says what each action did
(silent without one, as s6-svc); a wait that cannot be met fails at once, a timeout says where the
service was; a bail and a run that cannot be executed say how to recover; a typo'd name lists the
known ones, a whole unknown long option is named, a requested restart logs its forensics at info;
a typo under the YAML's services: is a warning."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

from harness import REPO, Pod, read_int, started, wait_for


def test_an_unknown_service_lists_the_known_names(pod: Pod):
    started(pod, "cron", "web")
    done = pod.cli("svc", "-r", "crn")
    assert done.returncode == 100
    assert "unknown service: crn" in done.stderr and "known: cron, web" in done.stderr, done.stderr
    assert "--help" not in done.stderr  # not a usage slip: no hint to read the usage
    done = pod.cli("svstat", "crn")
    assert done.returncode == 100 and "known: cron, web" in done.stderr, done.stderr


def test_a_whole_unknown_long_option_is_named(pod: Pod):
    started(pod, "cron")
    done = pod.cli("svc", "--restart", "cron")
    assert done.returncode == 100
    assert "'--restart'" in done.stderr and "try pysvc --help" in done.stderr, done.stderr


def test_a_requested_restart_logs_forensics_at_info(pod: Pod):
    started(pod, "cron")
    assert pod.cli("svc", "-r", "-wr", "-T", "5000", "cron").returncode == 0
    record = pod.wait_event("forensics", service="cron", reason="before restart")
    assert record.level == "info", record


# --- on a terminal: one line per service of what was done; without one, silence ----------------

TRAPS_HUP = 'trap "" HUP\necho $$ > "$STATE/$1.pid"\nexec sleep 1000\n'  # an ignored HUP survives the exec


def on_terminal(pod: Pod, *args: str, timeout: float = 30.0) -> tuple[int, str]:
    """pysvc with its stdin, stdout and stderr on a pty, as a person runs it: its exit code and all
    it wrote (the terminal's \\r\\n made \\n)."""
    master, slave = pty.openpty()
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "LANG": "C.UTF-8",
               "PYS6_RUNDIR": str(pod.rundir)}
    try:
        process = subprocess.Popen([sys.executable, "-m", "supervisor.control.svc", *args], env=environ, cwd="/",
                                   stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    finally:
        os.close(slave)
    written = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every end of the slave is closed, the child is gone
                    break
                if not chunk:
                    break
                written += chunk
            elif process.poll() is not None and not select.select([master], [], [], 0)[0]:
                break
        code = process.wait(max(0.1, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return code, written.decode().replace("\r\n", "\n")


def new_pid(pod: Pod, name: str, old: int) -> int:
    return wait_for(lambda: (pid := read_int(pod, f"{name}.pid")) != old and pid, what=f"{name}'s new pid")


def test_a_restart_on_a_terminal_says_the_old_and_the_new_pid(pod: Pod):
    started(pod, "cron")
    old = read_int(pod, "cron.pid")
    code, said = on_terminal(pod, "-r", "cron")
    assert code == 0, said
    assert said == f"cron: restarted, pid {old} -> {new_pid(pod, 'cron', old)}\n"


def test_down_up_and_nothing_to_do_on_a_terminal(pod: Pod):
    started(pod, "cron")
    first = read_int(pod, "cron.pid")
    assert on_terminal(pod, "-d", "cron") == (0, f"cron: stopped (was pid {first})\n")
    assert on_terminal(pod, "-d", "cron") == (0, "cron: already down\n")
    code, said = on_terminal(pod, "-u", "cron")
    second = new_pid(pod, "cron", first)
    assert (code, said) == (0, f"cron: started, pid {second}\n")
    assert on_terminal(pod, "-u", "cron") == (0, f"cron: already up, pid {second}\n")
    assert on_terminal(pod, "-wu", "cron") == (0, f"cron: up, pid {second}, wanted up\n")  # a wait alone: where it is


def test_a_signal_on_a_terminal_names_it_and_the_pid(pod: Pod):
    pod.service("web", TRAPS_HUP)
    started(pod, "cron")
    pid = wait_for(lambda: read_int(pod, "web.pid"), what="web")
    assert on_terminal(pod, "-h", "web") == (0, f"web: sent SIGHUP to pid {pid}\n")
    assert on_terminal(pod, "-h", "-r", "web", "cron")[1].splitlines()[0].startswith(f"web: sent SIGHUP to pid {pid}; restarted, pid {pid} -> ")


def test_without_a_terminal_pysvc_is_silent_as_s6_svc(pod: Pod):
    started(pod, "cron")
    old = read_int(pod, "cron.pid")
    for args in (("-r", "cron"), ("-d", "cron"), ("-d", "cron"), ("-u", "cron"), ("-wu", "cron")):
        done = pod.cli("svc", *args)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), (args, done)
    assert new_pid(pod, "cron", old)


# --- waits that cannot be met, and timeouts that say where the service was ----------------------

def test_an_up_wait_on_a_service_wanted_down_fails_at_once(pod: Pod):
    started(pod, "cron")
    assert pod.cli("svc", "-wd", "-d", "cron").returncode == 0
    began = time.monotonic()
    done = pod.cli("svc", "-wu", "cron")  # s6-svc would wait for ever: no -T
    assert done.returncode == 3 and time.monotonic() - began < 10, done
    assert "cron: waiting for up cannot be met: it is down" in done.stderr and "wanted down" in done.stderr, done.stderr
    assert "pysvc -u cron starts it" in done.stderr, done.stderr
    # -u before the wait: met as before
    assert pod.cli("svc", "-u", "-wu", "-T", "10000", "cron").returncode == 0


def test_an_up_wait_on_a_bailed_service_fails_at_once(pod: Pod):
    pod.service("crasher", "exit 1")
    started(pod, "cron", env={"PYS6_CRASH_DEATHS": "2"})
    pod.wait_event("service bailed", service="crasher")
    for wait in ("-wu", "-wU", "-wr", "-wR"):
        done = pod.cli("svc", wait, "crasher")
        assert done.returncode == 3, done
        assert "crasher: waiting for " in done.stderr and " cannot be met: it is down (exitcode 1), wanted up, bailed, " \
            "2 deaths in 60 s (pysvc -u crasher clears the bail and starts it)" in done.stderr, done.stderr
    assert pod.cli("svc", "-wd", "-T", "5000", "crasher").returncode == 0  # a down wait: met


def test_s6_svc_under_its_own_name_still_waits(pod: Pod):
    """The immediate failure is pysvc's: pys6's s6-svc keeps s6-svc's wait (to its -T, then 99)."""
    started(pod, "cron")
    assert pod.cli("svc", "-wd", "-d", "cron").returncode == 0
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "PYS6_RUNDIR": str(pod.rundir)}
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", "import sys; sys.argv[0] = 's6-svc'; "
                           "from supervisor.s6.clients import svc_main; svc_main()", "-wu", "-T", "700", "cron"],
                          env=environ, capture_output=True, text=True, timeout=30)
    assert done.returncode == 99 and time.monotonic() - began >= 0.7, done
    assert done.stderr == "s6-svlisten1: fatal: timed out\n", done.stderr


def test_a_timeout_says_what_state_the_service_was_in(pod: Pod):
    pod.service("web", 'echo $$ > "$STATE/web.pid"\nexec sleep 1000\n', notification_fd="3")  # never ready
    started(pod, "cron")
    pid = wait_for(lambda: read_int(pod, "web.pid"), what="web")
    done = pod.cli("svc", "-wU", "-T", "500", "web")
    assert done.returncode == 1, done
    assert f"web: timed out after 0.5 s waiting for ready; it is up, pid {pid}, not ready, wanted up" in done.stderr, done.stderr


# --- hints where a service is stuck ----------------------------------------------------------

def test_a_bail_says_how_to_recover(pod: Pod):
    pod.service("crasher", "exit 1")
    started(pod, "cron", env={"PYS6_CRASH_DEATHS": "2"})
    bail = pod.wait_event("service bailed", service="crasher")
    assert bail["hint"] == "pysvc -u crasher clears the bail and starts it"


def test_a_run_that_cannot_be_executed_says_what_to_do(pod: Pod):
    pod.script("services.d/noexec/run", "exec sleep 1000", executable=False)
    pod.script("services.d/crlf/run", "#!/bin/sh\r\nexec sleep 1000\r\n")
    pod.script("services.d/nointerp/run", "#!/nonexistent/shell\nexec sleep 1000\n")
    (pod.etc / "services.d" / "noshebang").mkdir()
    (pod.etc / "services.d" / "noshebang" / "run").write_text("exec sleep 1000\n")
    os.chmod(pod.etc / "services.d" / "noshebang" / "run", 0o755)
    started(pod, "cron", env={"PYS6_CRASH_DEATHS": "1"})
    hints = {name: pod.wait_event("service could not start", service=name)["hint"]
             for name in ("noexec", "crlf", "nointerp", "noshebang")}
    assert hints["noexec"].startswith("chmod +x /") and hints["noexec"].endswith("/noexec/run"), hints
    assert "carriage return" in hints["crlf"] and "sed -i" in hints["crlf"], hints
    assert "'/nonexistent/shell'" in hints["nointerp"] and "not installed" in hints["nointerp"], hints
    assert "#!/bin/sh" in hints["noshebang"], hints


# --- the YAML's services: naming no service ------------------------------------------------

def test_a_typo_under_services_in_the_yaml_is_a_warning_naming_it(pod: Pod):
    (pod.etc / "pys6.yaml").write_text("services:\n  crn:\n    essential: true\n  cron:\n    crash_deaths: 7\n"
                                       "  zzzzqqq:\n    essential: true\n")
    started(pod, "cron")
    pod.wait_event("services started")
    typo = pod.event("config names no such service", entry="crn")
    assert typo is not None and typo.level == "warning" and typo["closest"] == "cron", typo
    far = pod.event("config names no such service", entry="zzzzqqq")
    assert far is not None and "closest" not in far.fields, far
    assert pod.event("config names no such service", entry="cron") is None
    assert pod.cli("svc", "-r", "-wr", "-T", "5000", "cron").returncode == 0  # nothing else changed
