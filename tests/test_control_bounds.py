"""One control request cannot freeze PID 1 (issue 21, point 3).

A request's work is bounded where it is decoded (at most 63 actions, each service once, actions x
services at most 4,096; past that it is refused as a whole with a usage error, 100); PID 1 yields
between two applications, so probes and SIGTERM are served while the largest allowed request
runs; and the work stops when its client hangs up.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from harness import SLEEPER, Pod, read_int, wait_for
from supervisor.control import protocol
from supervisor.control.protocol import ProtocolError, decode_request

MAX_ACTIONS = 63  # docs/clients.md's bounds, written out so that this module also runs against older code
MAX_APPLICATIONS = 4096

WINCH = int(signal.SIGWINCH)  # ignored by the sleepers: a signal that changes nothing but costs the same
TERM = int(signal.SIGTERM)


def _control(services: list[str], actions: list[dict[str, object]]) -> bytes:
    return json.dumps({"v": 2, "verb": "control", "services": services, "actions": actions},
                      separators=(",", ":")).encode() + b"\n"


def _signal(signum: int) -> dict[str, object]:
    return {"do": "signal", "signal": signum}


# --- the bound, where a request is decoded ----------------------------------------------


def test_at_most_63_actions_as_s6_svc():
    assert (getattr(protocol, "MAX_ACTIONS", None), getattr(protocol, "MAX_APPLICATIONS", None)) == (63, 4096)
    assert len(decode_request(_control(["a"], [_signal(WINCH)] * MAX_ACTIONS)).actions) == 63
    with pytest.raises(ProtocolError, match="too many actions: 64") as refused:
        decode_request(_control(["a"], [_signal(WINCH)] * (MAX_ACTIONS + 1)))
    assert refused.value.code == protocol.EXIT_USAGE


def test_a_service_named_twice_is_applied_once_and_actions_keep_their_order():
    request = decode_request(_control(["b", "a", "b", "a", "c"] * 200, [{"do": "down"}, {"do": "up"}, {"do": "down"}]))
    assert request.services == ("b", "a", "c")
    assert [action.do for action in request.actions] == ["down", "up", "down"]  # s6-svc -dud, as given


def test_actions_times_services_is_bounded():
    names = [f"s{i}" for i in range(66)]
    assert 65 * MAX_ACTIONS <= MAX_APPLICATIONS < 66 * MAX_ACTIONS
    assert len(decode_request(_control(names[:65], [_signal(WINCH)] * MAX_ACTIONS)).services) == 65
    with pytest.raises(ProtocolError, match="too much at once: 63 actions to 66 services") as refused:
        decode_request(_control(names, [_signal(WINCH)] * MAX_ACTIONS))
    assert refused.value.code == protocol.EXIT_USAGE
    assert len(decode_request(_control([f"s{i}" for i in range(4096)], [{"do": "down"}])).services) == 4096


# --- live ------------------------------------------------------------------------------


def _exchange(pod: Pod, frame: bytes, timeout: float) -> dict[str, object]:
    """Send one raw request (no half-close: as the clients do) and read the answer's head."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(pod.rundir / "control.sock"))
        sock.sendall(frame)
        reply = b""
        while b"\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    head: dict[str, object] = json.loads(reply.split(b"\n", 1)[0])
    return head


def _applied(pod: Pod, service: str) -> int:
    return len([event for event in pod.events("control", service=service) if "action" in event.fields])


def _started(pod: Pod, *names: str) -> None:
    for name in names:
        pod.service(name, SLEEPER)
    pod.start()
    pod.wait_control()
    for name in names:
        wait_for(lambda name=name: read_int(pod, f"{name}.pid"), what=name)


def test_the_hostile_request_is_refused_at_once_and_changes_nothing(pod: Pod):
    """1,000 times the same service, 1,500 signals, the first a SIGTERM: it used to be applied
    1.5 M times, without yielding once the service was down."""
    _started(pod, "a")
    pid = read_int(pod, "a.pid")
    frame = _control(["a"] * 1000, [_signal(TERM)] + [_signal(WINCH)] * 1499)
    assert len(frame) < protocol.MAX_FRAME
    started = time.monotonic()
    head = _exchange(pod, frame, timeout=5)
    assert time.monotonic() - started < 1.0
    assert head["ok"] is False and head["code"] == protocol.EXIT_USAGE
    assert "too many actions: 1500" in str(head["error"])
    assert _applied(pod, "a") == 0
    assert read_int(pod, "a.pid") == pid and pod.cli("svstat", "--check").returncode == 0
    # What pysvc prints for it: the server's words, as a usage error.
    refused = pod.cli("svc", *["-y"] * 64, "a")
    assert refused.returncode == protocol.EXIT_USAGE
    assert "too many actions: 64" in refused.stderr


SERVICES = [f"s{i:02d}" for i in range(65)]  # 65 x 63 = 4,095 applications: the largest allowed
# A SIGTERM first: the services go down (and come back) while the rest of the request runs, which
# is where the loop used to stop yielding.
LARGEST = _control(SERVICES, [_signal(TERM)] + [_signal(WINCH)] * (MAX_ACTIONS - 1))


def _control_requests(pod: Pod, result: str) -> int:
    """pys6_control_requests_total{verb="control",result=...}, from the metrics page."""
    page = pod.cli("svstat", "--prometheus").stdout
    key = f'pys6_control_requests_total{{verb="control",result="{result}"}} '
    return sum(int(line.split()[-1]) for line in page.splitlines() if line.startswith(key))


@pytest.mark.namespace
def test_pid1_serves_probes_and_sigterm_while_the_largest_requests_run(pod: Pod):
    _started(pod, *SERVICES)
    stop = threading.Event()
    answered = [0]

    def keep_sending() -> None:  # one largest request after another, until pyinit is gone
        while not stop.is_set():
            try:
                _exchange(pod, LARGEST, timeout=15)
            except (OSError, ValueError):
                return
            answered[0] += 1

    sender = threading.Thread(target=keep_sending, daemon=True)
    sender.start()
    try:
        wait_for(lambda: answered[0] >= 1, 20, "a first largest request to be done")
        for _ in range(3):
            started = time.monotonic()
            probe = pod.cli("svstat", "--check", timeout=10)
            assert probe.returncode in (0, 1)  # answered (a service may be between two lives)
            assert time.monotonic() - started < 2.0  # a fresh Python client's start included
        started = time.monotonic()
        pod.signal(signal.SIGTERM)
        try:
            pod.wait_exit(11.1)
        except subprocess.TimeoutExpired:
            pytest.fail("pyinit did not exit within its shutdown budget while requests ran")
        assert time.monotonic() - started < 11.1
    finally:
        stop.set()
        sender.join(20)
    assert not sender.is_alive()


def test_the_work_stops_when_its_client_hangs_up(pod: Pod):
    """The largest request, from a client that closes the connection as soon as it is sent: at
    most the application under way when pyinit sees the hang-up is done, not 4,095."""
    _started(pod, *SERVICES)
    # pyinit is stopped while the client connects, sends and leaves (the kernel takes all three
    # without it), so the hang-up is there before the first application, however this machine
    # schedules the test: a client preempted between its send and its close would otherwise look
    # like one that stayed.
    os.kill(pod.init_pid, signal.SIGSTOP)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(pod.rundir / "control.sock"))
            client.sendall(_control(SERVICES, [_signal(WINCH)] * MAX_ACTIONS))
    finally:
        os.kill(pod.init_pid, signal.SIGCONT)
    # The request is counted once its handler is over, whatever it did.
    wait_for(lambda: _control_requests(pod, "ok") + _control_requests(pod, "error") >= 1, 30,
             "the request to be over")
    applied = len([event for event in pod.events("control") if "service" in event.fields])
    # At most the one under way when pyinit sees the hang-up. Unbounded, it was all 4,095.
    assert applied <= 2, f"{applied} of {65 * MAX_ACTIONS} applications done for a client that left"
    assert pod.cli("svstat", "--check").returncode == 0


def test_a_client_that_half_closes_is_still_answered(pod: Pod):
    """shutdown(SHUT_WR) after the request, as socat and nc do at the end of their input, is not
    a hang-up: the actions are done and the wait is answered."""
    _started(pod, "a")
    request = json.dumps({"v": 2, "verb": "control", "services": ["a"], "actions": [{"do": "down"}],
                          "wait": "finished", "timeout_ms": 10000}).encode() + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(15)
        client.connect(str(pod.rundir / "control.sock"))
        client.sendall(request)
        client.shutdown(socket.SHUT_WR)
        reply = b""
        while b"\n" not in reply:
            chunk = client.recv(65536)
            if not chunk:
                break
            reply += chunk
    assert json.loads(reply.split(b"\n", 1)[0]) == {"ok": True}
    assert pod.cli("svstat", "-u", "a").stdout == "false\n"
