"""pycrond proves it schedules: its loop's heartbeat file and readiness notification, and the pod's
services.d/cron/health that reads the heartbeat (docs/health-checks.md: the pod)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_pod import PodImage
from test_pod import pod_image as pod_image  # the fixture: the image's filesystem and an ssh client

from harness import REPO, Cron, wait_for

CHECK = REPO / "services.d" / "cron" / "health"


def promised(path: Path) -> int | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return int(text) if text.endswith("\n") and text.strip().isdigit() else None


def check(directory: Path) -> subprocess.CompletedProcess[str]:
    """The pod's check as pyinit runs it: `./health cron` in the service directory."""
    return subprocess.run([str(CHECK), "cron"], cwd=directory, capture_output=True, text=True, timeout=10)


def test_the_heartbeat_advances_while_pycrond_schedules_and_lapses_when_it_is_stopped(cron: Cron):
    beat = cron.root / "heartbeat"
    cron.crontab.write_text("* * * * * * * true\n")
    cron.start("--heartbeat-file", str(beat), "--heartbeat-interval", "0.5")
    first = wait_for(lambda: promised(beat), 10, "the first heartbeat")
    assert first <= time.time() + 2 * 0.5 + 1  # a promise one interval ahead, twice over, not more
    assert check(cron.root).returncode == 0
    wait_for(lambda: (promised(beat) or 0) > first, 5, "the heartbeat to advance")

    assert cron.process is not None
    os.kill(cron.process.pid, signal.SIGSTOP)  # alive, its pid and its port unchanged: not scheduling
    try:
        stopped_at = promised(beat)
        failed = wait_for(lambda: (done := check(cron.root)).returncode != 0 and done, 10, "the check to fail")
        assert "pycrond's scheduler is silent" in failed.stdout
        assert promised(beat) == stopped_at  # nothing wrote it meanwhile
    finally:
        os.kill(cron.process.pid, signal.SIGCONT)
    wait_for(lambda: check(cron.root).returncode == 0, 10, "the check to pass again")
    assert (promised(beat) or 0) > (stopped_at or 0)
    assert cron.stop() == 0


def test_an_idle_pycrond_beats_once_an_interval_and_a_busy_one_no_more_often(cron: Cron):
    beat = cron.root / "heartbeat"
    cron.crontab.write_text("")  # no jobs: only the heartbeat wakes the loop
    cron.start("--heartbeat-file", str(beat), "--heartbeat-interval", "1")
    wait_for(lambda: promised(beat), 10, "the first heartbeat")
    written = {os.stat(beat).st_mtime_ns}
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        written.add(os.stat(beat).st_mtime_ns)
        time.sleep(0.05)
    assert 3 <= len(written) <= 8  # idle: woken for it, about once a second
    assert cron.stop() == 0

    busy = Cron(cron.root / "busy")
    busy.root.mkdir()
    busy.crontab.write_text("* * * * * * * echo tick\n")
    busy_beat = busy.root / "heartbeat"
    try:
        busy.start("--heartbeat-file", str(busy_beat), "--heartbeat-interval", "30")
        wait_for(lambda: promised(busy_beat), 10, "the first heartbeat")
        written = os.stat(busy_beat).st_mtime_ns
        busy.wait_out("[line 1 run 3", 10)  # the loop woke for three runs since
        assert os.stat(busy_beat).st_mtime_ns == written  # and wrote no beat for them: one per half interval at most
        assert busy.stop() == 0
    finally:
        busy.close()


def test_a_missing_heartbeat_or_a_bad_one_fails_the_check_with_its_reason(tmp_path: Path):
    missing = check(tmp_path)
    assert missing.returncode == 1 and "no heartbeat from pycrond in" in missing.stdout
    (tmp_path / "heartbeat").write_text("soon\n")
    assert "not a heartbeat in" in check(tmp_path).stdout
    (tmp_path / "heartbeat").write_text(f"{int(time.time()) - 5}\n")
    assert "its next heartbeat was due by" in check(tmp_path).stdout
    (tmp_path / "heartbeat").write_text(f"{int(time.time()) + 30}\n")
    assert check(tmp_path).returncode == 0


def test_an_unwritable_heartbeat_is_said_once_and_jobs_still_run(cron: Cron):
    cron.crontab.write_text("* * * * * * * echo still running\n")
    cron.start("--heartbeat-file", str(cron.root / "absent" / "heartbeat"), "--heartbeat-interval", "0.2")
    cron.wait_out("still running", 10)
    wait_for(lambda: "line 1 run 3" in cron.stdout(), 10, "three runs")
    assert len(cron.events("cannot write the heartbeat file")) == 1
    assert cron.stop() == 0


def _pycrond(root: Path, *args: str, **popen: object) -> subprocess.Popen[bytes]:
    (root / "crontab").write_text("* * * * * * * true\n")
    return subprocess.Popen([sys.executable, "-m", "supervisor.cron.main", "--log-format=text", *args,
                             str(root / "crontab")], env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **popen)  # type: ignore[call-overload]


def test_readiness_is_notified_once_the_loop_schedules_and_the_fd_is_pycronds_alone(tmp_path: Path):
    read_end, write_end = os.pipe()  # the same number in pycrond (pass_fds), as s6-supervise gives it
    process = _pycrond(tmp_path, "--notify-fd", str(write_end), "--keep-going", pass_fds=(write_end,),
                       start_new_session=True)
    os.close(write_end)
    try:
        os.set_blocking(read_end, True)
        assert os.read(read_end, 10) == b"\n"
        assert os.read(read_end, 10) == b""  # closed after: and no job holds the pipe open
    finally:
        os.close(read_end)
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
        assert process.stderr is not None
        process.stderr.close()


def test_a_notify_fd_that_is_not_open_is_wrong_usage(tmp_path: Path):
    process = _pycrond(tmp_path, "--notify-fd", "1000")  # close_fds: nothing open there in pycrond
    _, err = process.communicate(timeout=20)
    assert process.returncode == 2 and b"--notify-fd 1000 is not open" in err


# --- the pod's own trees -------------------------------------------------------------------------

def cron_health(image: PodImage) -> dict:
    answer = image.pysvstat("--json", "cron")
    return json.loads(answer.stdout) if answer.returncode == 0 else {}


@pytest.mark.machine_wide
def test_the_pods_cron_is_ready_healthy_and_restarted_when_its_scheduler_is_stopped(pod_image: PodImage):
    image, pod = pod_image, pod_image.pod
    config = pod.root / "pys6.yaml"  # the pod's own check, only asked more often (the heartbeat's is the pod's)
    config.write_text("services:\n  cron:\n    health_interval: 1\n    health_retries: 2\n")
    image.env["PYS6_CONFIG"] = str(config)
    image.boot()  # --check: cron notified readiness, from its scheduling loop
    wait_for(lambda: cron_health(image).get("health") == "healthy", 20, "cron's check to pass")
    stopped = int(image.pysvstat("-p", "cron").stdout)
    host_pid = pod.host_pid(stopped)
    os.kill(host_pid, signal.SIGSTOP)
    try:  # its last promise was at most 30 s ahead; then 2 failures a second apart
        died = pod.wait_event("service died", service="cron", cause="unhealthy", timeout=45)
    finally:
        try:
            os.kill(host_pid, signal.SIGCONT)
        except ProcessLookupError:
            pass  # gone, as it should be
    assert died.matches("service died", expected=False)
    failed = pod.events("health check failed", service="cron")
    assert failed and all("pycrond's scheduler is silent" in e["output"] for e in failed)
    wait_for(lambda: cron_health(image).get("pid") not in (None, stopped) and cron_health(image).get("health") ==
             "healthy", 30, "cron back and healthy")
    assert pod.stop(30) == 0


def test_a_fifo_squatting_the_heartbeats_temporary_name_does_not_stall_the_beat(tmp_path: Path):
    # in-process: Pulse is the loop's own call; a blocking open would wedge the scheduler itself
    import structlog

    from supervisor.cron.heartbeat import Pulse

    path = tmp_path / "heartbeat"
    os.mkfifo(f"{path}.new")
    started = time.monotonic()
    allowed = Pulse(structlog.get_logger(), str(path), 1.0).beat()
    assert time.monotonic() - started < 5  # returned: ENXIO, not a wait for a reader
    assert allowed is not None and not path.exists()
