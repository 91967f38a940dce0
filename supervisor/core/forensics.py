"""A service's forensics snapshot: its processes, recent deaths, last exit and last lines.

Built from plain records (spec, state, recent lines), so reporting never reaches
into a runner. Walking /proc for every process can take a while on a busy
machine, so the walk runs in a worker thread (never on PID 1's event loop),
two at most at a time, and is bounded in size.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NotRequired, TypedDict

import anyio
import anyio.to_thread

from ..logs.lines import RecentLines
from . import policy
from .model import Phase, ServiceSpec, ServiceState

if TYPE_CHECKING:
    from .health import HealthReport

FORENSIC_LINES = 20
MAX_PROCESSES = 10_000  # in an answer to pysvstat --forensics
LOGGED_PROCESSES = 50  # in the log event; the count says how many there were
MAX_COMMAND = 200

_walks = anyio.CapacityLimiter(2)  # and never the output writer's thread

ProcessRecord = dict[str, object]  # pid, ppid, cmd, state, rss_kib, cpu_s, fds: one item of the answer


class Snapshot(TypedDict):
    """The snapshot as JSON (docs/clients.md: Forensics before force)."""

    service: str
    reason: str
    processes: NotRequired[list[ProcessRecord]]  # the control answer sends them apart, as its items
    deaths_seconds_ago: list[float]
    last_exit: dict[str, int | None]
    last_lines: list[str]
    processes_total: int
    health: NotRequired[dict[str, object]]  # its health checks, when it has one: the last failure's output


def process_tree(session: int | None, limit: int = MAX_PROCESSES) -> tuple[list[ProcessRecord], int]:
    """The processes of a session (the service's run process leads it), at most `limit`, and how many there were."""
    if session is None:
        return [], 0
    import psutil

    found: list[ProcessRecord] = []
    total = 0
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) != session:
                continue
            total += 1
            if len(found) >= limit:
                continue
            with proc.oneshot():
                times = proc.cpu_times()
                found.append({
                    "pid": proc.pid,
                    "ppid": proc.ppid(),
                    "cmd": " ".join(proc.cmdline())[:MAX_COMMAND] or proc.name()[:MAX_COMMAND],
                    "state": proc.status(),
                    "rss_kib": proc.memory_info().rss // 1024,
                    "cpu_s": round(times.user + times.system, 2),
                    "fds": proc.num_fds(),
                })
        except (OSError, psutil.Error):
            continue
    return found, total


def _lines(recent: RecentLines) -> list[str]:
    return [line.decode("utf-8", "backslashreplace") for _stream, line in recent.tail(FORENSIC_LINES)]


async def snapshot(spec: ServiceSpec, state: ServiceState, recent: RecentLines, now: float, reason: str,
                   limit: int = MAX_PROCESSES, health: HealthReport | None = None) -> Snapshot:
    """Everything but the processes is read now, on the loop; the processes in a thread."""
    session = state.pid if state.phase is Phase.UP else state.pgid
    deaths = [round(now - t, 1) for t in policy.deaths_in_window(state.deaths, now, spec.crash)]
    last_exit = {"exitcode": state.exitcode, "signum": state.signum}
    lines = _lines(recent)
    processes, total = await anyio.to_thread.run_sync(process_tree, session, limit, limiter=_walks)
    record: Snapshot = {"service": spec.name, "reason": reason, "processes": processes, "deaths_seconds_ago": deaths,
                        "last_exit": last_exit, "last_lines": lines, "processes_total": total}
    if health is not None:
        record["health"] = {"check": health.check, "status": health.status, "failures": health.failures,
                            "retries": health.retries, "output": health.output}
    return record


def for_the_log(record: Snapshot) -> dict[str, object]:
    """The snapshot as one log event: its process list cut short (the total stays)."""
    return {**record, "processes": record["processes"][:LOGGED_PROCESSES]}
