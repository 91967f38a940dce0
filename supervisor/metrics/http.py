"""A small HTTP/1.1 server for Prometheus' scrapes, safe to run inside PID 1.

Event-driven (the loop wakes for a connection, never on a timer), and bounded:
at most MAX_CONNECTIONS at once and MAX_PER_PEER from one address, a request head
of at most MAX_REQUEST bytes that must arrive within REQUEST_TIMEOUT, an answer
that must be taken at some pace (IDLE_TIMEOUT without a byte taken ends it) and
within ANSWER_DEADLINE, one request per connection. A page is rendered at most
once per MIN_RENDER_INTERVAL, so scrapers in a tight loop cost the socket work only.

Idle connections cannot blind it: a connection arriving past a cap takes the place
of one still waiting for its request head (of its own address past MAX_PER_PEER,
else of the address holding most), the oldest first. A scraper sends its head at
once, so its fresh connection is answered; one that is being answered is never
dropped (past the cap with only those, the newcomer is closed).
"""

from __future__ import annotations

import itertools
import socket
import struct
import traceback
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import anyio

from ..base.accept import STARVED_PAUSE, accept_waiting
from ..logs.events import BurstLog, Logger

MAX_CONNECTIONS = 16
MAX_PER_PEER = 8  # one address cannot hold every place, even with connections being answered
MAX_REQUEST = 8192
REQUEST_TIMEOUT = 5.0
IDLE_TIMEOUT = 5.0
ANSWER_DEADLINE = 30.0
MIN_RENDER_INTERVAL = 0.5

Page = tuple[str, bytes]  # content type, body
Pages = Callable[[str], Page | None]  # the path (no query) -> the page, None for 404


def listen(host: str, port: int) -> socket.socket:
    """A listening, non-blocking TCP socket on HOST:PORT ("" for every interface, v4 and v6)."""
    if host:
        family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                 flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    else:
        sock, address = _any_interface(port)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.set_inheritable(False)
        sock.bind(address)
        sock.listen(256)  # a burst of connections waits in the kernel while PID 1 takes them 64 at a time
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _any_interface(port: int) -> tuple[socket.socket, tuple[str, int]]:
    if socket.has_dualstack_ipv6():
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        return sock, ("::", port)
    return socket.socket(socket.AF_INET, socket.SOCK_STREAM), ("0.0.0.0", port)  # noqa: S104 (the operator's ":PORT")


def _status_line(code: int) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
              408: "Request Timeout", 431: "Request Header Fields Too Large", 500: "Internal Server Error"}[code]
    return f"HTTP/1.1 {code} {reason}\r\n".encode()


def response(code: int, content_type: str, body: bytes, head_only: bool = False) -> bytes:
    head = (_status_line(code) + f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n".encode()
            + b"Connection: close\r\n\r\n")
    return head if head_only else head + body


def parse_request_line(head: bytes) -> tuple[str, str] | None:
    """(method, path without the query) of a request head; None when it is not HTTP."""
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/") or not parts[1].startswith(b"/"):
        return None
    return parts[0].decode("latin-1"), parts[1].split(b"?", 1)[0].decode("latin-1")


def head_complete(head: bytes) -> bool:
    return b"\r\n\r\n" in head or b"\n\n" in head


@dataclass(eq=False)
class Held:
    """One open connection: where from, in what order it came, and whether its request is in."""

    conn: socket.socket
    peer: str
    order: int  # lower came first
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    head: bytes = b""
    heard: bool = False  # its request head is in: it is being answered, never dropped for a newcomer


def eviction_candidates(held: Collection[Held], peer: str) -> list[Held] | None:
    """Whom a newcomer from PEER may replace, best first; None when there is room for it,
    [] when there is none to be made (it is closed).

    Past MAX_PER_PEER it may only replace its own address's: one peer's flood only ever
    churns its own connections. Past MAX_CONNECTIONS, those of the address holding most
    go first, so a scraper's single connection goes last. Among them the oldest first:
    a scraper's newest connection has its head in before its turn comes."""
    mine = [h for h in held if h.peer == peer]
    if len(mine) >= MAX_PER_PEER:
        return sorted((h for h in mine if not h.heard), key=lambda h: h.order)
    if len(held) >= MAX_CONNECTIONS:
        holding = Counter(h.peer for h in held)
        return sorted((h for h in held if not h.heard), key=lambda h: (-holding[h.peer], h.order))
    return None


def _peer_of(conn: socket.socket) -> str | None:
    try:
        address: object = conn.getpeername()  # typeshed says Any: a (host, port, ...) tuple, or a path
    except OSError:
        return None  # reset while it waited
    return str(address[0]) if isinstance(address, tuple) else str(address)


def _reset_on_close(conn: socket.socket) -> None:
    """A dropped connection is reset, not closed in order: under a flood of them the pod
    keeps no TIME_WAIT socket for each, and the flooder learns at once."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass  # already reset by the peer


def _head_has_arrived(held: Held) -> bool:
    """Whether the rest of HELD's head waits, unread, in its socket (a look only: its task reads it)."""
    try:
        waiting = held.conn.recv(MAX_REQUEST + 1, socket.MSG_PEEK)
    except OSError:
        return False  # nothing yet (BlockingIOError), or reset
    return head_complete(held.head + waiting)


class MetricsHttp:
    def __init__(self, listener: socket.socket, pages: Pages, log: Logger) -> None:
        self.listener = listener
        self.pages = pages
        self.log = log
        self.held: set[Held] = set()
        self._order = itertools.count()
        self._cannot_accept = BurstLog(log, "metrics endpoint cannot accept", "error")
        self._cache: dict[str, tuple[float, Page | None]] = {}

    async def serve(self) -> None:
        async with anyio.create_task_group() as group:
            try:
                while True:
                    await anyio.wait_readable(self.listener)
                    accepted, starved_by = accept_waiting(self.listener, 4 * MAX_CONNECTIONS)
                    for conn in accepted:
                        held = self._admit(conn)
                        if held is not None:
                            group.start_soon(self._connection, held)
                    if starved_by is not None:
                        self._cannot_accept(reason=starved_by.strerror)
                        await anyio.sleep(STARVED_PAUSE)  # the listener stays readable: never spin on it
            finally:
                self.listener.close()

    def _admit(self, conn: socket.socket) -> Held | None:
        """CONN's place, made by dropping an idle connection if need be; None when it was closed."""
        peer = _peer_of(conn)
        if peer is None:
            conn.close()
            return None
        candidates = eviction_candidates(self.held, peer)
        if candidates is not None:
            for candidate in candidates:
                if _head_has_arrived(candidate):
                    candidate.heard = True  # its task has not read it yet: a scraper's, saved
                    continue
                self.held.discard(candidate)
                _reset_on_close(candidate.conn)
                candidate.scope.cancel()  # its task closes it
                break
            else:
                conn.close()  # every place is being answered
                return None
        held = Held(conn, peer, next(self._order))
        self.held.add(held)
        return held

    async def _connection(self, held: Held) -> None:
        conn = held.conn
        try:
            with held.scope, anyio.fail_after(ANSWER_DEADLINE):
                await self._exchange(held)
        except (OSError, TimeoutError):
            pass  # the scraper went away, or stopped reading
        except Exception:  # noqa: BLE001 (one scrape's trouble ends its connection, never PID 1)
            self.log.error("metrics request failed", traceback=traceback.format_exc())
        finally:
            self.held.discard(held)
            conn.close()

    async def _exchange(self, held: Held) -> None:
        conn = held.conn
        head = b""
        with anyio.move_on_after(REQUEST_TIMEOUT):
            while not head_complete(head):
                await anyio.wait_readable(conn)
                try:
                    chunk = conn.recv(MAX_REQUEST + 1 - len(head))
                except BlockingIOError:
                    continue
                if not chunk:
                    break
                head += chunk
                held.head = head
                if len(head) > MAX_REQUEST:
                    held.heard = True
                    await self._send(conn, response(431, "text/plain", b"request head too large\n"))
                    return
        held.heard = True  # from here on it is being answered (an error, or the page)
        if b"\n" not in head:
            if head:
                await self._send(conn, response(408, "text/plain", b"no request in time\n"))
            return
        request = parse_request_line(head)
        if request is None:
            await self._send(conn, response(400, "text/plain", b"not an HTTP request\n"))
            return
        method, path = request
        if method not in ("GET", "HEAD"):
            await self._send(conn, response(405, "text/plain", b"GET or HEAD only\n"))
            return
        page = self._page(path)
        if page is None:
            await self._send(conn, response(404, "text/plain", b"not found: try /metrics\n", method == "HEAD"))
            return
        await self._send(conn, response(200, page[0], page[1], method == "HEAD"))

    def _page(self, path: str) -> Page | None:
        now = anyio.current_time()
        cached = self._cache.get(path)
        if cached is not None and now - cached[0] < MIN_RENDER_INTERVAL:
            return cached[1]
        page = self.pages(path)
        if len(self._cache) > 64:
            self._cache.clear()  # paths are the client's choice: never more than a few kept
        self._cache[path] = (now, page)
        return page

    async def _send(self, conn: socket.socket, data: bytes) -> None:
        view = memoryview(data)
        while view:
            with anyio.fail_after(IDLE_TIMEOUT):
                await anyio.wait_writable(conn)
            try:
                view = view[conn.send(view):]
            except BlockingIOError:
                continue
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
