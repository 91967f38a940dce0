"""Merged logs: every line of every service reaches PID 1's stdout/stderr, prefixed, once, in order."""

from __future__ import annotations

import json
import os
import threading
import time

import psutil

from harness import Pod, read_int, wait_for, wait_ready_for_more_than

LINES = 100_000


def test_three_services_writing_100000_numbered_lines_each_lose_nothing(pod: Pod):
    for name in ("a", "b", "c"):
        pod.service(name, f'seq -f "{name}-%.0f" 1 {LINES}; seq -f "{name}-err-%.0f" 1 1000 >&2; touch "$STATE/{name}.done"; exec sleep 1000')
    pod.start()
    wait_for(lambda: all((pod.state / f"{n}.done").exists() for n in "abc"), 60, "the writers")
    wait_for(lambda: pod.stdout().count("\n") >= 3 * LINES, 30, "every line to arrive")
    out = pod.stdout().splitlines()
    for name in "abc":
        mine = [line for line in out if line.startswith(f"[{name}] ")]
        assert mine == [f"[{name}] {name}-{i}" for i in range(1, LINES + 1)]
    assert all(line[:4] in ("[a] ", "[b] ", "[c] ") for line in out), "a line was cut or interleaved"
    err = [line for line in pod.stderr().splitlines() if line.startswith("[a] ")]
    assert err == [f"[a] a-err-{i}" for i in range(1, 1001)]


def test_a_last_line_without_newline_is_delivered_when_the_service_dies(pod: Pod):
    pod.service("svc", 'printf "partial-$(cat "$STATE/n" 2>/dev/null || echo 0)"; echo 1 > "$STATE/n"; exit 1')
    pod.start(env={"PYS6_CRASH_DEATHS": "2"})
    pod.wait_event("service bailed")
    assert pod.stdout().splitlines() == ["[svc] partial-0", "[svc] partial-1"]


def test_invalid_utf8_and_a_one_mebibyte_line_break_nothing(pod: Pod):
    pod.service("bad", r'''
        printf 'caf\xe9 \xff\xfe ok\n'
        head -c 1048576 /dev/zero | tr '\0' x
        echo
        echo after-long
        exec sleep 1000
    ''')
    pod.service("other", 'echo other-fine; exec sleep 1000')
    pod.start()
    pod.wait_stdout("[bad] after-long")
    raw = pod.stdout_path.read_bytes()
    assert b"[bad] caf\xe9 \xff\xfe ok\n" in raw
    pieces = [line for line in raw.split(b"\n") if line.startswith(b"[bad] xxx")]
    assert sum(line.count(b"x") for line in pieces) == 1048576
    assert len(pieces) == 16 and all(line.endswith(b" [...]") for line in pieces[:-1])
    assert not pieces[-1].endswith(b" [...]")
    assert "[other] other-fine" in pod.stdout()


def test_json_format_makes_service_lines_and_events_json(pod: Pod):
    pod.service("svc", r'''printf 'hello\n\xff\n'; exec sleep 1000''')
    pod.start(env={"PYS6_LOG_FORMAT": "json"})
    wait_for(lambda: pod.stdout().count("\n") >= 2, what="two lines")
    records = [json.loads(line) for line in pod.stdout().splitlines()]
    assert records[:2] == [
        {"service": "svc", "stream": "stdout", "message": "hello"},
        {"service": "svc", "stream": "stdout", "message": "\\xff"},
    ]
    events = [json.loads(line) for line in pod.stderr().splitlines()]
    started = next(e for e in events if e["event"] == "service started")
    assert started["source"] == "pyinit" and started["service"] == "svc" and started["level"] == "info"


def test_a_slow_stdout_slows_the_services_and_loses_nothing(pod: Pod):
    count = 500_000  # several MiB: more than the pipes and pyinit's 1 MiB queue hold
    read_end, write_end = os.pipe()
    pod.service("writer", f'seq 1 {count}; touch "$STATE/done"; exec sleep 1000')
    pod.start(stdout=write_end)
    os.close(write_end)
    received: list[bytes] = []
    blocked_ok = threading.Event()

    def slow_reader() -> None:
        time.sleep(1.0)  # nobody reads: the service must block, not lose lines
        blocked_ok.set()
        with os.fdopen(read_end, "rb") as stream:
            for line in stream:
                received.append(line)
                if len(received) >= count:
                    return

    reader = threading.Thread(target=slow_reader, daemon=True)
    reader.start()
    wait_for(blocked_ok.is_set, 5, "the reader's pause")
    assert not (pod.state / "done").exists(), "the writer finished while nobody read: lines went somewhere"
    reader.join(60)
    assert len(received) == count
    assert received == [f"[writer] {i}\n".encode() for i in range(1, count + 1)]


def test_a_flooding_service_does_not_delay_another_ones_respawn(pod: Pod):
    pod.service("flood", "yes flood-flood-flood-flood-flood-flood-flood-flood")
    pod.service("victim", 'echo $$ > "$STATE/victim.pid"; exec sleep 1000')
    devnull = os.open(os.devnull, os.O_WRONLY)
    pod.start(stdout=devnull)
    os.close(devnull)
    first = wait_for(lambda: read_int(pod, "victim.pid"), what="victim")
    wait_ready_for_more_than(pod, "victim", 1.0)  # ready for over a second: restarts at once
    for _ in range(3):
        current = read_int(pod, "victim.pid")
        psutil.Process(pod.host_pid(current)).kill()
        killed = time.monotonic()
        wait_for(lambda current=current: read_int(pod, "victim.pid") not in (None, current), 5, "the victim's respawn")
        delays = time.monotonic() - killed
        assert delays < 0.9, f"respawn took {delays:.3f} s under a flood"
        wait_ready_for_more_than(pod, "victim", 1.0)
    assert first != read_int(pod, "victim.pid")


def test_supervisor_events_do_not_interleave_with_service_lines_on_stderr(pod: Pod):
    pod.service("noisy", 'for i in $(seq 1 20000); do echo "noisy-err-$i" >&2; done; exit 1')
    pod.start(env={"PYS6_CRASH_DEATHS": "3"})
    pod.wait_event("service bailed", 30)
    for line in pod.stderr().splitlines():
        assert line.startswith("[noisy] noisy-err-") or line.startswith("[pyinit] "), line



def _pipe_size(pid: int, fd: int) -> int:
    import fcntl

    with open(f"/proc/{pid}/fd/{fd}", "rb", buffering=0) as pipe:  # the same pipe, a new descriptor
        return fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_GETPIPE_SZ", 1032))


def test_a_flooding_service_gets_a_larger_pipe_and_a_quiet_one_keeps_its_own(pod: Pod):
    """A stdout found full at a read grows to GROWN_PIPE, for at most GROWN_PIPES services at once."""
    from supervisor.logs.pipe import GROWN_PIPE, GROWN_PIPES

    for i in range(GROWN_PIPES + 2):
        pod.service(f"flood{i}", f'echo "$$" > "$STATE/flood{i}"; seq 1 200000; exec sleep 1000')
    pod.service("quiet", 'echo "$$" > "$STATE/quiet"; echo one line; exec sleep 1000')
    pod.start()
    pids = {name: pod.host_pid(wait_for(lambda name=name: read_int(pod, name), what=name))
            for name in [f"flood{i}" for i in range(GROWN_PIPES + 2)] + ["quiet"]}
    wait_for(lambda: pod.stdout().count("\n") >= (GROWN_PIPES + 2) * 200000 + 1, 60, "every line")
    assert _pipe_size(pids["quiet"], 1) == 65536
    sizes = [_pipe_size(pids[f"flood{i}"], 1) for i in range(GROWN_PIPES + 2)]
    assert set(sizes) <= {65536, GROWN_PIPE} and 0 < sizes.count(GROWN_PIPE) <= GROWN_PIPES, sizes
    assert _pipe_size(pids["flood0"], 2) == 65536  # its stderr said nothing
    assert pod.stop() == 0
