"""The one home of TAI64N, the exit codes and the wait-status encoding: pure, in-process."""

from __future__ import annotations

import os
import signal
import struct

import pytest

from supervisor.base import tai64, terms
from supervisor.control import statusfmt
from supervisor.core.model import Phase, ServiceSpec, ServiceState, Want
from supervisor.s6.status import pack


def _unlabel(label: str) -> float:
    """s6-tai64nlocal's reading of a label, back to the Unix time it stamps."""
    assert label[0] == "@" and len(label) == 25
    seconds, nanos = struct.unpack(">QI", bytes.fromhex(label[1:]))
    return seconds - tai64.TAI64_BASE - tai64.TAI_MINUS_UTC + nanos / 1e9


@pytest.mark.parametrize("when", [0.0, 0.5, 1_700_000_000.25, 1_234_567_890.123456789, 4_102_444_800.999])
def test_a_tai64n_label_reads_back_as_the_time_it_stamps(when: float):
    assert abs(_unlabel(tai64.label(when)) - when) < 1e-6


def test_the_label_is_the_hex_of_s6s_packed_tain():
    """s6's tain_pack: 8 bytes of seconds and 4 of nanoseconds, big-endian; printed as their hex."""
    seconds, nanos = tai64.tain(1_700_000_000.75)
    assert seconds == (1 << 62) + 1_700_000_000 + 37 and nanos == 750_000_000
    assert tai64.label(1_700_000_000.75) == "@" + struct.pack(">QI", seconds, nanos).hex()
    assert tai64.label(0.0) == "@400000000000002500000000"  # the 1970 epoch as s6 prints it (TAI 37 s on)


def test_s6_status_stamps_pysvstat_and_the_catch_all_log_share_one_clock():
    state = ServiceState(phase=Phase.UP, want=Want.UP, pid=7, started=True, since=10.0)
    packed_stamp = pack(ServiceSpec(name="x", directory="/x"), state, monotonic_now=10.0, wall_now=1_700_000_000.5)[:12]
    assert "@" + packed_stamp.hex() == statusfmt.tai64n(1_700_000_000.5) == tai64.label(1_700_000_000.5)
    assert statusfmt.tai64n(None) == "NA"


@pytest.mark.parametrize(("exitcode", "signum"), [(0, None), (1, None), (255, None), (None, 9), (None, 15),
                                                  (None, 64)])
def test_the_wait_status_is_the_kernels_own(exitcode: int | None, signum: int | None):
    status = terms.wait_status(exitcode, signum)
    if signum is None:
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == exitcode
    else:
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signum
    assert terms.wait_status(None, None) == 0


def test_a_death_is_its_exit_code_or_128_plus_its_signal():
    assert terms.death_code(3, None) == 3
    assert terms.death_code(None, signal.SIGKILL) == 137
    assert terms.death_code(None, None) == 0


def test_an_exec_failure_is_127_when_not_found_and_126_otherwise():
    assert terms.exec_failure_code(FileNotFoundError(2, "No such file or directory")) == terms.EXIT_NOT_FOUND == 127
    assert terms.exec_failure_code(PermissionError(13, "Permission denied")) == terms.EXIT_CANNOT_EXEC == 126
    assert terms.exec_failure_code(OSError(24, "Too many open files")) == 126
    assert terms.exec_failure_code(OSError(2, "No such file or directory")) == 127  # OSError(ENOENT) is one


def test_s6s_exit_codes_keep_their_numbers():
    assert (terms.EXIT_OK, terms.EXIT_TIMEOUT, terms.EXIT_FORBIDDEN, terms.EXIT_S6_TIMEOUT, terms.EXIT_USAGE,
            terms.EXIT_NOT_RUNNING, terms.EXIT_SYSTEM) == (0, 1, 3, 99, 100, 102, 111)
