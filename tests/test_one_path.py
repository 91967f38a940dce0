"""One path per command, through a real pyinit: each verb sent through the control socket
(pysvc) and written to s6's supervise/control FIFO, to twin services, and what happened compared:
the forensics record before force, the log event (its name tells the sender: "control" or
"s6-svc"), the metrics counters, the state the service ends in.

A signal to a down service does nothing either way: pysvc is told so (exit 3, its documented
answer), the FIFO's letter is ignored, as s6-supervise ignores it. pyinit's events are read as
records (harness.Pod.events), never as rendered wording.
"""

from __future__ import annotations

import json
import re

import pytest

from harness import GREETING_SLEEPER, Pod, read_int, wait_for

# case: (pysvc flag, s6-svc letter, action word, the service is normally down, the state it ends in)
CASES = {
    "down": ("-d", "d", "down", False, ("down", "down", "up")),
    "restart": ("-r", "r", "restart", False, ("up", "up", "up")),
    "kill": ("-k", "k", "signal", False, ("up", "up", "up")),
    "term": ("-t", "t", "signal", False, ("up", "up", "up")),
    "once": ("-o", "o", "once", False, ("up", "up", "up")),  # want "once": not restarted, shown as up
    "once-at-most": ("-O", "O", "once-at-most", False, ("up", "up", "up")),
    "down-file": ("-D", "D", "down-create-down", False, ("down", "down", "down")),
    "remove-down": ("-U", "U", "up-remove-down", True, ("up", "up", "up")),
    "up": ("-u", "u", "up", True, ("up", "up", "down")),
    "kill-down": ("-k", "k", "signal", True, ("down", "down", "down")),
}
FORCEFUL = ("down", "down-create-down", "restart", "signal")
NEW_PROCESS = ("restart", "kill", "term")  # the service ends with another pid than it had


def _status(pod: Pod) -> dict[str, dict]:
    result = pod.cli("svstat", "--json")
    assert result.returncode == 0, result.stderr
    return {record["name"]: record for record in map(json.loads, result.stdout.splitlines())}


def _counters(pod: Pod, name: str) -> dict[str, str]:
    """pys6_service_starts_total and _deaths_total of one service, its label taken off."""
    page = pod.cli("svstat", "--prometheus")
    assert page.returncode == 0, page.stderr
    found = {}
    for line in page.stdout.splitlines():
        if line.startswith(("pys6_service_starts_total", "pys6_service_deaths_total")) and f'service="{name}"' in line:
            key, value = line.rsplit(" ", 1)
            found[re.sub(r'service="[^"]*",?', "", key)] = value
    return found


def _fifo(pod: Pod, name: str, letter: str) -> None:
    """The letter, then one pyinit does not know: once that one is noted, the first was applied
    (the letters are applied in the order they came)."""
    with open(pod.rundir / "service" / name / "supervise" / "control", "wb", buffering=0) as control:
        control.write(f"{letter}?".encode())
    pod.wait_event("s6-svc command ignored", service=name, command="?")


def _ended(record: dict, expected: tuple[str, str, str], pid_before: int | None, case: str) -> bool:
    if (record["state"], record["want"], record["normally"]) != expected:
        return False
    return case not in NEW_PROCESS or (record["pid"] is not None and record["pid"] != pid_before)


@pytest.mark.parametrize("case", list(CASES))
def test_each_verb_does_the_same_through_the_socket_and_through_the_fifo(subreaper_pod: Pod, case: str):
    flag, letter, action, normally_down, expected = CASES[case]
    pod = subreaper_pod
    twins = {"control": f"{case}-sock", "s6-svc": f"{case}-fifo"}
    for name in twins.values():
        pod.service(name, GREETING_SLEEPER, **({"down": ""} if normally_down else {}))
    pod.start()
    pod.wait_control()
    if not normally_down:
        for name in twins.values():
            wait_for(lambda name=name: read_int(pod, f"{name}.pid"), what=name)
    before = _status(pod)

    answer = pod.cli("svc", flag, twins["control"])
    _fifo(pod, twins["s6-svc"], letter)

    if case == "kill-down":
        assert answer.returncode == 3 and "is down: no process to signal" in answer.stderr
    else:
        assert answer.returncode == 0, answer.stderr
    wait_for(lambda: all(_ended(_status(pod)[name], expected, before[name]["pid"], case) for name in twins.values()),
             what=f"both twins {expected}")

    outcome = {}
    for sender, name in twins.items():
        said = pod.events(sender, service=name)
        forensics = [event["reason"] for event in pod.events("forensics", service=name)]
        outcome[sender] = (len(said), forensics, _counters(pod, name))
        if said:
            (event,) = said
            assert event.level == "info"
            if sender == "s6-svc":
                assert event["command"] == letter
            if action == "signal":
                assert event["signal"] == {"k": "SIGKILL", "t": "SIGTERM"}[letter]
            else:
                assert event["action"] == action
    assert outcome["control"] == outcome["s6-svc"]
    said, forensics, _counters_of_one = outcome["control"]
    assert said == (0 if case == "kill-down" else 1)
    assert forensics == ([f"before {action}"] if action in FORCEFUL and not normally_down else [])
    assert pod.stop() == 0
