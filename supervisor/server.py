"""The control socket: one JSON request and one JSON response per connection.

Who may talk: root, our own uid, and members of PYS6_CONTROL_GROUP, checked with
SO_PEERCRED on every connection (the socket's mode is the first fence, this the
second). Requests are size- and time-limited and connections are capped; nothing
a client sends can do more than get an error back.
"""

from __future__ import annotations

import errno
import grp
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import anyio

from . import control, protocol
from .model import Phase, Verb
from .paths import SOCKET_NAME
from .protocol import ProtocolError, Request

if TYPE_CHECKING:
    from .service import ServiceRunner
    from .stages import Supervisor

MAX_CONNECTIONS = 256


class ControlSocketError(Exception):
    pass


def _group_id(group: str) -> int:
    return int(group) if group.isdigit() else grp.getgrnam(group).gr_gid


def bind_control_socket(rundir: str, group: str = "") -> socket.socket:
    """Bind $rundir/control.sock: replace a stale one, never steal a live one."""
    path = os.path.join(rundir, SOCKET_NAME)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is not None:
        if not stat.S_ISSOCK(info.st_mode):
            raise ControlSocketError(f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)  # stale: left by an earlier boot on a persistent volume
        except OSError as exc:
            raise ControlSocketError(f"{path}: cannot check the existing socket: {exc.strerror}") from None
        else:
            raise ControlSocketError(f"{path} is served by another running pyinit")
        finally:
            probe.close()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old_umask)
    if group:
        gid = _group_id(group)
        os.chown(rundir, -1, gid)
        os.chmod(rundir, 0o710)
        os.chown(path, -1, gid)
        os.chmod(path, 0o660)
    else:
        os.chmod(path, 0o600)
    listener.listen(socket.SOMAXCONN)
    listener.setblocking(False)
    return listener


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    data = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", data)
    return pid, uid, gid


def _supplementary_groups(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("Groups:"):
                    return {int(g) for g in line.split()[1:]}
    except OSError:
        pass
    return set()


class ControlServer:
    def __init__(self, listener: socket.socket, supervisor: Supervisor, group: str, timeout_ms: int) -> None:
        self.listener = listener
        self.supervisor = supervisor
        self.log = supervisor.log
        self.gid = _group_id(group) if group else None
        self.timeout = timeout_ms / 1000
        self.active = 0
        self._starved = False
        self.handlers: dict[str, Callable[[Request, int, int], Awaitable[dict[str, Any]]]] = {
            "ping": self.ping, "status": self.status, "control": self.control, "log": self.log_tail,
            "forensics": self.forensics, "audit": self.audit,
        }

    # --- who may talk ------------------------------------------------------------

    def allowed(self, pid: int, uid: int, gid: int) -> bool:
        if uid in (0, os.geteuid()):
            return True
        if self.gid is None:
            return False
        return gid == self.gid or self.gid in _supplementary_groups(pid)

    # --- the loop ----------------------------------------------------------------

    async def serve(self) -> None:
        async with anyio.create_task_group() as group:
            while True:
                await anyio.wait_readable(self.listener)
                for conn in self._accept_all():
                    if self.active >= MAX_CONNECTIONS:
                        conn.close()
                        continue
                    conn.setblocking(False)
                    self.active += 1
                    group.start_soon(self._connection, conn)
                if self._starved:
                    await anyio.sleep(0.1)  # out of fds: let connections finish first

    def _accept_all(self) -> list[socket.socket]:
        """Everything waiting in the backlog, so a burst of clients is not refused."""
        accepted: list[socket.socket] = []
        self._starved = False
        while len(accepted) < MAX_CONNECTIONS:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    raise
                self.log.error("control socket cannot accept", reason=exc.strerror)
                self._starved = True
                break
            accepted.append(conn)
        return accepted

    async def _connection(self, conn: socket.socket) -> None:
        try:
            pid, uid, gid = peer_credentials(conn)
            if not self.allowed(pid, uid, gid):
                self.log.warning("control refused", peer_pid=pid, peer_uid=uid, peer_gid=gid)
                with anyio.move_on_after(self.timeout):
                    await self._read_frame(conn)  # so the client's send completes and it reads our answer
                await self._send(conn, protocol.error("permission denied", protocol.EXIT_SYSTEM))
                return
            response = await self._answer(conn, pid, uid)
            if response is not None:
                await self._send(conn, response)
        except OSError:
            pass  # the client went away
        finally:
            self.active -= 1
            conn.close()

    async def _answer(self, conn: socket.socket, pid: int, uid: int) -> dict[str, Any] | None:
        """Read and handle the request; None when there is nothing worth answering."""
        request: Request | None = None
        with anyio.move_on_after(self.timeout):  # for the request only: waits have their own
            frame = await self._read_frame(conn)
            if frame is None:
                return None
            try:
                request = protocol.decode_request(frame)
            except ProtocolError as exc:
                return protocol.error(str(exc), exc.code)
        if request is None:
            return protocol.error("no request in time")
        return await self._dispatch(request, pid, uid)

    async def _dispatch(self, request: Request, pid: int, uid: int) -> dict[str, Any]:
        try:
            return await self.handlers[request.verb](request, pid, uid)
        except ProtocolError as exc:
            return protocol.error(str(exc), exc.code)

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
                await self._send(conn, protocol.error("request too large"))
                return None
        return buffer.split(b"\n", 1)[0] if buffer else None

    async def _send(self, conn: socket.socket, response: dict[str, Any]) -> None:
        data = memoryview(protocol.encode(response))
        with anyio.move_on_after(self.timeout):
            while data:
                await anyio.wait_writable(conn)
                try:
                    data = data[conn.send(data):]
                except BlockingIOError:
                    continue

    # --- the verbs -------------------------------------------------------------

    def _runners(self, names: tuple[str, ...]) -> list[ServiceRunner]:
        services = self.supervisor.services
        unknown = [n for n in names if n not in services]
        if unknown:
            raise ProtocolError(f"unknown service: {', '.join(unknown)}")
        return [services[n] for n in names] if names else list(services.values())

    async def ping(self, request: Request, pid: int, uid: int) -> dict[str, Any]:
        return {"ok": True, "pid": os.getpid()}

    async def status(self, request: Request, pid: int, uid: int) -> dict[str, Any]:
        now = anyio.current_time()
        records = [control.status_record(runner, now) for runner in self._runners(request.services)]
        return {"ok": True, "services": records}

    async def log_tail(self, request: Request, pid: int, uid: int) -> dict[str, Any]:
        (runner,) = self._runners(request.services)
        return {"ok": True, "service": runner.spec.name, "lines": control.log_tail(runner, request.lines)}

    async def forensics(self, request: Request, pid: int, uid: int) -> dict[str, Any]:
        (runner,) = self._runners(request.services)
        return {"ok": True, "forensics": control.forensics(runner, anyio.current_time(), "asked")}

    async def audit(self, request: Request, pid: int, uid: int) -> dict[str, Any]:
        self.log.warning("client refused a command", peer_pid=pid, peer_uid=uid, message=request.message)
        return {"ok": True}

    async def control(self, request: Request, pid: int, uid: int) -> dict[str, Any]:
        runners = self._runners(request.services)
        if self.supervisor.stopping.is_set() and any(a.do != "signal" for a in request.actions):
            raise ProtocolError("the container is shutting down", protocol.EXIT_FORBIDDEN)
        for action in request.actions:  # check everything before changing anything
            for runner in runners:
                self._check_allowed(runner, action)
        started = anyio.current_time()
        for action in request.actions:
            for runner in runners:
                self._apply(runner, action, pid, uid)
        if request.wait is None:
            return {"ok": True}
        timeout = request.timeout_ms / 1000 if request.timeout_ms else float("inf")
        with anyio.move_on_after(timeout):
            for runner in runners:
                await runner.wait_until(WAIT_PREDICATES[request.wait](started))
            return {"ok": True}
        return protocol.error(f"timed out waiting for {request.wait}", protocol.EXIT_TIMEOUT)

    def _check_allowed(self, runner: ServiceRunner, action: protocol.Action) -> None:
        up = runner.state.phase is Phase.UP
        if action.do == "signal" and not up:
            raise ProtocolError(f"{runner.spec.name} is down: no process to signal", protocol.EXIT_FORBIDDEN)
        if action.do == "restart" and not up:
            raise ProtocolError(f"{runner.spec.name} is down: nothing to restart (use -u)", protocol.EXIT_FORBIDDEN)

    def _apply(self, runner: ServiceRunner, action: protocol.Action, pid: int, uid: int) -> None:
        name = runner.spec.name
        detail = {"signal": action.signum, "group": action.group} if action.do == "signal" else {}
        self.log.info("control", service=name, action=action.do, peer_uid=uid, **detail)
        stops = action.do in ("down", "down-create-down", "restart") or action.do == "signal"
        if stops and runner.state.phase is Phase.UP:
            control.log_forensics(runner, anyio.current_time(), f"before {action.do}", self.log)
        if action.do == "signal":
            target = runner.state.pid
            if target is not None:
                try:
                    os.killpg(target, action.signum) if action.group else os.kill(target, action.signum)
                except ProcessLookupError:
                    pass
            return
        if action.do in ("up-remove-down", "down-create-down"):
            self._set_down_file(runner, create=action.do == "down-create-down")
        verb = {"up": Verb.UP, "up-remove-down": Verb.UP, "down": Verb.DOWN, "down-create-down": Verb.DOWN,
                "once": Verb.ONCE, "once-at-most": Verb.ONCE_AT_MOST, "restart": Verb.RESTART}[action.do]
        runner.command(verb)

    def _set_down_file(self, runner: ServiceRunner, create: bool) -> None:
        path = os.path.join(runner.spec.directory, "down")
        try:
            if create:
                open(path, "a").close()
            else:
                os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ProtocolError(f"{path}: {exc.strerror}", protocol.EXIT_SYSTEM) from None
        runner.spec = replace(runner.spec, normally_up=not create)


def _started_since(t0: float) -> Callable[[Any], bool]:
    return lambda s: s.phase is Phase.UP and s.last_start is not None and s.last_start >= t0


WAIT_PREDICATES: dict[str, Callable[[float], Callable[[Any], bool]]] = {
    "up": lambda t0: lambda s: s.phase is Phase.UP,
    "ready": lambda t0: lambda s: s.phase is Phase.UP and s.ready_at is not None,
    "down": lambda t0: lambda s: s.phase is not Phase.UP,
    "finished": lambda t0: lambda s: s.phase in (Phase.DOWN, Phase.WAITING),
    "restarted": _started_since,
    "restarted-ready": lambda t0: lambda s: _started_since(t0)(s) and s.ready_at is not None and s.ready_at >= t0,
}
