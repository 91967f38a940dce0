"""Kill everything we may own: SIGTERM (and SIGCONT, so a stopped process can act on it), a
grace time, then SIGKILL, each death reaped by the reaper (still the only waitpid).

As PID 1 "everything" is every process of our PID namespace but us (kill(-1)); as a
subreaper, only our descendants, never a developer's whole session. Stage 3 and pycrond's
leftovers go through `kill_everyone`, pyinit's emergency stop (no event loop left) through
`kill_everyone_now`.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .reaper import Reaper, reap_until

if TYPE_CHECKING:
    from ..logs.events import Logger

AFTER_KILL = 1.0  # seconds for the SIGKILLed to be reaped: the kernel is quick, a zombie's parent may not be


def signal_everyone(is_pid1: bool, signum: int) -> None:
    """Every process we may own: the whole PID namespace as PID 1, our descendants as a subreaper."""
    if is_pid1:
        try:
            os.kill(-1, signum)  # every process of our PID namespace but us
        except OSError:
            pass  # ESRCH: nobody left; EPERM: nobody we may signal
        return
    import psutil  # only here: a subreaper must not kill(-1) a developer's whole session

    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        try:
            child.send_signal(signum)
        except psutil.Error:
            pass


async def kill_everyone(reaper: Reaper, is_pid1: bool, grace: float, after_kill: float = AFTER_KILL,
                        log: Logger | None = None, wake_stopped: bool = True,
                        before_kill: Callable[[], None] | None = None) -> None:
    """TERM everyone left, wait `grace` seconds for them to be reaped, KILL those still there and
    wait `after_kill` more. Nothing is sent when no child is left. `log` says each round;
    `wake_stopped` sends SIGCONT after SIGTERM (pycrond's leftovers never got one); `before_kill`
    is called just before the SIGKILL round (stage 3's report names who gets it)."""
    import anyio  # here: the module is also the emergency stop's, which has no loop

    reaper.reap()
    if not reaper.has_children():
        return
    if log is not None:
        log.info("sending SIGTERM to remaining processes")
    signal_everyone(is_pid1, signal.SIGTERM)
    if wake_stopped:
        signal_everyone(is_pid1, signal.SIGCONT)
    with anyio.move_on_after(grace):
        await reaper.wait_childless()
        return
    if log is not None:
        log.warning("sending SIGKILL to remaining processes")
    if before_kill is not None:
        before_kill()
    signal_everyone(is_pid1, signal.SIGKILL)
    with anyio.move_on_after(after_kill):
        await reaper.wait_childless()


def kill_everyone_now(is_pid1: bool, grace: float, after_kill: float = AFTER_KILL) -> None:
    """kill_everyone without an event loop (the emergency stop): the same rounds, reaped by polling."""
    signal_everyone(is_pid1, signal.SIGTERM)
    signal_everyone(is_pid1, signal.SIGCONT)
    if not reap_until(time.monotonic() + grace):
        signal_everyone(is_pid1, signal.SIGKILL)
        reap_until(time.monotonic() + after_kill)
