"""An operator's choice is not a failure (issue 25): `pysvc -d cron` must not fail the liveness
probe (deploy/pod.yaml's would restart the whole workstation), while bails and crash loops still
fail both probes; stopping sshd from an SSH session says what it does to new logins."""

from __future__ import annotations

import json
import os

from harness import Pod, started, wait_for


def test_a_service_brought_down_on_purpose_fails_no_probe(pod: Pod):
    started(pod, "web", "cron")
    assert pod.cli("svstat", "--check").returncode == 0
    assert pod.cli("svc", "-wd", "-d", "cron").returncode == 0
    for form in ("--check", "--check=ready", "--check=live"):
        done = pod.cli("svstat", form)
        assert done.returncode == 0, (form, done.stdout, done.stderr)
    assert pod.cli("svc", "-wu", "-u", "cron").returncode == 0
    assert pod.cli("svstat", "--check").returncode == 0


def test_a_bail_and_a_crash_loop_fail_both_probes(pod: Pod):
    pod.service("crasher", "exit 3")
    started(pod, "web", env={"PYS6_CRASH_DEATHS": "1"})
    pod.wait_event("service bailed", service="crasher")
    for form in ("--check", "--check=live"):
        done = pod.cli("svstat", form, "crasher")
        assert done.returncode == 1 and done.stdout.startswith("down"), (form, done.stdout)


def test_a_crash_loop_fails_liveness(pod: Pod):
    pod.service("looper", "exit 4")
    started(pod, "web", env={"PYS6_CRASH_DEATHS": "1000"})

    def looping() -> bool:
        record = json.loads(pod.cli("svstat", "--json", "looper").stdout)
        return record["deaths"] >= 2 and record["state"] == "down"

    wait_for(looping, what="two deaths of looper")
    done = pod.cli("svstat", "--check=live", "looper")
    assert done.returncode == 1, done.stdout


def test_a_normally_up_service_not_yet_up_is_not_ready_but_alive(pod: Pod):
    pod.service("slow", 'read -t 100 < "$STATE/go-fifo"; echo >&3; exec sleep 1000', notification_fd="3")
    os.mkfifo(pod.state / "go-fifo")
    started(pod, "web")
    assert pod.cli("svstat", "--check", "slow").returncode == 1
    assert pod.cli("svstat", "--check=live", "slow").returncode == 0
    (pod.state / "go-fifo").write_text("go\n")
    wait_for(lambda: pod.cli("svstat", "--check", "slow").returncode == 0, what="slow ready")


def test_stopping_sshd_from_ssh_says_what_happens_to_logins(pod: Pod):
    started(pod, "web", "sshd")
    done = pod.cli("svc", "-d", "sshd", env={"SSH_CONNECTION": "10.0.0.1 5000 10.0.0.2 22"})
    assert done.returncode == 0
    assert "new SSH logins are refused" in done.stderr and "pysvc -u sshd" in done.stderr
    assert "stay" in done.stderr
    quiet = pod.cli("svc", "-u", "sshd", env={"SSH_CONNECTION": "10.0.0.1 5000 10.0.0.2 22"})
    assert quiet.stderr == ""
    assert pod.cli("svc", "-d", "sshd").stderr == ""  # not from an SSH session: s6-svc's silence
