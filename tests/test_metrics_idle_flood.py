"""Idle connections cannot blind the metrics endpoint (issue 21, point 7).

Anyone on the pod network could hold the endpoint's 16 places with silent connections, or ones
that sent half a request head, for 5 s at a time: every scrape was closed unanswered and the
endpoint-down alert fired. Now a newcomer past a cap takes the place of an idle connection
(its own address's past 8 from one address; the address holding most past 16), the oldest
first, so a scraper that sends its head at once is answered. pycrond serves the same module
(supervisor/metrics/http.py): one test of it here.
"""

from __future__ import annotations

import socket
import struct
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio

from harness import Cron, Pod, free_port, wait_for

PARTIAL_HEAD = b"GET /metrics HTTP/1.1\r\nHost: pod\r\n"  # no blank line: this head never ends
PAGE_MARK = 'pys6_service_up{service="idle"} 1'


def scrape(port: int, path: str = "/metrics") -> str:
    """'200 <page>' or what went wrong, with a normal HTTP client's 2 s patience."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return f"{response.status} {response.read().decode()}"
    except (OSError, urllib.error.URLError) as exc:  # the old endpoint closed it unanswered
        return f"failed: {exc!r}"


def idle_connection(port: int, source: str, partial: bool, timeout: float | None = None) -> socket.socket:
    """A connection from SOURCE (any 127.x address is loopback) that sends nothing, or half a head."""
    conn = socket.socket()
    conn.settimeout(timeout)
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset on close: no TIME_WAIT
        conn.bind((source, 0))
        conn.connect(("127.0.0.1", port))
        if partial:
            conn.sendall(PARTIAL_HEAD)
    except BaseException:
        conn.close()
        raise
    return conn


def accept_queue(port: int) -> int:
    """How many connections wait in the listener's backlog, not yet accepted (/proc/net/tcp's rx_queue)."""
    local = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[1] == local and fields[3] == "0A":  # LISTEN
                return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


@contextmanager
def held_idle(port: int, count: int, sources: list[str]) -> Iterator[list[socket.socket]]:
    """COUNT idle connections spread over SOURCES, every other one with half a head, all accepted."""
    held: list[socket.socket] = []
    try:
        for index in range(count):
            held.append(idle_connection(port, sources[index % len(sources)], partial=index % 2 == 1))
        wait_for(lambda: accept_queue(port) == 0, 5, "the endpoint to take them all off its backlog")
        yield held
    finally:
        for conn in held:
            conn.close()


@contextmanager
def flooding(port: int, sources: list[str]) -> Iterator[list[int]]:
    """Fresh connections opened back to back from SOURCES, each sending half a head, the oldest
    closed past 512 of them, as fast as the endpoint takes them off its backlog; yields
    [connections opened so far]. (Faster, the flood races PID 1 for CPU: the kernel's backlog
    fills and drops every SYN, the scraper's too, whatever the endpoint does. Not this point.)"""
    stop = threading.Event()
    opened = [0]

    def flood() -> None:
        open_ones: list[socket.socket] = []
        try:
            while not stop.is_set():
                if opened[0] % 16 == 0:
                    while accept_queue(port) > 64 and not stop.wait(0.001):
                        pass
                try:
                    open_ones.append(idle_connection(port, sources[opened[0] % len(sources)], partial=True,
                                                     timeout=0.2))
                except OSError:
                    continue  # reset by the endpoint before the half head went out, or a SYN lost: next
                opened[0] += 1
                if len(open_ones) > 512:
                    open_ones.pop(0).close()
        finally:
            for conn in open_ones:
                conn.close()

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    try:
        wait_for(lambda: opened[0] >= 200, 10, "the flood to be under way")
        yield opened
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive()


def metrics_pod(pod: Pod) -> int:
    port = free_port()
    pod.service("idle", "exec sleep 1000")
    pod.start(env={"PYS6_METRICS_LISTEN": f"127.0.0.1:{port}"})
    wait_for(lambda: PAGE_MARK in scrape(port), 20, "the endpoint to serve")
    return port


def ten_scrapes(port: int, before_each: Callable[[], None] = lambda: None) -> list[str]:
    answers = []
    for _ in range(10):
        before_each()
        answer = scrape(port)
        answers.append("200 page" if answer.startswith("200 ") and PAGE_MARK in answer else answer)
    return answers


def flood_goes_on(opened: list[int]) -> None:
    """Until the flood has opened 200 more connections: each scrape lands in the middle of it."""
    target = opened[0] + 200
    wait_for(lambda: opened[0] >= target, 10, "the flood to go on")


def test_idle_connections_from_one_address_leave_every_scrape_answered(pod: Pod):
    port = metrics_pod(pod)
    for count in (16, 64):
        with held_idle(port, count, ["127.0.0.1"]):
            assert ten_scrapes(port) == ["200 page"] * 10, count
        assert PAGE_MARK in scrape(port)  # and once they are gone
    assert not pod.events("metrics request failed")


def test_idle_connections_from_two_addresses_leave_every_scrape_answered(pod: Pod):
    port = metrics_pod(pod)
    for count in (16, 64):
        with held_idle(port, count, ["127.0.0.1", "127.0.0.2"]):
            assert ten_scrapes(port) == ["200 page"] * 10, count
        assert PAGE_MARK in scrape(port)
    assert not pod.events("metrics request failed")


def test_a_flood_of_fresh_half_heads_from_other_addresses_does_not_starve_the_scraper(pod: Pod):
    port = metrics_pod(pod)
    with flooding(port, ["127.0.0.2", "127.0.0.3"]) as opened:
        assert ten_scrapes(port, lambda: flood_goes_on(opened)) == ["200 page"] * 10
    assert PAGE_MARK in scrape(port)
    assert pod.cli("svstat", "idle").returncode == 0  # PID 1 went on serving its control socket


def test_a_flood_from_the_scrapers_own_address_does_not_starve_it(pod: Pod):
    """Sharing its address with the flooder, a scraper whose head is late (here: this process's
    own threads) may lose a scrape now and then (about one in a hundred, measured), never most.
    The old endpoint lost nearly all."""
    port = metrics_pod(pod)
    with flooding(port, ["127.0.0.1"]) as opened:
        answers = ten_scrapes(port, lambda: flood_goes_on(opened))
    assert answers.count("200 page") >= 8, answers
    assert PAGE_MARK in scrape(port)


def test_pycronds_endpoint_is_not_blinded_either(cron: Cron):
    port = free_port()
    cron.crontab.write_text("* * * * * * * true\n")
    cron.start("--metrics-listen", f"127.0.0.1:{port}")
    wait_for(lambda: scrape(port, "/health") == "200 OK", 10, "pycrond's endpoint")
    with held_idle(port, 32, ["127.0.0.1", "127.0.0.2"]):
        answers = [scrape(port, "/health") for _ in range(10)]
        assert answers == ["200 OK"] * 10
    assert scrape(port, "/health") == "200 OK"


def test_whom_a_newcomer_replaces():
    """The pure decision: room, its own address's idle ones past 8, the biggest holder's past 16."""
    from supervisor.metrics.http import Held, eviction_candidates  # here: the live tests run on older trees too

    async def decide() -> None:
        with socket.socket() as conn:
            def connections(peer: str, count: int, first: int, heard: bool = False) -> list[Held]:
                return [Held(conn, peer, first + i, heard=heard) for i in range(count)]

            assert eviction_candidates(connections("a", 7, 0), "a") is None
            busy_a = connections("a", 8, 0, heard=True)
            assert eviction_candidates(busy_a, "a") == []  # its own are all being answered: closed
            assert eviction_candidates(busy_a, "b") is None  # another address still has room
            a, b, c = connections("a", 8, 0), connections("b", 5, 100), connections("c", 3, 200)
            assert eviction_candidates(a + b + c, "a") == a  # its own, the oldest first
            assert eviction_candidates(a + b + c, "d") == a + b + c  # the biggest holder's first
            assert eviction_candidates(b + c + a, "b") == a + b + c
            scraper = Held(conn, "s", 300)
            assert eviction_candidates(a + b + connections("c", 2, 200) + [scraper], "d")[-1] is scraper

    anyio.run(decide)
