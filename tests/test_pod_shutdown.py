"""The pod's shutdown says what it waits for (docs/stages.md: what the shutdown waits for), on the
pod's own trees and switches: a service of the site's that ignores SIGTERM, beside the pod's sshd
and cron, is named while stage 3 waits for it, then SIGKILLed and listed as killed by force; the
pod's own services stop politely and are in no such list."""

from __future__ import annotations

import time

import pytest
from test_pod import PodImage
from test_pod import pod_image as pod_image  # the fixture: the image's filesystem and an ssh client

pytestmark = pytest.mark.machine_wide

STUBBORN = "#!/bin/sh\n# a site's service that ignores SIGTERM (ignored signals stay ignored across exec)\n" \
           "trap '' TERM\nexec sleep 1000\n"


def test_a_term_ignoring_service_is_named_before_its_sigkill_and_the_pods_own_stop_politely(pod_image: PodImage):
    image, pod = pod_image, pod_image.pod
    service = pod.etc / "services.d" / "stubborn"
    service.mkdir()
    (service / "run").write_text(STUBBORN)
    (service / "run").chmod(0o755)
    image.boot()
    pid = int(image.pysvstat("-p", "stubborn").stdout)
    assert pid > 0
    started = time.monotonic()
    assert pod.stop(30) == 0
    assert time.monotonic() - started < 16.1  # the pod's budget holds with a stubborn service too

    events = pod.events()
    named = [at for at, event in enumerate(events) if event.event == "shutdown waiting"
             and {"pid": pid, "command": "sleep 1000", "name": "stubborn"} in event["waiting"]]
    killing = [at for at, event in enumerate(events)
               if event.matches("service did not stop in time, killing its group", service="stubborn")]
    assert named and killing and named[0] < killing[0], [e.event for e in events]
    assert events[named[0]]["phase"] == "services"
    for at in named:  # sshd takes SIGTERM at once: never among what the services phase waits for
        assert all(entry.get("name") != "sshd" for entry in events[at]["waiting"])
    summary = pod.event("shutdown summary")
    assert summary is not None
    assert {"pid": pid, "name": "stubborn"} in summary["killed"]
    assert all(entry.get("name") == "stubborn" for entry in summary["killed"]), summary["killed"]
    assert summary["unkillable"] == []
    assert pod.events("service did not stop in time, killing its group", service="sshd") == []
    assert pod.events("service did not stop in time, killing its group", service="cron") == []
