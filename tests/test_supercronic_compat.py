"""supercronic's own integration tests (integration/test.bats and reload.bats), restated against pycrond
installed under supercronic's name and invoked exactly as they invoke supercronic; then its other flags."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from harness import can_unshare, environment, killed_at_exit, run_supercronic, wait_for


def test_it_prints_the_version(supercronic: Path):
    result = subprocess.run([str(supercronic), "-version"], capture_output=True, text=True, env=environment(), timeout=30)
    assert result.returncode == 0 and re.fullmatch(r"v\d+\.\d+\.\d+\n", result.stdout)


def test_it_starts(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "noop.crontab", "read crontab")  # and exits 0 on SIGTERM
    assert "level=error" not in out and "level=fatal" not in out


def test_it_runs_a_cron_job(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "hello.crontab", r"(?im)hello from crontab.*channel=stdout", count=4)
    assert len(re.findall(r"(?im)hello from crontab.*channel=stdout", out)) > 3


def test_it_passes_the_environment_through(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "env.crontab", "job succeeded", VAR="hello from foo")
    assert re.search(r"(?i)hello from foo.*channel=stdout", out)


def test_it_overrides_the_environment_with_the_crontab(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "override.crontab", "job succeeded", VAR="hello from foo")
    assert re.search(r"(?i)hello from bar.*channel=stdout", out)


def test_it_warns_when_user_is_set(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "user.crontab", "read crontab")
    assert re.search(r"(?i)processes will not.*USER=", out)


def test_it_warns_when_a_job_is_falling_behind(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "timeout.crontab", "msg=starting")  # test.bats' 1 s of a slow job
    assert re.search(r"(?i)job took too long to run", out)


def test_it_warns_repeatedly_when_a_job_is_still_running(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "timeout.crontab", "msg=starting")
    assert len(re.findall(r"(?i)job is still running", out)) == 2, out


def test_it_runs_overlapping_jobs(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "timeout.crontab", "msg=starting", ("-overlapping",), count=4)
    assert len(re.findall(r"(?i)starting", out)) >= 4


def test_it_supports_debug_logging(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "hello.crontab", "job succeeded", ("-debug",))
    assert re.search(r"(?i)debug", out)


def test_it_supports_json_logging(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "noop.crontab", "read crontab", ("-json",))
    assert re.search(r"(?m)^\{", out)
    assert all(json.loads(line)["level"] for line in out.splitlines())


def test_it_supports_passing_command_logging_through(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "hello.crontab", "job succeeded", ("-passthrough-logs",))
    assert re.search(r"(?im)^hello from crontab$", out)


def test_it_waits_for_jobs_to_exit_before_terminating(supercronic: Path, crontabs: Path, tmp_path: Path):
    out = tmp_path / "out"
    with open(out, "wb") as handle:
        process = subprocess.Popen([str(supercronic), str(crontabs / "exit.crontab")], stdout=handle,
                                   stderr=subprocess.STDOUT, env=environment(MSG_START="will start", MSG_DONE="all done"))
    with killed_at_exit(process):
        wait_for(lambda: "will start" in out.read_text(), 10, "the job to start")
        process.send_signal(signal.SIGTERM)
        wait_for(lambda: "all done" in out.read_text(), 10, "the job to finish")
        assert process.wait(30) == 0


def test_it_tests_a_valid_crontab(supercronic: Path, crontabs: Path):
    result = subprocess.run(["timeout", "10s", str(supercronic), "-test", str(crontabs / "noop.crontab")],
                            capture_output=True, text=True, env=environment(), timeout=30)
    assert result.returncode == 0 and "crontab is valid" in result.stderr


def test_it_tests_an_invalid_crontab(supercronic: Path, crontabs: Path):
    result = subprocess.run(["timeout", "10s", str(supercronic), "-test", str(crontabs / "invalid.crontab")],
                            capture_output=True, text=True, env=environment(), timeout=30)
    assert result.returncode == 1
    assert 'level=fatal msg="bad crontab line: \'oops\' (use -debug for details)"' in result.stderr


def test_it_errors_on_an_invalid_crontab(supercronic: Path, crontabs: Path):
    result = subprocess.run([str(supercronic), str(crontabs / "invalid.crontab")], capture_output=True, text=True,
                            env=environment(), timeout=30)
    assert result.returncode == 1 and "level=fatal" in result.stderr


def test_a_missing_crontab_is_fatal_with_gos_words(supercronic: Path, tmp_path: Path):
    result = subprocess.run([str(supercronic), str(tmp_path / "absent")], capture_output=True, text=True,
                            env=environment(), timeout=30)
    assert result.returncode == 1
    assert f'level=fatal msg="open {tmp_path / "absent"}: no such file or directory"' in result.stderr


def _as_pid1(supercronic: Path, crontab: Path, out: Path, seconds: float) -> str:
    problem = can_unshare()
    if problem:
        pytest.skip(problem)
    with open(out, "wb") as handle:
        outer = subprocess.Popen(["unshare", "--fork", "--pid", "--mount-proc", "--kill-child", str(supercronic),
                                  str(crontab)], stdout=handle, stderr=subprocess.STDOUT, env=environment())
    try:
        inner = wait_for(lambda: psutil.Process(outer.pid).children(), 10, "supercronic as PID 1")[0]
        wait_for(lambda: "read crontab" in out.read_text(), 10, "the crontab to be read")
        deadline = time.monotonic() + seconds
        wait_for(lambda: time.monotonic() > deadline or "reaper cleanup: pid=" in out.read_text(), seconds + 5,
                 "the run")
        inner.send_signal(signal.SIGTERM)
        assert outer.wait(30) == 0
    finally:
        if outer.poll() is None:
            outer.kill()
            outer.wait()
    return out.read_text()


@pytest.mark.namespace
def test_it_runs_as_pid_1_and_reaps_zombie_processes(supercronic: Path, crontabs: Path, tmp_path: Path):
    text = _as_pid1(supercronic, crontabs / "zombie.crontab", tmp_path / "zombie-crontab-out", 5)
    assert 'level=info msg="reaping dead processes"' in text
    assert re.search(r'level=warning msg="reaper cleanup: pid=\d+, wstatus=0"', text)


@pytest.mark.namespace
def test_it_runs_as_pid_1_and_a_normal_crontab_gives_no_error(supercronic: Path, crontabs: Path, tmp_path: Path):
    text = _as_pid1(supercronic, crontabs / "normal.crontab", tmp_path / "normal-crontab-out", 3)
    assert "waitid: no child processes" not in text
    assert not re.search(r"level=(error|fatal)", text) and "Traceback" not in text
    assert text.count('level=info msg="job succeeded"') >= 2
