"""The environment this process was exec'd with, as the kernel keeps it.

Python's start-up changes its own os.environ (the C-locale coercion sets LC_CTYPE when the
locale is C or POSIX), and pyinit sets a few variables of its own; what a child inherits must
be what the process itself was given, as s6-overlay's C programs pass it on. /proc/self/environ
holds exactly that. Standard library only: with-contenv imports this.

The same holds for signal dispositions: Python's start-up ignores SIGPIPE and SIGXFSZ, and an
ignored signal stays ignored across exec, so a pys6 command that chain-loads a program
(with-contenv, s6-notifyoncheck...) puts them back first, as a C program that never touched
them passes them on (pyinit starts every child with all signals at their default).
"""

from __future__ import annotations

import _signal  # not signal: its enums would bring enum onto the start path
import os

TYPE_CHECKING = False  # collections.abc's import brings collections' (a millisecond of the start path)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

_PYTHON_IGNORES = tuple(getattr(_signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(_signal, name))


def exec_environment(path: str = "/proc/self/environ") -> dict[bytes, bytes] | None:
    """The environment this process was exec'd with, before Python's start-up changed its own
    (the C-locale coercion sets LC_CTYPE in os.environ); None where /proc cannot tell."""
    try:
        with open(path, "rb") as environ:
            data = environ.read()
    except OSError:
        return None
    found: dict[bytes, bytes] = {}
    for entry in data.split(b"\0"):
        name, equals, value = entry.partition(b"=")
        if equals and name and name not in found:  # the first of a duplicated name, as getenv finds it
            found[name] = value
    return found


def find_program(name: str, path: str | None = None) -> str | None:
    """`name` on `path` (else $PATH) as shutil.which finds it: the first executable regular file,
    an empty entry being the working directory. Here rather than shutil's, whose import (bz2,
    lzma, fnmatch, re) would cost pyinit's start path milliseconds before its first script."""
    for directory in (os.environ.get("PATH", os.defpath) if path is None else path).split(os.pathsep):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def exec_program(argv: Sequence[str], environ: Mapping[bytes, bytes] | Mapping[str, str] | None = None) -> None:
    """Become argv[0] (searched on PATH), with the signals Python's start-up ignored at their
    default again; with `environ`, that environment, else os.environ. Raises OSError."""
    for signum in _PYTHON_IGNORES:
        _signal.signal(signum, _signal.SIG_DFL)
    if environ is None:
        os.execvp(argv[0], list(argv))
    else:
        os.execvpe(argv[0], list(argv), environ)
