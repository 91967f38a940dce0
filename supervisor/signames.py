"""Signal names for every number 1-64, real-time ones included, and their parsing.

`signal.Signals(40)` raises: Python names only SIGRTMIN and SIGRTMAX. A PID 1
sees whatever number killed a service, so every number gets a name here
(SIGRTMIN+N as glibc counts, SIG32/SIG33 for the two glibc keeps for itself).
Pure and standard library only: the clients import it.
"""

from __future__ import annotations

import signal

RTMIN = int(signal.SIGRTMIN)
RTMAX = int(signal.SIGRTMAX)
HIGHEST = 64


def signal_name(signum: int) -> str:
    """A name for any signal number; never raises."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        pass
    if RTMIN < signum < RTMAX:
        return f"SIGRTMIN+{signum - RTMIN}"
    return f"SIG{signum}"


def parse_signal_name(text: str) -> int:
    """A name (any case, SIG optional, SIGRTMIN+N and SIGRTMAX-N too) or a number 1-64.

    Raises ValueError saying why; the number is always a real signal of this system.
    """
    upper = text.strip().upper()
    if upper.isdigit():
        if len(upper) > 3 or not 1 <= int(upper) <= HIGHEST:
            raise ValueError(f"{text[:20]!r} is not a signal number (1-{HIGHEST})")
        number = int(upper)
    else:
        name = upper if upper.startswith("SIG") else "SIG" + upper
        real_time = _real_time(name)
        if real_time is not None:
            number = real_time
        else:
            try:
                number = int(signal.Signals[name])
            except KeyError:
                raise ValueError(f"{text[:40]!r} is not a signal name") from None
    if number not in _VALID:
        raise ValueError(f"{text[:20]!r} is not a signal of this system")
    return number


def _real_time(name: str) -> int | None:
    for base, sign, anchor in (("SIGRTMIN+", 1, RTMIN), ("SIGRTMAX-", -1, RTMAX)):
        if name.startswith(base):
            offset = name[len(base):]
            if not offset.isdigit() or len(offset) > 2:
                raise ValueError(f"{name[:40]!r} is not a signal name")
            number = anchor + sign * int(offset)
            if not RTMIN <= number <= RTMAX:
                raise ValueError(f"{name[:40]!r} is outside SIGRTMIN..SIGRTMAX")
            return number
    return None


_VALID = frozenset(int(s) for s in signal.valid_signals())
