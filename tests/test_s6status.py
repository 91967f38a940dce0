"""s6-supervise's status bytes and event letters from a service's state: pure, no processes."""

from __future__ import annotations

import struct

import pytest

from supervisor.base.record import replace
from supervisor.base.tai64 import TAI64_BASE as TAI_MAGIC
from supervisor.base.tai64 import tain
from supervisor.base.terms import wait_status
from supervisor.core.health import HealthSpec
from supervisor.core.model import Phase, ServiceSpec, ServiceState, Want
from supervisor.s6.status import STATUS_SIZE, events, pack

LAYOUT = struct.Struct(">QIQIQHB")  # s6_svstatus_pack: stamp, readystamp, pid, wstat, flags
NOTIFIES = ServiceSpec(name="x", directory="/x", notification_fd=3)
PLAIN = ServiceSpec(name="x", directory="/x")  # no notification-fd: never ready to s6-supervise


def test_a_live_ready_service_packs_as_s6_supervise_writes_it():
    state = ServiceState(phase=Phase.UP, want=Want.UP, pid=4321, started=True, since=100.0, ready_at=100.5)
    data = pack(NOTIFIES, state, monotonic_now=110.0, wall_now=1_700_000_010.25)
    assert len(data) == STATUS_SIZE
    stamp, stamp_ns, ready, ready_ns, pid, wstat, flags = LAYOUT.unpack(data)
    assert stamp == TAI_MAGIC + 1_700_000_000 + 37 and stamp_ns == 250_000_000
    assert ready == TAI_MAGIC + 1_700_000_000 + 37 and ready_ns == 750_000_000
    assert (pid, wstat, flags) == (4321, 0, 4 | 8)  # want up, ready
    *_, flags = LAYOUT.unpack(pack(PLAIN, state, 110.0, 1_700_000_010.25))
    assert flags == 4  # pyinit counts it ready once up (ready_at); s6-supervise never says so
    *_, flags = LAYOUT.unpack(pack(NOTIFIES, state, 110.0, 1_700_000_010.25, paused=True))
    assert flags == 1 | 4 | 8  # s6-svc -p


def test_a_down_service_is_ready_from_its_finish_s_end():
    state = ServiceState(phase=Phase.DOWN, want=Want.UP, started=True, since=100.0, down_ready_at=101.0, signum=15)
    stamp, stamp_ns, ready, ready_ns, pid, wstat, flags = LAYOUT.unpack(pack(PLAIN, state, 110.0, 1_700_000_010.0))
    assert (stamp, stamp_ns) == (TAI_MAGIC + 1_700_000_000 + 37, 0)  # the death
    assert (ready, ready_ns) == (TAI_MAGIC + 1_700_000_001 + 37, 0)  # the finish's end
    assert (pid, wstat, flags) == (0, 15, 4 | 8)
    *_, flags = LAYOUT.unpack(pack(PLAIN, replace(state, phase=Phase.FINISHING, down_ready_at=None), 110.0, 1e9))
    assert flags == 2 | 4  # finishing: not ready yet


@pytest.mark.parametrize(("state", "flags", "wstat"), [
    (ServiceState(), 1, 0),  # never started: "paused" and down, s6's "not started yet"
    (ServiceState(phase=Phase.DOWN, started=True, exitcode=3), 8, 3 << 8),  # down, finish done
    (ServiceState(phase=Phase.FINISHING, want=Want.UP, started=True, signum=15), 2 | 4, 15),
    (ServiceState(phase=Phase.WAITING, want=Want.UP, started=True, exitcode=1, bailed=True), 4 | 8, 1 << 8),
    (ServiceState(phase=Phase.UP, want=Want.ONCE, pid=9, started=True), 0, 0),  # -o: want down once it dies
])
def test_flags_and_wait_status(state: ServiceState, flags: int, wstat: int):
    *_, pid, packed_wstat, packed_flags = LAYOUT.unpack(pack(NOTIFIES, state, 0.0, 1e9))
    assert (packed_flags, packed_wstat) == (flags, wstat)
    assert pid == (state.pid or 0)


def test_tain_and_wait_status():
    assert tain(0.5) == (TAI_MAGIC + 37, 500_000_000)
    assert wait_status(None, 9) == 9 and wait_status(255, None) == 255 << 8 and wait_status(None, None) == 0


UP = ServiceState(phase=Phase.UP, want=Want.UP, pid=10, started=True)


@pytest.mark.parametrize(("before", "after", "letters"), [
    (ServiceState(), UP, "u"),
    (UP, replace(UP, ready_at=1.0), "U"),
    (ServiceState(), replace(UP, ready_at=1.0), "uU"),  # notified at once
    (UP, replace(UP, phase=Phase.FINISHING, pid=None), "d"),
    (replace(UP, phase=Phase.FINISHING, pid=None), replace(UP, phase=Phase.WAITING, pid=None), "D"),
    (UP, replace(UP, phase=Phase.DOWN, pid=None), "dD"),
    (replace(UP, ready_at=1.0), replace(UP, pid=11, ready_at=2.0), "dDuU"),  # restarted at once
    (replace(UP, phase=Phase.FINISHING, pid=None), replace(UP, pid=11), "Du"),
    (UP, replace(UP, deaths=(1.0,)), ""),  # nothing s6 announces
])
def test_event_letters_follow_s6_supervise(before: ServiceState, after: ServiceState, letters: str):
    assert events(NOTIFIES, before, after) == letters


def test_no_U_without_a_notification_fd():
    """pyinit counts it ready as it starts (ready_at); s6-supervise never sends U for it."""
    assert events(PLAIN, ServiceState(), replace(UP, ready_at=1.0)) == "u"
    assert events(PLAIN, replace(UP, ready_at=1.0), replace(UP, pid=11, ready_at=2.0)) == "dDu"


def test_a_health_check_makes_a_service_without_notification_fd_ready_at_its_first_pass():
    """SPEC, Health checks: s6's s6-svwait -U on its supervise directory waits for that pass."""
    checked = replace(PLAIN, health=HealthSpec("exec", "./health"))
    assert events(checked, ServiceState(), UP) == "u"  # up, its check not passed yet (ready_at None)
    assert events(checked, UP, replace(UP, ready_at=5.0)) == "U"
    *_, flags = LAYOUT.unpack(pack(checked, replace(UP, ready_at=5.0), 10.0, 1e9))
    assert flags == 4 | 8
