"""What s6-rc-compile makes of a source definition: a oneshot's `up` and `down` as the command
line s6-rc's oneshot runner runs, a longrun's copy to run from. For rcrun, and for pyinit's start
path (container/early), which starts the first of them before the event loop's modules are
loaded: standard library only (shutil only to copy a longrun)."""

from __future__ import annotations

import os
import stat

from ..base.environ import find_program

USER_SUFFIX = ".user"  # s6-rc-compile's name for a pipelined longrun's own run and finish
WRAPPER = """#!/bin/sh
# s6-rc-compile's layout: a pipelined longrun's own script is {name}.user. pyinit runs
# ./{name}.user itself with the pipe in place; this wrapper is for whoever runs ./{name}.
exec ./{name}.user "$@"
"""

EXECLINE_WORDS = ("{", "}", "foreground", "background", "if", "ifelse", "ifte", "ifthenelse", "importas", "backtick",
                  "define", "multisubstitute", "redirfd", "fdmove", "pipeline", "forx", "elglob", "emptyenv")


class CommandLineError(Exception):
    pass


def command_line(text: str, name: str, execlineb: str | None) -> list[str]:
    """The argv that runs a oneshot's `up` or `down` text; [] when it holds no command at all (only
    comments, as LinuxServer's init-os-end: execlineb runs that as an empty program, which succeeds)."""
    if execlineb is not None:
        return [execlineb, "-P", "-c", text]
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not lines:
        return []
    import shlex  # only for an s6-rc oneshot run without execlineb

    try:
        words = shlex.split(lines[0]) if len(lines) == 1 else []
    except ValueError:
        words = []
    if not words or any(word in EXECLINE_WORDS for word in words):
        raise CommandLineError(f"{name}: this script needs execline (execlineb is not installed): {text.strip()[:200]!r}")
    return words


def find_execlineb(path: str | None = None) -> str | None:
    """execlineb on PATH, or None."""
    return find_program("execlineb", path)


def compile_longrun(source: str, destination: str, pipelined: bool = False) -> None:
    """A copy of the source directory to run from, run and finish executable (s6-rc-compile's);
    `pipelined`: they become run.user and finish.user, with a wrapper run and finish beside them."""
    from ..core.servicedir import copy_tree, remove_tree  # not shutil's: its imports would hold up the start

    remove_tree(destination)
    os.makedirs(os.path.dirname(destination), 0o755, exist_ok=True)
    copy_tree(source, destination)
    for name in ("run", "finish"):
        path = os.path.join(destination, name)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(info.st_mode):
            if not os.path.isfile(path):
                continue
            # its target, outside the copy, is not ours to chmod
        elif stat.S_ISREG(info.st_mode):
            os.chmod(path, stat.S_IMODE(info.st_mode) | 0o755)
        else:
            continue
        if pipelined:
            os.replace(path, path + USER_SUFFIX)
            with open(path, "x", encoding="utf-8") as wrapper:
                wrapper.write(WRAPPER.format(name=name))
            os.chmod(path, 0o755)
