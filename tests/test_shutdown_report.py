"""Stage 3 says what it waits for (SPEC: What pyinit leaves behind): "shutdown waiting" once a
second while it runs, naming services and orphans by pid and command; "shutdown summary" at the
end with each phase's duration and what had to be SIGKILLed."""

from __future__ import annotations

import psutil
import pytest

from harness import SLEEPER, Pod, wait_for

STUBBORN = 'echo $$ > "$STATE/$1.pid"\ntrap "" TERM\nexec sleep 1000\n'


def _index(pod: Pod, predicate) -> int:  # type: ignore[no-untyped-def]
    for at, event in enumerate(pod.events()):
        if predicate(event):
            return at
    raise AssertionError("no such event")


def test_a_term_ignoring_service_is_named_while_waited_for_then_listed_as_killed_by_force(pod: Pod):
    pod.service("stubborn", STUBBORN)
    pod.service("polite", SLEEPER)
    pod.start(env={"S6_SERVICES_GRACETIME": "2500"})
    pid = int(wait_for(lambda: pod.read_state("stubborn.pid"), 10, "the service").strip())
    wait_for(lambda: pod.read_state("polite.pid"), 10, "the other service")
    assert pod.events("shutdown waiting") == []  # no timer while the container runs
    assert pod.stop() == 0

    def names_it(event) -> bool:  # type: ignore[no-untyped-def]
        return event.event == "shutdown waiting" and {"pid": pid, "command": "sleep 1000", "name": "stubborn"} \
            in event["waiting"]

    progress = _index(pod, names_it)
    waiting = pod.events()[progress]
    assert waiting["phase"] == "services"
    assert all(entry.get("name") != "polite" for entry in waiting["waiting"])  # it stopped at once
    killing = _index(pod, lambda event: event.matches("service did not stop in time, killing its group",
                                                      service="stubborn"))
    assert progress < killing
    summary = pod.event("shutdown summary")
    assert summary is not None
    assert {"pid": pid, "name": "stubborn"} in summary["killed"]
    assert summary["unkillable"] == []
    assert float(summary["services_s"]) >= 2.0
    assert float(summary["total_s"]) >= float(summary["services_s"])


@pytest.mark.namespace
def test_an_orphan_that_ignores_sigterm_is_named_in_the_final_kill_and_killed_by_force(pod: Pod):
    pod.script("cont-init.d/10-orphan", """
        (trap "" TERM; exec sleep 997) >/dev/null 2>&1 &
        echo $! > "$STATE/orphan.pid"
    """)
    pod.script("cont-finish.d/10-slow", "sleep 0.5")
    pod.service("idle", SLEEPER)
    pod.start(env={"S6_KILL_GRACETIME": "2500"})
    pid = int(wait_for(lambda: pod.read_state("orphan.pid"), 10, "the orphan").strip())
    wait_for(lambda: pod.read_state("idle.pid"), 10, "the service")
    assert pod.stop() == 0
    orphan = {"pid": pid, "command": "sleep 997"}
    progress = _index(pod, lambda event: event.event == "shutdown waiting" and event["phase"] == "final kill"
                      and orphan in event["waiting"])
    kill = _index(pod, lambda event: event.event == "sending SIGKILL to remaining processes")
    assert progress < kill
    summary = pod.event("shutdown summary")
    assert summary is not None
    assert orphan in summary["killed"]
    assert float(summary["cont_finish_s"]) >= 0.4
    assert float(summary["final_kill_s"]) >= 2.0
    for field in ("services_s", "s6rc_down_s", "total_s"):
        assert float(summary[field]) >= 0


def test_a_quick_shutdown_has_its_summary_and_nothing_killed(pod: Pod):
    pod.service("polite", SLEEPER)
    pod.start()
    wait_for(lambda: pod.read_state("polite.pid"), 10, "the service")
    assert pod.stop() == 0
    summary = pod.wait_event("shutdown summary")
    assert summary["killed"] == [] and summary["unkillable"] == []
    assert float(summary["total_s"]) < 1.0
    assert pod.events("shutdown waiting") == []  # done before the first second


def test_at_most_twenty_are_named_and_the_rest_counted(pod: Pod):
    pod.script("cont-init.d/10-many", """
        for i in $(seq 1 25); do (trap "" TERM; exec sleep 99$i) >/dev/null 2>&1 & done
        echo done > "$STATE/many"
    """)
    pod.start(env={"S6_KILL_GRACETIME": "1500"})
    wait_for(lambda: pod.read_state("many"), 10, "the orphans")

    def sleepers() -> int:  # every orphan exec'd, not one still a subshell about to be
        count = 0
        for child in pod.descendants():
            try:
                count += child.cmdline()[:1] == ["sleep"]
            except psutil.Error:
                pass
        return count

    wait_for(lambda: sleepers() == 25, 10, "the 25 orphans to exec sleep")
    assert pod.stop() == 0
    waiting = pod.wait_event("shutdown waiting", phase="final kill")
    assert len(waiting["waiting"]) == 20
    assert int(waiting["count"]) == 25 and int(waiting["more"]) == 5
