"""Exit codes, and the two ways a process's end is told as a number, in one place.

The codes are s6's (skarnet's tools: 100 usage, 111 system call failed, 99 s6-svlisten timed
out) with pys6's own beside them. A death is either "the exit code, or 128+N when killed by
signal N" (the shell's way: pysvstat, metrics, the container's exit code) or the 16-bit wait
status (s6-supervise's status file, supercronic's "wstatus"). Pure, standard library only and
importing nothing: every client loads it.
"""

from __future__ import annotations

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
