"""The pod's own sshd health check, end to end: a real sshd from services.d, wedged with SIGSTOP,
restarted by its check, and logins working again (docs/health-checks.md)."""

from __future__ import annotations

import json
import os
import signal

import pytest
from test_pod import PodImage
from test_pod import pod_image as pod_image  # the fixture: the image's filesystem and an ssh client

from harness import wait_for

pytestmark = pytest.mark.machine_wide


def health_of(image: PodImage) -> dict:
    answer = image.pysvstat("--json", "sshd")
    return json.loads(answer.stdout) if answer.returncode == 0 else {}


def test_a_wedged_sshd_is_restarted_by_its_check_and_logins_work_again(pod_image: PodImage):
    image, pod = pod_image, pod_image.pod
    config = pod.root / "pys6.yaml"  # the pod's own check, only faster than its defaults
    config.write_text("services:\n  sshd:\n    health_interval: 0.5\n    health_timeout: 1\n    health_retries: 2\n")
    image.env["PYS6_CONFIG"] = str(config)
    image.boot()
    wait_for(lambda: health_of(image).get("health") == "healthy", 20, "sshd's check to pass")
    assert image.ssh("echo in").stdout == "in\n"
    wedged = int(image.pysvstat("-p", "sshd").stdout)
    host_pid = pod.host_pid(wedged)
    os.kill(host_pid, signal.SIGSTOP)  # the port still accepts; sshd says nothing
    try:
        died = pod.wait_event("service died", service="sshd", cause="unhealthy", timeout=30)
    finally:
        try:
            os.kill(host_pid, signal.SIGCONT)  # should the test fail, nothing is left stopped
        except ProcessLookupError:
            pass  # gone, as it should be
    assert died.matches("service died", expected=False)
    failed = pod.events("health check failed", service="sshd")
    assert failed and all(e["result"] == "timeout" or "no SSH banner" in e["output"] for e in failed)
    assert pod.event("forensics", service="sshd", reason="before unhealthy") is not None
    wait_for(lambda: health_of(image).get("pid") not in (None, wedged) and health_of(image).get("health") == "healthy",
             30, "sshd back and healthy")
    assert image.ssh("echo again").stdout == "again\n"
    assert pod.stop(30) == 0
