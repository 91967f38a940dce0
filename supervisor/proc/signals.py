"""Signals for the event loop, never lost and never printed, even in a storm of them.

asyncio's own signal handling (which anyio's open_signal_receiver uses) learns
which signal came from the byte the C-level handler writes to the wakeup
socket. In a storm (3,000 orphans exiting at once, or a process of the pod
sending SIGCHLD in a loop) that socket fills while the loop is busy: the byte
of a SIGTERM arriving then is dropped, so the SIGTERM is never seen, and
CPython prints "Exception ignored when trying to write to the signal wakeup
fd" straight to stderr, past our logger.

Here the bytes only wake the loop. Which signals came is recorded by a
Python-level handler in a set (a storm of SIGCHLD is one pending SIGCHLD);
when it adds one, the handler follows it with a wake-up byte: whatever the
order in which the handler, the drain and the check run, a recorded signal is
always followed by something that wakes the receiver. A full socket is then
harmless (it already holds a wake-up), so CPython is told not to report it.
"""

from __future__ import annotations

import _signal  # not signal and socket: their enums would bring enum onto the start path
import _socket
from types import FrameType, TracebackType

TYPE_CHECKING = False  # collections.abc's import brings collections' (a millisecond of the start path)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

DRAIN_SIZE = 4096
HANDLED_SIGNALS = (_signal.SIGCHLD, _signal.SIGTERM, _signal.SIGINT, _signal.SIGQUIT, _signal.SIGHUP)
# S6_CMD_RECEIVE_SIGNALS: what s6-overlay diverts to the main program while it runs.
DIVERTED_SIGNALS = (_signal.SIGTERM, _signal.SIGQUIT, _signal.SIGINT, _signal.SIGUSR1, _signal.SIGUSR2,
                    _signal.SIGPWR, _signal.SIGWINCH)


class SignalReceiver:
    """`with SignalReceiver(signals) as receiver: async for signum in receiver: ...` (main thread only).

    It may be entered before any event loop exists (pyinit's start path): signals are recorded
    from then on and read once the loop iterates; anyio is imported at the first read."""

    def __init__(self, signals: Iterable[int]) -> None:
        self._signals = tuple(dict.fromkeys(signals))
        self._pending: dict[int, None] = {}  # an ordered set: each signal once, in order of arrival
        self._previous_handlers: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
        self._previous_wakeup_fd = -1
        self._wake_read, self._wake_write = _socket.socketpair()
        for end in (self._wake_read, self._wake_write):
            end.setblocking(False)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Runs in the main thread between two bytecodes: only atomic operations, no loop call.
        if signum in self._pending:
            return  # not yet read: no wake-up needed, and no system call (whose return would
            # deliver the next signal of a flood at once, and starve the program of its thread)
        self._pending[signum] = None
        try:
            self._wake_write.send(b"\0")
        except OSError:
            pass  # full: the receiver has a wake-up waiting already

    def __enter__(self) -> SignalReceiver:
        # No signal may come between the swap of handlers and the wakeup fd: block them meanwhile.
        blocked = _signal.pthread_sigmask(_signal.SIG_BLOCK, self._signals)
        try:
            self._previous_wakeup_fd = _signal.set_wakeup_fd(self._wake_write.fileno(), warn_on_full_buffer=False)
            for signum in self._signals:
                self._previous_handlers[signum] = _signal.signal(signum, self._on_signal)
                _signal.siginterrupt(signum, False)  # SA_RESTART, as asyncio does: no EINTR elsewhere
        finally:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, blocked)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        blocked = _signal.pthread_sigmask(_signal.SIG_BLOCK, self._signals)
        try:
            for signum, handler in self._previous_handlers.items():
                _signal.signal(signum, handler if handler is not None else _signal.SIG_DFL)
            _signal.set_wakeup_fd(self._previous_wakeup_fd)
        finally:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, blocked)
        self._wake_read.close()
        self._wake_write.close()

    def has_pending(self, *signals: int) -> bool:
        """Whether one of `signals` came and is not read yet (the start path asks, before the loop)."""
        return any(signum in self._pending for signum in signals)

    def _drain(self) -> None:
        try:
            while self._wake_read.recv(DRAIN_SIZE):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def __aiter__(self) -> SignalReceiver:
        return self

    async def __anext__(self) -> int:
        import anyio
        import anyio.lowlevel

        if self._pending:
            await anyio.lowlevel.checkpoint()  # a flood of signals must not starve the rest of the loop
        while not self._pending:
            await anyio.wait_readable(self._wake_read.fileno())
            self._drain()
        signum = next(iter(self._pending))
        del self._pending[signum]  # arriving again from here on, it is recorded again
        return signum


def open_signal_receiver(*signals: int) -> SignalReceiver:
    return SignalReceiver(signals)
