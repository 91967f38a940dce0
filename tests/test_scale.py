"""A thousand services: every one listed, the probe answered, a crash-looper among them bailed
after exactly five deaths with the others untouched, all of them stopped by SIGTERM.

How fast is bench/'s business (bench_pid1.py --services 1000); here, that it is right.
"""

from __future__ import annotations

import json

from harness import Pod, wait_for

SERVICES = 1000


def _up_pids(pod: Pod) -> dict[str, int]:
    records = [json.loads(line) for line in pod.cli("svstat", "--json").stdout.splitlines()]
    return {r["name"]: r["pid"] for r in records if r["state"] == "up"}


def test_a_thousand_services_are_listed_probed_bailed_and_stopped(pod: Pod) -> None:
    names = [f"svc{i:04d}" for i in range(SERVICES)]
    for name in names:
        pod.service(name, "#!/bin/sh\nexec sleep 100000\n")
    pod.service("crasher", 'echo start >> "$STATE/crasher.starts"\nexit 3\n')
    pod.start()
    wait_for(lambda: len(_up_pids(pod)) == SERVICES, 120, "a thousand services up")

    listed = pod.cli("svstat")
    lines = listed.stdout.splitlines()
    assert listed.returncode == 0 and len(lines) == SERVICES + 2  # and the crasher, and the summary
    assert [line.split(":")[0] for line in lines[:-1]] == sorted([*names, "crasher"])
    everything = [json.loads(line) for line in pod.cli("svstat", "--json").stdout.splitlines()]
    assert sorted(r["name"] for r in everything) == sorted([*names, "crasher"])

    pod.wait_event("service bailed", 30, service="crasher")
    before = _up_pids(pod)
    assert pod.read_state("crasher.starts").count("start") == 5
    assert lines[-1].startswith(f"{SERVICES + 1} services: ")
    check = pod.cli("svstat", "--check")  # the crasher is normally up and bailed: not as it should be
    assert check.returncode == 1 and check.stdout.startswith("crasher: down (exitcode 3)")
    assert pod.cli("svstat", "--check", *names[:500]).returncode == 0
    after = _up_pids(pod)
    assert after == before and len(after) == SERVICES  # no other service died or was restarted
    final = pod.cli("svstat", "crasher").stdout
    assert "bailed (5 deaths in 60 seconds)" in final
    page = pod.cli("svstat", "--prometheus").stdout  # over a megabyte: streamed in pieces, whole
    up = [line for line in page.split("\n") if line.startswith("pys6_service_up{")]
    assert len(up) == SERVICES + 1 and up.count('pys6_service_up{service="crasher"} 0') == 1
    assert 'pys6_service_bailed{service="crasher"} 1' in page and page.endswith("\n")
    assert pod.read_state("crasher.starts").count("start") == 5

    assert pod.stop(60) == 0
    stopped = pod.events()
    assert any(e.event == "services stopped" for e in stopped)
    assert not any("could not be stopped" in e.event for e in stopped)
    assert not any(e.event.startswith("sending SIGKILL") for e in stopped)  # each one ended by its own down-signal, none forced
