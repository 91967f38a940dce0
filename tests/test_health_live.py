"""Health checks on a real pyinit (docs/health-checks.md): exec, TCP and HTTP checks, readiness
from a first pass, restarts for failures counted toward the bail, timeouts that kill the check's
whole process group, bounded output, a missing program, and nothing left when the service stops."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time

import pytest

from harness import Pod, free_port, wait_for

SLEEPER = "exec sleep 1000\n"
# Healthy while $STATE/ok exists: the test decides.
FLAG_CHECK = '#!/bin/sh\ntest -e "$STATE/ok"\n'


def health_script(pod: Pod, name: str, body: str) -> None:
    pod.script(f"services.d/{name}/health", body)


def status(pod: Pod, name: str) -> dict:
    result = pod.cli("svstat", "--json", name)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def ready_and_healthy(pod: Pod, name: str) -> bool:
    record = status(pod, name)
    return bool(record["ready"] and record["health"] == "healthy")


def test_a_service_without_notification_fd_is_ready_at_its_first_passing_check(pod: Pod):
    pod.service("web", SLEEPER, health_interval="0.2\n")
    health_script(pod, "web", FLAG_CHECK)
    pod.start()
    pod.wait_control()
    wait_for(lambda: status(pod, "web")["state"] == "up", what="web up")
    wait_for(lambda: pod.event("health check failed", service="web") is not None, what="a failed check")
    record = status(pod, "web")
    assert record["ready"] is False and record["health"] == "starting" and record["health_failures"] == 0
    assert "health not known yet" in pod.cli("svstat", "web").stdout
    assert pod.cli("svstat", "--check").returncode == 1  # up, but not ready: its check has not passed
    waiter = subprocess.Popen([sys.executable, "-m", "supervisor.control.svc", "-wU", "-T", "20000", "web"],
                              env=pod.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)  # not the assertion: a waiter that would not wait has had its chance to return
        assert waiter.poll() is None
        (pod.state / "ok").touch()
        assert waiter.wait(20) == 0
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert ready_and_healthy(pod, "web")
    assert pod.cli("svstat", "--check").returncode == 0
    assert ", healthy" in pod.cli("svstat", "web").stdout
    assert pod.wait_event("service ready", service="web")
    assert pod.stop() == 0


@pytest.mark.skipif(shutil.which("s6-svwait") is None, reason="needs Debian's s6 package for s6-svwait")
def test_s6_svwait_minus_U_waits_for_the_first_passing_check(subreaper_pod: Pod):
    pod = subreaper_pod
    pod.service("web", SLEEPER, health_interval="0.2\n")
    health_script(pod, "web", FLAG_CHECK)
    pod.start()
    pod.wait_control()
    directory = pod.rundir / "service" / "web"
    wait_for(lambda: status(pod, "web")["state"] == "up", what="web up")
    waiter = subprocess.Popen(["s6-svwait", "-U", "-t", "20000", str(directory)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        wait_for(lambda: any(p.name.startswith("ftrig1:@") for p in (directory / "event").iterdir()),
                 what="s6-svwait to listen")
        assert waiter.poll() is None  # up, not ready
        (pod.state / "ok").touch()
        assert waiter.wait(20) == 0
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert pod.stop() == 0


def test_failures_in_a_row_restart_the_service_after_forensics_and_count_as_unhealthy_deaths(pod: Pod):
    (pod.state / "ok").touch()
    pod.service("app", 'echo "app $$ here"\nexec sleep 1000\n', health_interval="0.2\n", health_retries="3\n")
    health_script(pod, "app", '#!/bin/sh\necho "checked by $0 for $1"\ntest -e "$STATE/ok"\n')
    pod.start()
    pod.wait_control()
    wait_for(lambda: ready_and_healthy(pod, "app"), what="app healthy")
    first = status(pod, "app")["pid"]
    (pod.state / "ok").unlink()
    wait_for(lambda: status(pod, "app").get("health") == "unhealthy", what="a counted failure")
    assert "unhealthy (" in pod.cli("svstat", "app").stdout
    asked = pod.wait_event("service unhealthy, restarting", service="app")
    assert asked.matches("service unhealthy, restarting", failures=3, retries=3)
    forensics = pod.wait_event("forensics", service="app", reason="before unhealthy")
    assert forensics["health"]["output"].startswith("checked by ./health for app")
    died = pod.wait_event("service died", service="app", cause="unhealthy")
    assert died.matches("service died", expected=False, deaths=1)
    events = [e.event for e in pod.events() if e.fields.get("service") == "app"]
    assert events.index("forensics") < events.index("service died")  # the snapshot first, then the force
    (pod.state / "ok").touch()
    wait_for(lambda: status(pod, "app")["pid"] not in (None, first) and ready_and_healthy(pod, "app"),
             what="app back and healthy")
    assert status(pod, "app")["deaths"] == 1
    metrics = pod.cli("svstat", "--prometheus")
    assert metrics.returncode == 0, metrics.stderr
    assert 'pys6_service_deaths_total{service="app",cause="unhealthy",expected="false"} 1' in metrics.stdout
    # the three that restarted it, and any the new incarnation ran before ok came back
    fails = re.search(r'^pys6_service_health_checks_total\{service="app",result="fail"\} (\d+)$', metrics.stdout, re.M)
    assert fails is not None and int(fails.group(1)) >= 3, metrics.stdout
    assert pod.stop() == 0


def test_a_service_that_never_becomes_healthy_bails_after_five_restarts(pod: Pod):
    pod.service("never", SLEEPER, health_interval="0.05\n", health_retries="1\n", health_start="0\n")
    health_script(pod, "never", "#!/bin/sh\nexit 1\n")
    pod.start()
    pod.wait_control()
    wait_for(lambda: status(pod, "never")["bailed"], 30, "never to bail")
    record = status(pod, "never")
    assert record["deaths"] == 5 and record["state"] == "down"
    assert len(pod.events("service died", service="never", cause="unhealthy")) == 5
    assert pod.event("service bailed", service="never") is not None
    assert pod.stop() == 0


def test_failures_before_the_first_pass_count_only_after_the_start_period(pod: Pod):
    pod.service("slow", SLEEPER, health_interval="0.1\n", health_retries="1\n", health_start="1000\n")
    health_script(pod, "slow", "#!/bin/sh\nexit 1\n")
    pod.start()
    pod.wait_control()
    wait_for(lambda: len(pod.events("health check failed", service="slow")) >= 5, what="five failed checks")
    assert all(e.matches("health check failed", counted=False) for e in pod.events("health check failed", service="slow"))
    assert pod.event("service unhealthy, restarting") is None
    assert status(pod, "slow")["health"] == "starting"
    assert pod.stop() == 0


def check_processes(pod: Pod, marker: str) -> list[str]:
    return [" ".join(p.cmdline()) for p in pod.descendants() if marker in " ".join(p.cmdline())]


def test_a_check_past_its_timeout_is_killed_with_its_whole_process_group(pod: Pod):
    pod.service("stuck", SLEEPER, health_interval="0.2\n", health_timeout="0.5\n", health_retries="1000\n")
    health_script(pod, "stuck", "#!/bin/bash\nsleep 1001.5 &\nexec sleep 1001.25\n")
    pod.start()
    pod.wait_control()
    failed = pod.wait_event("health check failed", service="stuck", timeout=15)
    assert failed["result"] == "timeout"
    wait_for(lambda: len(pod.events("health check failed", service="stuck")) >= 3, what="three timeouts")
    # Each one killed with its child; at most the one under way is alive now.
    assert len(check_processes(pod, "sleep 1001.5")) <= 1
    assert pod.cli("svc", "-d", "stuck").returncode == 0
    wait_for(lambda: status(pod, "stuck")["state"] == "down", what="stuck down")
    wait_for(lambda: check_processes(pod, "sleep 1001") == [], what="no check left once the service stopped")
    assert pod.stop() == 0


def test_a_check_that_floods_keeps_only_its_last_bytes(pod: Pod):
    pod.service("loud", SLEEPER, health_interval="0.2\n", health_retries="1000\n")
    health_script(pod, "loud", "#!/bin/sh\nhead -c 2000000 /dev/zero | tr '\\0' x\necho THE-END\nexit 3\n")
    pod.start()
    pod.wait_control()
    failed = pod.wait_event("health check failed", service="loud", timeout=15)
    assert failed["result"] == "fail" and "THE-END" in failed["output"] and len(failed["output"]) <= 1024
    answer = pod.cli("svstat", "--forensics", "loud")
    assert answer.returncode == 0, answer.stderr
    output = json.loads(answer.stdout)["health"]["output"]
    assert len(output) <= 4200 and output.rstrip().endswith("THE-END\n(exit code 3)")
    assert len(pod.stderr()) < 200_000  # 2 MB of check output flooded nothing
    assert pod.stop() == 0


def test_a_missing_check_program_is_a_failure_event_not_a_crash(pod: Pod):
    pod.service("nocheck", SLEEPER, health_interval="0.2\n", health_retries="1000\n")
    config = pod.root / "pys6.yaml"
    config.write_text("services:\n  nocheck:\n    health: ./no-such-check\n")
    pod.start(env={"PYS6_CONFIG": str(config)})
    pod.wait_control()
    failed = pod.wait_event("health check failed", service="nocheck")
    assert failed["result"] == "error" and "no-such-check" in failed["output"]
    wait_for(lambda: len(pod.events("health check failed", service="nocheck")) >= 3, what="more checks")
    assert status(pod, "nocheck")["state"] == "up"
    assert pod.event("service event failed") is None
    assert pod.stop() == 0


def test_tcp_and_http_checks_run_inside_pyinit(pod: Pod):
    web_port, closed_port = free_port(), free_port()
    pod.service("web", f"exec {sys.executable} -m http.server --bind 127.0.0.1 {web_port}\n",
                health_http=f"http://127.0.0.1:{web_port}/\n", health_interval="0.2\n")
    pod.service("missing", SLEEPER, health_http=f"http://127.0.0.1:{web_port}/no-such-page\n",
                health_interval="0.2\n", health_retries="1000\n")
    pod.service("port", SLEEPER, health_tcp=f"{web_port}\n", health_interval="0.2\n")
    pod.service("closed", SLEEPER, health_tcp=f"127.0.0.1:{closed_port}\n", health_interval="0.2\n",
                health_retries="1000\n")
    pod.start()
    pod.wait_control()
    for name in ("web", "port"):
        wait_for(lambda name=name: ready_and_healthy(pod, name), 20, f"{name} healthy")
    wait_for(lambda: any("404" in e["output"] and e["result"] == "fail"
                         for e in pod.events("health check failed", service="missing")), what="a 404")
    failed = pod.wait_event("health check failed", service="closed")
    assert failed["result"] == "fail" and "refused" in failed["output"].lower()
    assert status(pod, "closed")["ready"] is False
    # No process of pyinit's for these checks: only the four services run.
    names = {" ".join(p.cmdline()) for p in pod.descendants()}
    assert not any("health" in name for name in names)
    assert pod.stop() == 0


def test_bad_check_files_are_problems_not_a_crash(pod: Pod):
    pod.service("bad", SLEEPER, health_tcp="example.com:80\n")
    pod.service("far", SLEEPER, health_http="http://192.0.2.1/\n")
    pod.start()
    pod.wait_control()
    for name in ("bad", "far"):
        broken = pod.wait_event("service definition is broken", service=name)
        assert "there is no health check" in broken["problem"]
        wait_for(lambda name=name: status(pod, name)["ready"], what=f"{name} ready without a check")
        assert status(pod, name)["health"] is None
    assert pod.stop() == 0
