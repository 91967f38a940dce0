"""A hostile or broken control server for the client tests: run as `python fake_server.py PATH MODE [UID]`.

Modes: forge (answers every request with a forged status and records it),
silent (accepts and never answers), line (one answer line of 2 MiB), total
(answer lines of 1,000 KiB, forever). With UID, it binds as the caller and then
drops to UID before listen(), so SO_PEERCRED shows UID while the socket file
belongs to the caller. It prints "ready" once it listens.
"""

from __future__ import annotations

import json
import os
import socket
import sys


def forged(name: str) -> bytes:
    record = {"name": name, "state": "up", "pid": 1, "pgid": 1, "seconds": 1.0, "since": None,
              "exitcode": None, "signal": None, "signum": None, "normally": "up", "want": "up",
              "ready": True, "ready_seconds": 1.0, "ready_since": None, "paused": False,
              "finishing": False, "started": True, "bailed": False, "deaths": 0, "crash_deaths": 5,
              "window": 60, "essential": False}
    return json.dumps(record).encode() + b"\n"


def main() -> None:
    path, mode = sys.argv[1], sys.argv[2]
    record = path + ".requests"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    if len(sys.argv) > 3:
        uid = int(sys.argv[3])
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    server.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        if mode == "silent":
            continue  # keep it open, say nothing
        request = conn.recv(65536)
        with open(record, "ab") as handle:
            handle.write(request)
        if mode == "forge":
            conn.sendall(b'{"ok":true,"items":1}\n' + forged("svc"))
        elif mode == "line":
            conn.sendall(b'{"ok":true,"items":1}\n' + b'{"x":"' + b"a" * (2 << 20) + b'"}\n')
        elif mode == "total":
            try:
                conn.sendall(b'{"ok":true,"items":1000}\n')
                item = forged("a" * (1000 << 10))
                while True:
                    conn.sendall(item)
            except OSError:
                pass
        conn.close()


if __name__ == "__main__":
    main()
