"""The control socket under 10,000 random frames: PID 1 answers each or closes it, and goes on.

Its own module so that parallel workers can run it beside the rest of test_control.py.
"""

from __future__ import annotations

import json
import socket

import psutil

from harness import Pod, alive, assert_answer_head, raw_exchange, read_int, started, wait_for


def test_ten_thousand_random_frames_leave_everything_up(pod: Pod):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    started(pod, "a", "b")
    pids = (read_int(pod, "a.pid"), read_int(pod, "b.pid"))
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=30),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
        max_leaves=15)
    near_miss = st.fixed_dictionaries({"v": st.sampled_from([2, 2, 1, "2"]),
                                        "verb": st.sampled_from(["status", "control", "log", "forensics", "ping", "x"])},
                                       optional={"services": st.lists(st.sampled_from(["a", "b", "zz", "", "../a"]), max_size=3),
                                                 "actions": st.lists(st.fixed_dictionaries({"do": st.sampled_from(["signal", "boom"])}, optional={"signal": st.integers(0, 70)}), max_size=2),
                                                 "lines": st.integers(-5, 200000), "wait": st.sampled_from(["up", None, 3])})
    frames = st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                       near_miss.map(lambda v: json.dumps(v).encode()))
    counted = [0]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM):
        pass

    @settings(max_examples=10_000, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(frames)
    def throw(frame: bytes) -> None:
        if b'"wait"' in frame:  # a valid wait would block for its (absent) timeout: keep it short
            frame = frame.replace(b'"wait"', b'"wa1t"')
        reply = raw_exchange(pod, frame + b"\n")
        if reply:
            assert_answer_head(reply)
        counted[0] += 1

    throw()
    assert counted[0] >= 10_000
    # Signals are allowed verbs: a random frame may well have stopped or killed a service for real.
    pod.cli("svc", "-u", "-C", "a", "b")
    for name in ("a", "b"):
        wait_for(lambda name=name: pod.cli("svstat", "-u", name).stdout == "true\n", 10, f"{name} up again")
    assert psutil.Process(pod.init_pid).is_running()
    assert pod.cli("svstat", "--check").returncode == 0
    for name in ("a", "b"):  # their pids may have changed through allowed signals: the new ones are alive
        pid = int(pod.cli("svstat", "-p", name).stdout)
        assert pid > 0 and alive(pod.host_pid(pid))
    assert all(pids)  # both had started before the frames came
