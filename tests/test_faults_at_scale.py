"""Faults at scale: 400 services streamed whole, forensics of 2,000 processes, readiness
pipes of dead incarnations. A module of its own so parallel workers can run it beside
the rest of test_faults.py.
"""

from __future__ import annotations

import json

from harness import Pod, fd_count, pyinit_alive, read_int, wait_for


def test_status_of_four_hundred_services_is_streamed_whole(pod: Pod):
    names = [f"s{i:03d}-" + "x" * 100 for i in range(400)]
    for name in names:
        pod.service(name, "exec sleep 1000\n")
    pod.start()
    wait_for(lambda: pod.cli("svstat").stdout.count(": up (pid ") == 400, 60, "400 services up")
    everything = pod.cli("svstat")
    assert len(everything.stdout) > 65536 and everything.stdout.endswith("400 services: 400 up, 0 down\n")
    records = [json.loads(line) for line in pod.cli("svstat", "--json").stdout.splitlines()]
    assert sorted(r["name"] for r in records) == sorted(names)
    check = pod.cli("svstat", "--check")
    assert (check.returncode, check.stdout) == (0, "")
    pyinit_alive(pod)


def test_forensics_of_a_service_with_two_thousand_processes(pod: Pod):
    pod.service("forky", 'for i in $(seq 2000); do sleep 1000 & done\necho forked\nexec sleep 1000\n')
    pod.start()
    pod.wait_stdout("[forky] forked", 60)
    result = pod.cli("svstat", "--forensics", "forky", timeout=120)
    assert result.returncode == 0, result.stderr
    snapshot = json.loads(result.stdout)
    assert snapshot["processes_total"] == 2001 and len(snapshot["processes"]) == 2001
    # The log event is bounded: its processes are cut short, the total stays.
    pod.cli("svc", "-d", "forky")
    event = pod.wait_event("forensics", 30, service="forky", reason="before down")
    assert event["processes_total"] == "2001"
    line = next(line for line in pod.stderr().splitlines()  # the bound is the rendered line's
                if line.startswith("[pyinit] forensics service=forky reason=\"before down\""))
    assert len(line) < 20_000
    pyinit_alive(pod)


# --- signals, numbers, depth --------------------------------------------------------------


def test_readiness_pipes_of_dead_incarnations_are_closed_even_when_orphans_hold_them(pod: Pod):
    # Each incarnation leaves an orphan holding its notification fd. The first is ready and stays
    # until killed; the next ten die after 0.1 s without ever being ready (so nothing but their
    # death can close their pipe); the twelfth is ready and stays. pyinit's fd count must not grow.
    run = '''n=$(( $(cat "$STATE/$1.count" 2>/dev/null || echo 0) + 1 )); echo $n > "$STATE/$1.count"
sleep 1000 &
if [ $n -eq 1 ] || [ $n -ge 12 ]; then echo >&3; exec sleep 1000; fi
exec sleep 0.1
'''
    names = [f"n{i}" for i in range(10)]
    for name in names:
        pod.service(name, run, notification_fd="3")
    pod.start(env={"PYS6_CRASH_DEATHS": "1000"})
    wait_for(lambda: pod.cli("svstat", "--check").returncode == 0, 20, "every service ready")
    before = fd_count(pod.init_pid)
    assert pod.cli("svc", "-k", *names).returncode == 0
    wait_for(lambda: all(read_int(pod, f"{n}.count") == 12 for n in names), 60, "eleven restarts each")
    wait_for(lambda: pod.cli("svstat", "--check").returncode == 0, 20, "every service ready again")
    # not above: the last query's connection may still be open in either count, for a moment
    wait_for(lambda: fd_count(pod.init_pid) <= before, 10, f"pyinit's fds back to {before}")
