"""The control socket: binding, peers, limits, reading requests and streaming answers (verbs: handlers.py).

Who may talk: root, our own uid, and members of PYS6_CONTROL_GROUP (primary or
supplementary, from SO_PEERGROUPS), checked with SO_PEERCRED on every connection
(the socket file's mode is the first fence, this the second). As PID 1, pyinit also
listens on an abstract address (paths.abstract_control_address) that no one can rename,
replace or delete; it has no file mode, so there SO_PEERCRED is the only fence, and a peer
outside our PID namespace (pid 0: another container sharing the network namespace) is
refused before anything else. Requests are size- and time-limited, answers are
written as fast as the client reads and dropped when it stops reading, connections
are capped, a wait ends when its client leaves, and each connection has its own
guard: nothing a client sends can do more than get an error back.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import traceback
from collections.abc import Iterable
from typing import Any

import anyio

from ..base.accept import STARVED_PAUSE, accept_waiting
from ..core.settings import group_id
from ..core.telemetry import ControlTally
from ..logs.events import BurstLog
from . import protocol
from .binding import ControlListeners as ControlListeners  # binding's: named here for its callers
from .binding import ControlSocketError as ControlSocketError
from .binding import bind_control_socket as bind_control_socket
from .handlers import Answer, Handlers, LogFollow, Peer, plain
from .protocol import ProtocolError, Request

MAX_CONNECTIONS = 256
SEND_DEADLINE = 120.0  # seconds for a whole answer, however fast the client reads
HANGUP_READ_LIMIT = 65536  # bytes a waiting client may send after its request before it is dropped
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    data = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", data)
    return pid, uid, gid


def peer_groups(conn: socket.socket) -> set[int]:
    """The peer's supplementary groups as the kernel saw them at connect (not /proc of a pid that may be 0)."""
    try:
        data = conn.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 1024)  # Python's largest buffer
    except OSError as exc:
        if exc.errno != errno.ERANGE:
            return set()
        data = _peer_groups_large(conn)
    count = len(data) // 4
    return set(struct.unpack(f"{count}I", data[: count * 4]))


def _peer_groups_large(conn: socket.socket) -> bytes:
    """More than 256 groups: ask libc with a buffer for NGROUPS_MAX."""
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    size = ctypes.c_uint32(4 * 65536)
    buffer = ctypes.create_string_buffer(size.value)
    if libc.getsockopt(conn.fileno(), socket.SOL_SOCKET, SO_PEERGROUPS, buffer, ctypes.byref(size)) != 0:
        return b""
    return buffer.raw[: size.value]


class ControlServer:
    def __init__(self, listener: socket.socket | ControlListeners, handlers: Handlers, group: str, timeout_ms: int,
                 tally: ControlTally | None = None) -> None:
        listeners = listener if isinstance(listener, ControlListeners) else ControlListeners(listener)
        file, abstract = listeners.upgraded()
        self.listener = file
        # (listener, whether a peer outside our PID namespace is refused on it): on the abstract
        # address, reachable from the whole network namespace, it is.
        self.listeners = [(file, False)]
        if abstract is not None:
            self.listeners.append((abstract, True))
        self.tally = tally or ControlTally(protocol.VERBS)
        self.handlers = handlers
        self.log = handlers.log
        self.gid = group_id(group) if group else None
        self.timeout = timeout_ms / 1000
        self.active = 0
        self._refused = BurstLog(self.log, "control refused")
        self._over_cap = BurstLog(self.log, "control connections at the cap, closing new ones", "error")
        self._silent = BurstLog(self.log, "control client sent no request in time", "info")
        self._failing = BurstLog(self.log, "control socket failed", "error")
        self._cannot_accept = BurstLog(self.log, "control socket cannot accept", "error")

    # --- who may talk ------------------------------------------------------------

    def allowed(self, conn: socket.socket, uid: int, gid: int) -> bool:
        if uid in (0, os.geteuid()):
            return True
        if self.gid is None:
            return False
        return gid == self.gid or self.gid in peer_groups(conn)

    # --- the loop ----------------------------------------------------------------

    async def serve(self) -> None:
        async with anyio.create_task_group() as group:
            for listener, outsiders_refused in self.listeners:
                group.start_soon(self._serve_listener, group, listener, outsiders_refused)

    async def _serve_listener(self, group: anyio.abc.TaskGroup, listener: socket.socket,
                              outsiders_refused: bool) -> None:
        while True:
            try:
                await anyio.wait_readable(listener)
                starved = self._accept_into(group, listener, outsiders_refused)
            except Exception:  # noqa: BLE001 (the control socket must not take PID 1 down)
                self._failing(traceback=traceback.format_exc())
                starved = True
            if starved:
                await anyio.sleep(STARVED_PAUSE)  # out of fds (or worse): let connections finish first

    def _accept_into(self, group: anyio.abc.TaskGroup, listener: socket.socket | None = None,
                     outsiders_refused: bool = False) -> bool:
        """Everything waiting in the backlog, so a burst of clients is not refused; True when
        out of descriptors (the caller pauses)."""
        accepted, starved_by = accept_waiting(self.listener if listener is None else listener, MAX_CONNECTIONS)
        if starved_by is not None:
            self._cannot_accept(reason=starved_by.strerror)
        for conn in accepted:
            if outsiders_refused and self._refused_as_outsider(conn):
                continue
            if self.active >= MAX_CONNECTIONS:
                self._over_cap(limit=MAX_CONNECTIONS)
                conn.close()
                continue
            self.active += 1
            group.start_soon(self._connection, conn)
        return starved_by is not None

    def _refused_as_outsider(self, conn: socket.socket) -> bool:
        """Refuse (answer, count, log, close) a peer outside our PID namespace: SO_PEERCRED shows it
        as pid 0 (another container of the pod, the host). Whatever its uid, it is not one of the
        container's own processes, which are the only ones the socket file ever reached."""
        try:
            pid, uid, gid = peer_credentials(conn)
        except OSError:
            conn.close()
            return True
        if pid != 0:
            return False
        self.tally.refused += 1
        self._refused(peer_pid=pid, peer_uid=uid, peer_gid=gid, reason="outside pyinit's PID namespace")
        self._send_now(conn, protocol.error("permission denied: not in pyinit's PID namespace", protocol.EXIT_SYSTEM))
        conn.close()
        return True

    async def _connection(self, conn: socket.socket) -> None:
        try:
            pid, uid, gid = peer_credentials(conn)
            if not self.allowed(conn, uid, gid):
                self.tally.refused += 1
                self._refused(peer_pid=pid, peer_uid=uid, peer_gid=gid)
                self._send_now(conn, protocol.error("permission denied", protocol.EXIT_SYSTEM))
                return  # closed at once: a refused peer holds no slot
            verb, answer = await self._answer(conn, Peer(pid, uid, gid, lambda: _hangup(conn)))
            if answer is not None:
                self.tally.request(verb, "ok" if answer[0].get("ok") else "error")
                head, items = answer
                if isinstance(items, LogFollow):
                    await self._follow(conn, head, items)
                else:
                    await self._send_answer(conn, (head, items))
        except (OSError, TimeoutError):
            pass  # the client went away, or stopped reading
        except Exception:  # noqa: BLE001 (one connection's bug must not end PID 1)
            self.log.error("control connection failed", traceback=traceback.format_exc())
            self._send_now(conn, protocol.error("internal error in pyinit (see its log)", protocol.EXIT_SYSTEM))
        finally:
            self.active -= 1
            conn.close()

    def _send_now(self, conn: socket.socket, head: dict[str, object]) -> None:
        """One small line without waiting: it fits in an empty socket buffer, or it is lost."""
        try:
            conn.send(protocol.encode(head))
        except OSError:
            pass

    async def _answer(self, conn: socket.socket, peer: Peer) -> tuple[str, Answer | None]:
        """Read and handle the request: its verb ("invalid" when unreadable) and the answer, None
        when there is nothing worth answering."""
        request: Request | None = None
        with anyio.move_on_after(self.timeout):  # for the request only: waits have their own
            frame = await self._read_frame(conn)
            if frame is None:
                return "invalid", None
            try:
                request = protocol.decode_request(frame)
            except ProtocolError as exc:
                return "invalid", plain(protocol.error(str(exc), exc.code))
        if request is None:
            self._silent(peer_pid=peer.pid, peer_uid=peer.uid)
            return "invalid", plain(protocol.error("no request in time"))
        return request.verb, await self.handlers.handle(request, peer)

    async def _read_frame(self, conn: socket.socket) -> bytes | None:
        buffer = b""
        while b"\n" not in buffer:
            await anyio.wait_readable(conn)
            try:
                chunk = conn.recv(protocol.MAX_FRAME + 1)
            except BlockingIOError:
                continue
            if not chunk:
                break
            buffer += chunk
            if len(buffer) > protocol.MAX_FRAME:
                self._send_now(conn, protocol.error("request too large"))
                return None
        return buffer.split(b"\n", 1)[0] if buffer else None

    async def _send_answer(self, conn: socket.socket, answer: tuple[dict[str, Any], Iterable[dict[str, Any]]]) -> None:
        """The head, then each item, as fast as the client reads; a client that stops reading is dropped."""
        head, items = answer
        with anyio.fail_after(SEND_DEADLINE):
            batch = bytearray(protocol.encode_answer_line(head))
            for item in items:
                batch += protocol.encode_answer_line(item)
                if len(batch) >= 65536:
                    await self._write(conn, batch)
                    batch = bytearray()
            await self._write(conn, batch)

    async def _follow(self, conn: socket.socket, head: dict[str, object], follow: LogFollow) -> None:
        """A log answer kept open: the head and the backlog as any answer, then each batch of new
        lines as the ring hands them over, until the client leaves (or pyinit ends). A client that
        stops reading is not dropped (a `| less` at its screen's end, a suspended shell job): the
        lines it does not take wait in the LogFollow, bounded, and the excess is dropped and counted
        there. Only one batch is ever waiting here for the socket."""
        try:
            await self._send_answer(conn, (head, follow.backlog))
            async with anyio.create_task_group() as group:

                async def client_left() -> None:
                    await _hangup(conn)
                    group.cancel_scope.cancel()

                group.start_soon(client_left)
                try:  # raised out of the group it would arrive as an ExceptionGroup
                    async for batch in follow.batches():
                        data = bytearray()
                        for item in batch:
                            data += protocol.encode_answer_line(item)
                        await self._write(conn, data, patient=True)
                except OSError:
                    pass  # the client went away
                group.cancel_scope.cancel()
        finally:
            follow.close()

    async def _write(self, conn: socket.socket, data: bytearray, patient: bool = False) -> None:
        """Send `data`; unless `patient`, a client that takes no byte for the control timeout is gone."""
        view = memoryview(data)
        while view:
            with anyio.fail_after(None if patient else self.timeout):  # no byte taken for this long: gone
                await anyio.wait_writable(conn)
            try:
                view = view[conn.send(view):]
            except BlockingIOError:
                continue


async def _hangup(conn: socket.socket) -> None:
    """Return when the client has closed its end of the connection.

    The kernel's POLLHUP says so, watched on an epoll of its own that asks for no event (hang-up
    and error are reported all the same), so neither bytes the client sends nor a half-close wake
    us: a client that shuts down its writing half after its request, as socat and nc do, is still
    there to read the answer. Out of descriptors for the epoll: end of input stands for hang-up."""
    try:
        watcher = select.epoll(1)
    except OSError:
        await _end_of_input(conn)
        return
    try:
        watcher.register(conn.fileno(), 0)
        await anyio.wait_readable(watcher.fileno())
    finally:
        watcher.close()


async def _end_of_input(conn: socket.socket) -> None:
    """Return at the client's end of input (or when it floods us while it should be waiting)."""
    received = 0
    while received <= HANGUP_READ_LIMIT:
        await anyio.wait_readable(conn)
        try:
            chunk = conn.recv(4096)
        except BlockingIOError:
            continue
        except OSError:
            return
        if not chunk:
            return
        received += len(chunk)
