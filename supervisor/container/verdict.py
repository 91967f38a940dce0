"""The container's verdict for Kubernetes: why it ended, its exit code, and for a service its last
lines, written to $PYS6_TERMINATION_LOG (default /dev/termination-log where Kubernetes mounted one)
as pyinit exits, so `kubectl describe pod` says why.

Kubernetes reads at most 4096 bytes of it; the reason and the code always fit (the lines are cut
first, then the reason only if it alone would not leave room for the code). Written safely: the
path is opened without following a symlink and without blocking on a FIFO, and only a regular
file is written; anything else is refused with a warning. Nothing here raises: a verdict that
cannot be written must not change how the container ends.

Standard library only, and cheap to import: init.py's fatal-error path writes one before anything
else is loaded.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from ..base.terms import signal_name

if TYPE_CHECKING:  # mypy reads dataclasses; base/record builds them without importing dataclasses
    from dataclasses import dataclass as record
else:
    from ..base.record import record

if TYPE_CHECKING:  # types only: this module stays standard library at run time
    from ..core.service import ServiceRunner
    from .shutdown import Shutdown

DEFAULT_PATH = "/dev/termination-log"
MAX_BYTES = 4096  # Kubernetes' limit for one container's termination message
MAX_LINE = 512  # bytes of one service line kept: several short lines say more than one long one
LINES_WANTED = 20
OFF = ("-", "off")
_FLAGS = os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


@record(frozen=True)
class Verdict:
    """Why pyinit exits and with what code, and the service it ended for with its last lines."""

    reason: str
    exit_code: int
    service: str = ""  # the service the container ended for, whose last lines follow
    lines: Sequence[str] = ()  # oldest first


def verdict_of(shutdown: Shutdown, runners: Mapping[str, ServiceRunner], exit_code_file: str = "") -> Verdict:
    """The verdict of a container that ran: its shutdown's first reason, its exit code, and the
    last lines of the essential service it ended for."""
    reason = shutdown.reason or "pyinit exited"
    lines: list[str] = []
    runner = runners.get(shutdown.service) if shutdown.service else None
    if runner is not None:
        state = runner.state
        if state.signum is not None:
            reason += f" (its last run was killed by {signal_name(state.signum)})"
        elif state.exitcode is not None:
            reason += f" (its last run exited with code {state.exitcode})"
        lines = [line.decode("utf-8", "backslashreplace") for _stream, line in runner.recent.tail(LINES_WANTED)]
    if exit_code_file:
        reason += f"; exit code {shutdown.exit_code} left by a script in {exit_code_file}"
    return Verdict(reason, shutdown.exit_code, shutdown.service if runner is not None else "", lines)


def destination(knob: str, default: str = DEFAULT_PATH) -> str | None:
    """Where the verdict goes: the knob's path; when it is empty, `default` where that file exists
    and is writable (a Kubernetes mount), else nowhere; "-" or "off": nowhere."""
    knob = knob.strip()
    if knob.lower() in OFF:
        return None
    if knob:
        return knob
    return default if os.path.exists(default) and os.access(default, os.W_OK) else None


def _cut(data: bytes, room: int) -> bytes:
    """`data` in at most `room` bytes, marked when cut, never splitting a UTF-8 character."""
    if len(data) <= room:
        return data
    mark = "…".encode()
    if room <= len(mark):
        return b""
    return data[:room - len(mark)].decode("utf-8", "ignore").encode() + mark


def compose(verdict: Verdict, limit: int = MAX_BYTES) -> bytes:
    """The message: the reason, the exit code, then as many of the service's newest lines as fit."""
    code = f"exit code: {verdict.exit_code}\n".encode()
    reason = _cut(f"{verdict.reason}\n".encode("utf-8", "backslashreplace"), limit - len(code) - 1)
    if not reason.endswith(b"\n"):
        reason += b"\n"
    head = reason + code
    if not verdict.service or not verdict.lines:
        return head
    title = f"last lines of {verdict.service}:\n".encode("utf-8", "backslashreplace")
    room = limit - len(head) - len(title)
    kept: list[bytes] = []
    for line in reversed(verdict.lines):  # the newest first: they say most about the end
        text = _cut(line.encode("utf-8", "backslashreplace").replace(b"\n", b" "), MAX_LINE) + b"\n"
        if len(text) > room:
            text = _cut(text[:-1], room - 1) + b"\n"
            if len(text) > 1:
                kept.append(text)
            break
        kept.append(text)
        room -= len(text)
    if not kept:
        return head
    return head + title + b"".join(reversed(kept))


def write(path: str, data: bytes, warn: Callable[[str, str], None]) -> bool:
    """`data` into the regular file at `path` (created if missing, never through a symlink, never
    blocking on a FIFO); `warn(event, reason)` when it cannot be. Never raises."""
    try:
        fd = os.open(path, _FLAGS | os.O_CREAT, 0o644)
    except OSError as exc:
        import errno

        why = "a symlink, not followed" if exc.errno == errno.ELOOP else \
            "a FIFO nobody reads, not waited for" if exc.errno == errno.ENXIO else exc.strerror or str(exc)
        _warn(warn, "termination log not written", f"{path}: {why}")
        return False
    except Exception as exc:  # noqa: BLE001 (a bad path, e.g. with a NUL: still no raise)
        _warn(warn, "termination log not written", f"{path}: {exc}")
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO with a reader, a device: not ours to write
            _warn(warn, "termination log not written", f"{path}: not a regular file")
            return False
        os.set_blocking(fd, True)  # a regular file never blocks; whole writes below
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return True
    except Exception as exc:  # noqa: BLE001
        _warn(warn, "termination log not written", f"{path}: {getattr(exc, 'strerror', None) or exc}")
        return False
    finally:
        os.close(fd)


def _warn(warn: Callable[[str, str], None], event: str, reason: str) -> None:
    try:
        warn(event, reason)
    except Exception:  # noqa: BLE001, S110 (the warning is a courtesy; the exit goes on)
        pass


def leave(knob: str, verdict: Verdict, warn: Callable[[str, str], None]) -> None:
    """Write the verdict where `knob` says, if anywhere."""
    try:
        path = destination(knob)
        if path is not None:
            write(path, compose(verdict), warn)
    except Exception as exc:  # noqa: BLE001 (PID 1's exit must not raise for a message)
        _warn(warn, "termination log not written", str(exc))
