"""Live logs from a shell (issue 25, point 4): `pysvstat --log NAME -f` follows a service's output
over the control socket until Ctrl-C, bounded for a client that never reads; --log writes every
line to stdout whatever stream it came from; --timestamps; -n wherever it is written; pyinit's own
text lines carry their time unless PYS6_LOG_TIMESTAMPS=0."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import tracemalloc

import psutil

from harness import REPO, Pod, control_path, wait_for
from supervisor.logs.lines import RecentLines

# Prints one line to each stream at start, then one line to stdout per SIGHUP (a line on demand:
# the test says when the service writes, so no line can come before the follower is there).
ON_DEMAND = r"""n=0
echo started-out
echo started-err >&2
trap 'n=$((n+1)); echo "hup $n"; echo "hup-err $n" >&2' HUP
while :; do sleep 1 & wait $!; done
"""
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (.*)$")


def client_env(pod: Pod) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "LANG": "C.UTF-8",
            "PYS6_RUNDIR": str(pod.rundir)}


def on_demand(pod: Pod, name: str = "talker", env: dict[str, str] | None = None) -> None:
    pod.service(name, ON_DEMAND)
    pod.start(env=env)
    pod.wait_control()
    pod.wait_stderr(f"[{name}] started-err")


def hup(pod: Pod, name: str = "talker") -> None:
    assert pod.cli("svc", "-h", name).returncode == 0


def read_line(fd: int, buffer: bytearray, timeout: float = 10.0) -> str:
    """The next line from `fd`, waiting at most `timeout` for it."""
    deadline = time.monotonic() + timeout
    while b"\n" not in buffer:
        left = deadline - time.monotonic()
        assert left > 0, f"no line in {timeout} s (have {bytes(buffer)!r})"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk, f"end of output (have {bytes(buffer)!r})"
            buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line.decode()


# --- --log: one stream, -n anywhere, --timestamps ---------------------------------------


def test_log_writes_both_streams_to_stdout_and_n_works_wherever_it_is_written(pod: Pod):
    on_demand(pod)
    hup(pod)
    pod.wait_stdout("[talker] hup 1")
    pod.wait_stderr("[talker] hup-err 1")
    everything = pod.cli("svstat", "--log", "talker")
    assert everything.returncode == 0 and everything.stderr == ""
    assert sorted(everything.stdout.splitlines()) == sorted(["started-out", "started-err", "hup 1", "hup-err 1"])
    piped = subprocess.run(f"{sys.executable} -m supervisor.control.svstat --log talker | wc -l", shell=True,
                           env=client_env(pod), capture_output=True, text=True, timeout=30)
    assert piped.stdout.strip() == "4"  # the issue's own check: it gave 0 while stderr's lines went to stderr
    last = everything.stdout.splitlines()[-2:]
    for argv in (["--log", "talker", "-n", "2"], ["-n", "2", "--log", "talker"], ["-n2", "--log", "talker"],
                 ["--log", "talker", "--lines=2"], ["--lines", "2", "--log", "talker"]):
        result = pod.cli("svstat", *argv)
        assert result.returncode == 0 and result.stdout.splitlines() == last, (argv, result)
    for bad in (["-n", "x", "--log", "talker"], ["--log", "talker", "-n"], ["--log", "talker", "-n", "0"],
                ["-f", "talker"], ["--timestamps"]):
        refused = pod.cli("svstat", *bad)
        assert refused.returncode == 100 and "usage" in refused.stderr, (bad, refused)
    assert pod.cli("svstat", "-n", "talker").stdout.startswith("up ")  # without --log, -n is s6-svstat's


def test_timestamps_say_when_each_kept_line_arrived(pod: Pod):
    on_demand(pod)
    before = time.time()
    hup(pod)
    pod.wait_stderr("[talker] hup-err 1")
    after = time.time()
    result = pod.cli("svstat", "--log", "talker", "--timestamps", "-n", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [STAMP.match(line).group(2) for line in lines] == ["hup 1", "hup-err 1"] or \
        sorted(STAMP.match(line).group(2) for line in lines) == ["hup 1", "hup-err 1"]
    for line in lines:
        stamp = STAMP.match(line).group(1)
        when = time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + int(stamp[20:23]) / 1000
        assert before - 0.01 <= when <= after + 0.01, (line, before, after)
    started = pod.cli("svstat", "--log", "talker", "--timestamps", "-n", "4").stdout.splitlines()[0]
    assert STAMP.match(started).group(1) < STAMP.match(lines[0]).group(1)  # its own time, not the answer's


def test_the_ring_keeps_arrival_times_for_a_few_bytes_a_block():
    """One float per block (the pipe's read), not per line: with 1,000 single-line blocks, the worst
    case, the times cost 32 bytes a block (a float and its tuple slot), and whole blocks nothing more."""
    def cost(lines_per_block: int) -> float:
        recent = RecentLines()
        block = b"".join(b"line %04d\n" % i for i in range(lines_per_block))
        blocks = 1000 // lines_per_block
        tracemalloc.start()
        for _ in range(blocks):
            recent.add_block("stdout", bytes(block), lines_per_block, 1e9)
        used, _peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return used / 1000  # bytes per line kept, block text included
    single, batched = cost(1), cost(100)
    assert single < 160, single  # 10 bytes of text, the bytes object's 33, the 4-tuple's 72, the float's 24
    assert batched < 25, batched  # read 100 lines at a time, as a busy service is: near the text alone


# --- -f: following -------------------------------------------------------------------------


def test_follow_streams_new_lines_until_ctrl_c(pod: Pod):
    on_demand(pod)
    follower = subprocess.Popen([sys.executable, "-m", "supervisor.control.svstat", "--log", "talker", "-f",
                                 "-n", "1", "--timestamps"], env=client_env(pod), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    try:
        assert follower.stdout is not None
        out = bytearray()
        first = read_line(follower.stdout.fileno(), out)
        assert STAMP.match(first) and STAMP.match(first).group(2) in ("started-out", "started-err")
        for n in (1, 2, 3):
            hup(pod)
            got = sorted(STAMP.match(read_line(follower.stdout.fileno(), out)).group(2) for _ in range(2))
            assert got == [f"hup {n}", f"hup-err {n}"]
        follower.send_signal(signal.SIGINT)
        assert follower.wait(10) == 130
        assert follower.stderr is not None and b"Traceback" not in follower.stderr.read()
    finally:
        follower.kill()
        follower.wait(10)
    assert pod.cli("svstat", "talker").stdout.startswith("up ")


def _follow_socket(pod: Pod, lines: int = 0, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(control_path(pod))
    sock.sendall(json.dumps({"v": 2, "verb": "log", "services": ["flood"], "lines": lines, "follow": True}).encode()
                 + b"\n")
    return sock


def _read_head(sock: socket.socket) -> tuple[dict, bytes]:
    data = b""
    while b"\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\n")
    return json.loads(head), rest


FLOOD = r"""echo ready
trap 'seq 1 200000 | sed "s/^/flood line /"' HUP
while :; do sleep 1 & wait $!; done
"""


def test_a_follower_that_never_reads_costs_a_bounded_buffer_and_is_told_what_it_lost(pod: Pod):
    pod.service("flood", FLOOD)
    pod.start()
    pod.wait_control()
    pod.wait_stdout("[flood] ready")
    sock = _follow_socket(pod, rcvbuf=4096)
    try:
        head, rest = _read_head(sock)
        assert head == {"ok": True, "service": "flood", "items": 0, "follow": True} and rest == b""
        rss_before = psutil.Process(pod.init_pid).memory_info().rss
        assert pod.cli("svc", "-h", "flood").returncode == 0
        pod.wait_stdout("[flood] flood line 200000", 60)  # the merged log went on: nothing waited for us
        rss_after = psutil.Process(pod.init_pid).memory_info().rss
        assert rss_after - rss_before < 16 << 20, (rss_before, rss_after)  # 200,000 lines are 3.5 MB
        status = pod.cli("svstat", "flood", timeout=10)
        assert status.returncode == 0 and status.stdout.startswith("up ")  # PID 1 still answers
        lines, dropped, data = 0, 0, b""
        sock.settimeout(5)
        while lines + dropped < 200000:  # now read: what was kept, then how many were dropped
            chunk = sock.recv(1 << 16)
            assert chunk, (lines, dropped)
            data += chunk
            *complete, data = data.split(b"\n")
            for raw in complete:
                item = json.loads(raw)
                if "dropped" in item:
                    dropped += item["dropped"]
                else:
                    assert item["stream"] == "stdout" and item["line"].startswith("flood line ")
                    lines += 1
        assert lines + dropped == 200000 and dropped > 0 and 0 < lines < 200000
    finally:
        sock.close()


def test_a_follower_that_leaves_frees_its_place(pod: Pod):
    pod.service("flood", FLOOD)
    pod.start()
    pod.wait_control()
    socks = [_follow_socket(pod) for _ in range(32)]
    try:
        for sock in socks:
            assert _read_head(sock)[0]["ok"] is True
        extra = _follow_socket(pod)
        head, _ = _read_head(extra)
        extra.close()
        assert head["ok"] is False and "too many" in head["error"]
    finally:
        for sock in socks:
            sock.close()
    def place_again() -> bool:
        again = _follow_socket(pod)
        try:
            return _read_head(again)[0]["ok"] is True
        finally:
            again.close()
    wait_for(place_again, 10, "a follower's place freed when its client left")


def test_follow_ends_with_a_word_when_pyinit_stops(pod: Pod):
    on_demand(pod)
    follower = subprocess.Popen([sys.executable, "-m", "supervisor.control.svstat", "--log", "talker", "-f"],
                                env=client_env(pod), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert follower.stdout is not None
        out = bytearray()
        assert read_line(follower.stdout.fileno(), out) in ("started-out", "started-err")
        pod.stop()
        assert follower.wait(20) == 102
        assert follower.stderr is not None and b"pyinit closed the connection" in follower.stderr.read()
    finally:
        follower.kill()
        follower.wait(10)


# --- pyinit's own lines ---------------------------------------------------------------------


def _started_line(pod: Pod) -> str:
    return next(line for line in pod.stderr().splitlines() if line.startswith("[pyinit] service started "))


def test_pyinit_text_lines_end_in_their_time_unless_switched_off(pod: Pod):
    on_demand(pod)
    line = _started_line(pod)
    found = re.search(r" time=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)$", line)
    assert found, line
    assert abs(time.mktime(time.strptime(found.group(1)[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
               - time.time()) < 120
    assert pod.event("service started", service="talker") is not None  # still an event a reader can parse


def test_log_timestamps_off(pod: Pod):
    on_demand(pod, env={"PYS6_LOG_TIMESTAMPS": "0"})
    assert " time=" not in _started_line(pod)
