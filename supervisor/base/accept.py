"""Taking every waiting connection off a listening socket, where running out of descriptors is a pause.

Shared by the control socket and the metrics endpoint. When accept() fails for want of
descriptors or memory, the listener stays readable: a loop that only waits for readable
again would spin PID 1 at full CPU, so the caller is told to pause instead.
"""

from __future__ import annotations

import errno
import socket

OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
STARVED_PAUSE = 0.1  # seconds a caller waits before accepting again: connections being served free fds


def accept_waiting(listener: socket.socket, limit: int) -> tuple[list[socket.socket], OSError | None]:
    """Up to `limit` connections from the backlog, non-blocking; and the error that stopped the
    taking when the process is out of descriptors (the caller pauses STARVED_PAUSE), else None.
    Other errors are raised; a connection that was reset while it waited is skipped."""
    accepted: list[socket.socket] = []
    while len(accepted) < limit:
        try:
            conn, _address = listener.accept()
        except (BlockingIOError, InterruptedError):
            break
        except ConnectionAbortedError:
            continue
        except OSError as exc:
            if exc.errno not in OUT_OF_RESOURCES:
                raise
            return accepted, exc
        conn.setblocking(False)
        accepted.append(conn)
    return accepted, None
