"""s6-supervise's status file and event letters, from a service's state (pure: times are given).

supervise/status is 35 bytes, as s6_svstatus_pack writes it: the TAI64N stamp of the last
up or down change (12 bytes), the TAI64N stamp of readiness (12), the pid (8, big-endian,
0 when down), the last wait status (2, big-endian) and a flag byte (1 paused, 2
finishing, 4 want up, 8 ready). A service never started is "paused and down", which is
how s6-svstat knows to say "not started yet". Stamps are TAI64N of the wall clock as
skalibs converts it (UTC + 10 + 27 leap seconds: base/tai64).
"""

from __future__ import annotations

import struct

from ..base.tai64 import tain
from ..base.terms import wait_status
from ..core.model import Phase, ServiceState, Want

STATUS_SIZE = 35
_STATUS = struct.Struct(">QIQIQHB")

FLAG_PAUSED, FLAG_FINISHING, FLAG_WANT_UP, FLAG_READY = 1, 2, 4, 8


def pack(state: ServiceState, monotonic_now: float, wall_now: float) -> bytes:
    """The status file for `state`; its monotonic times become wall times through `*_now`."""

    def wall(moment: float | None) -> float:
        return wall_now - (monotonic_now - (monotonic_now if moment is None else moment))

    up = state.phase is Phase.UP
    flags = 0
    if not state.started and not up:
        flags |= FLAG_PAUSED
    if state.phase is Phase.FINISHING:
        flags |= FLAG_FINISHING
    if state.want is Want.UP:  # -o (once) is "want down" to s6 once the service is up
        flags |= FLAG_WANT_UP
    if (up and state.ready_at is not None) or (state.started and state.phase in (Phase.DOWN, Phase.WAITING)):
        flags |= FLAG_READY  # down: "really down", its finish done (s6-svwait -D)
    stamp = tain(wall(state.since if state.started else None))
    ready = tain(wall(state.ready_at if up and state.ready_at is not None else state.since))
    pid = state.pid if up and state.pid is not None else 0
    return _STATUS.pack(stamp[0], stamp[1], ready[0], ready[1], pid, wait_status(state.exitcode, state.signum), flags)


def events(before: ServiceState, after: ServiceState) -> str:
    """s6-supervise's event letters for a change, in its order: d (died), D (down, its finish
    done), u (up), U (ready). A restart passes through all four, as s6-svc -wR expects."""
    was_up, is_up = before.phase is Phase.UP, after.phase is Phase.UP
    new_incarnation = is_up and (not was_up or before.pid != after.pid)
    died = was_up and (not is_up or before.pid != after.pid)
    letters = "d" if died else ""
    if (died or before.phase is Phase.FINISHING) and after.phase is not Phase.FINISHING:
        letters += "D"
    if new_incarnation:
        letters += "u"
    if is_up and after.ready_at is not None and (new_incarnation or before.ready_at is None):
        letters += "U"
    return letters
