"""The control socket's binding, before anything starts: $rundir/control.sock (a stale one
replaced, a live one never stolen: a second pyinit on the runtime directory is turned away)
and, as PID 1, the abstract address (server.py says who may talk on each).

Apart from server.py, so pyinit's start path binds it without importing the server's asyncio
and handlers (container/early runs before those are loaded); with _socket's sockets, not
socket's, whose enums would bring enum's import onto that path. The server takes them as
socket's (ControlListeners.upgraded).
"""

from __future__ import annotations

import _socket
import errno
import os
import stat

from ..base.paths import SOCKET_NAME, abstract_control_address
from ..core.settings import group_id

TYPE_CHECKING = False  # typing's own costs the start path its import (and re's)
if TYPE_CHECKING:
    import socket


class ControlSocketError(Exception):
    pass


class ControlListeners:
    """The control socket file, and the abstract address where pyinit is PID 1 (None: not bound;
    `abstract_problem` says why when it was tried and failed)."""

    def __init__(self, file: _socket.socket, abstract: _socket.socket | None = None, abstract_problem: str = "") -> None:
        self.file = file
        self.abstract = abstract
        self.abstract_problem = abstract_problem

    def upgraded(self) -> tuple[socket.socket, socket.socket | None]:
        """The file's and the abstract address's listeners as socket.socket (accept(), anyio's
        streams): the same descriptors, kept here too, for close()."""
        import socket

        def upgrade(raw: _socket.socket) -> socket.socket:
            if isinstance(raw, socket.socket):
                return raw
            made = socket.socket(fileno=raw.detach())
            made.setblocking(False)
            return made

        file = upgrade(self.file)
        abstract = None if self.abstract is None else upgrade(self.abstract)
        self.file, self.abstract = file, abstract
        return file, abstract

    def close(self) -> None:
        self.file.close()
        if self.abstract is not None:
            self.abstract.close()


def bind_control_socket(rundir: str, group: str = "", abstract: bool = False) -> ControlListeners:
    """Bind $rundir/control.sock (replace a stale one, never steal a live one) and, with `abstract`
    (pyinit is PID 1), the abstract address for `rundir`."""
    file = _bind_socket_file(rundir, group)
    if not abstract:
        return ControlListeners(file)
    listener, problem = _bind_abstract(rundir)
    return ControlListeners(file, listener, problem)


def _bind_abstract(rundir: str) -> tuple[_socket.socket | None, str]:
    """The abstract listener, or None and why not. Taken already (EADDRINUSE) is a squatter in
    another PID namespace of our network namespace: clients see it is not PID 1 and ignore it,
    and the socket file still serves; it is no reason to refuse the boot."""
    address = abstract_control_address(rundir)
    if address is None:
        return None, "no /proc/self/ns/pid to name it by"
    listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        listener.bind(address)
        listener.listen(_socket.SOMAXCONN)  # SO_PEERCRED records the caller of listen(): PID 1, us
    except OSError as exc:
        listener.close()
        taken = " (taken by another process of this network namespace)" if exc.errno == errno.EADDRINUSE else ""
        return None, f"{exc.strerror}{taken}"
    listener.setblocking(False)
    return listener, ""


def _bind_socket_file(rundir: str, group: str) -> _socket.socket:
    path = os.path.join(rundir, SOCKET_NAME)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is not None:
        if not stat.S_ISSOCK(info.st_mode):
            raise ControlSocketError(f"{path} exists and is not a socket")
        probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        probe.settimeout(1.0)
        left_by = f"left by uid {info.st_uid} (mode {stat.S_IMODE(info.st_mode):04o})"
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            try:
                os.unlink(path)  # stale: left by an earlier boot on a persistent volume
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise ControlSocketError(f"{path} is a stale socket {left_by} that we cannot remove "
                                         f"({exc.strerror}); remove it: rm {path}") from None
        except OSError as exc:
            raise ControlSocketError(f"{path}: cannot check the existing socket {left_by}: {exc.strerror}; "
                                     f"if no pyinit runs, remove it: rm {path}") from None
        else:
            raise ControlSocketError(f"{path} is served by another running pyinit")
        finally:
            probe.close()
    listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old_umask)
    if group:
        gid = group_id(group)
        os.chown(rundir, -1, gid)
        os.chmod(rundir, 0o710)
        os.chown(path, -1, gid)
        os.chmod(path, 0o660)
    else:
        os.chmod(path, 0o600)
    listener.listen(_socket.SOMAXCONN)
    listener.setblocking(False)
    return listener
