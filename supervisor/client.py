"""A blocking client for the control socket. Standard library only: the CLIs must start fast."""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

from . import protocol
from .paths import SOCKET_NAME, candidate_rundirs
from .protocol import ProtocolError


def _connect() -> socket.socket:
    """The first socket that answers, in the order SPEC.md gives (works from an SSH login)."""
    refused: list[str] = []
    denied: list[str] = []
    for rundir in candidate_rundirs(os.environ):
        path = os.path.join(rundir, SOCKET_NAME)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except (FileNotFoundError, NotADirectoryError, ConnectionRefusedError):
            refused.append(path)
        except PermissionError:
            denied.append(path)
        except OSError as exc:
            sock.close()
            raise ProtocolError(f"{path}: {exc.strerror}", protocol.EXIT_SYSTEM) from None
        sock.close()
    if denied:
        raise ProtocolError(f"permission denied: {', '.join(denied)}", protocol.EXIT_SYSTEM)
    raise ProtocolError(f"pyinit is not running (no socket answers at {', '.join(refused)})", protocol.EXIT_NOT_RUNNING)


def call(body: dict[str, Any]) -> dict[str, Any]:
    """Send one request, return the response; a failed one raises ProtocolError with its exit code."""
    sock = _connect()
    try:
        try:
            sock.sendall(protocol.encode(body))
        except (BrokenPipeError, ConnectionResetError):
            pass  # pyinit may have answered (a refusal) before reading: read what it said
        buffer = b""
        while b"\n" not in buffer:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            buffer += chunk
    except OSError as exc:
        if exc.errno in (errno.ECONNRESET, errno.EPIPE):
            raise ProtocolError("pyinit closed the connection", protocol.EXIT_NOT_RUNNING) from None
        raise ProtocolError(f"control socket: {exc.strerror}", protocol.EXIT_SYSTEM) from None
    finally:
        sock.close()
    if not buffer:
        raise ProtocolError("pyinit closed the connection without answering", protocol.EXIT_NOT_RUNNING)
    response = protocol.decode_response(buffer.split(b"\n", 1)[0])
    if not response.get("ok"):
        raise ProtocolError(str(response.get("error", "failed")), int(response.get("code", protocol.EXIT_SYSTEM)))
    return response
