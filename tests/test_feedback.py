"""Feedback where a person is waiting (issue 25): a typo'd name lists the known ones, a whole
unknown long option is named, and a restart a client asked for logs its forensics at info."""

from __future__ import annotations

from harness import Pod, started


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
