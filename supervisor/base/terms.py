"""The terms every part of pys6 shares, each defined once: what a service may be called, what
each signal is called, and what each exit code means.

Service names: one rule for the wire, service directories and s6-rc's trees.

Signal names: one for every number 1-64, real-time ones included, and their parsing.
`signal.Signals(40)` raises: Python names only SIGRTMIN and SIGRTMAX. A PID 1 sees whatever
number killed a service, so every number gets a name here (SIGRTMIN+N as glibc counts,
SIG32/SIG33 for the two glibc keeps for itself), read from `_signal`, which the interpreter has
loaded before any code runs, rather than from `signal`.

Exit codes: s6's (skarnet's tools: 100 usage, 111 system call failed, 99 s6-svlisten timed out)
with pys6's own beside them, and the two ways a process's end is told as a number: "the exit
code, or 128+N when killed by signal N" (the shell's way: pysvstat, metrics, the container's
exit code) or the 16-bit wait status (s6-supervise's status file, supercronic's "wstatus").

One module, pure and standard library only (no re, no enum, no __future__): every client loads
it, and pays for each module it loads.
"""

import _signal

# --- service names -----------------------------------------------------------------------

_NAME_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@")
_NAME_REST = _NAME_FIRST | frozenset(".+-")


def valid_name(name: str) -> bool:
    """Letters, digits and _ . @ + -, not starting with . + or -, at most 128 characters.

    Written out rather than as a regular expression: importing re costs the
    client CLIs milliseconds at every start.
    """
    return 0 < len(name) <= 128 and name[0] in _NAME_FIRST and all(c in _NAME_REST for c in name)


# --- signal names ------------------------------------------------------------------------

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
    if upper.isdecimal():
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
            if not offset.isdecimal() or len(offset) > 2:
                raise ValueError(f"{name[:40]!r} is not a signal name")
            number = anchor + sign * int(offset)
            if not RTMIN <= number <= RTMAX:
                raise ValueError(f"{name[:40]!r} is outside SIGRTMIN..SIGRTMAX")
            return number
    return None


_VALID = frozenset(int(s) for s in _signal.valid_signals())


# --- exit codes --------------------------------------------------------------------------

EXIT_OK = 0
EXIT_TIMEOUT = 1  # a wait timed out, or pysvstat --check found a service not as it should be
EXIT_FORBIDDEN = 3  # the service's state forbids the action (pys6's own)
EXIT_S6_TIMEOUT = 99  # s6-svlisten's (so s6-svc -w's and s6-svwait's) "timed out"
EXIT_USAGE = 100  # wrong usage: bad flag, unknown service, bad configuration
EXIT_NOT_RUNNING = 102  # the supervisor is not running or not listening
EXIT_SYSTEM = 111  # a system call failed, or the supervisor refused us
EXIT_CANNOT_EXEC = 126  # the shell's: found but could not be executed
EXIT_NOT_FOUND = 127  # the shell's: no such program
DEATH_BY_SIGNAL = 128  # the shell's: 128+N for a process killed by signal N


def exec_failure_code(exc: OSError) -> int:
    """The shell's convention for a command that could not run: 127 not found, 126 otherwise."""
    return EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else EXIT_CANNOT_EXEC  # FileNotFoundError: ENOENT


def death_code(exitcode: int | None, signum: int | None) -> int:
    """A process's fate as one exit code, the shell's way: 128+N when killed by N."""
    if signum is not None:
        return DEATH_BY_SIGNAL + signum
    return exitcode if exitcode is not None else 0


def wait_status(exitcode: int | None, signum: int | None) -> int:
    """The 16-bit wait status of a death: the signal number, or the exit code in the high byte."""
    if signum is not None:
        return signum & 0x7F
    return ((exitcode or 0) & 0xFF) << 8


def visible(text: str) -> str:
    """Text as a terminal may show it harmlessly: every character Python does not call printable
    (controls, separators, format characters) as a visible escape, \\x1b or \\u2028."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"
                   for c in text)


NOTE_CHARS = 200  # what a status line keeps of a service's note (core.statusnote, pycrond's --status-file)


def cut(text: str, limit: int = NOTE_CHARS) -> str:
    """`text` if it fits in `limit` characters, else its start and "..." in that many."""
    return text if len(text) <= limit else text[:limit - 3] + "..."
