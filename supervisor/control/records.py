"""What the control socket reports about a service: status records and log tails.

Reads the runners' state; changes nothing. Forensics snapshots live in forensics.py.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..base.terms import signal_name
from ..core import policy
from ..core.model import Phase, ServiceSpec, ServiceState, Want
from ..core.statusnote import read_note
from ..logs.lines import RecentLines

if TYPE_CHECKING:
    from ..core.health import HealthReport


def _is_paused(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] in (b"T", b"t")
    except (OSError, IndexError):
        return False


def status_record(spec: ServiceSpec, state: ServiceState, now: float,
                  health: HealthReport | None = None) -> dict[str, object]:
    """The JSON status of one service at monotonic time `now` (see README for the fields);
    `health` null without a check or while it is not up (starting, healthy, unhealthy)."""
    wall_offset = time.time() - now
    up = state.phase is Phase.UP
    finishing = state.phase is Phase.FINISHING
    if up:
        ready_since = state.ready_at
    else:  # down: ready once its finish has ended (at its death without one), as s6-supervise says it
        ready_since = None if finishing else state.down_ready_at if state.down_ready_at is not None else state.since
    s6_ready = policy.s6_ready(spec, state) or (state.started and state.phase in (Phase.DOWN, Phase.WAITING))
    s6_since = policy.s6_ready_moment(spec, state)
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
        # s6-supervise's own readiness (its status file's flag and stamp): up, only once the service
        # said so on its notification-fd or passed its health check; pys6's s6-svstat prints these
        "s6_want_up": state.want is Want.UP,  # s6-svc -o: want down to s6, once started ("want": up)
        "s6_ready": s6_ready,
        "s6_ready_seconds": None if s6_since is None else max(0.0, now - s6_since),
        "s6_ready_since": None if s6_since is None else s6_since + wall_offset,
        "paused": _is_paused(state.pid if up else None),
        "finishing": finishing,
        "started": state.started,
        "bailed": state.bailed,
        "deaths": len(deaths),
        "crash_deaths": spec.crash.max_deaths,
        "window": spec.crash.window,
        "essential": spec.essential,
        "health": health.status if health is not None and up else None,
        "health_failures": health.failures if health is not None and up else None,
        "health_retries": health.retries if health is not None else None,
        "note": read_note(spec.directory, spec.directory_fd, state.since + wall_offset) if up else None,
    }



def log_item(stream: str, line: bytes, when: float | None) -> dict[str, object]:
    """One line of a log answer; `when` (its arrival, wall clock) only when asked for."""
    item: dict[str, object] = {"stream": stream, "line": line.decode("utf-8", "backslashreplace")}
    if when is not None:
        item["time"] = round(when, 6)
    return item


def log_tail(recent: RecentLines, count: int, timestamps: bool = False) -> list[dict[str, object]]:
    return [log_item(stream, line, when if timestamps else None) for stream, line, when in recent.timed_tail(count)]
