"""pys6-notify-listening: readiness for a daemon that cannot report it, as s6-notifyoncheck does.

    pys6-notify-listening [--fd N] [--timeout S] HOST PORT PROG ARGS...

It forks a watcher, then execs PROG in its own place (so PROG keeps the
service's pid and no shell stays in between). The watcher, reparented to
pyinit, looks every 20 ms for a TCP socket listening on PORT in
/proc/net/tcp and tcp6 (no connection, so nothing in PROG's log), or, where
those cannot be read, connects to HOST:PORT; then it writes a newline to fd N
(the service's notification-fd, 3 by default): "ready" means "the port
accepts connections". Standard library only.
"""

from __future__ import annotations

import os
import socket
import sys
import time

from ..base.environ import exec_program
from ..base.terms import exec_failure_code

USAGE = "usage: pys6-notify-listening [--fd N] [--timeout S] HOST PORT PROG ARGS...\n"
POLL_INTERVAL = 0.02


def _probe_address(host: str) -> str:
    """Where to knock for a daemon listening on `host` (a wildcard is reached on loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1", "*": "127.0.0.1"}.get(host, host)


LISTEN = "0A"


def listening(port: int) -> bool | None:
    """Whether a TCP socket listens on `port`; None when /proc/net cannot tell."""
    seen = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        seen = True
        for row in rows:
            fields = row.split()
            if len(fields) > 3 and fields[3] == LISTEN and fields[1].rsplit(":", 1)[-1] == f"{port:04X}":
                return True
    return False if seen else None


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((_probe_address(host), port), timeout=1.0):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _watch(host: str, port: int, fd: int, timeout: float, program: int) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(program):  # a dead PROG has nothing to report
        found = listening(port)
        if not (found if found is not None else _answers(host, port)):
            time.sleep(POLL_INTERVAL)
            continue
        try:
            os.write(fd, b"\n")
        except OSError:
            return 1  # the service is gone already
        return 0
    return 1


def main() -> None:
    from ..base import cli

    args = sys.argv[1:]
    answered = cli.answer(args, "pys6-notify-listening", USAGE)
    if answered is not None:
        raise SystemExit(answered)
    fd, timeout = 3, 60.0
    while args and args[0].startswith("--"):
        flag = args.pop(0)
        if flag not in ("--fd", "--timeout"):
            raise SystemExit(cli.usage_error("pys6-notify-listening", f"unknown option {flag[:100]!r}"))
        value = args.pop(0) if args else ""
        if flag == "--fd" and value.isdecimal() and len(value) < 5:
            fd = int(value)
        elif flag == "--timeout" and value.replace(".", "", 1).isdecimal() and float(value) <= 86400:
            timeout = float(value)
        else:
            sys.stderr.write(USAGE)
            raise SystemExit(100)
    if len(args) < 3 or not args[1].isdecimal() or not 0 < int(args[1]) < 65536:
        sys.stderr.write(USAGE)
        raise SystemExit(100)
    host, port, argv = args[0], int(args[1]), args[2:]
    program = os.getpid()  # PROG's pid once we exec it
    middle = os.fork()
    if middle == 0:  # watcher: fork again so pyinit, not PROG, reaps it
        if os.fork() == 0:
            os._exit(_watch(host, port, fd, timeout, program))
        os._exit(0)
    os.waitpid(middle, 0)  # our own short-lived child, in the service's process: not pyinit's reaper
    try:
        os.close(fd)  # PROG never holds the readiness pipe
    except OSError:
        pass
    try:
        exec_program(argv)
    except OSError as exc:
        sys.stderr.write(f"pys6-notify-listening: cannot run {argv[0]}: {exc.strerror}\n")
        raise SystemExit(exec_failure_code(exc)) from None


if __name__ == "__main__":
    main()
