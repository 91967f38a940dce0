"""Signal names for every number 1-64, real-time ones included, and their parsing.

`signal.Signals(40)` raises: Python names only SIGRTMIN and SIGRTMAX. A PID 1
sees whatever number killed a service, so every number gets a name here
(SIGRTMIN+N as glibc counts, SIG32/SIG33 for the two glibc keeps for itself).
Pure and standard library only: the clients import it. It reads the names
from `_signal`, which the interpreter has loaded before any code runs, rather
than from `signal`, whose enum costs a fresh client milliseconds.
"""

from __future__ import annotations

import _signal

RTMIN = int(_signal.SIGRTMIN)
RTMAX = int(_signal.SIGRTMAX)
HIGHEST = 64


def _names() -> tuple[dict[int, str], dict[str, int]]:
    """signal.Signals' members: SIG* names but SIG_*, one name a number (the first in order of
    (number, name), as the enum keeps it: SIGABRT, not SIGIOT), aliases accepted when parsing."""
    by_name = {name: int(number) for name, number in vars(_signal).items()
               if name.startswith("SIG") and not name.startswith("SIG_") and name.isupper()}
    by_number: dict[int, str] = {}
    for name, number in sorted(by_name.items(), key=lambda item: (item[1], item[0])):
        by_number.setdefault(number, name)
    return by_number, by_name


_NAME_OF, _NUMBER_OF = _names()


def signal_name(signum: int) -> str:
    """A name for any signal number; never raises."""
    name = _NAME_OF.get(signum)
    if name is not None:
        return name
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
            if name not in _NUMBER_OF:
                raise ValueError(f"{text[:40]!r} is not a signal name")
            number = _NUMBER_OF[name]
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


_VALID = frozenset(int(s) for s in _signal.valid_signals())
