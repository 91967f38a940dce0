"""What the control socket reports about a service: status records, log tails, forensics.

Reads the runners' state; changes nothing. psutil is loaded only for forensics.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING, Any

from . import policy
from .model import Phase, Want
from .signames import signal_name

if TYPE_CHECKING:
    from .service import ServiceRunner

RECENT_LINES = 1000  # per service, for pysvstat --log and forensics
FORENSIC_LINES = 20


def _is_paused(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] in (b"T", b"t")
    except (OSError, IndexError):
        return False


def status_record(runner: ServiceRunner, now: float) -> dict[str, Any]:
    """The JSON status of one service at monotonic time `now` (see README for the fields)."""
    state, spec = runner.state, runner.spec
    wall_offset = time.time() - now
    up = state.phase is Phase.UP
    finishing = state.phase is Phase.FINISHING
    if up:
        ready_since = state.ready_at
    else:
        ready_since = None if finishing else state.since
    deaths = policy.deaths_in_window(state.deaths, now, spec.crash)
    return {
        "name": spec.name,
        "state": "up" if up else "down",
        "pid": state.pid if up else None,
        "pgid": state.pgid,
        "seconds": max(0.0, now - state.since),
        "since": state.since + wall_offset if state.started else None,
        "exitcode": None if up else state.exitcode,
        "signal": None if up or state.signum is None else signal_name(state.signum),
        "signum": None if up else state.signum,
        "normally": "up" if spec.normally_up else "down",
        "want": "down" if state.want is Want.DOWN else "up",
        "ready": ready_since is not None,
        "ready_seconds": None if ready_since is None else max(0.0, now - ready_since),
        "ready_since": None if ready_since is None else ready_since + wall_offset,
        "paused": _is_paused(state.pid if up else None),
        "finishing": finishing,
        "started": state.started,
        "bailed": state.bailed,
        "deaths": len(deaths),
        "crash_deaths": spec.crash.max_deaths,
        "window": spec.crash.window,
        "essential": spec.essential,
    }



def log_tail(runner: ServiceRunner, count: int) -> list[dict[str, str]]:
    recent = list(runner.recent)[-count:]
    return [{"stream": stream, "line": line.decode("utf-8", "backslashreplace")} for stream, line in recent]


def process_tree(session: int | None) -> list[dict[str, Any]]:
    """Every process of the service's session (its run process is the session leader)."""
    if session is None:
        return []
    import psutil

    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) != session:
                continue
            with proc.oneshot():
                times = proc.cpu_times()
                found.append({
                    "pid": proc.pid,
                    "ppid": proc.ppid(),
                    "cmd": " ".join(proc.cmdline())[:200] or proc.name(),
                    "state": proc.status(),
                    "rss_kib": proc.memory_info().rss // 1024,
                    "cpu_s": round(times.user + times.system, 2),
                    "fds": proc.num_fds(),
                })
        except (OSError, psutil.Error):
            continue
    return found


def forensics(runner: ServiceRunner, now: float, reason: str) -> dict[str, Any]:
    state = runner.state
    return {
        "service": runner.spec.name,
        "reason": reason,
        "processes": process_tree(state.pid if state.phase is Phase.UP else state.pgid),
        "deaths_seconds_ago": [round(now - t, 1) for t in policy.deaths_in_window(state.deaths, now, runner.spec.crash)],
        "last_exit": {"exitcode": state.exitcode, "signum": state.signum},
        "last_lines": [entry["line"] for entry in log_tail(runner, FORENSIC_LINES)],
    }


def log_forensics(runner: ServiceRunner, now: float, reason: str, log: Any) -> dict[str, Any]:
    snapshot = forensics(runner, now, reason)
    log.warning("forensics", **snapshot)
    return snapshot
