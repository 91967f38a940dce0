"""s6-supervise's status file and event letters, from a service's state (pure: times are given).

supervise/status is 35 bytes, as s6_svstatus_pack writes it: the TAI64N stamp of the last
up or down change (12 bytes), the TAI64N stamp of readiness (12), the pid (8, big-endian,
0 when down), the last wait status (2, big-endian) and a flag byte (1 paused, 2
finishing, 4 want up, 8 ready). A service never started is "paused and down", which is
how s6-svstat knows to say "not started yet"; an up one is paused after s6-svc -p until -c. Stamps are TAI64N of the wall clock as
skalibs converts it (UTC + 10 + 27 leap seconds: base/tai64).
"""

from __future__ import annotations

import struct

from ..base.tai64 import tain
from ..base.terms import wait_status
from ..core.model import Phase, ServiceSpec, ServiceState, Want
from ..core.policy import s6_ready, s6_ready_moment

STATUS_SIZE = 35
_STATUS = struct.Struct(">QIQIQHB")

FLAG_PAUSED, FLAG_FINISHING, FLAG_WANT_UP, FLAG_READY = 1, 2, 4, 8


def pack(spec: ServiceSpec, state: ServiceState, monotonic_now: float, wall_now: float,
         paused: bool = False) -> bytes:
    """The status file for `state`, as s6-supervise 2.15 keeps it; its monotonic times become wall
    times through `*_now`. `paused`: s6-svc -p (or -P) was the last word to this process, not -c.

    The ready flag: up, once the service said so (policy.s6_ready: its notification-fd, or its
    health check's first pass; never for one with neither, as s6-supervise never marks it);
    down, once its finish has ended (at its death without one), the readiness stamp then being
    that moment, as s6-supervise's set_down_and_ready stamps it. While it is up and not ready,
    the readiness stamp keeps the last one, as s6-supervise's does."""

    def wall(moment: float | None) -> float:
        return wall_now - (monotonic_now - (monotonic_now if moment is None else moment))

    up = state.phase is Phase.UP
    down_done = state.started and state.phase in (Phase.DOWN, Phase.WAITING)
    flags = 0
    if (not state.started and not up) or (up and paused):
        flags |= FLAG_PAUSED  # never started: "paused and down" is s6-svstat's "not started yet"
    if state.phase is Phase.FINISHING:
        flags |= FLAG_FINISHING
    if state.want is Want.UP:  # -o (once) is "want down" to s6 once the service is up
        flags |= FLAG_WANT_UP
    if s6_ready(spec, state) or down_done:
        flags |= FLAG_READY  # down: "really down", its finish done (s6-svwait -D)
    stamp = tain(wall(state.since if state.started else None))
    ready = tain(wall(s6_ready_moment(spec, state)))
    pid = state.pid if up and state.pid is not None else 0
    return _STATUS.pack(stamp[0], stamp[1], ready[0], ready[1], pid, wait_status(state.exitcode, state.signum), flags)


def events(spec: ServiceSpec, before: ServiceState, after: ServiceState) -> str:
    """s6-supervise's event letters for a change, in its order: d (died), D (down, its finish
    done), u (up), U (ready, as policy.s6_ready says it: never for a service with neither
    notification-fd nor health check). A restart passes through all four, as s6-svc -wR expects."""
    was_up, is_up = before.phase is Phase.UP, after.phase is Phase.UP
    new_incarnation = is_up and (not was_up or before.pid != after.pid)
    died = was_up and (not is_up or before.pid != after.pid)
    letters = "d" if died else ""
    if (died or before.phase is Phase.FINISHING) and after.phase is not Phase.FINISHING:
        letters += "D"
    if new_incarnation:
        letters += "u"
    if s6_ready(spec, after) and (new_incarnation or not s6_ready(spec, before)):
        letters += "U"
    return letters
